-- http_framer_spec.lua -- core.http_response, the HTTP/1.x response framer:
-- a pure function over captured bytes. No sockets.
local core = require "mxprobe.core"

local http = core.http_response
local CRLF = "\r\n"

-- lines joined with CRLF, the header section ended by an empty line
local function msg(lines, body)
  return table.concat(lines, CRLF) .. CRLF .. CRLF .. (body or "")
end

-- the MTA-STS policy a real server sent (nginx, captured), and the same as
-- chunked (Apache, captured)
local POLICY = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 604800\n"
local NGINX = msg({
  "HTTP/1.1 200 OK",
  "Server: nginx/1.22.1",
  "Date: Mon, 01 Jan 2024 00:00:00 GMT",
  "Content-Type: text/plain",
  "Content-Length: " .. #POLICY,
  "Connection: close",
}, POLICY)
local APACHE = msg({
  "HTTP/1.1 200 OK",
  "Date: Mon, 01 Jan 2024 00:00:00 GMT",
  "Server: Apache/2.4.57 (Debian)",
  "Transfer-Encoding: chunked",
  "Content-Type: text/plain; charset=utf-8",
}, ("%x"):format(20) .. CRLF .. POLICY:sub(1, 20) .. CRLF ..
   ("%X"):format(#POLICY - 20) .. CRLF .. POLICY:sub(21) .. CRLF ..
   "0" .. CRLF .. CRLF)

local function fails(code, pattern, ...)
  local r, m, c = http(...)
  assert.is_nil(r, "expected a failure, got a response")
  assert.equal(code, c, m)
  if pattern then assert.matches(pattern, m) end
  return m
end

describe("core.http_response #unit", function()
  it("frames a Content-Length response, headers lower-cased in order", function()
    local r, nxt = http(NGINX, 1)
    assert.equal(#NGINX + 1, nxt)
    assert.same({
      version = "HTTP/1.1", status = 200, reason = "OK", chunked = false,
      length = #POLICY, body = POLICY,
      headers = {
        { name = "server", value = "nginx/1.22.1" },
        { name = "date", value = "Mon, 01 Jan 2024 00:00:00 GMT" },
        { name = "content-type", value = "text/plain" },
        { name = "content-length", value = tostring(#POLICY) },
        { name = "connection", value = "close" },
      },
    }, r)
  end)

  it("frames a chunked response, in any hex case", function()
    local r, nxt = http(APACHE, 1)
    assert.equal(#APACHE + 1, nxt)
    assert.equal(POLICY, r.body)
    assert.is_true(r.chunked)
    assert.is_nil(r.length)
    assert.same({}, r.trailers)
    assert.equal("transfer-encoding", r.headers[3].name)
  end)

  it("starts at pos and leaves what follows", function()
    local two = NGINX .. NGINX
    local r, nxt = http(two, 1)
    assert.equal(POLICY, r.body)
    local r2, nxt2 = http(two, nxt)
    assert.equal(POLICY, r2.body)
    assert.equal(#two + 1, nxt2)
    assert.is_false(http(two, nxt2))
    assert.is_false(http("", 1))
  end)

  it("returns false for every proper prefix of a valid response, byte by byte", function()
    local bodyless = msg({ "HTTP/1.0 204 No Content", "X-A: 1" })
    for _, whole in ipairs({ NGINX, APACHE, bodyless }) do
      for i = 0, #whole - 1 do
        local r, m = http(whole:sub(1, i), 1)
        assert.is_false(r, ("prefix of %d bytes: %s"):format(i, tostring(m)))
      end
      assert.is_table((http(whole, 1)))
    end
  end)

  it("reads a body until the end of the stream when nothing frames it", function()
    local whole = msg({ "HTTP/1.0 200 OK", "Content-Type: text/plain" }, POLICY)
    for i = 0, #whole do
      assert.is_false(http(whole:sub(1, i), 1, false))
    end
    local r, nxt = http(whole, 1, true)
    assert.equal(POLICY, r.body)
    assert.is_false(r.chunked)
    assert.is_nil(r.length)
    assert.equal(#whole + 1, nxt)
    -- an empty body at eof is a body
    local r2 = http(msg({ "HTTP/1.0 200 OK" }), 1, true)
    assert.equal("", r2.body)
  end)

  it("expects no body for HEAD, 204 and 304", function()
    local head = msg({ "HTTP/1.1 200 OK", "Content-Length: 1234" })
    local r, nxt = http(head .. "HTTP/1.1", 1, false, { head = true })
    assert.equal("", r.body)
    assert.equal(1234, r.length)
    assert.equal(#head + 1, nxt)
    for _, status in ipairs({ "204 No Content", "304 Not Modified" }) do
      local m = msg({ "HTTP/1.1 " .. status, "Content-Length: 99" })
      local r2, n2 = http(m .. "junk", 1)
      assert.equal("", r2.body)
      assert.equal(#m + 1, n2)
    end
  end)

  it("skips interim 1xx responses before the final one", function()
    local whole = msg({ "HTTP/1.1 100 Continue" }) ..
      msg({ "HTTP/1.1 102 Processing", "X-Progress: 1" }) .. NGINX
    local r, nxt = http(whole, 1)
    assert.equal(200, r.status)
    assert.equal(POLICY, r.body)
    assert.equal(#whole + 1, nxt)
    assert.equal(5, #r.headers)                  -- only the final response's
    assert.is_false(http(msg({ "HTTP/1.1 100 Continue" }), 1))
    -- 101 is final: the protocol changes, no body
    local sw = msg({ "HTTP/1.1 101 Switching Protocols", "Upgrade: h2c" })
    local r2, n2 = http(sw .. "\0\0\0", 1)
    assert.equal(101, r2.status)
    assert.equal("", r2.body)
    assert.equal(#sw + 1, n2)
  end)

  it("accepts bare LF line ends, a reason with spaces, an empty reason", function()
    local whole = "HTTP/1.1 404 Not Found Here\nContent-Length: 2\n\nno"
    local r = http(whole, 1)
    assert.equal(404, r.status)
    assert.equal("Not Found Here", r.reason)
    assert.equal("no", r.body)
    assert.equal("", http("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 1).reason)
    assert.equal("", http("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", 1).reason)
    -- value whitespace is trimmed, inner kept; an empty value is a value
    local r2 = http(msg({ "HTTP/1.1 200 OK", "X-A: \t a  b \t", "X-B:", "Content-Length: 0" }), 1)
    assert.same({ name = "x-a", value = "a  b" }, r2.headers[1])
    assert.same({ name = "x-b", value = "" }, r2.headers[2])
  end)

  it("keeps obs-text (bytes over 0x7f) in a value", function()
    local r = http(msg({ "HTTP/1.1 200 OK", "X-Name: B\xc3\xbccher", "Content-Length: 0" }), 1)
    assert.equal("B\xc3\xbccher", r.headers[1].value)
  end)

  it("skips chunk extensions and keeps trailers", function()
    local whole = msg({ "HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked" },
      "5;name=value;other\r\nhello\r\n6 ; x=\"q\"\r\n world\r\n0;last\r\n" ..
      "Expires: never\r\nX-Checksum: 42\r\n\r\n")
    local r, nxt = http(whole, 1)
    assert.equal("hello world", r.body)
    assert.equal(#whole + 1, nxt)
    assert.same({ { name = "expires", value = "never" }, { name = "x-checksum", value = "42" } },
      r.trailers)
    for i = 0, #whole - 1 do
      assert.is_false((http(whole:sub(1, i), 1)), i)
    end
  end)

  it("lets Transfer-Encoding override Content-Length, and reads until eof when chunked is not last", function()
    local r = http(msg({ "HTTP/1.1 200 OK", "Content-Length: 3", "Transfer-Encoding: chunked" },
      "2\r\nab\r\n0\r\n\r\n"), 1)
    assert.equal("ab", r.body)
    assert.is_nil(r.length)
    local whole = msg({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip", "Content-Length: 3" }, "abcdef")
    assert.is_false(http(whole, 1, false))
    assert.equal("abcdef", http(whole, 1, true).body)
  end)

  it("accepts a Content-Length repeated with the same value", function()
    local r = http(msg({ "HTTP/1.1 200 OK", "Content-Length: 2", "content-length: 2" }, "ok"), 1)
    assert.equal("ok", r.body)
    assert.equal("ok", http(msg({ "HTTP/1.1 200 OK", "Content-Length: 2, 2" }, "ok"), 1).body)
  end)

  describe("lies", function()
    it("a Content-Length larger than what comes, then eof", function()
      local whole = msg({ "HTTP/1.1 200 OK", "Content-Length: 100" }, "only ten b")
      assert.is_false(http(whole, 1, false))
      fails("protocol", "^body ended after 10 of 100 bytes$", whole, 1, true)
    end)

    it("two different Content-Length values", function()
      fails("protocol", "two different Content%-Length",
        msg({ "HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6" }, "12345"), 1)
      fails("protocol", "two different Content%-Length",
        msg({ "HTTP/1.1 200 OK", "Content-Length: 5, 6" }, "12345"), 1)
    end)

    it("a Content-Length that is not a number", function()
      for _, v in ipairs({ "-5", "+5", "0x10", "5 5", "five", "", "5,", "1e3" }) do
        fails("protocol", "Content%-Length is not a number",
          msg({ "HTTP/1.1 200 OK", "Content-Length: " .. v }, "12345"), 1)
      end
    end)

    it("a Content-Length over the body cap, at once, huge or overflowing", function()
      for _, v in ipairs({ "65537", "99999999999999999999999999", "18446744073709551617" }) do
        fails("too-long", "^HTTP body of %d+ bytes, over the cap of 65536$",
          msg({ "HTTP/1.1 200 OK", "Content-Length: " .. v }), 1)
      end
      fails("too-long", "over the cap of 10$",
        msg({ "HTTP/1.1 200 OK", "Content-Length: 11" }), 1, false, { body_max = 10 })
      assert.equal(10, #http(msg({ "HTTP/1.1 200 OK", "Content-Length: 10" }, ("x"):rep(10)),
        1, false, { body_max = 10 }).body)
    end)

    it("bogus chunk sizes", function()
      local head = msg({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" })
      for _, size in ipairs({ "zz", "-5", "0x5", "5g", " 5", "", "+5", "5\"" }) do
        fails("protocol", "chunk", head .. size .. "\r\nhello\r\n0\r\n\r\n", 1)
      end
      -- judged at its first byte, without waiting for the line's end
      fails("protocol", "not hexadecimal", head .. "z", 1)
    end)

    it("chunk sizes over the body cap, huge or overflowing", function()
      local head = msg({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" })
      for _, size in ipairs({ "10001", "ffffffffffffffffffff", "7fffffffffffffff", "100000000000000000001" }) do
        fails("too-long", "^HTTP chunk of more than 65536 bytes$", head .. size .. "\r\n", 1)
      end
      -- leading zeros are not a big number
      assert.equal("hi", http(head .. "00000000000000000000002\r\nhi\r\n0\r\n\r\n", 1).body)
      -- the sum of chunks is capped too
      fails("too-long", "^HTTP body longer than 4 bytes$",
        head .. "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 1, false, { body_max = 4 })
    end)

    it("chunk data not followed by CRLF, a chunk-size line over its cap", function()
      local head = msg({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" })
      fails("protocol", "not followed by CRLF", head .. "3\r\nabcd\r\n0\r\n\r\n", 1)
      fails("protocol", "not followed by CRLF", head .. "3\r\nabc\rX0\r\n\r\n", 1)
      fails("too-long", "chunk%-size line longer than 1024 bytes",
        head .. "5;" .. ("x"):rep(1100), 1)
    end)

    it("a chunked body that ends before its last chunk", function()
      local head = msg({ "HTTP/1.1 200 OK", "Transfer-Encoding: chunked" })
      for _, rest in ipairs({ "", "5\r\nhel", "5\r\nhello\r\n", "0\r\n", "0\r\nX-T: 1\r\n" }) do
        assert.is_false(http(head .. rest, 1, false))
        fails("protocol", "^HTTP chunked body ended before its last chunk$", head .. rest, 1, true)
      end
    end)

    it("no CRLF at all", function()
      assert.is_false(http("HTTP/1.1 200 OK", 1))
      assert.is_false(http("HTTP/1.1 200 OK", 1, true))   -- the connection says closed
      fails("too-long", "^HTTP header section longer than 8192 bytes$",
        "HTTP/1.1 200 OK" .. ("x"):rep(9000), 1)
    end)

    it("a CR that does not end a line, control bytes, folding, bad field lines", function()
      local bad = {
        "HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",
        msg({ "HTTP/1.1 200 OK", "X-A: a\rb", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK\r", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", "X-A: a\0b", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", "X-A: a\27b", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", "X-A: a", " folded", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", "No colon here", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", ": no name", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", "Bad Name: x", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 OK", "Name : x", "Content-Length: 0" }),
        msg({ "HTTP/1.1 200 O\1K", "Content-Length: 0" }),
      }
      for i, m in ipairs(bad) do
        local r, e, code = http(m, 1)
        assert.is_nil(r, i)
        assert.equal("protocol", code, i .. ": " .. tostring(e))
      end
    end)

    it("a status line that is not HTTP/d.d ddd, judged as early as it can be", function()
      fails("protocol", "^not an HTTP response", "220 mx.example.test ESMTP\r\n", 1)
      fails("protocol", "^not an HTTP response", "SSH-", 1)
      fails("protocol", "^not an HTTP response", "http/1.1 200 OK\r\n\r\n", 1)
      for _, line in ipairs({ "HTTP/1.1 2000 OK", "HTTP/1.1 20 OK", "HTTP/11 200 OK", "HTTP/1.1  200 OK",
        "HTTP/1.1 099 Low", "HTTP/1.1 600 High", "HTTP/1.1 abc OK", "HTTP/1.1 200OK", "HTTP/" }) do
        fails("protocol", "status line", line .. "\r\nContent-Length: 0\r\n\r\n", 1)
      end
    end)

    it("a header section over the cap, with or without 1xx before it", function()
      local big = msg({ "HTTP/1.1 200 OK", "X-Big: " .. ("x"):rep(8200) })
      fails("too-long", "^HTTP header section longer than 8192 bytes$", big, 1)
      fails("too-long", "longer than 100 bytes$", NGINX, 1, false, { header_max = 100 })
      local interim = ("HTTP/1.1 100 Continue\r\n\r\n"):rep(400)
      fails("too-long", "longer than 8192 bytes$", interim .. NGINX, 1)
      -- exactly at the cap is fine
      local head = msg({ "HTTP/1.1 200 OK", "Content-Length: 0" })
      assert.is_table(http(head, 1, false, { header_max = #head }))
      fails("too-long", "longer than", head, 1, false, { header_max = #head - 1 })
    end)

    it("more header fields than the cap", function()
      local lines = { "HTTP/1.1 200 OK" }
      for i = 1, 100 do lines[#lines + 1] = "X-" .. i .. ": v" end
      assert.is_table(http(msg(lines, ""), 1, true))
      lines[#lines + 1] = "X-101: v"
      fails("too-long", "more than 100 header fields", msg(lines, ""), 1, true)
    end)

    it("a body over the cap, until eof", function()
      local head = msg({ "HTTP/1.0 200 OK" })
      fails("too-long", "^HTTP body longer than 65536 bytes$", head .. ("x"):rep(65537), 1, false)
      assert.equal(65536, #http(head .. ("x"):rep(65536), 1, true).body)
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() http() end)
    assert.has_error(function() http({}) end)
    assert.has_error(function() http("x", 0) end)
    assert.has_error(function() http("x", 3) end)
    assert.has_error(function() http("x", 1, false, "opts") end)
    assert.has_error(function() http("x", 1, false, { header_max = 0 }) end)
    assert.has_error(function() http("x", 1, false, { header_max = 8193 }) end)
    assert.has_error(function() http("x", 1, false, { body_max = -1 }) end)
    assert.has_error(function() http("x", 1, false, { body_max = 65537 }) end)
    assert.has_error(function() http("x", 1, false, { body_max = 1.5 }) end)
  end)

  it("has its caps in core.limits", function()
    assert.equal(8192, core.limits.http_header_max)
    assert.equal(65536, core.limits.http_body_max)
    assert.equal(100, core.limits.http_headers_max)
    assert.equal(1024, core.limits.http_chunk_line_max)
  end)
end)
