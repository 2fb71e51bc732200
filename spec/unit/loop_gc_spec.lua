-- Unit specs of the collector mode of mxprobe.loop (issue 7, client CPU per
-- probe): generational while the outermost run() runs, the host's mode
-- back afterwards, also when run() raises; loop.GC_MODE = nil leaves it.
local loop = require "mxprobe.loop"

describe("loop GC mode #unit", function()
  local saved
  before_each(function() saved = loop.GC_MODE end)
  after_each(function()
    loop.GC_MODE = saved
    collectgarbage("incremental")
  end)

  local function mode_now()
    -- collectgarbage(mode) returns the previous mode: ask, then put it back
    local m = collectgarbage("incremental")
    collectgarbage(m)
    return m
  end

  it("is generational inside run() and the host's again after it", function()
    collectgarbage("incremental")
    local inside, nested
    local l = loop.new()
    l:spawn(function()
      inside = mode_now()
      loop.sleep(1)
    end)
    l:spawn(function()
      -- a loop of its own outside any task nests: still generational after it
      local co = coroutine.wrap(function()
        local l2 = loop.new()
        l2:spawn(function() end)
        l2:run()
        nested = mode_now()
      end)
      co()
    end)
    assert.same({}, l:run())
    assert.equal("generational", inside)
    assert.equal("generational", nested)
    assert.equal("incremental", mode_now())
  end)

  it("puts the host's mode back when run() raises", function()
    collectgarbage("incremental")
    local l = loop.new()
    l:spawn(function() loop.semaphore(0):acquire() end)   -- parked for ever
    assert.has_error(function() l:run() end,
      "mxprobe.loop: every task is parked on a semaphore nobody releases")
    assert.equal("incremental", mode_now())
  end)

  it("leaves the mode alone when loop.GC_MODE is nil", function()
    loop.GC_MODE = nil
    collectgarbage("incremental")
    local inside
    local l = loop.new()
    l:spawn(function() inside = mode_now() end)
    l:run()
    assert.equal("incremental", inside)
  end)
end)
