-- The event loop with timers only: no sockets.
local core = require "mxprobe.core"
local loop = require "mxprobe.loop"

describe("loop #unit", function()
  it("runs tasks concurrently: two 100 ms sleeps take about 100 ms, not 200", function()
    local l = loop.new()
    local done = {}
    local start = core.now()
    for i = 1, 2 do l:spawn(function() loop.sleep(100) done[i] = core.now() end) end
    assert.same({}, l:run())
    assert.equal(2, #done)
    assert.is_true(done[2] - start < 190)
  end)

  it("wakes a wait at its deadline with false", function()
    local l = loop.new()
    local r
    l:spawn(function() r = loop.wait(nil, 0, core.now() + 20) end)
    l:run()
    assert.is_false(r)
  end)

  it("joins sub-tasks with loop.all and reports an error from one of them", function()
    local l = loop.new()
    local order, err = {}, nil
    l:spawn(function()
      loop.all { function() loop.sleep(30) order[#order + 1] = "slow" end,
                 function() order[#order + 1] = "fast" end }
      order[#order + 1] = "after"
      local ok, e = pcall(loop.all, { function() error("boom") end })
      err = not ok and e
    end)
    assert.same({}, l:run())
    assert.same({ "fast", "slow", "after" }, order)
    assert.matches("boom", err)
  end)

  it("caps holders with a semaphore and hands the slot to a parked task", function()
    local l = loop.new()
    local sem = loop.semaphore(2)
    local holding, peak = 0, 0
    for _ = 1, 6 do
      l:spawn(function()
        sem:acquire()
        holding = holding + 1
        peak = math.max(peak, holding)
        loop.sleep(10)
        holding = holding - 1
        sem:release()
      end)
    end
    assert.same({}, l:run())
    assert.equal(2, peak)
    assert.equal(2, sem.free)
  end)

  it("keeps going when one task raises, and returns its traceback", function()
    local l = loop.new()
    local other = false
    l:spawn(function() error("task bug") end)
    l:spawn(function() loop.sleep(5) other = true end)
    local errs = l:run()
    assert.equal(1, #errs)
    assert.matches("task bug", errs[1])
    assert.is_true(other)
  end)

  it("works outside any task: wait just polls until the deadline", function()
    local start = core.now()
    assert.is_false(loop.wait(nil, 0, start + 15))
    assert.is_true(core.now() - start >= 14)
  end)
end)
