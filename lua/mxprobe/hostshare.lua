-- mxprobe.hostshare -- one host-level probe per MX address per run (issue
-- 10 item 3): a run's registry of host results, so that the domains of one
-- provider, whose MX is the same host, share its host dialog (banner,
-- EHLO, STARTTLS, TLS, certificate, TLS versions) instead of each opening
-- its own connections to the same address.
--
--   hostshare.key(address, port, mx, servername, canonical) -> string
--   hostshare.new([max, seconds]) -> registry
--   hostshare.registry(ctx) -> the run's registry (in ctx.cache)
--   hostshare.get(reg, key, now) -> entry | nil     (fresh, done or in flight)
--   hostshare.open(reg, key, now) -> a new entry, in flight
--   hostshare.finish(entry, result)                 (done: wakes the waiters)
--   hostshare.wait(entry, deadline) -> true (done) | false (deadline)
--   hostshare.once(entry, name, deadline, compute) -> value, at, ran | nil
--   hostshare.enqueue(entry, item); hostshare.take(entry, n) -> items;
--   hostshare.requeue(entry, items, from)
--   hostshare.close(ctx)          (no more queries: nobody lingers for more)
--   hostshare.copy(v) -> a deep copy
--
-- The key is what makes two dialogs the same one: the address and port
-- dialled, the MX host name (the certificate is verified against it), the
-- SNI server name actually sent (DANE's TLSA base domain when it applies)
-- and the canonical name used for the CNAME check. An entry is in flight
-- (its first query holds the dialog; the others wait on its event, each
-- with its own probe deadline) or done (the result and the unix time its
-- dialog began, `at`). A done entry serves for SECONDS at most (after
-- that a new host dialog runs, as chaincache.SECONDS); the registry keeps
-- MAX entries, the least recently used go first. Per process and per run:
-- with --workers N each worker has its own.
--
-- Every use gets its own deep copy: facts stay self-contained (schema v2),
-- one domain's copy never shares a table with another's.

local loop = require "mxprobe.loop"
local chaincache = require "mxprobe.chaincache"

local M = {}

M.MAX = 4096                    -- entries a registry keeps
M.SECONDS = chaincache.SECONDS  -- and for how long a done one serves

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end
M.copy = copy

--- The key of one host dialog (pure).
function M.key(address, port, mx, servername, canonical)
  return table.concat({ tostring(address), tostring(port), mx or "", servername or "", canonical or "" }, "|")
end

--- A new registry: at most max entries (default MAX), each serving for
-- seconds (default SECONDS) once done.
function M.new(max, seconds)
  return { entries = {}, n = 0, tick = 0, order = {}, ohead = 1, otail = 0,
           max = max or M.MAX, seconds = seconds or M.SECONDS }
end

--- The run's registry (ctx.cache.hostshare).
function M.registry(ctx)
  local reg = ctx.cache.hostshare
  if not reg then
    reg = M.new()
    ctx.cache.hostshare = reg
  end
  return reg
end

-- marks e most recently used: an append to the order queue; stale queue
-- items (an older tick of a live entry, or a dropped entry) are skipped
-- when the queue is read, and the queue is rebuilt when mostly stale
local function touch(reg, e)
  reg.tick = reg.tick + 1
  e.tick = reg.tick
  local t = reg.otail + 1
  reg.otail = t
  reg.order[t] = { key = e.key, tick = e.tick }
  if t - reg.ohead + 1 > 4 * reg.max + 64 then
    local live = {}
    for i = reg.ohead, t do
      local x = reg.order[i]
      local cur = reg.entries[x.key]
      if cur and cur.tick == x.tick then live[#live + 1] = x end
    end
    reg.order, reg.ohead, reg.otail = live, 1, #live
  end
end

local function drop(reg, key)
  if reg.entries[key] then
    reg.entries[key] = nil
    reg.n = reg.n - 1
  end
end

local function evict_lru(reg)
  while reg.n > reg.max and reg.ohead <= reg.otail do
    local x = reg.order[reg.ohead]
    reg.order[reg.ohead] = nil
    reg.ohead = reg.ohead + 1
    local cur = reg.entries[x.key]
    if cur and cur.tick == x.tick then drop(reg, x.key) end
  end
end

--- The entry for key at unix time now: in flight, or done and younger
-- than the registry's seconds; nil otherwise (an old one is dropped).
function M.get(reg, key, now)
  local e = reg.entries[key]
  if not e then return nil end
  if e.done and now - e.at >= reg.seconds then
    drop(reg, key)
    return nil
  end
  touch(reg, e)
  return e
end

--- A new entry for key, in flight, begun at unix time now (replaces any
-- entry of that key; the least recently used go beyond max).
function M.open(reg, key, now)
  drop(reg, key)
  local e = { key = key, at = now, done = false, event = loop.event(), reg = reg,
              queue = {}, qhead = 1, qtail = 0, values = {}, sharers = 0 }
  reg.entries[key] = e
  reg.n = reg.n + 1
  touch(reg, e)
  evict_lru(reg)
  return e
end

--- The host dialog is over: its result (kept as a copy) for every waiter.
function M.finish(e, result)
  e.result = copy(result)
  e.done = true
  e.event:set()
end

--- Waits (no longer than deadline, monotonic ms) until e is done.
function M.wait(e, deadline)
  if e.done then return true end
  return e.event:wait(deadline)
end

--- A value of the host computed once per entry (name: the gatherer's id):
-- the first caller runs compute() -> value and keeps it with its unix time
-- (`now()`, given by compute's caller as at); the others wait for it until
-- their deadline. Returns a copy of the value, the time it was taken and
-- whether this call computed it; nil at the deadline. An error in compute
-- is raised to its caller, and the waiters get nil.
function M.once(e, name, deadline, compute, at)
  local v = e.values[name]
  if not v then
    v = { event = loop.event() }
    e.values[name] = v
    local ok, r = pcall(compute)
    if ok then v.value, v.at = copy(r), at end
    v.done = true
    v.event:set()
    if not ok then error(r, 0) end
    return r, at, true
  end
  if not v.done and not v.event:wait(deadline) then return nil end
  if v.value == nil then return nil end
  return copy(v.value), v.at, false
end

--- Queues an item (a domain waiting for its control RCPT); wakes whoever
-- lingers for more (e.more).
function M.enqueue(e, item)
  e.qtail = e.qtail + 1
  e.queue[e.qtail] = item
  if e.more then e.more:set() end
end

--- Takes up to n queued items, oldest first; items marked `cancelled`
-- (their query gave up waiting) are dropped.
function M.take(e, n)
  local out, q = {}, e.queue
  while #out < n and e.qhead <= e.qtail do
    local item = q[e.qhead]
    q[e.qhead] = nil
    e.qhead = e.qhead + 1
    if not item.cancelled then out[#out + 1] = item end
  end
  if e.qhead > e.qtail then e.queue, e.qhead, e.qtail = {}, 1, 0 end
  return out
end

--- Puts items[from..] back at the head of the queue, in their order (a
-- session that must end before it served them: the next one takes them).
function M.requeue(e, items, from)
  local q, n = {}, 0
  for i = from, #items do n = n + 1; q[n] = items[i] end
  for i = e.qhead, e.qtail do
    if e.queue[i] ~= nil then n = n + 1; q[n] = e.queue[i] end
  end
  e.queue, e.qhead, e.qtail = q, 1, n
  if e.more then e.more:set() end
end

--- The run has no more queries (probe_many's source is exhausted and
-- every query is done): batch sessions that linger for more end now.
function M.close(ctx)
  local reg = ctx.cache.hostshare
  if not reg then return end
  reg.closed = true
  for _, e in pairs(reg.entries) do
    if e.more then e.more:set() end
  end
end

--- Queued items not taken yet (cancelled ones included).
function M.queued(e)
  return e.qtail - e.qhead + 1
end

return M
