-- mxprobe.cli.workers -- --workers N: the probing of a bulk run in N
-- worker processes, one politeness for all of them.
--
-- The CLI process becomes the coordinator. It reads the queries (the same
-- source, shard filter and resume skip as an in-process run), hands them to
-- the workers over socketpairs, gets each query's facts back and gives them
-- to the same results sink: output, progress and exit status stay in one
-- process, which alone writes. For a line format (jsonl, facts: o.render)
-- the workers also judge and render each query's line, and the coordinator
-- only writes it and counts its verdict (bulk CPU: the coordinator's
-- decoding, judging and encoding held back two workers); for a whole
-- document (json, text, html, ...) it gets the facts and judges them
-- itself. It is also the slot broker for the per-address cap
-- (mxprobe.broker): a worker that wants to connect to an address asks for
-- a slot and its task stays parked (no busy wait) until the grant comes;
-- so --per-address holds across all workers, and --rate-per-address
-- spaces the connections to one address.
--
--   workers.probe_many(source, opts, sink, with_loop, o) -> n | nil, message
--       the contract of mxprobe.probe.probe_many (source, sink(facts, i),
--       with_loop(l) for the CLI's signal watch and stop), in o.workers
--       processes started as o.command (argv: interpreter, its options,
--       the script, cli.WORKER_ARG); o.interval: least ms between two
--       connections to one address (--rate-per-address); o.render =
--       {fmt = "jsonl"|"facts", policy = path|nil, expiry_days = n|nil}:
--       the workers render the lines (mxprobe.cli.results.renderer), and
--       the sink gets sink(nil, i, {line = s, verdict = v}) for each
--       (v "-" for facts) -- but still sink(facts, i) for the facts of a
--       query that no worker could end (a worker died), or that a worker
--       could not render
--   workers.worker_main() -> exit status: a worker process (descriptor 3
--       is its channel to the coordinator)
--   workers.parse(line, from) -> message | nil, reason   (pure)
--
-- The protocol: one message a line, at most core.limits.channel_line_max
-- bytes; from = the side that sent it.
--   coordinator -> worker:  "O <json>"       the probe options (first line);
--                                            its field "render" (o.render)
--                                            asks for J instead of F
--                           "Q <id> <query>" probe this query
--                           "G <key>"        a slot of key is yours
--                           "E"              no more queries: end when done
--   worker -> coordinator:  "F <id> <json>"  the facts of query id
--                           "J <id> <verdict> <json>"  the line of query id,
--                                            rendered (verdict: ok, warning,
--                                            critical, unknown; "-" for a
--                                            facts line); F when it could not
--                                            be (too long, an internal error)
--                           "A <key>"        I want a slot of key
--                           "R <key>"        I release a slot of key
-- key = "address|port". A worker's end of its channel closing before it
-- ended (it died), or any malformed line from it (a J of a query it was
-- not given, or not of the kind asked for: "-" only for facts), ends that
-- worker: it is killed and reaped, the slots it held are released, and
-- each query it had in flight gets facts with an error ("worker ...
-- died: signal 9"), which judge as could-not-test. A worker whose coordinator is gone (its channel
-- closes) stops at once. Workers run in process groups of their own: a
-- terminal's Ctrl-C reaches only the coordinator, which stops handing out
-- queries, lets those in flight end (the CLI's grace period), and then
-- closes the channels, waits a moment, kills what is left and reaps every
-- worker.

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local json = require "mxprobe.json"
local facts_io = require "mxprobe.facts"
local probe = require "mxprobe.probe"
local run = require "mxprobe.run"
local broker = require "mxprobe.broker"

local M = {}

M.KEY_MAX = 80                      -- bytes of "address|port"
M.ID_MAX = 2 ^ 53
local FAR = 3600000                 -- ms: a wait that only an event ends
local END_WAIT_MS = 2000            -- a worker's time to exit once told
local TICK_MS = 250                 -- longest sleep of the --rate-per-address timer

------------------------------------------------------------------------
-- the protocol (pure)

local function valid_key(k)
  return #k <= M.KEY_MAX and k:match("^[%x:%.]+|%d+$") ~= nil
end

local VERDICTS = { ok = true, warning = true, critical = true, unknown = true, ["-"] = true }

local function id_of(s)
  if #s > 15 then return nil end
  return math.tointeger(tonumber(s))
end

-- (bulk CPU: a message of facts or of a result line is 10-20 KB, so no
-- pattern here runs over its body -- a character class tried at every byte
-- cost 0.45 ms a message; the line breaks are looked for with a plain
-- search, the body is taken from its position)
function M.parse(line, from)
  if from ~= "worker" and from ~= "coordinator" then
    error("workers.parse: from must be 'worker' or 'coordinator'", 2)
  end
  if type(line) ~= "string" then return nil, "not a line" end
  if line:find("\n", 1, true) or line:find("\r", 1, true) then return nil, "a line break inside a message" end
  local t = line:match("^(%u) ")
  if not t then
    if line == "E" and from == "coordinator" then return { t = "E" } end
    return nil, "not a message"
  end
  if from == "worker" then
    if t == "F" then
      local id, at = line:match("^(%d+) (){", 3)
      id = id and id_of(id)
      if not id then return nil, "F: expected an id and a JSON object" end
      return { t = "F", id = id, body = line:sub(at) }
    elseif t == "J" then
      local id, v, at = line:match("^(%d+) ([%l%-]+) (){", 3)
      id = id and id_of(id)
      if not id or not VERDICTS[v] then return nil, "J: expected an id, a verdict and a JSON object" end
      return { t = "J", id = id, verdict = v, body = line:sub(at) }
    elseif t == "A" or t == "R" then
      local rest = line:sub(3)
      if not valid_key(rest) then return nil, t .. ": not an address|port key" end
      return { t = t, key = rest }
    end
  elseif from == "coordinator" then
    local rest = line:sub(3)
    if t == "O" then
      if rest:sub(1, 1) ~= "{" then return nil, "O: expected a JSON object" end
      return { t = "O", body = rest }
    elseif t == "Q" then
      local id, q = rest:match("^(%d+) (%S.*)$")
      id = id and id_of(id)
      if not id then return nil, "Q: expected an id and a query" end
      return { t = "Q", id = id, query = q }
    elseif t == "G" then
      if not valid_key(rest) then return nil, "G: not an address|port key" end
      return { t = "G", key = rest }
    end
  end
  return nil, "unknown message " .. t
end

------------------------------------------------------------------------
-- a channel: whole lines out (one task flushes, the others append), whole
-- lines in (one reader)

local Chan = {}
Chan.__index = Chan

local function new_chan(ch)
  return setmetatable({ ch = ch, flushing = false, err = nil }, Chan)
end

--- Sends one line; true, or nil, message once the channel failed.
function Chan:send(line)
  if self.err then return nil, self.err end
  local ok, err = self.ch:send(line .. "\n")
  if not ok then
    self.err = err
    return nil, err
  end
  if self.flushing then return true end   -- the task flushing sends it too
  self.flushing = true
  while true do
    local r, ferr = self.ch:flush()
    if r then break end
    if r == nil then
      self.err = ferr
      break
    end
    loop.wait(self.ch:wfd(), loop.WRITE, core.now() + FAR)
  end
  self.flushing = false
  if self.err then return nil, self.err end
  return true
end

--- The next line; nil at the end; nil, message when broken.
function Chan:read()
  while true do
    local s, err = self.ch:line()
    if s then return s end
    if s == nil then return nil, err end
    loop.wait(self.ch:rfd(), loop.READ, core.now() + FAR)
    local n, ferr = self.ch:fill()
    if not n then return nil, ferr end
  end
end

function Chan:close()
  self.err = self.err or "closed"
  self.ch:close()
end

------------------------------------------------------------------------
-- processes

-- waits (outside or inside a task, at most ms) for pid to end; the
-- waitpid result, or false if it still runs
local function reap(pid, ms)
  local deadline = core.now() + ms
  while true do
    local how, code = core.waitpid(pid)
    if how ~= false then return how, code end
    if core.now() >= deadline then return false end
    loop.sleep(20)
  end
end

-- ends pid for good: killed if still running, always reaped
local function finish(pid, ms)
  local how, code = reap(pid, ms or 0)
  if how == false then
    core.kill(pid, "KILL")
    how, code = core.waitpid(pid, true)
  end
  return how, code
end

local function died(how, code)
  if how == "signaled" then return "signal " .. tostring(code) end
  if how == "exited" then return "exit status " .. tostring(code) end
  return "unknown status"
end

------------------------------------------------------------------------
-- the coordinator

function M.probe_many(source, opts, sink, with_loop, o)
  if type(sink) ~= "function" then error("workers.probe_many: sink must be a function (facts, i)", 2) end
  local ctx, err = run.new(opts)   -- options checked once, here; the run's identity
  if not ctx then return nil, err end
  local wopts = {}
  for k, v in pairs(opts) do wopts[k] = v end
  wopts.run_id = ctx.run.id
  wopts.render = o.render
  local optline = "O " .. json.encode(wopts)

  local workers = {}
  local function shutdown(ms)
    for _, w in ipairs(workers) do
      if not w.reaped then
        w.chan:close()   -- the worker sees the end of its channel and stops
      end
    end
    local deadline = core.now() + ms
    for _, w in ipairs(workers) do
      if not w.reaped then
        finish(w.pid, math.max(0, deadline - core.now()))
        w.reaped = true
      end
    end
  end
  for k = 1, o.workers do
    local pid, ch, serr = core.spawn(o.command)
    if not pid then
      shutdown(0)
      return nil, "cannot start a worker process: " .. tostring(ch or serr)
    end
    local w = { k = k, pid = pid, chan = new_chan(ch), inflight = {}, load = 0, alive = true }
    workers[k] = w
    w.chan:send(optline)
  end

  local timer = loop.semaphore(0)   -- wakes the spacing timer
  local timer_parked, finished = false, false
  local b = broker.new {
    cap = ctx.options.per_address, interval = o.interval, now = core.now,
    grant = function(w, key)
      if w.alive then w.chan:send("G " .. key) end
    end,
  }
  local function poke_timer()
    if o.interval and timer_parked and b:next_due() then
      timer_parked = false
      timer:release()
    end
  end

  local n, next_id = 0, 0
  local function fail_inflight(w, why)
    local list = {}
    for id, p in pairs(w.inflight) do list[#list + 1] = { id = id, p = p } end
    table.sort(list, function(x, y) return x.id < y.id end)
    w.inflight, w.load = {}, 0
    for _, e in ipairs(list) do
      sink(probe.failed_facts(e.p.q, ctx, why), e.p.i)
      e.p.sem:release()
    end
  end
  local function gone(w, why)
    if not w.alive then return end
    w.alive = false
    b:drop(w)
    poke_timer()
    w.chan:close()
    local how, code = finish(w.pid, why and 0 or END_WAIT_MS)
    w.reaped = true
    if next(w.inflight) then
      local msg = ("worker %d (pid %d) died: %s"):format(w.k, w.pid, why or died(how, code))
      fail_inflight(w, msg)
    end
  end

  local function reader(w)
    while w.alive do
      local line, rerr = w.chan:read()
      if not line then
        -- the end: expected once told "E" with nothing in flight
        gone(w, rerr and ("its channel broke: " .. tostring(rerr)) or nil)
        return
      end
      local m, perr = M.parse(line, "worker")
      local bad
      if not m then
        bad = "malformed message: " .. perr
      elseif m.t == "F" then
        local p = w.inflight[m.id]
        local f = p and json.decode(m.body)
        if not p then
          bad = "facts of a query it did not have"
        elseif type(f) ~= "table" or f.schema ~= facts_io.SCHEMA then
          bad = "facts that are not " .. facts_io.SCHEMA
        else
          w.inflight[m.id] = nil
          w.load = w.load - 1
          sink(f, p.i)
          p.sem:release()
        end
      elseif m.t == "J" then
        local p = w.inflight[m.id]
        if not p then
          bad = "a line of a query it did not have"
        elseif not o.render or (m.verdict == "-") ~= (o.render.fmt == "facts") then
          bad = "a line it was not asked for"
        else
          w.inflight[m.id] = nil
          w.load = w.load - 1
          sink(nil, p.i, { line = m.body, verdict = m.verdict })
          p.sem:release()
        end
      elseif m.t == "A" then
        b:acquire(w, m.key)
        poke_timer()
      else
        local ok, rel = b:release(w, m.key)
        if not ok then bad = rel else poke_timer() end
      end
      if bad then
        gone(w, bad)
        return
      end
    end
  end

  local function pick()
    local best
    for _, w in ipairs(workers) do
      if w.alive and (not best or w.load < best.load) then best = w end
    end
    return best
  end

  local next_query
  if type(source) == "function" then
    next_query = source
  else
    local i = 0
    next_query = function() i = i + 1 return source[i] end
  end

  local l = loop.new()
  l:spawn(function()
    for _, w in ipairs(workers) do l:spawn(reader, w) end
    if o.interval then
      l:spawn(function()
        while not finished do
          local due = b:next_due()
          if due then
            -- at most TICK_MS: a key queued later may be due earlier, and
            -- the end of the run does not wait for a far due time
            loop.wait(nil, 0, math.min(due, core.now() + TICK_MS))
            b:tick()
          else
            timer_parked = true
            timer:acquire()
          end
        end
      end)
    end
    loop.pool(function()
      local q = next_query()
      if q == nil then return nil end
      n = n + 1
      return { q = q, i = n }
    end, ctx.options.concurrency, function(item)
      local w = pick()
      if not w then
        sink(probe.failed_facts(item.q, ctx, "no worker process left"), item.i)
        return
      end
      next_id = next_id + 1
      local p = { i = item.i, q = item.q, sem = loop.semaphore(0) }
      w.inflight[next_id] = p
      w.load = w.load + 1
      if not w.chan:send(("Q %d %s"):format(next_id, item.q)) then
        gone(w, "its channel broke")
      end
      p.sem:acquire()
    end)
    finished = true
    if timer_parked then
      timer_parked = false
      timer:release()
    end
    for _, w in ipairs(workers) do
      if w.alive then w.chan:send("E") end
    end
  end)
  if with_loop then with_loop(l) end
  local ok, errs = pcall(l.run, l)
  -- stopped (a signal's grace ran out, or a write failed), or done: no
  -- worker outlives the run, none is left a zombie
  shutdown(END_WAIT_MS)
  if not ok then error(errs, 0) end
  if #errs > 0 then error(errs[1], 0) end
  return n
end

------------------------------------------------------------------------
-- a worker process

local function say(msg)
  io.stderr:write("mxprobe worker: ", msg, "\n")
end

--- A worker's side of the slot broker (pure of I/O: send(line) sends one
-- message, is_dead() -> why the coordinator is gone or nil):
--   client.provider(address, port) -> slot { acquire, release }  (run.lua's
--       slot_provider: one per key, asked once per run)
--   client.grant(key) -> true, or false for a grant nobody asked for
--   client.slots: key -> { sem, asked }
-- A request counts as asked before its "A" line is sent: sending may yield
-- (another task's lines fill the channel and this task flushes them), and
-- the coordinator's "G" can be read in that time, before the asking task
-- parks. The grant then waits in the semaphore for it (under load this
-- race killed a worker: "a slot granted that nobody asked for").
function M.slot_client(send, is_dead)
  local client = { slots = {} }
  local function gone()
    local why = is_dead()
    if why then error("the coordinator is gone: " .. why, 0) end
  end
  function client.provider(address, port)
    local key = address .. "|" .. port
    local s = { sem = loop.semaphore(0), asked = 0 }
    client.slots[key] = s
    function s.acquire()
      gone()
      s.asked = s.asked + 1
      send("A " .. key)
      gone()
      s.sem:acquire()
      gone()
      return true
    end
    function s.release()
      if not is_dead() then send("R " .. key) end
    end
    return s
  end
  function client.grant(key)
    local s = client.slots[key]
    if not s or s.asked == 0 then return false end
    s.asked = s.asked - 1
    s.sem:release()
    return true
  end
  return client
end

function M.worker_main()
  local ch, cerr = core.channel(3)
  if not ch then
    say("no channel to a coordinator: " .. tostring(cerr))
    return 3
  end
  local chan = new_chan(ch)
  local line, rerr = chan:read()
  local m = line and M.parse(line, "coordinator")
  if not m or m.t ~= "O" then
    say("expected the options first" .. (rerr and (": " .. tostring(rerr)) or ""))
    return 3
  end
  local opts = json.decode(m.body)
  if type(opts) ~= "table" then
    say("options that are not a JSON object")
    return 3
  end
  -- JSON has one kind of number: the integer options come back as floats
  for k, v in pairs(opts) do
    if math.type(v) == "float" and math.tointeger(v) then opts[k] = math.tointeger(v) end
  end
  -- a line format: this process judges and renders each line
  local render
  if opts.render ~= nil then
    local spec = opts.render
    opts.render = nil
    local rerr2 = "not a table"
    if type(spec) == "table" then
      -- --expiry-days 30 came as 30.0: given to the policy as the CLI has it
      local d = spec.expiry_days
      if math.type(d) == "float" and math.tointeger(d) then spec.expiry_days = math.tointeger(d) end
      render, rerr2 = require("mxprobe.cli.results").renderer(spec)
    end
    if not render then
      say("cannot render lines: " .. tostring(rerr2))
      return 3
    end
  end
  local line_max = core.limits.channel_line_max

  local dead = nil         -- why the coordinator is gone
  local ended = false      -- "E" came (or the end)
  local q_id, q_str, qhead, qtail = {}, {}, 1, 0
  local avail = loop.semaphore(0)   -- wakes a task waiting for a query
  local ids = {}           -- probe_many's index -> query id
  local pulled, sunk, exhausted = 0, 0, false
  local the_loop

  local slot_client = M.slot_client(function(msg) return chan:send(msg) end, function() return dead end)
  local slots = slot_client.slots
  opts.slot_provider = slot_client.provider

  local function all_done()
    if exhausted and sunk == pulled and the_loop then the_loop:stop() end
  end
  local function stop(why)
    dead = dead or why
    ended = true
    -- wake every parked task; they see `dead` and end
    for _, s in pairs(slots) do
      for _ = 1, s.sem:waiting() do s.sem:release() end
    end
    for _ = 1, avail:waiting() do avail:release() end
    if the_loop then the_loop:stop() end
  end

  local function reader()
    while true do
      local l2, err = chan:read()
      if not l2 then
        return stop(err and ("its channel broke: " .. tostring(err)) or "it closed the channel")
      end
      local msg, perr = M.parse(l2, "coordinator")
      if not msg then
        say("malformed message from the coordinator: " .. perr)
        return stop("malformed message")
      end
      if msg.t == "Q" then
        qtail = qtail + 1
        q_id[qtail], q_str[qtail] = msg.id, msg.query
        if avail:waiting() > 0 then avail:release() end
      elseif msg.t == "G" then
        if not slot_client.grant(msg.key) then
          say("a slot granted that nobody asked for: " .. msg.key)
          return stop("malformed message")
        end
      elseif msg.t == "E" then
        ended = true
        for _ = 1, avail:waiting() do avail:release() end
        all_done()
      else
        say("unexpected message " .. msg.t)
        return stop("malformed message")
      end
    end
  end

  local function next_query()
    while true do
      if dead then return nil end
      if qhead <= qtail then
        local id, q = q_id[qhead], q_str[qhead]
        q_id[qhead], q_str[qhead] = nil, nil
        qhead = qhead + 1
        pulled = pulled + 1
        ids[pulled] = id
        return q
      end
      if ended then
        exhausted = true
        all_done()
        return nil
      end
      avail:acquire()
    end
  end

  local n, perr = probe.probe_many(next_query, opts, function(f, i)
    local id = ids[i]
    ids[i] = nil
    sunk = sunk + 1
    if not dead then
      local msg
      if render then
        local rok, rline, verdict = pcall(render, f)
        if rok then
          msg = ("J %d %s %s"):format(id, verdict, rline)
          if #msg > line_max then msg = nil end
        end
      end
      msg = msg or ("F %d %s"):format(id, facts_io.encode(f))
      local ok, err = chan:send(msg)
      if not ok then stop("cannot send: " .. tostring(err)) end
    end
    all_done()
  end, function(l)
    the_loop = l
    l:spawn(reader)
  end)
  if not n then
    say(perr)
    return 3
  end
  -- what the last sinks queued: sent before the process ends
  while not dead and ch:pending() > 0 do
    local r, ferr = ch:flush()
    if r == nil then
      say("cannot send: " .. tostring(ferr))
      return 3
    end
    if r == false then loop.wait(ch:wfd(), loop.WRITE, core.now() + 10000) end
  end
  return 0
end

return M
