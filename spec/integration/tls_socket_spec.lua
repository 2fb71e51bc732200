-- tls_socket_spec.lua -- core.tls_client and the "mxprobe.tls" object over
-- real sockets, and the socket methods that need one (local_address).
-- Moved out of spec/unit/tls_spec.lua, which opens no socket. No lab: the
-- peers are `openssl s_server` on 127.0.0.1 (a free port chosen by the
-- server) and a port nothing listens on; everything goes through the
-- non-blocking socket of net.c: core.connect, s:fd(), s:finish_connect(),
-- core.poll (revents: 1 readable, 2 writable, 4 error/hangup).
local core = require "mxprobe.core"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local dir = here .. "/../fixtures/certs/"
local expected = dofile(dir .. "expected.lua")

local CONFIGS = "mxprobe.tls.configs"
local DEFAULT_KEY = "p=all s=0 c=ALL:!aNULL:!eNULL"

local function poll1(fd, ev, ms)
  return core.poll({ fd }, { ev }, ms)[1]
end

-- a TCP socket whose connect was refused (nothing listens on port 1):
-- an mxprobe.sock, open, on which any TLS write fails
local function refused()
  local s = assert(core.connect("127.0.0.1", 1))
  for _ = 1, 50 do
    local ok, msg, code = s:finish_connect()
    if ok == nil then
      assert.equal("refused", code, msg)
      return s
    end
    poll1(s:fd(), 2, 100)
  end
  error("connect to 127.0.0.1:1 was not refused")
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("core.tls_client over a socket #integration", function()
  it("raises on a bad servername or bad options", function()
    local s <close> = refused()
    assert.has_error(function() core.tls_client(s, {}) end)
    assert.has_error(function() core.tls_client(s, 5) end)
    assert.has_error(function() core.tls_client(s, nil, "all") end)
    for _, opts in ipairs({
      { protocols = 1 }, { protocols = "tlsv9" }, { protocols = "!all" },
      { ciphers = {} }, { ciphers = "" }, { ciphers = ("A"):rep(1025) },
      { ciphers = "ALL\0x" }, { seclevel = 6 }, { seclevel = -1 },
      { seclevel = 1.5 }, { seclevel = "2" },
    }) do
      assert.has_error(function() core.tls_client(s, nil, opts) end)
    end
    local ok, err = pcall(core.tls_client, s, nil, { protocols = "tlsv9" })
    assert.is_false(ok)
    assert.matches("opts.protocols: not a libtls protocol list: tlsv9", err, 1, true)
  end)

  it("raises on a closed socket", function()
    local s = refused()
    s:close()
    assert.has_error(function() core.tls_client(s, nil) end)
  end)

  it("returns an open mxprobe.tls object without touching the socket", function()
    local s <close> = refused()
    local t = assert(core.tls_client(s, "mx1.example.test"))
    assert.matches("^mxprobe.tls", tostring(t))
    assert.equal(true, t:close())
    assert.equal("number", type(s:fd()))     -- still open
  end)

  it("reports a failed handshake as nil, msg, 'tls'", function()
    local s <close> = refused()
    local t = assert(core.tls_client(s, nil))
    local ok, msg, code = t:handshake()
    assert.is_nil(ok)
    assert.matches("^tls handshake: ", msg)
    assert.equal("tls", code)
    t:close()
  end)

  it("raises when info is asked before the handshake", function()
    local s <close> = refused()
    local t = assert(core.tls_client(s))
    assert.has_error(function() t:info() end, "tls info: handshake not complete")
    t:close()
  end)

  it("closes idempotently, and raises on use after close", function()
    local s <close> = refused()
    local t = assert(core.tls_client(s))
    assert.equal(true, t:close())
    assert.equal(true, t:close())
    assert.equal("mxprobe.tls (closed)", tostring(t))
    assert.has_error(function() t:handshake() end, "attempt to use a closed tls connection")
    assert.has_error(function() t:recv() end)
    assert.has_error(function() t:send("x") end)
    assert.has_error(function() t:info() end)
  end)

  it("closes through a to-be-closed variable", function()
    local s <close> = refused()
    local outer
    do
      local t <close> = assert(core.tls_client(s))
      outer = t
    end
    assert.equal("mxprobe.tls (closed)", tostring(outer))
  end)

  it("checks recv and send arguments", function()
    local s <close> = refused()
    local t = assert(core.tls_client(s))
    assert.has_error(function() t:recv(0) end)
    assert.has_error(function() t:send(nil) end)
    assert.has_error(function() t:send("abc", 0) end)
    assert.has_error(function() t:send("abc", 5) end)
    assert.equal(0, t:send("abc", 4))   -- nothing left to send
    t:close()
  end)

  it("raises when a method gets another userdata", function()
    local s <close> = refused()
    local t = assert(core.tls_client(s))
    assert.has_error(function() t.handshake(io.stdout) end)
    assert.has_error(function() t.handshake(s) end)
    t:close()
  end)

  it("raises once its socket is closed, and closes without it", function()
    local s = refused()
    local t = assert(core.tls_client(s))
    s:close()
    assert.has_error(function() t:handshake() end,
      "attempt to use a tls connection whose socket is closed")
    assert.has_error(function() t:send("x") end,
      "attempt to use a tls connection whose socket is closed")
    assert.equal(true, t:close())
  end)

  it("keeps its socket from the collector", function()
    local t, fd
    do
      local s = refused()
      fd = s:fd()
      t = assert(core.tls_client(s))
    end
    collectgarbage()
    collectgarbage()
    -- the socket is alive: its descriptor still polls writable (a closed
    -- one would give 4 alone, POLLNVAL) and the TLS object can use it
    assert.equal(2, poll1(fd, 2, 0) & 2)
    local ok, _, code = t:handshake()
    assert.is_nil(ok)
    assert.equal("tls", code)
    t:close()
  end)

  it("keeps one libtls configuration per option set", function()
    local s <close> = refused()
    local reg = debug.getregistry()
    assert.equal("table", type(reg[CONFIGS]))
    local t1 = assert(core.tls_client(s))
    local cfg = reg[CONFIGS][DEFAULT_KEY]
    assert.equal("userdata", type(cfg))
    local t2 = assert(core.tls_client(s, "x.example.test", { protocols = "all", seclevel = 0 }))
    assert.equal(cfg, reg[CONFIGS][DEFAULT_KEY])
    local t3 = assert(core.tls_client(s, nil, { protocols = "tlsv1.3,tlsv1.2" }))
    local t4 = assert(core.tls_client(s, nil, { protocols = "tlsv1.2:tlsv1.3" }))
    local key = "p=tlsv1.2,tlsv1.3 s=0 c=ALL:!aNULL:!eNULL"
    assert.equal("userdata", type(reg[CONFIGS][key]))
    assert.are_not.equal(cfg, reg[CONFIGS][key])
    local t5 = assert(core.tls_client(s, nil, { seclevel = 2, ciphers = "HIGH" }))
    assert.equal("userdata", type(reg[CONFIGS]["p=all s=2 c=HIGH"]))
    local n = count(reg[CONFIGS])
    assert.is_true(n >= 3)
    assert(core.tls_client(s, nil, { seclevel = 2, ciphers = "HIGH" })):close()
    assert.equal(n, count(reg[CONFIGS]))
    for _, t in ipairs({ t1, t2, t3, t4, t5 }) do t:close() end
  end)

  it("returns nil, msg, 'tls' for a cipher list OpenSSL refuses, and caches nothing", function()
    local s <close> = refused()
    local before = count(debug.getregistry()[CONFIGS])
    local t, msg, code = core.tls_client(s, nil, { ciphers = "NO-SUCH-CIPHER" })
    assert.is_nil(t)
    assert.matches("^tls config ciphers: ", msg)
    assert.equal("tls", code)
    assert.equal(before, count(debug.getregistry()[CONFIGS]))
  end)
end)

