-- SMTP reply framing on captured bytes: no sockets.
local core = require "mxprobe.core"

describe("core.smtp_reply #unit", function()
  it("frames a single-line reply and returns the next index", function()
    local r, nxt = core.smtp_reply("220 mx1.example.test ESMTP Postfix\r\n")
    assert.same({ code = 220, lines = { "mx1.example.test ESMTP Postfix" } }, r)
    assert.equal(37, nxt)
  end)

  it("frames a multi-line reply by its NNN- continuations, not by counting lines", function()
    local bytes = "250-mx1.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n220 next\r\n"
    local r, nxt = core.smtp_reply(bytes)
    assert.equal(250, r.code)
    assert.same({ "mx1.example.test", "PIPELINING", "SIZE 10240000", "STARTTLS" }, r.lines)
    local r2 = core.smtp_reply(bytes, nxt)
    assert.same({ code = 220, lines = { "next" } }, r2)
  end)

  it("keeps a postscreen-style 220- greeting as one reply with the final 220 line", function()
    local r = core.smtp_reply("220-mx.postscreen.example.test ESMTP\r\n" ..
      "220 mx.postscreen.example.test ESMTP Postfix\r\n")
    assert.equal(2, #r.lines)
  end)

  it("asks for more bytes while the final line has not arrived", function()
    assert.is_false(core.smtp_reply("220-first line\r\n"))
    assert.is_false(core.smtp_reply("220 no newline yet"))
    assert.is_false(core.smtp_reply(""))
  end)

  it("accepts a bare code line and bare LF line ends", function()
    assert.same({ code = 250, lines = { "" } }, (core.smtp_reply("250\r\n")))
    assert.same({ code = 250, lines = { "a", "b" } }, (core.smtp_reply("250-a\n250 b\n")))
  end)

  it("keeps NUL, escape sequences and invalid UTF-8 as bytes", function()
    local r = core.smtp_reply("220 a\0b\27[31m\255\r\n")
    assert.equal("a\0b\27[31m\255", r.lines[1])
  end)

  it("rejects a code that is not three digits", function()
    local r, msg, code = core.smtp_reply("22 short\r\n")
    assert.is_nil(r)
    assert.equal("protocol", code)
    assert.matches("three%-digit", msg)
    assert.equal("protocol", select(3, core.smtp_reply("2x0 bad\r\n")))
    assert.equal("protocol", select(3, core.smtp_reply("2200 bad\r\n")))
  end)

  it("rejects a code that changes mid-reply", function()
    local r, msg, code = core.smtp_reply("250-a\r\n354 b\r\n")
    assert.is_nil(r)
    assert.equal("protocol", code)
    assert.matches("250 to 354", msg)
  end)

  it("rejects codes outside 2xx-5xx", function()
    assert.equal("protocol", select(3, core.smtp_reply("199 x\r\n")))
    assert.equal("protocol", select(3, core.smtp_reply("600 x\r\n")))
  end)

  it("refuses a line longer than the limit, complete or not", function()
    local max = core.limits.smtp_line_max
    assert.equal("too-long", select(3, core.smtp_reply("220 " .. ("x"):rep(max) .. "\r\n")))
    assert.equal("too-long", select(3, core.smtp_reply("220 " .. ("x"):rep(max))))
    assert.is_table(core.smtp_reply("220 " .. ("x"):rep(max - 6) .. "\r\n"))
  end)

  it("refuses a reply of more lines than the limit", function()
    local n = core.limits.smtp_lines_max
    local ok_bytes = ("250-X\r\n"):rep(n - 1) .. "250 end\r\n"
    assert.is_table(core.smtp_reply(ok_bytes))
    local long = ("250-X\r\n"):rep(n) .. "250 end\r\n"
    assert.equal("too-long", select(3, core.smtp_reply(long)))
    -- an endless 220- stream is cut off before its end ever arrives
    assert.equal("too-long", select(3, core.smtp_reply(("220-X\r\n"):rep(n + 1))))
  end)

  it("refuses a reply bigger than the byte limit", function()
    local line = "250-" .. ("y"):rep(1000) .. "\r\n"
    local bytes = line:rep(core.limits.smtp_reply_max // #line + 1) .. "250 end\r\n"
    local r, msg, code = core.smtp_reply(bytes)
    assert.is_nil(r)
    assert.equal("too-long", code)
    assert.matches("bytes", msg)
  end)

  it("raises on a start index out of range (misuse)", function()
    assert.has_error(function() core.smtp_reply("250 x\r\n", 99) end)
  end)

  it("never raises on random bytes", function()
    math.randomseed(42)
    for _ = 1, 2000 do
      local t = {}
      for i = 1, math.random(0, 64) do
        t[i] = string.char(math.random(0, 3) == 0 and 10 or math.random(0, 255))
      end
      local r, _, code = core.smtp_reply("2" .. table.concat(t))
      assert.is_true(r == false or type(r) == "table" or code == "protocol" or code == "too-long")
    end
  end)
end)
