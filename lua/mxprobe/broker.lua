-- mxprobe.broker: the per-destination connection slots of a run, handed
-- out by one owner to many holders -- the worker processes of a
-- --workers N run (mxprobe.cli.workers), so that --per-address holds
-- across all of them, and --rate-per-address spaces the connections to
-- one destination. Pure: no I/O, no clock of its own.
--
--   broker.new{cap, interval, now, grant} -> B
--       cap: simultaneous holders of one destination (--per-address);
--       interval: least milliseconds between two grants for one
--       destination (nil: no spacing); now(): monotonic ms;
--       grant(who, key): called for every slot granted (after the
--       broker's state is updated, so it may yield or re-enter)
--   B:acquire(who, key)  -- grant now, or queue who (FIFO per key)
--   B:release(who, key) -> true | nil, message (who holds no slot of key:
--       a broken holder)
--   B:drop(who)          -- who is gone: its slots are released, its
--       queued requests forgotten
--   B:next_due() -> ms | nil: when the spacing next lets a queued request
--       through (nil: nothing waits for time)
--   B:tick()             -- grants what the spacing now allows
--   B:stats() -> { held, queued, keys }
--
-- A destination's queue is an array with head/tail indices: acquire and
-- grant are O(1); a dropped holder's entries are skipped when they reach
-- the head. A destination nobody holds or waits for (and, with spacing,
-- whose interval has passed) is forgotten, so memory follows what is in
-- flight, not the length of the run.

local M = {}

local B = {}
B.__index = B

function M.new(o)
  if math.type(o.cap) ~= "integer" or o.cap < 1 then error("broker: cap must be a positive integer", 2) end
  return setmetatable({
    cap = o.cap, interval = o.interval, now = o.now or function() return 0 end,
    grant = o.grant or function() end,
    dests = {},       -- key -> { held, q = {}, head, tail, next_at }
    holds = {},       -- who -> { [key] = count }
    dead = setmetatable({}, { __mode = "k" }),
    timed = {},       -- key -> true: queued requests held back by the spacing
  }, B)
end

local function dest(self, key)
  local d = self.dests[key]
  if not d then
    d = { held = 0, q = {}, head = 1, tail = 0, next_at = nil }
    self.dests[key] = d
  end
  return d
end

local function hold(self, who, key)
  local h = self.holds[who]
  if not h then
    h = {}
    self.holds[who] = h
  end
  h[key] = (h[key] or 0) + 1
end

local function forget_if_idle(self, key, d)
  if d.held == 0 and d.head > d.tail and not self.timed[key]
    and (not d.next_at or d.next_at <= self.now()) then
    self.dests[key] = nil
  end
end

-- grants what the cap and the spacing allow on key; returns the list of
-- holders granted (the grant callbacks are made by the caller, last)
local function pump(self, key, d, out)
  local now
  while d.held < self.cap and d.head <= d.tail do
    local who = d.q[d.head]
    if self.dead[who] then
      d.q[d.head] = nil
      d.head = d.head + 1
    else
      if self.interval then
        now = now or self.now()
        if d.next_at and now < d.next_at then
          self.timed[key] = true
          return out
        end
        d.next_at = now + self.interval
      end
      d.q[d.head] = nil
      d.head = d.head + 1
      d.held = d.held + 1
      hold(self, who, key)
      out[#out + 1] = who
    end
  end
  self.timed[key] = nil
  if d.head > d.tail then d.head, d.tail = 1, 0 end
  return out
end

local function announce(self, key, granted)
  for _, who in ipairs(granted) do self.grant(who, key) end
end

function B:acquire(who, key)
  local d = dest(self, key)
  local t = d.tail + 1
  d.tail = t
  d.q[t] = who
  announce(self, key, pump(self, key, d, {}))
end

function B:release(who, key)
  local h = self.holds[who]
  local n = h and h[key]
  if not n or n < 1 then return nil, "release of a slot not held: " .. tostring(key) end
  if n == 1 then h[key] = nil else h[key] = n - 1 end
  if next(h) == nil then self.holds[who] = nil end
  local d = self.dests[key]
  d.held = d.held - 1
  local granted = pump(self, key, d, {})
  forget_if_idle(self, key, d)
  announce(self, key, granted)
  return true
end

function B:drop(who)
  self.dead[who] = true
  local h = self.holds[who]
  self.holds[who] = nil
  local keys, all = {}, {}
  for key in pairs(h or {}) do keys[#keys + 1] = key end
  table.sort(keys)   -- the same order every time
  for _, key in ipairs(keys) do
    local d = self.dests[key]
    d.held = d.held - h[key]
    all[#all + 1] = { key, pump(self, key, d, {}) }
    forget_if_idle(self, key, d)
  end
  for _, kg in ipairs(all) do announce(self, kg[1], kg[2]) end
end

function B:next_due()
  local due
  for key in pairs(self.timed) do
    local at = self.dests[key].next_at
    if not due or at < due then due = at end
  end
  return due
end

function B:tick()
  local all = {}
  for key in pairs(self.timed) do all[#all + 1] = key end
  table.sort(all)   -- the same order every time
  for _, key in ipairs(all) do
    local d = self.dests[key]
    announce(self, key, pump(self, key, d, {}))
  end
end

function B:stats()
  local held, queued, keys = 0, 0, 0
  for _, d in pairs(self.dests) do
    keys = keys + 1
    held = held + d.held
    for i = d.head, d.tail do
      if d.q[i] ~= nil and not self.dead[d.q[i]] then queued = queued + 1 end
    end
  end
  return { held = held, queued = queued, keys = keys }
end

return M