describe("sock:local_address #integration", function()
  it("gives our end of a TCP connection", function()
    local s <close> = refused()
    local a, p = s:local_address()
    assert.equal("127.0.0.1", a)
    assert.equal("integer", math.type(p))
    assert.is_true(p >= 1 and p <= 65535)
  end)

  it("gives our end of a UDP socket, IPv4 and IPv6", function()
    local u4 <close> = assert(core.connect("127.0.0.1", 53, "udp"))
    local a, p = u4:local_address()
    assert.equal("127.0.0.1", a)
    assert.is_true(p >= 1 and p <= 65535)
    local u6, msg = core.connect("::1", 53, "udp")
    if u6 then   -- no IPv6 loopback in some containers
      local a6, p6 = u6:local_address()
      assert.equal("::1", a6)
      assert.is_true(p6 >= 1 and p6 <= 65535)
      u6:close()
    else
      assert.is_string(msg)
    end
  end)

  it("raises on a closed socket", function()
    local s = refused()
    s:close()
    assert.has_error(function() s:local_address() end)
  end)
end)

-- ---- loopback handshakes against openssl s_server ------------------------

-- start `openssl s_server` on 127.0.0.1, port chosen by the kernel; returns
-- {port, pid, pipe}. Registers its end with busted's finally.
local function server(args)
  local cmd = "exec openssl s_server -accept 127.0.0.1:0 -naccept 1 " ..
    "-cert " .. dir .. "leaf.pem -key " .. dir .. "leaf.key " ..
    "-cert_chain " .. dir .. "intermediate.pem " .. (args or "-www") ..
    " </dev/null 2>&1 & echo PID $!"
  local pipe = assert(io.popen(cmd, "r"))
  local srv = { pipe = pipe }
  finally(function()
    if srv.pid then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
    pipe:close()
  end)
  for line in pipe:lines() do
    srv.pid = srv.pid or line:match("^PID (%d+)$")
    srv.port = tonumber(line:match("^ACCEPT 127%.0%.0%.1:(%d+)"))
    if srv.port then break end
  end
  assert(srv.pid and srv.port, "openssl s_server did not start")
  return srv
