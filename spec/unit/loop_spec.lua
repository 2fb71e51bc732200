-- The event loop with timers only: no sockets (a poller's own descriptor,
-- which nothing makes ready, stands in where a descriptor is needed).
local core = require "mxprobe.core"
local loop = require "mxprobe.loop"

-- a seeded generator of its own, so a failure can be replayed
local function lcg(seed)
  local x = seed
  return function(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n
  end
end

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

  it("passes spawn arguments, nils included", function()
    local l = loop.new()
    local got
    l:spawn(function(...) got = table.pack(...) end, 1, nil, "x")
    assert.same({}, l:run())
    assert.same({ n = 3, 1, nil, "x" }, got)
    l = loop.new()
    l:spawn(function(...) got = select("#", ...) end)
    assert.same({}, l:run())
    assert.equal(0, got)
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

  it("reports a task that yields outside loop.wait, and runs the others", function()
    local l = loop.new()
    local other = false
    l:spawn(function() coroutine.yield("stray") end)
    l:spawn(function() loop.sleep(1) other = true end)
    local errs = l:run()
    assert.equal(1, #errs)
    assert.matches("a task yielded outside loop.wait", errs[1])
    assert.is_true(other)
  end)

  it("raises when every task is parked on a semaphore nobody releases", function()
    local l = loop.new()
    local sem = loop.semaphore(0)
    l:spawn(function() sem:acquire() end)
    l:spawn(function() loop.all { function() sem:acquire() end } end)
    assert.has_error(function() l:run() end,
      "mxprobe.loop: every task is parked on a semaphore nobody releases")
  end)

  it("works outside any task: wait just polls until the deadline", function()
    local start = core.now()
    assert.is_false(loop.wait(nil, 0, start + 15))
    assert.is_true(core.now() - start >= 14)
  end)

  it("refuses a wait without a numeric deadline", function()
    assert.has_error(function() loop.wait(nil, 0, nil) end,
      "mxprobe.loop.wait: deadline must be a number (monotonic ms)")
    assert.has_error(function() loop.wait(nil, 0, 0 / 0) end,
      "mxprobe.loop.wait: deadline must be a number (monotonic ms)")
  end)
end)

describe("loop.current #unit", function()
  it("is the loop inside its tasks and nil outside", function()
    assert.is_nil(loop.current())
    local l = loop.new()
    local seen = {}
    l:spawn(function()
      seen[1] = loop.current()
      loop.sleep(1)
      seen[2] = loop.current()
      loop.all { function() seen[3] = loop.current() end }
    end)
    assert.same({}, l:run())
    assert.equal(l, seen[1])
    assert.equal(l, seen[2])
    assert.equal(l, seen[3])
    assert.is_nil(loop.current())
  end)

  it("is the inner loop while a task runs a loop of its own, the outer one after", function()
    local outer, inner = loop.new(), nil
    local seen = {}
    outer:spawn(function()
      inner = loop.new()
      inner:spawn(function() seen.inner = loop.current() end)
      inner:run()
      seen.after = loop.current()
    end)
    assert.same({}, outer:run())
    assert.equal(inner, seen.inner)
    assert.equal(outer, seen.after)
  end)
end)

describe("deadline heap (lazy deletion) #unit", function()
  local Heap = loop._Heap
  local function entry(d, seq) return { deadline = d, seq = seq, dead = false } end

  it("pops 5,000 random deadlines in (deadline, arrival) order", function()
    local rnd = lcg(7)
    local h, all = Heap.new(), {}
    for i = 1, 5000 do
      local e = entry(rnd(500), i)   -- many equal deadlines: arrival breaks ties
      h:push(e)
      all[i] = e
    end
    table.sort(all, function(a, b)
      return a.deadline < b.deadline or (a.deadline == b.deadline and a.seq < b.seq)
    end)
    for i = 1, 5000 do assert.equal(all[i], h:pop()) end
    assert.is_nil(h:pop())
    assert.equal(0, h.n)
  end)

  it("never returns a cancelled entry and compacts when the dead outnumber the live", function()
    local rnd = lcg(11)
    local h, live = Heap.new(), {}
    local es = {}
    for i = 1, 1000 do
      es[i] = entry(rnd(100000), i)
      h:push(es[i])
    end
    -- cancel 600 in a scrambled order
    local order = {}
    for i = 1, 1000 do order[i] = i end
    for i = 1000, 2, -1 do
      local j = rnd(i) + 1
      order[i], order[j] = order[j], order[i]
    end
    local cancelled = {}
    for k = 1, 600 do
      h:cancel(es[order[k]])
      cancelled[order[k]] = true
    end
    -- the 501st cancel found 501 dead of 1000 and compacted: 499 left, then 99 more died
    assert.equal(499, h.n)
    assert.equal(99, h.dead)
    assert.equal(400, h:live())
    for i = 1, 1000 do
      if not cancelled[i] then live[#live + 1] = es[i] end
    end
    table.sort(live, function(a, b)
      return a.deadline < b.deadline or (a.deadline == b.deadline and a.seq < b.seq)
    end)
    for i = 1, 400 do
      local e = h:pop()
      assert.equal(live[i], e)
      assert.is_false(e.dead)
    end
    assert.is_nil(h:pop())
    assert.equal(0, h.n)
    assert.equal(0, h.dead)
  end)

  it("peeks the earliest live entry past dead ones without removing it", function()
    local h = Heap.new()
    local a, b, c = entry(1, 1), entry(2, 2), entry(3, 3)
    h:push(c) h:push(a) h:push(b)
    h:cancel(a)
    assert.equal(b, h:peek())
    assert.equal(b, h:peek())
    assert.equal(2, h.n)
    assert.equal(b, h:pop())
    assert.equal(c, h:pop())
  end)
end)

describe("loop deadlines #unit", function()
  it("wakes 2,000 tasks in deadline order, ties in the order they began to wait", function()
    local rnd = lcg(3)
    local l = loop.new()
    local base = core.now()
    local deadline, woke = {}, {}
    for i = 1, 2000 do
      -- half already past (woken at the first turn), half within 40 ms
      deadline[i] = base + rnd(80) - 40
      l:spawn(function()
        assert.is_false(loop.wait(nil, 0, deadline[i]))
        woke[#woke + 1] = i
      end)
    end
    assert.same({}, l:run())
    local expect = {}
    for i = 1, 2000 do expect[i] = i end
    table.sort(expect, function(a, b)
      return deadline[a] < deadline[b] or (deadline[a] == deadline[b] and a < b)
    end)
    assert.equal(2000, #woke)
    assert.same(expect, woke)
  end)

  it("never wakes a wait before its deadline, nor long after it", function()
    local rnd = lcg(5)
    local l = loop.new()
    local early, late, n = 0, 0, 0
    for _ = 1, 300 do
      l:spawn(function()
        for _ = 1, 3 do
          local d = core.now() + rnd(30) + 0.5
          loop.wait(nil, 0, d)
          local now = core.now()
          n = n + 1
          if now < d then early = early + 1 end
          -- "long after" is a lost deadline (woken only by some later
          -- event or never), not scheduling delay: 300 tasks on a loaded
          -- 2-core machine under ASan are often 25+ ms late, never 250
          if now > d + 250 then late = late + 1 end
        end
      end)
    end
    assert.same({}, l:run())
    assert.equal(900, n)
    assert.equal(0, early)
    assert.equal(0, late)
  end)

  it("counts turns, resumes and waits in stats(), and leaves nothing behind", function()
    local l = loop.new()
    local mid
    for _ = 1, 10 do l:spawn(function() loop.sleep(5) end) end
    l:spawn(function()
      loop.sleep(1)
      mid = l:stats()
    end)
    assert.same({}, l:run())
    -- 10 tasks were still sleeping when the 1 ms one looked
    assert.equal(10, mid.waiting)
    local s = l:stats()
    assert.equal(22, s.resumed)          -- 11 tasks, each resumed twice
    assert.equal(0, s.waiting)
    assert.equal(0, s.ready)
    assert.equal(0, s.tasks)
    assert.equal(0, s.heap)
    assert.equal(0, s.events)
    assert.is_true(s.turns >= 1)
  end)
end)

describe("loop descriptors #unit", function()
  -- a poller's descriptor: pollable, and never ready since nothing is armed in it
  it("raises when two tasks wait on one descriptor, and lets a later wait use it", function()
    local quiet = core.poller()
    local fd = quiet:fd()
    local l = loop.new()
    local first, second_err, third
    l:spawn(function() first = loop.wait(fd, loop.READ, core.now() + 30) end)
    l:spawn(function()
      local ok, err = pcall(loop.wait, fd, loop.READ, core.now() + 30)
      second_err = not ok and err
      loop.sleep(40)   -- after the first wait timed out
      third = loop.wait(fd, loop.READ, core.now() + 5)
    end)
    assert.same({}, l:run())
    quiet:close()
    assert.is_false(first)
    assert.matches("two tasks wait on descriptor " .. fd .. " at once", second_err, 1, true)
    assert.is_false(third)
    local s = l:stats()
    assert.equal(0, s.waiting)
    assert.equal(0, s.events)
  end)
end)

describe("loop.semaphore #unit", function()
  it("hands the slot to 20,000 parked tasks one by one, first come first served", function()
    local N = 20000
    local l = loop.new()
    local sem = loop.semaphore(1)
    local order, holding, peak = {}, 0, 0
    local parked_seen
    for i = 1, N do
      l:spawn(function()
        sem:acquire()
        holding = holding + 1
        peak = math.max(peak, holding)
        if i == 1 then
          loop.sleep(1)                -- every other task parks meanwhile
          parked_seen = sem:waiting()
        end
        order[#order + 1] = i
        holding = holding - 1
        sem:release()
      end)
    end
    assert.same({}, l:run())
    assert.equal(N - 1, parked_seen)
    assert.equal(N, #order)
    for i = 1, N do
      if order[i] ~= i then assert.equal(i, order[i]) end
    end
    assert.equal(1, peak)
    assert.equal(1, sem.free)
    assert.equal(0, sem:waiting())
    -- the queue was reset when it emptied: no index grows without end
    assert.equal(1, sem.head)
    assert.equal(0, sem.tail)
    assert.is_nil(next(sem.qco))
  end)

  it("takes a slot outside a task without waiting (no loop to park on)", function()
    local sem = loop.semaphore(0)
    assert.is_true(sem:acquire())
    assert.equal(-1, sem.free)
    sem:release()
    assert.equal(0, sem.free)
  end)
end)

describe("loop.pool #unit", function()
  it("keeps at most n workers, pulls an item only when one is free, keeps nothing", function()
    local l = loop.new()
    local rnd = lcg(9)
    local pulls, started, finished, active, peak = 0, 0, 0, 0, 0
    local ahead = 0               -- most items pulled and not yet finished
    local seen = setmetatable({}, { __mode = "k" })
    local indexes = {}
    local function source()
      pulls = pulls + 1
      ahead = math.max(ahead, pulls - finished)
      if pulls > 100 then return nil end
      local item = { n = pulls }
      seen[item] = true
      return item
    end
    local count
    l:spawn(function()
      count = loop.pool(source, 7, function(item, index)
        started = started + 1
        indexes[#indexes + 1] = index
        assert.equal(item.n, index)
        active = active + 1
        peak = math.max(peak, active)
        loop.sleep(rnd(4))
        active = active - 1
        finished = finished + 1
      end)
    end)
    assert.same({}, l:run())
    assert.equal(100, count)
    assert.equal(101, pulls)      -- the 101st said "no more", and nobody asked again
    assert.equal(100, started)
    assert.equal(7, peak)
    assert.equal(7, ahead)        -- never more pulled than there are workers
    table.sort(indexes)
    for i = 1, 100 do assert.equal(i, indexes[i]) end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(seen))     -- no finished item is held
  end)

  it("goes on after a worker error and raises the count and the first error at the end", function()
    local done = {}
    local ok, err = pcall(loop.pool, { 1, 2, 3, 4, 5, 6 }, 2, function(item)
      loop.sleep(1)
      if item == 2 or item == 5 then error("bad item " .. item) end
      done[#done + 1] = item
    end)
    assert.is_false(ok)
    assert.matches("^2 of 6 pool items failed; the first: .*bad item 2", err)
    table.sort(done)
    assert.same({ 1, 3, 4, 6 }, done)
  end)

  it("stops pulling when the source raises, and lets the running items finish", function()
    local l = loop.new()
    local done, err = {}, nil
    local i = 0
    l:spawn(function()
      local ok, e = pcall(loop.pool, function()
        i = i + 1
        if i == 4 then error("source broke") end
        return i
      end, 3, function(item) loop.sleep(2) done[#done + 1] = item end)
      err = not ok and e
    end)
    assert.same({}, l:run())
    assert.equal(4, i)
    table.sort(done)
    assert.same({ 1, 2, 3 }, done)
    assert.matches("^1 of 3 pool items failed; the first: mxprobe.loop.pool: source: .*source broke", err)
  end)

  it("returns 0 for an empty source and refuses a bad n", function()
    assert.equal(0, loop.pool({}, 4, function() error("never") end))
    assert.has_error(function() loop.pool({}, 0, print) end,
      "mxprobe.loop.pool: n must be a positive integer")
  end)
end)
