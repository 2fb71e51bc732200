-- mxprobe.loop: one event loop per process; probes are coroutines.
--
-- A task reads sequentially and, where it would block, calls
-- `loop.wait(fd, events, deadline)`: inside a task that yields to the loop,
-- which waits for every task at once (the NSE / cqueues model). Called
-- outside any task, the same function polls just that descriptor, so the
-- protocol code works the same both ways. Deadlines are monotonic
-- milliseconds (core.now()); a wait never outlives its deadline.
--
--   loop.wait(fd, events, deadline) -> true (ready) | false (deadline)
--   loop.sleep(ms)
--   loop.new() -> Loop;  Loop:spawn(fn, ...);  Loop:run() -> errors (tracebacks)
--   Loop:stats() -> { turns, events, resumed, waiting, ready, parked, tasks,
--                     dropped, heap }
--   Loop:watch(fd, fn)   fn(loop) whenever fd is readable (a wake-up
--                        descriptor, e.g. a signal's self-pipe); not a task
--   Loop:stop([deadline]) run() returns at deadline (default now) even with
--                        tasks left: they are abandoned, never resumed
--   loop.current() -> the Loop running the current task, or nil
--   loop.all(fns)                  run fns concurrently, return when all are done
--   loop.pool(source, n, worker)   stream items through at most n workers
--   loop.semaphore(n) -> Semaphore with :acquire() and :release()
--
-- loop.pool(source, n, worker) -> count: source is an iterator function
-- (called with no argument, nil ends it) or an array. At most n worker
-- tasks are alive; the next item is pulled only when a worker is free, and
-- nothing is kept of an item once worker(item, index) returns, so a run over
-- a million queries holds n of them. An error in worker is caught (the
-- other items go on) and raised, with the number of failures, once every
-- item is done; an error in source stops pulling, the same way. Inside a
-- task the workers are tasks of the same loop; outside, a loop of their own.
--
-- How it scales: the cost of one event does not depend on how many tasks
-- wait. A loop has one core.poller() (epoll, created at the first
-- descriptor wait, closed when run() returns); a wait arms its descriptor
-- one-shot and files the task in an fd -> waiter map, and every wait (with
-- or without descriptor) goes into a binary min-heap of deadlines. A ready
-- event looks its waiter up in the map and marks the heap entry dead (lazy
-- deletion: dead entries are dropped when they reach the top, and the heap
-- is compacted when they outnumber the live ones); an expired deadline
-- pops the heap and disarms its descriptor. An event for a descriptor
-- nobody waits on any more is dropped (counted in stats().dropped). The
-- ready queue and the semaphore queues are FIFO arrays with head/tail
-- indices. Two tasks waiting on the same descriptor at once is a caller
-- bug and raises.

local core = require "mxprobe.core"

local M = {}

local READ, WRITE = 1, 2
M.READ, M.WRITE = READ, WRITE

-- yield tags, so foreign coroutine.yield calls are told apart
local WAIT, PARK, JOIN = {}, {}, {}

local POLL_MAX_MS = 3600000   -- the poller caps a wait at one hour anyway
local EMPTY = {}

local running = nil   -- the Loop whose task is running now

------------------------------------------------------------------------
-- the deadline heap: entries are waiter records {deadline, seq, dead}

local Heap = {}
Heap.__index = Heap

function Heap.new()
  return setmetatable({ n = 0, dead = 0 }, Heap)
end

-- (the comparison is written out in the two hot loops: no call per level)
function Heap:push(e)
  local n = self.n + 1
  self.n = n
  local i = n
  local d, q = e.deadline, e.seq
  while i > 1 do
    local p = i // 2
    local pe = self[p]
    local pd = pe.deadline
    if pd < d or (pd == d and pe.seq < q) then break end
    self[i] = pe
    i = p
  end
  self[i] = e
end

local function sift_down(h, i, n)
  local e = h[i]
  local d, q = e.deadline, e.seq
  while true do
    local c = 2 * i
    if c > n then break end
    local ce = h[c]
    if c < n then
      local re = h[c + 1]
      local rd, cd = re.deadline, ce.deadline
      if rd < cd or (rd == cd and re.seq < ce.seq) then c, ce = c + 1, re end
    end
    local cd = ce.deadline
    if not (cd < d or (cd == d and ce.seq < q)) then break end
    h[i] = ce
    i = c
  end
  h[i] = e
end

-- removes the top entry, live or dead
local function pop_top(h)
  local n = h.n
  local top = h[1]
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  if n > 1 then sift_down(h, 1, n) end
  return top
end

--- The live entry with the earliest deadline, or nil; dead tops are dropped.
function Heap:peek()
  while self.n > 0 do
    local top = self[1]
    if not top.dead then return top end
    pop_top(self)
    self.dead = self.dead - 1
  end
  return nil
end

--- Removes and returns the earliest live entry, or nil.
function Heap:pop()
  local top = self:peek()
  if top then pop_top(self) end
  return top
end

--- Marks e dead (it stays in the array until it surfaces or a compaction).
function Heap:cancel(e)
  e.dead = true
  self.dead = self.dead + 1
  if self.dead > 64 and self.dead * 2 > self.n then self:compact() end
end

--- Drops every dead entry and rebuilds the heap in O(n).
function Heap:compact()
  local n, j = self.n, 0
  for i = 1, n do
    local e = self[i]
    self[i] = nil
    if not e.dead then
      j = j + 1
      self[j] = e
    end
  end
  self.n, self.dead = j, 0
  for i = j // 2, 1, -1 do sift_down(self, i, j) end
end

function Heap:live()
  return self.n - self.dead
end

M._Heap = Heap   -- for the specs

------------------------------------------------------------------------
-- waiting

--- The loop running the current task, or nil outside any task.
function M.current()
  return running
end

local function in_task()
  return running ~= nil and coroutine.isyieldable()
end

--- Waits until fd is ready for events (1 read, 2 write) or the deadline.
-- Returns true when ready, false on timeout. fd nil = just sleep.
function M.wait(fd, events, deadline)
  if type(deadline) ~= "number" or deadline ~= deadline then
    error("mxprobe.loop.wait: deadline must be a number (monotonic ms)", 2)
  end
  if in_task() then
    if fd ~= nil and running.fdw[fd] then
      error(("mxprobe.loop.wait: two tasks wait on descriptor %d at once"
        .. " (a connection belongs to one task)"):format(fd), 2)
    end
    return coroutine.yield(WAIT, fd, events, deadline)
  end
  local remaining = deadline - core.now()
  if fd == nil then
    if remaining > 0 then core.poll(EMPTY, EMPTY, remaining) end
    return false
  end
  if remaining < 0 then remaining = 0 end
  local revents = core.poll({ fd }, { events }, remaining)
  return revents ~= nil and revents[1] ~= 0
end

function M.sleep(ms)
  M.wait(nil, 0, core.now() + ms)
end

------------------------------------------------------------------------
-- the loop

local Loop = {}
Loop.__index = Loop

function M.new()
  return setmetatable({
    count = 0, parked = 0, errors = {},
    -- ready queue: parallel arrays, head/tail indices
    rco = {}, rval = {}, rhead = 1, rtail = 0,
    heap = Heap.new(), seq = 0, nwait = 0,
    fdw = {}, nfd = 0, poller = nil,
    turns = 0, events = 0, resumed = 0, dropped = 0,
  }, Loop)
end

local function push_ready(self, co, value)
  local t = self.rtail + 1
  self.rtail = t
  self.rco[t], self.rval[t] = co, value
end

--- Starts fn(...) as a task; it runs at the next turn of the loop.
function Loop:spawn(fn, ...)
  local co
  if select("#", ...) == 0 then
    co = coroutine.create(fn)
  else
    local args = table.pack(...)
    co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  end
  self.count = self.count + 1
  push_ready(self, co, nil)
end

function Loop:stats()
  return {
    turns = self.turns, events = self.events, resumed = self.resumed,
    waiting = self.nwait, ready = self.rtail - self.rhead + 1,
    parked = self.parked, tasks = self.count, dropped = self.dropped,
    heap = self.heap.n,
  }
end

--- Calls fn(self) from the loop whenever fd is readable (fn drains it).
-- The watch is no task: it keeps nothing alive, and run() still returns
-- when the last task ends.
function Loop:watch(fd, fn)
  self.watch_fd, self.watch_fn, self.watch_armed = fd, fn, false
end

--- Makes run() return at deadline (monotonic ms, default now) whatever is
-- still running: the tasks left are abandoned (counted in self.abandoned).
-- An earlier deadline wins.
function Loop:stop(deadline)
  deadline = deadline or core.now()
  if self.stop_at == nil or deadline < self.stop_at then self.stop_at = deadline end
end

local function get_poller(self)
  local p = self.poller
  if not p then
    p = core.poller()
    self.poller = p
  end
  return p
end

-- Files a wait: the heap always, the fd map and the poller for a descriptor.
local function file_wait(self, co, fd, events, deadline)
  if fd ~= nil then
    if self.fdw[fd] then
      -- loop.wait checks this first; a raw yield can still get here
      self.errors[#self.errors + 1] = ("mxprobe.loop: two tasks wait on descriptor %d at once"):format(fd)
      self.count = self.count - 1
      return
    end
    local ok, err = get_poller(self):arm(fd, events)
    if ok == nil and err ~= nil then
      -- a descriptor epoll refuses (closed, not pollable): let the task
      -- find out from its own recv/send, as poll(2)'s POLLNVAL would
      push_ready(self, co, true)
      return
    end
  end
  local seq = self.seq + 1
  self.seq = seq
  local w = { co = co, fd = fd, deadline = deadline, seq = seq, dead = false }
  self.heap:push(w)
  self.nwait = self.nwait + 1
  if fd ~= nil then
    self.fdw[fd] = w
    self.nfd = self.nfd + 1
  end
end

-- Resumes one task with the result of its last wait; files its next wait.
function Loop:resume(co, value)
  local prev = running
  running = self
  self.resumed = self.resumed + 1
  -- nil only starts a task (every wait, park and join gives a value), and
  -- a task's function gets no argument, not one nil
  local ok, tag, fd, events, deadline
  if value == nil then
    ok, tag, fd, events, deadline = coroutine.resume(co)
  else
    ok, tag, fd, events, deadline = coroutine.resume(co, value)
  end
  running = prev
  if not ok then
    -- a bug in a task must not take the other probes down with it
    self.errors[#self.errors + 1] = debug.traceback(co, tostring(tag))
    self.count = self.count - 1
    return
  end
  if coroutine.status(co) == "dead" then
    self.count = self.count - 1
    return
  end
  if tag == WAIT then
    file_wait(self, co, fd, events, deadline)
  elseif tag == PARK then
    fd:enqueue(co, self)
    self.parked = self.parked + 1
  elseif tag == JOIN then
    self:join(co, fd)
  else
    self.errors[#self.errors + 1] = debug.traceback(co, "mxprobe.loop: a task yielded outside loop.wait")
    self.count = self.count - 1
  end
end

-- Runs each function of fns as a task of its own; wakes parent when all
-- have finished, with false, message if one of them raised.
function Loop:join(parent, fns)
  local pending, failure = #fns, nil
  self.parked = self.parked + 1
  local function finished()
    pending = pending - 1
    if pending == 0 then
      self.parked = self.parked - 1
      push_ready(self, parent, failure or true)
    end
  end
  if pending == 0 then
    pending = 1
    finished()
  end
  for _, fn in ipairs(fns) do
    self:spawn(function()
      local ok, err = xpcall(fn, debug.traceback)
      if not ok then failure = failure or err end
      finished()
    end)
  end
end

--- Runs every function of fns concurrently and returns when all are done.
-- Inside a task they become tasks of the same loop (so a domain's targets
-- and the domains of a batch all share one poll); outside, a loop of their
-- own runs them. An error in one is raised here once all have finished.
function M.all(fns)
  if in_task() then
    local r = coroutine.yield(JOIN, fns)
    if r ~= true then error(r, 0) end
    return
  end
  local l = M.new()
  for _, fn in ipairs(fns) do l:spawn(fn) end
  local errs = l:run()
  if #errs > 0 then error(errs[1], 0) end
end

--- Streams the items of source through at most n concurrent workers (see
-- the header); returns how many items were pulled.
function M.pool(source, n, worker)
  if type(source) == "table" then
    local list, i = source, 0
    source = function() i = i + 1 return list[i] end
  end
  if type(source) ~= "function" then error("mxprobe.loop.pool: source must be a function or an array", 2) end
  if math.type(n) ~= "integer" or n < 1 then error("mxprobe.loop.pool: n must be a positive integer", 2) end
  local exhausted, pulled, failures, first = false, 0, 0, nil
  local function fail(err)
    failures = failures + 1
    first = first or err
  end
  local function pull()
    if exhausted then return nil end
    local ok, item = pcall(source)
    if not ok then
      exhausted = true
      fail("mxprobe.loop.pool: source: " .. tostring(item))
      return nil
    end
    if item == nil then
      exhausted = true
      return nil
    end
    pulled = pulled + 1
    return item, pulled
  end
  local function run_worker()
    while true do
      local item, index = pull()
      if item == nil then return end
      local ok, err = xpcall(worker, debug.traceback, item, index)
      if not ok then fail(err) end
    end
  end
  local fns = {}
  for i = 1, n do fns[i] = run_worker end
  M.all(fns)
  if failures > 0 then
    error(("%d of %d pool items failed; the first: %s"):format(failures, pulled, tostring(first)), 0)
  end
  return pulled
end

-- One wait for events or the next deadline; wakes the ready and the expired.
function Loop:turn()
  self.turns = self.turns + 1
  local heap = self.heap
  local timeout = 0
  if self.rhead > self.rtail then
    local top = heap:peek()
    if top then
      timeout = math.ceil(top.deadline - core.now())
      if timeout < 0 then timeout = 0 elseif timeout > POLL_MAX_MS then timeout = POLL_MAX_MS end
    end
    if self.stop_at then
      local left = math.max(0, math.ceil(self.stop_at - core.now()))
      if left < timeout or not top then timeout = left end
    end
  end
  if self.watch_fd and not self.watch_armed then
    local ok = get_poller(self):arm(self.watch_fd, READ)
    self.watch_armed = ok == true
  end
  if self.nfd > 0 or self.watch_armed then
    local fds, err, n = self.poller:wait(timeout)
    if fds == nil then error("mxprobe.loop: " .. tostring(err), 0) end
    local fdw = self.fdw
    for i = 1, n do
      local fd = fds[i]
      local w = fdw[fd]
      if fd == self.watch_fd and self.watch_armed then
        self.watch_armed = false
        local ok, werr = pcall(self.watch_fn, self)
        if not ok then self.errors[#self.errors + 1] = "mxprobe.loop: watch: " .. tostring(werr) end
      elseif w then
        fdw[fd] = nil
        self.nfd = self.nfd - 1
        self.nwait = self.nwait - 1
        heap:cancel(w)
        push_ready(self, w.co, true)
        self.events = self.events + 1
      else
        self.dropped = self.dropped + 1   -- stale: its waiter timed out
      end
    end
  elseif timeout > 0 then
    core.poll(EMPTY, EMPTY, timeout)
  end
  local top = heap:peek()
  if top and top.deadline <= core.now() then
    local now = core.now()
    repeat
      heap:pop()
      self.nwait = self.nwait - 1
      local fd = top.fd
      if fd ~= nil then
        self.fdw[fd] = nil
        self.nfd = self.nfd - 1
        self.poller:disarm(fd)
      end
      push_ready(self, top.co, false)
      top = heap:peek()
    until not top or top.deadline > now
  end
end

--- Runs until every task has finished.
function Loop:run()
  local rco, rval = self.rco, self.rval
  while self.count > 0 do
    -- the tasks ready now; those they make ready run after the next poll,
    -- so descriptors are never starved
    local last = self.rtail
    while self.rhead <= last do
      local h = self.rhead
      local co, value = rco[h], rval[h]
      rco[h], rval[h] = nil, nil
      self.rhead = h + 1
      self:resume(co, value)
    end
    if self.rhead > self.rtail then self.rhead, self.rtail = 1, 0 end
    if self.count == 0 then break end
    if self.stop_at and core.now() >= self.stop_at then
      self.abandoned = self.count
      break
    end
    if self.rhead > self.rtail and self.nwait == 0 then
      self:close()
      error("mxprobe.loop: every task is parked on a semaphore nobody releases", 0)
    end
    self:turn()
  end
  self:close()
  return self.errors
end

--- Closes the poller (run() does it when the last task ends); idempotent.
function Loop:close()
  if self.poller then
    self.poller:close()
    self.poller = nil
  end
end

------------------------------------------------------------------------
-- semaphores

--- A counting semaphore for tasks: caps simultaneous holders (connections
-- per address, domains in flight). A task that finds no slot is parked and
-- handed the slot directly by release(), first come first served, so
-- waiting costs nothing and a release is O(1) however many are parked.
local Semaphore = {}
Semaphore.__index = Semaphore

function M.semaphore(n)
  return setmetatable({ free = n, qco = {}, qloop = {}, head = 1, tail = 0 }, Semaphore)
end

function Semaphore:acquire()
  if self.free > 0 or not in_task() then
    self.free = self.free - 1
    return true
  end
  return coroutine.yield(PARK, self)
end

function Semaphore:enqueue(co, l)
  local t = self.tail + 1
  self.tail = t
  self.qco[t], self.qloop[t] = co, l
end

--- Tasks parked on this semaphore.
function Semaphore:waiting()
  return self.tail - self.head + 1
end

function Semaphore:release()
  local h = self.head
  if h > self.tail then
    self.free = self.free + 1
    return
  end
  local co, l = self.qco[h], self.qloop[h]
  self.qco[h], self.qloop[h] = nil, nil
  if h == self.tail then
    self.head, self.tail = 1, 0
  else
    self.head = h + 1
  end
  l.parked = l.parked - 1
  push_ready(l, co, true)
end

return M
