-- core.isatty, core.fd_valid, core.truncate, and the signal self-pipe that
-- wakes the loop (Loop:watch) and ends it (Loop:stop). The signals are
-- sent to a child lua5.4, never to busted itself.
local core = require "mxprobe.core"

-- runs a Lua chunk in a child lua5.4; returns its stdout and exit status
local function child(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 %s 2>&1')
    :format(os.getenv("MXPROBE_CPATH") or "build/?.so", path)))
  local out = p:read("a")
  local _, _, status = p:close()
  os.remove(path)
  return out, status
end

describe("core.isatty / core.fd_valid #unit", function()
  it("tells a file from a terminal, and an open descriptor from a closed one", function()
    local f = assert(io.tmpfile())
    -- busted's own stdin/out are no terminal under the test runner; a
    -- descriptor far beyond any opened is closed
    assert.is_false(core.isatty(1000))
    assert.is_false(core.fd_valid(1000))
    assert.is_true(core.fd_valid(2))
    f:close()
    assert.has_error(function() core.isatty(-1) end)
  end)
end)

describe("core.truncate #unit", function()
  it("cuts a file to a length, and says why it cannot", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("line 1\nline 2\nhalf a li")
    f:close()
    assert.is_true(core.truncate(path, 14))
    f = assert(io.open(path, "rb"))
    assert.equal("line 1\nline 2\n", f:read("a"))
    f:close()
    os.remove(path)
    local ok, err, code = core.truncate("/nonexistent/x", 0)
    assert.is_nil(ok)
    assert.matches("^truncate /nonexistent/x: No such file", err)
    assert.equal("error", code)
  end)
end)

describe("SIGINT through the self-pipe #unit", function()
  it("wakes a loop whose only task sleeps 30 s, which then stops and abandons it", function()
    local out, status = child([[
      local core = require "mxprobe.core"
      local loop = require "mxprobe.loop"
      local fd = assert(core.signal_catch())
      assert(core.signal_catch() == fd)   -- idempotent
      local l = loop.new()
      local t0 = core.now()
      l:spawn(function() loop.sleep(30000) end)
      l:spawn(function()
        loop.sleep(100)
        -- (not os.execute: system(3) ignores SIGINT while it runs)
        io.popen("kill -INT $PPID"):close()   -- $PPID: this lua5.4
      end)
      l:watch(fd, function(lp)
        local sig, n = core.signal_caught()
        io.write("caught ", sig, " ", n, "\n")
        lp:stop()
      end)
      l:run()
      io.write("abandoned ", l.abandoned, " after ", core.now() - t0 < 2000 and "<2s" or "too long", "\n")
      os.exit(7)
    ]])
    assert.equal("caught 2 1\nabandoned 1 after <2s\n", out)
    assert.equal(7, status)
  end)

  it("lets the in-flight tasks end within a grace deadline", function()
    local out = child([[
      local core = require "mxprobe.core"
      local loop = require "mxprobe.loop"
      local fd = assert(core.signal_catch())
      local l = loop.new()
      l:spawn(function() loop.sleep(300) io.write("short task ended\n") end)
      l:spawn(function() loop.sleep(30000) io.write("long task ended\n") end)
      l:spawn(function() os.execute("kill -TERM $PPID") end)
      l:watch(fd, function(lp) core.signal_caught() lp:stop(core.now() + 600) end)
      l:run()
      io.write("signal ", (core.signal_caught()), ", abandoned ", l.abandoned, "\n")
    ]])
    assert.equal("short task ended\nsignal 15, abandoned 1\n", out)
  end)
end)
