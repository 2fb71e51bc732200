-- conn and loop over real loopback sockets, against spec/hostile/peer.py on
-- 127.0.77.x (no lab needed).
local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local conn = require "mxprobe.conn"
local framers = require "mxprobe.framers"
local H = require "hostile.peer"

local ADDR = "127.0.77.1"
local port = 2700
local function start(mode, fault, extra)
  port = port + 1
  H.start(mode, ADDR .. ":" .. port, fault, extra)
  return port
end

describe("conn over sockets #integration", function()
  after_each(H.stop_all)

  local function dialog(p)
    local d = core.now() + 5000
    local c = assert(conn.connect(ADDR, p, d))
    assert.matches("^127%.0%.0%.1:%d+$", c.source)
    local banner = assert(c:read_frame(framers.smtp, d))
    assert.equal(220, banner.code)
    assert(c:send("EHLO client.mxprobe.test\r\n", d))
    local ehlo = assert(c:read_frame(framers.smtp, d))
    assert.equal(250, ehlo.code)
    assert(c:send("STARTTLS\r\n", d))
    assert.equal(220, assert(c:read_frame(framers.smtp, d)).code)
    local info = assert(c:starttls("mx.hostile.test", d))
    assert.is_string(info.version)
    assert(c:send("EHLO client.mxprobe.test\r\n", d))
    assert.equal(250, assert(c:read_frame(framers.smtp, d)).code)
    assert(c:send("QUIT\r\n", d))
    assert.equal(221, assert(c:read_frame(framers.smtp, d)).code)
    assert.is_true(c.bytes_in > 0)
    assert.is_number(c.first_byte)
    c:close()
    c:close()
  end

  it("speaks SMTP, STARTTLS and SMTP in TLS outside any task", function()
    dialog(start("smtp", "normal"))
  end)

  it("does the same for 20 connections at once inside one loop", function()
    local p = start("smtp", "normal")
    local l = loop.new()
    local done = 0
    for _ = 1, 20 do l:spawn(function() dialog(p) done = done + 1 end) end
    assert.same({}, l:run())
    assert.equal(20, done)
    assert.is_true(l:stats().events > 0)
  end)

  it("passes tls_opts to the core: a TLS 1.2-only handshake", function()
    local p = start("smtp", "normal")
    local d = core.now() + 5000
    local c = assert(conn.connect(ADDR, p, d))
    assert.equal(220, assert(c:read_frame(framers.smtp, d)).code)
    assert(c:send("EHLO client.mxprobe.test\r\n", d))
    assert(c:read_frame(framers.smtp, d))
    assert(c:send("STARTTLS\r\n", d))
    assert.equal(220, assert(c:read_frame(framers.smtp, d)).code)
    local info = assert(c:starttls("mx.hostile.test", d, { protocols = "tlsv1.2" }))
    assert.equal("TLSv1.2", info.version)
    assert.equal("tlsv1.2", info.protocols)
    c:close()
  end)

  it("says refused for a port nobody listens on", function()
    local c, err, code = conn.connect(ADDR, 2699, core.now() + 2000)
    assert.is_nil(c)
    assert.equal("refused", code, err)
  end)

  it("times out on a silent server, with nothing pending", function()
    local p = start("smtp", "no-banner")
    local l = loop.new()
    l:spawn(function()
      local c = assert(conn.connect(ADDR, p, core.now() + 2000))
      local start_ = core.now()
      local r, _, code = c:read_frame(framers.smtp, start_ + 200)
      assert.is_nil(r)
      assert.equal("timeout", code)
      assert.is_true(core.now() - start_ >= 199 and core.now() - start_ < 400)
      assert.equal("", c:pending())
      c:close()
    end)
    assert.same({}, l:run())
  end)

  it("says closed after the banner when the server closes", function()
    local p = start("smtp", "close-after-banner")
    local d = core.now() + 3000
    local c = assert(conn.connect(ADDR, p, d))
    assert.equal(220, c:read_frame(framers.smtp, d).code)
    local r, err, code = c:read_frame(framers.smtp, d)
    assert.is_nil(r)
    assert.equal("closed", code)
    assert.equal("connection closed by the server", err)
    c:close()
  end)

  it("cuts off a 1 MiB banner line at bytes_max", function()
    local p = start("smtp", "huge-line")
    local d = core.now() + 3000
    local c = assert(conn.connect(ADDR, p, d, { bytes_max = 300 }))
    local r, err, code = c:read_frame(function() return false end, d)
    assert.is_nil(r)
    assert.equal("too-long", code)
    assert.equal("server sent more than 300 bytes on one connection", err)
    c:close()
  end)
end)

describe("loop descriptors over UDP #integration", function()
  after_each(H.stop_all)

  it("keeps an answer that came after a timed-out wait for the next wait", function()
    local p = start("dns", "normal")
    local l = loop.new()
    local first, second
    l:spawn(function()
      local s = assert(core.connect(ADDR, p, "udp"))
      first = loop.wait(s:fd(), loop.READ, core.now() + 20)   -- nothing asked yet
      assert(s:send(core.dns_query("x.test", "A", 7)))
      loop.sleep(300)                                         -- the answer is queued meanwhile
      second = loop.wait(s:fd(), loop.READ, core.now() + 1000)
      assert.is_string(s:recv())
      s:close()
    end)
    assert.same({}, l:run())
    assert.is_false(first)
    assert.is_true(second)
    assert.equal(0, l:stats().waiting)
  end)
end)