end

local function wait(fd, want)
  local revents = core.poll({ fd }, { want == "wantread" and 1 or 2 }, 5000)
  assert(revents[1] ~= 0, "timeout waiting for " .. want)
end

local function connect(port)
  local s = assert(core.connect("127.0.0.1", port))
  while true do
    local ok, want = s:finish_connect()
    if ok then break end
    assert(ok == false, want)
    wait(s:fd(), want)
  end
  return s
end

-- connect, start TLS and drive the handshake to its end
local function handshake(port, servername, opts)
  local s = connect(port)
  local t = assert(core.tls_client(s, servername, opts))
  while true do
    local ok, want, code = t:handshake()
    if ok then break end
    if ok == nil then return nil, want, code, s end
    wait(s:fd(), want)
  end
  return t, nil, nil, s
end

local function send_all(t, fd, data)
  local i = 1
  while i <= #data do
    local n, want = t:send(data, i)
    assert(n ~= nil, want)
    if n then i = i + n else wait(fd, want) end
  end
end

-- everything until EOF; returns the text and the final nil, msg, code
local function recv_all(t, fd, max)
  local parts = {}
  while true do
    local data, msg, code = t:recv(max)
    if data then
      assert.is_true(#data >= 1 and #data <= (max or 16384))
      parts[#parts + 1] = data
    elseif data == false then
      wait(fd, msg)
    else
      return table.concat(parts), msg, code
    end
  end
end

describe("tls over loopback #integration", function()
  it("completes a TLS 1.3 handshake and reports version, cipher and chain", function()
    local srv = server()
    local t, msg, _, s = handshake(srv.port, "mx1.example.test")
    assert(t, msg)
    local info = t:info()
    assert.equal("TLSv1.3", info.version)
    assert.matches("^TLS_", info.cipher)
    assert.is_true(info.cipher_bits >= 128)
    assert.equal("mx1.example.test", info.servername)
    assert.is_nil(info.chain_error)
    local certs = assert(core.x509_parse(info.chain_pem))
    assert.equal(2, #certs)
    assert.equal("mx1.example.test", certs[1].subject_cn)
    assert.equal(expected.leaf.sha256, certs[1].sha256)
    assert.equal(expected.intermediate.sha256, certs[2].sha256)
    local r = assert(core.x509_verify(info.chain_pem,
      { ca_file = dir .. "root.pem", name = info.servername }))
    assert.is_true(r.ok)
    assert.is_true(r.name_match)
    assert.equal("all", info.protocols)
    t:close()
    s:close()
  end)

  it("sends and receives application data and reports the close as closed", function()
    local srv = server()
    local t, msg, _, s = handshake(srv.port, "mx1.example.test")
    assert(t, msg)
    send_all(t, s:fd(), "GET / HTTP/1.0\r\n\r\n")
    local text, emsg, code = recv_all(t, s:fd(), 100)
    assert.matches("^HTTP/1.0 200 ok\r\n", text)
    assert.is_true(#text > 100)
    assert.equal("closed", code)
    assert.is_string(emsg)
    t:close()
  end)

  it("sends no SNI when servername is nil", function()
    local srv = server()
    local t, msg = handshake(srv.port, nil)
    assert(t, msg)
    assert.is_nil(t:info().servername)
    t:close()
  end)

  it("talks to a server that only speaks TLS 1.0", function()
    local srv = server("-www -tls1 -cipher DEFAULT:@SECLEVEL=0")
    local t, msg = handshake(srv.port, "mx1.example.test")
    assert(t, msg)
    assert.equal("TLSv1", t:info().version)
    t:close()
  end)

  it("negotiates the one TLS 1.2 cipher a server offers", function()
    local srv = server("-www -tls1_2 -cipher ECDHE-RSA-AES128-SHA")
    local t, msg = handshake(srv.port, "mx1.example.test")
    assert(t, msg)
    local info = t:info()
    assert.equal("TLSv1.2", info.version)
    assert.equal("ECDHE-RSA-AES128-SHA", info.cipher)
    assert.equal(128, info.cipher_bits)
    t:close()
  end)

  it("captures a weak chain without judging it", function()
    local srv = server("-www -tls1_2 -cipher DEFAULT:@SECLEVEL=0 " ..
      "-cert " .. dir .. "leaf-rsa1024.pem -key " .. dir .. "leaf-rsa1024.key")
    local t, msg = handshake(srv.port, "weak.example.test")
    assert(t, msg)
    local info = t:info()
    local certs = assert(core.x509_parse(info.chain_pem))
    assert.equal(1024, certs[1].key_bits)
    local r = assert(core.x509_verify(info.chain_pem, { ca_file = dir .. "root.pem" }))
    assert.equal("weak-key", r.reason)
    t:close()
  end)

  it("returns nil, msg, 'tls' when the server aborts the handshake", function()
    local srv = server("-www -tls1_2 -Verify 1")   -- demands a client certificate
    local t, msg, code = handshake(srv.port, "mx1.example.test")
    assert.is_nil(t)
    assert.matches("^tls handshake: ", msg)
    assert.equal("tls", code)
  end)

  it("reports a peer that vanishes without close_notify as closed", function()
    local srv = server()
    local t, msg, _, s = handshake(srv.port, "mx1.example.test")
    assert(t, msg)
    os.execute("kill " .. srv.pid)
    local _, emsg, code = recv_all(t, s:fd())
    assert.equal("closed", code)
    assert.matches("^tls recv: ", emsg)
    t:close()
  end)

  it("never closes the caller's descriptor", function()
    local srv = server()
    local t, msg, _, s = handshake(srv.port, "mx1.example.test")
    assert(t, msg)
    local fd = s:fd()
    t:close()
    -- still a writable socket (a closed descriptor would poll as error only)
    assert.equal(2, core.poll({ fd }, { 2 }, 0)[1] & 2)
    -- a fresh TLS session on it fails, but not with EBADF
    local t2 = assert(core.tls_client(s, nil))
    local ok, emsg = t2:handshake()
    assert.is_not_true(ok)
    if emsg then assert.is_nil(emsg:find("Bad file descriptor", 1, true)) end
    t2:close()
    assert.equal(2, core.poll({ fd }, { 2 }, 0)[1] & 2)
  end)

  -- the send loop of the two tests below: handshake, kill the server,
  -- write until the dropped connection shows; prints "n msg code"
  local DROP = [[
    local core = require "mxprobe.core"
    local port, pid = tonumber(arg[1]), arg[2]
    local function wait(fd, ev) core.poll({ fd }, { ev }, 5000) end
    local s = assert(core.connect("127.0.0.1", port))
    while not s:finish_connect() do wait(s:fd(), 2) end
    local t = assert(core.tls_client(s, "mx1.example.test"))
    while true do
      local ok, want = t:handshake()
      if ok then break end
      assert(ok == false, want)
      wait(s:fd(), want == "wantread" and 1 or 2)
    end
    -- take the session tickets, so that "readable" next means the FIN
    local ok, want = t:recv()
    assert(ok == false and want == "wantread")
    os.execute("kill " .. pid)
    wait(s:fd(), 1)
    -- the first write draws an RST, a later one meets EPIPE: keep
    -- writing after the first failure, report that first failure
    local n, msg, code
    for _ = 1, 4 do
      local n1, msg1, code1 = t:send("hello")
      if n1 == nil and msg == nil then n, msg, code = n1, msg1, code1 end
      -- no events asked: only error/hangup ends the wait
      core.poll({ s:fd() }, { 0 }, msg and 0 or 2000)
    end
    assert(t:close() == true)                -- no close_notify, no signal
    io.write(tostring(n), "\t", tostring(msg), "\t", tostring(code), "\n")
  ]]

  local function drop(srv, env)
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local f = assert(io.open(path, "w"))
    f:write("package.cpath = ", string.format("%q", package.cpath), "\n", DROP)
    f:close()
    local p = assert(io.popen(env .. " " .. (os.getenv("LUA") or "lua5.4") ..
      " " .. path .. " " .. srv.port .. " " .. srv.pid .. " 2>&1"))
    local out = p:read("a")
    local ok, how, status = p:close()
    return out, ok, how, status
  end

  it("reports a write to a dropped connection as closed or reset", function()
    local out, ok = drop(server(), "env")
    assert.is_true(ok, out)
    local n, msg, code = out:match("^(%S+)\t(.-)\t(%S+)\n$")
    assert.equal("nil", n)
    assert.matches("^tls send: ", msg)
    assert.is_true(code == "closed" or code == "reset", out)
  end)

  -- OpenSSL writes with write(2): without care the peer's RST turns into
  -- a SIGPIPE that kills the process. The test runs in a child process
  -- with SIGPIPE at its default action (busted itself may ignore it).
  it("survives writing to a dropped connection with SIGPIPE at its default", function()
    local out, ok, how, status = drop(server(), "env --default-signal=PIPE")
    assert.is_true(ok, ("%s %s: %s"):format(how, status, out))
    assert.matches("\t[a-z]+\n$", out)
  end)
end)

describe("tls_client options over loopback #integration", function()
  it("offers only the protocols asked, and says which in info", function()
    local srv = server()                       -- speaks TLS 1.0 to 1.3
    local t, msg = handshake(srv.port, "mx1.example.test", { protocols = "tlsv1.2" })
    assert(t, msg)
    local info = t:info()
    assert.equal("TLSv1.2", info.version)
    assert.equal("tlsv1.2", info.protocols)
    t:close()
  end)

  it("fails the handshake when the server speaks none of them", function()
    local srv = server("-www -tls1_2")
    local t, msg, code = handshake(srv.port, "mx1.example.test", { protocols = "tlsv1.3" })
    assert.is_nil(t)
    assert.matches("^tls handshake: ", msg)
    assert.equal("tls", code)
  end)

  it("offers only the ciphers asked", function()
    local srv = server("-www -tls1_2")
    local t, msg = handshake(srv.port, "mx1.example.test",
      { protocols = "tlsv1.2", ciphers = "ECDHE-RSA-AES256-SHA" })
    assert(t, msg)
    assert.equal("ECDHE-RSA-AES256-SHA", t:info().cipher)
    t:close()
  end)

  it("talks TLS 1.0 at the default security level 0, not at level 2", function()
    local args = "-www -tls1 -cipher DEFAULT:@SECLEVEL=0"
    local t, msg = handshake(server(args).port, "mx1.example.test")
    assert(t, msg)
    assert.equal("TLSv1", t:info().version)
    t:close()
    local t2, msg2, code2 = handshake(server(args).port, "mx1.example.test", { seclevel = 2 })
    assert.is_nil(t2)
    assert.matches("^tls handshake: ", msg2)
    assert.equal("tls", code2)
  end)
end)
