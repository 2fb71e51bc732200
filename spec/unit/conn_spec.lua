-- The connection object over a scripted transport: no sockets. The script
-- is what recv() returns, call by call (bytes, "would block", a close, an
-- error); the descriptor is -1, which poll(2) ignores, so a wait for it
-- lasts until its deadline. conn.connect over real sockets is exercised by
-- the integration specs (every SMTP probe and DNS-over-TCP query uses it).
local core = require "mxprobe.core"
local conn = require "mxprobe.conn"
local framers = require "mxprobe.framers"
local dns = require "mxprobe.dns"

local WANT, CLOSED = {}, {}
local function failure(msg, code) return { msg = msg, code = code } end

-- a transport that plays script; send takes at most send_max bytes a call
local function scripted(script, send_max)
  local io = { recvs = 0, sent = {}, closes = 0, script = script }
  function io.fd() return -1 end
  function io.recv(_, max)
    io.recvs = io.recvs + 1
    local step = table.remove(io.script, 1)
    if step == nil or step == WANT then return false, "wantread" end
    if step == CLOSED then return nil, "closed", "closed" end
    if type(step) == "table" then return nil, step.msg, step.code end
    assert(#step <= max)
    return step
  end
  function io.send(_, data, i)
    if send_max == 0 then return false, "wantwrite" end
    local part = data:sub(i, i + (send_max or #data) - 1)
    io.sent[#io.sent + 1] = part
    return #part
  end
  function io.close() io.closes = io.closes + 1 end
  return io
end

-- a framer for "everything until the server closes" (an HTTP/1.0 body)
local function until_eof(buf, pos, eof)
  if not eof then return false end
  if pos > #buf then return false end
  return buf:sub(pos), #buf + 1
end

describe("conn:read_frame #unit", function()
  it("frames an SMTP reply that arrives in pieces and counts every byte", function()
    local io = scripted { "220-mx.example", ".test hi\r\n220 ", "ready\r\n" }
    local c = conn.wrap(io)
    local before = core.now()
    local reply = c:read_frame(framers.smtp, core.now() + 1000)
    assert.same({ code = 220, lines = { "mx.example.test hi", "ready" } }, reply)
    assert.equal(35, c.bytes_in)
    assert.equal(3, io.recvs)
    assert.is_true(c.first_byte >= before and c.first_byte <= core.now())
    assert.equal("", c:pending())
  end)

  it("returns a second reply already in the buffer without reading again", function()
    local io = scripted { "250 one\r\n250 two\r\n" }
    local c = conn.wrap(io)
    assert.same({ "one" }, c:read_frame(framers.smtp, core.now() + 1000).lines)
    assert.same({ "two" }, c:read_frame(framers.smtp, core.now() + 1000).lines)
    assert.equal(1, io.recvs)
  end)

  it("keeps the bytes read before a timeout as pending, until discarded", function()
    local c = conn.wrap(scripted { "250-partial\r\n", WANT })
    local start = core.now()
    local r, err, code = c:read_frame(framers.smtp, start + 20)
    assert.is_nil(r)
    assert.equal("timed out waiting for the server", err)
    assert.equal("timeout", code)
    assert.is_true(core.now() - start >= 19)
    assert.equal("250-partial\r\n", c:pending())
    c:discard_pending()
    assert.equal("", c:pending())
  end)

  it("calls the framer once more with eof on a clean close", function()
    local c = conn.wrap(scripted { "abc", "def", CLOSED })
    assert.equal("abcdef", c:read_frame(until_eof, core.now() + 1000))
    -- nothing left: the next frame is "closed", and no more recv is tried
    local r, err, code = c:read_frame(until_eof, core.now() + 1000)
    assert.is_nil(r)
    assert.equal("connection closed by the server", err)
    assert.equal("closed", code)
  end)

  it("says closed for an SMTP reply cut by the close, keeping its bytes", function()
    local io = scripted { "220 no line end", CLOSED }
    local c = conn.wrap(io)
    local r, err, code = c:read_frame(framers.smtp, core.now() + 1000)
    assert.is_nil(r)
    assert.equal("connection closed by the server", err)
    assert.equal("closed", code)
    assert.equal("220 no line end", c:pending())
    assert.equal(2, io.recvs)
  end)

  it("cuts a server off past bytes_max with too-long", function()
    local c = conn.wrap(scripted { "12345", "678901" }, { bytes_max = 10 })
    local r, err, code = c:read_frame(framers.smtp, core.now() + 1000)
    assert.is_nil(r)
    assert.equal("server sent more than 10 bytes on one connection", err)
    assert.equal("too-long", code)
    assert.equal(11, c.bytes_in)
  end)

  it("takes bytes_max from the options, 1 MiB by default, and refuses a bad one", function()
    assert.equal(1024 * 1024, conn.wrap(scripted {}).bytes_max)
    assert.equal(4096, conn.wrap(scripted {}, { bytes_max = 4096 }).bytes_max)
    assert.has_error(function() conn.wrap(scripted {}, { bytes_max = 0 }) end,
      "mxprobe.conn: bytes_max must be a positive integer")
  end)

  it("passes the framer's error and the transport's error through", function()
    local c = conn.wrap(scripted { "hello\r\n" })
    local r, _, code = c:read_frame(framers.smtp, core.now() + 1000)
    assert.is_nil(r)
    assert.equal("protocol", code)
    c = conn.wrap(scripted { failure("recv 192.0.2.1:25: connection reset by peer", "reset") })
    local err
    r, err, code = c:read_frame(framers.smtp, core.now() + 1000)
    assert.is_nil(r)
    assert.equal("recv 192.0.2.1:25: connection reset by peer", err)
    assert.equal("reset", code)
  end)

  it("frames DNS over TCP: length-prefixed messages, a cut one is closed", function()
    local c = conn.wrap(scripted { "\0\3ab", "c\0\2d", "e\0\5xy", CLOSED })
    assert.equal("abc", c:read_frame(framers.dns_tcp, core.now() + 1000))
    assert.equal("de", c:read_frame(framers.dns_tcp, core.now() + 1000))
    local r, err, code = c:read_frame(framers.dns_tcp, core.now() + 1000)
    assert.is_nil(r)
    assert.equal("connection closed by the server", err)
    assert.equal("closed", code)
    assert.equal("\0\5xy", c:pending())
  end)
end)

-- a DNS answer to "t.test TXT": one record of five 255-byte strings (past
-- the codec's text limit), one short one
local function txt_answer(long)
  local function u16(n) return string.char(n >> 8, n & 0xff) end
  local function rr(rdata)
    return "\192\12" .. u16(16) .. u16(1) .. "\0\0\1\44" .. u16(#rdata) .. rdata
  end
  local big = {}
  for i = 1, 5 do big[i] = "\255" .. string.rep(string.char(96 + i), 255) end
  local short = "\10v=TLSRPTv1"
  local answers = long and { rr(table.concat(big)), rr(short) } or { rr(short) }
  return u16(0x1234) .. u16(0x8180) .. u16(1) .. u16(#answers) .. u16(0) .. u16(0)
    .. "\1t\4test\0" .. u16(16) .. u16(1) .. table.concat(answers)
end

describe("DNS over TCP through conn #unit", function()
  local function over_tcp(msg)
    local framed = string.char(#msg >> 8, #msg & 0xff) .. msg
    local third = #framed // 3
    local c = conn.wrap(scripted { framed:sub(1, third), framed:sub(third + 1, 2 * third),
                                    framed:sub(2 * third + 1), CLOSED })
    local data = assert(c:read_frame(framers.dns_tcp, core.now() + 1000))
    assert.equal(msg, data)
    local parsed = assert(core.dns_parse(data))
    return dns.answer({ name = "t.test", type = "TXT", records = {} }, parsed, "t.test", "TXT")
  end

  it("keeps the codec's truncated flag on the record and on the query", function()
    local rec = over_tcp(txt_answer(true))
    assert.equal("ok", rec.status)
    assert.equal(2, #rec.records)
    assert.is_true(rec.records[1].truncated)
    assert.equal(core.limits.text_max, #rec.records[1].text)
    assert.is_nil(rec.records[2].truncated)
    assert.equal("v=TLSRPTv1", rec.records[2].text)
    assert.is_true(rec.truncated)
  end)

  it("says nothing of truncation when no record was cut", function()
    local rec = over_tcp(txt_answer(false))
    assert.equal("ok", rec.status)
    assert.same({ { ttl = 300, text = "v=TLSRPTv1" } }, rec.records)
    assert.is_nil(rec.truncated)
  end)
end)

describe("conn:send #unit", function()
  it("sends everything however little the transport takes at a time", function()
    local io = scripted({}, 3)
    local c = conn.wrap(io)
    assert.is_true(c:send("EHLO probe.example\r\n", core.now() + 1000))
    assert.equal("EHLO probe.example\r\n", table.concat(io.sent))
    assert.equal(7, #io.sent)
  end)

  it("times out when the transport never takes a byte", function()
    local c = conn.wrap(scripted({}, 0))
    local start = core.now()
    local ok, err, code = c:send("QUIT\r\n", start + 15)
    assert.is_nil(ok)
    assert.equal("timed out sending to the server", err)
    assert.equal("timeout", code)
    assert.is_true(core.now() - start >= 14)
  end)
end)

describe("conn:close #unit", function()
  it("closes the transport once however often it is called", function()
    local io = scripted {}
    local c = conn.wrap(io)
    c:close()
    c:close()
    assert.equal(1, io.closes)
    assert.is_true(c.closed)
  end)
end)

describe("mxprobe.framers #unit", function()
  it("names the C framers", function()
    assert.equal(core.smtp_reply, framers.smtp)
    assert.equal("function", type(framers.dns_tcp))
    assert.equal("function", type(framers.http))
  end)
end)
