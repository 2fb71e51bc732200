-- mxprobe.loop: one event loop per process; probes are coroutines.
--
-- A task reads sequentially and, where it would block, calls
-- `loop.wait(fd, events, deadline)`: inside a task that yields to the loop,
-- which polls every waiting descriptor at once (the NSE / cqueues model).
-- Called outside any task, the same function polls just that descriptor,
-- so the protocol code works the same both ways. Deadlines are monotonic
-- milliseconds (core.now()); a wait never outlives its deadline.

local core = require "mxprobe.core"

local M = {}

local READ, WRITE = 1, 2
M.READ, M.WRITE = READ, WRITE

-- yield tags, so foreign coroutine.yield calls are told apart
local WAIT, PARK, JOIN = {}, {}, {}

--- Waits until fd is ready for events (1 read, 2 write) or the deadline.
-- Returns true when ready, false on timeout. fd nil = just sleep.
function M.wait(fd, events, deadline)
  if coroutine.isyieldable() then
    return coroutine.yield(WAIT, fd, events, deadline)
  end
  local remaining = deadline - core.now()
  if fd == nil then
    if remaining > 0 then core.poll({}, {}, remaining) end
    return false
  end
  if remaining < 0 then remaining = 0 end
  local revents = core.poll({ fd }, { events }, remaining)
  return revents ~= nil and revents[1] ~= 0
end

function M.sleep(ms)
  M.wait(nil, 0, core.now() + ms)
end

local Loop = {}
Loop.__index = Loop

function M.new()
  return setmetatable({ ready = {}, waiting = {}, count = 0, parked = 0, errors = {} }, Loop)
end

--- Starts fn(...) as a task; it runs at the next turn of the loop.
function Loop:spawn(fn, ...)
  local args = table.pack(...)
  local co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  self.count = self.count + 1
  self.ready[#self.ready + 1] = { co = co, value = nil }
end

-- Resumes one task with the result of its last wait; files its next wait.
function Loop:resume(co, value)
  local ok, tag, fd, events, deadline = coroutine.resume(co, value)
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
  if tag == PARK then
    local sem = fd
    sem.queue[#sem.queue + 1] = { co = co, loop = self }
    self.parked = self.parked + 1
    return
  end
  if tag == JOIN then
    self:join(co, fd)
    return
  end
  if tag ~= WAIT then
    error("mxprobe.loop: a task yielded outside loop.wait", 0)
  end
  self.waiting[#self.waiting + 1] = { co = co, fd = fd, events = events, deadline = deadline }
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
      self.ready[#self.ready + 1] = { co = parent, value = failure or true }
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
  if coroutine.isyieldable() then
    local r = coroutine.yield(JOIN, fns)
    if r ~= true then error(r, 0) end
    return
  end
  local l = M.new()
  for _, fn in ipairs(fns) do l:spawn(fn) end
  local errs = l:run()
  if #errs > 0 then error(errs[1], 0) end
end

--- Runs until every task has finished.
function Loop:run()
  while self.count > 0 do
    local ready = self.ready
    self.ready = {}
    for _, r in ipairs(ready) do self:resume(r.co, r.value) end
    if self.count == 0 then break end
    if #self.ready == 0 then
      if #self.waiting == 0 then
        error("mxprobe.loop: every task is parked on a semaphore nobody releases", 0)
      end
      self:turn()
    end
  end
  return self.errors
end

-- One poll over every waiting task; wakes the ready and the expired.
function Loop:turn()
  local waiting = self.waiting
  local fds, evs, polled = {}, {}, {}
  local now = core.now()
  local soonest = math.huge
  for _, w in ipairs(waiting) do
    if w.deadline < soonest then soonest = w.deadline end
    if w.fd then
      fds[#fds + 1], evs[#evs + 1] = w.fd, w.events
      polled[#polled + 1] = w
    end
  end
  local timeout = soonest == math.huge and 1000 or math.max(0, soonest - now)
  local revents = core.poll(fds, evs, timeout) or {}
  local ready_set = {}
  for i, w in ipairs(polled) do
    if (revents[i] or 0) ~= 0 then ready_set[w] = true end
  end
  now = core.now()
  local still = {}
  for _, w in ipairs(waiting) do
    if ready_set[w] then
      self.ready[#self.ready + 1] = { co = w.co, value = true }
    elseif w.deadline <= now then
      self.ready[#self.ready + 1] = { co = w.co, value = false }
    else
      still[#still + 1] = w
    end
  end
  self.waiting = still
end

--- A counting semaphore for tasks: caps simultaneous holders (connections
-- per address, domains in flight). A task that finds no slot is parked and
-- handed the slot directly by release(), so waiting costs nothing.
local Semaphore = {}
Semaphore.__index = Semaphore

function M.semaphore(n)
  return setmetatable({ free = n, queue = {} }, Semaphore)
end

function Semaphore:acquire()
  if self.free > 0 or not coroutine.isyieldable() then
    self.free = self.free - 1
    return true
  end
  return coroutine.yield(PARK, self)
end

function Semaphore:release()
  local w = table.remove(self.queue, 1)
  if w then
    w.loop.parked = w.loop.parked - 1
    w.loop.ready[#w.loop.ready + 1] = { co = w.co, value = true }
  else
    self.free = self.free + 1
  end
end

return M
