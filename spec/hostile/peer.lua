-- spec/hostile/peer.lua -- what the hostile_*_spec.lua files share: starting
-- and stopping spec/hostile/peer.py, probing with short deadlines, and the
-- checks every hostile probe must pass (deadline kept, valid UTF-8, valid
-- JSON, reports that let no control character through).
--
--   local H = require "hostile.peer"        (.busted puts spec/ on the path)
--   local p = H.start("smtp", "127.0.66.1:2525", "no-banner")
--   finally(function() H.stop(p) end)
--   local facts, elapsed_ms = H.probe("[127.0.66.1]:2525")
--   H.check_common(facts, elapsed_ms)
local cjson = require "cjson"
local core = require "mxprobe.core"
local mxprobe = require "mxprobe"
local facts_io = require "mxprobe.facts"

local M = {}

M.SCRIPT = "spec/hostile/peer.py"
M.CA_FILE = "spec/hostile/certs/ca.pem"
M.TIMEOUT = 2          -- seconds per phase
M.PROBE_TIMEOUT = 8    -- seconds per target
M.DNS_TIMEOUT = 2      -- seconds per DNS query
M.SLACK_MS = 2000      -- a probe may overrun its deadline by at most this
M.PHASE_SLACK_MS = 300 -- a timed-out wait ends at its deadline, and at most this later

local tmpdir
local function tmp()
  if not tmpdir then
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(os.execute("mkdir -p " .. tmpdir))
  end
  return tmpdir
end

local function sleep_ms(ms) core.poll({}, {}, ms) end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local running = {}   -- peers started and not stopped yet

-- running (a zombie is not: the peer is reparented to PID 1, which may
-- take a while to reap it)
local function alive(pid)
  local state = slurp("/proc/" .. pid .. "/stat"):match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end

--- Starts peer.py MODE --listen LISTEN --fault FAULT [extra args]; waits
-- (at most 10 s) for its "ready". Returns {pid, out, listen, fault}; raises
-- with the peer's output if it does not come up. M.stop_all() stops it
-- unless `shared` is set (a peer for a whole describe: stop it yourself).
function M.start(mode, listen, fault, extra, shared)
  local tag = (mode .. "-" .. fault .. "-" .. listen):gsub("[^%w%-]", "_")
  local out = ("%s/%s.out"):format(tmp(), tag)
  local pidfile = ("%s/%s.pid"):format(tmp(), tag)
  os.remove(out)
  local cmd = ("python3 %s %s --listen %s --fault %s %s > %s 2>&1 & echo $! > %s")
    :format(M.SCRIPT, mode, listen, fault, extra or "", out, pidfile)
  assert(os.execute(cmd))
  local pid = slurp(pidfile):match("%d+")
  assert(pid, "no pid for the peer " .. fault)
  local p = { pid = pid, out = out, listen = listen, fault = fault }
  local deadline = core.now() + 10000
  while core.now() < deadline do
    local s = slurp(out)
    if s:find("ready", 1, true) then
      if not shared then running[p] = true end
      return p
    end
    if not alive(pid) then break end
    sleep_ms(20)
  end
  M.stop(p)
  error(("hostile peer %s %s on %s did not start: %s"):format(mode, fault, listen, slurp(out)), 2)
end

--- Stops a peer started by M.start (its own pid only); idempotent.
function M.stop(p)
  if not p or p.stopped then return end
  p.stopped = true
  os.execute("kill " .. p.pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not alive(p.pid) then break end
    sleep_ms(10)
  end
  if alive(p.pid) then os.execute("kill -9 " .. p.pid .. " 2>/dev/null") end
  running[p] = nil
end

--- The peers running now (started, not stopped, not shared).
function M.peers()
  local list = {}
  for p in pairs(running) do list[#list + 1] = p end
  return list
end

--- Stops every peer started and not yet stopped (for after_each/teardown:
-- busted's finally keeps only one function per test).
function M.stop_all()
  for p in pairs(running) do M.stop(p) end
end

--- What the peer wrote on stderr/stdout so far.
function M.output(p) return slurp(p.out) end

--- The client ends ("127.0.0.1:40312") of the connections an SMTP peer
-- accepted so far, in order (its "client: " lines).
function M.clients(p)
  local list = {}
  for e in M.output(p):gmatch("client: ([^\n]+)") do list[#list + 1] = e end
  return list
end

--- The command lines an SMTP peer read so far, in order (its "line: "
-- lines, Python's ascii() of each: quotes removed, escapes kept as written).
function M.lines(p)
  local list = {}
  for l in M.output(p):gmatch("line: ([^\n]+)") do
    list[#list + 1] = l:match("^'(.*)'$") or l:match('^"(.*)"$') or l
  end
  return list
end

--- Waits (at most 2 s) until the peer's output matches pattern; returns
-- whether it did (the peer logs from its own threads, a moment later).
function M.wait_output(p, pattern)
  local deadline = core.now() + 2000
  repeat
    if M.output(p):find(pattern) then return true end
    sleep_ms(20)
  until core.now() >= deadline
  return M.output(p):find(pattern) ~= nil
end

--- Probe options with the short hostile deadlines; extra wins.
function M.options(extra)
  local o = {
    resolver = "127.0.0.1:9",   -- never asked for address literals
    timeout = M.TIMEOUT, probe_timeout = M.PROBE_TIMEOUT, dns_timeout = M.DNS_TIMEOUT,
    ehlo_name = "client.mxprobe.test", ca_file = M.CA_FILE,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- Probes query through the Lua API; returns facts and the wall-clock
-- milliseconds it took (monotonic clock of the core).
function M.probe(query, extra)
  local t0 = core.now()
  local facts = assert(mxprobe.probe(query, M.options(extra)))
  return facts, core.now() - t0
end

--- Every string (keys too) anywhere in t is valid UTF-8; returns true or
-- false, path of the first bad one.
function M.all_utf8(t, path, seen)
  path, seen = path or "facts", seen or {}
  if seen[t] then return true end
  seen[t] = true
  for k, v in pairs(t) do
    local p = path .. "." .. tostring(k)
    if type(k) == "string" and not utf8.len(k) then return false, p .. " (key)" end
    if type(v) == "string" and not utf8.len(v) then return false, p end
    if type(v) == "table" then
      local ok, where = M.all_utf8(v, p, seen)
      if not ok then return false, where end
    end
  end
  return true
end

--- The checks every hostile probe must pass: it ended within its deadline
-- (limit_ms, default probe_timeout + 2 s), the facts are what the v2 schema
-- says (facts.validate), every string is valid UTF-8, the facts encode to
-- JSON that cjson decodes to the same query and that validates again, and
-- no target's dialog ended in an internal error.
function M.check_common(facts, elapsed_ms, limit_ms)
  limit_ms = limit_ms or (M.PROBE_TIMEOUT * 1000 + M.SLACK_MS)
  assert(elapsed_ms < limit_ms,
    ("probe took %.0f ms, deadline %.0f ms"):format(elapsed_ms, limit_ms))
  assert(facts.schema == "mxprobe.facts/2", "facts schema " .. tostring(facts.schema))
  local valid, errs = facts_io.validate(facts)
  assert(valid == true, "facts do not validate: " .. table.concat(errs or {}, "; "))
  local ok, where = M.all_utf8(facts)
  assert(ok, "invalid UTF-8 in " .. tostring(where))
  local json = facts_io.encode(facts)
  local decoded = cjson.decode(json)
  assert(type(decoded) == "table" and decoded.query == facts.query, "facts JSON does not round-trip")
  assert(decoded.schema == "mxprobe.facts/2", "facts JSON schema " .. tostring(decoded.schema))
  local back = assert(facts_io.decode(json))[1]
  local bvalid, berrs = facts_io.validate(back)
  assert(bvalid == true, "facts read back from JSON do not validate: " .. table.concat(berrs or {}, "; "))
  for i, t in ipairs(facts.targets) do
    local s = t.smtp
    assert(type(s) == "table", ("target %d has no smtp facts"):format(i))
    assert(s.status ~= "error", ("target %d: %s"):format(i, tostring(s.error)))
    assert(type(s.time_ms) == "number" and s.time_ms < limit_ms,
      ("target %d took %s ms"):format(i, tostring(s.time_ms)))
  end
  return json
end

-- Bytes a terminal would act on: C0 controls but LF, DEL, C1 controls
-- (U+0080-U+009F as UTF-8: C2 80-C2 9F), bidi controls and line/paragraph
-- separators (U+061C, U+200E/F, U+2028-202E, U+2066-2069), BOM.
local DANGEROUS = {
  "[%z\1-\9\11-\31\127]", "\194[\128-\159]", "\216\156", "\226\128[\142\143\168-\174]",
  "\226\129[\166-\169]", "\239\187\191",
}

--- nil when s holds nothing a terminal would act on, else a description.
function M.terminal_unsafe(s)
  for _, pat in ipairs(DANGEROUS) do
    local i = s:find(pat)
    if i then
      return ("byte %d: %q"):format(i, s:sub(math.max(1, i - 20), i + 20))
    end
  end
  if not utf8.len(s) then return "invalid UTF-8" end
  return nil
end

--- The text report (plain and coloured) and the JSON report of facts;
-- asserts that the plain text holds nothing a terminal acts on, that the
-- coloured one holds nothing but its own SGR colour sequences, and that the
-- JSON report is one valid JSON document with no raw control character.
-- Returns plain, json_doc.
function M.check_reports(facts)
  local judgement = assert(mxprobe.judge(facts))
  local plain = mxprobe.report({ facts }, { judgement }, { format = "text", color = false, verbose = true })
  local bad = M.terminal_unsafe(plain)
  assert(bad == nil, "text report: " .. tostring(bad))
  local color = mxprobe.report({ facts }, { judgement }, { format = "text", color = true, verbose = true })
  local stripped = color:gsub("\27%[[%d;]*m", "")
  bad = M.terminal_unsafe(stripped)
  assert(bad == nil, "coloured text report: " .. tostring(bad))
  local json = mxprobe.report({ facts }, { judgement }, { format = "json" }):gsub("\n$", "")
  assert(not json:find("[%z\1-\31\127]"), "JSON report holds a raw control character")
  local doc = cjson.decode(json)
  assert(doc.schema == "mxprobe.report/1")
  return plain, doc, judgement
end

--- The set {code = state} of the findings of a judgement.
function M.codes(judgement)
  local set = {}
  for _, f in ipairs(judgement.findings) do set[f.code] = f.state end
  return set
end

--- Runs the CLI (text report unless args say otherwise); returns stdout,
-- stderr, exit status.
function M.cli(args)
  local err = tmp() .. "/cli.err"
  local cmd = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 bin/mxprobe %s 2>%s')
    :format(os.getenv("MXPROBE_CPATH") or "build/?.so", args, err)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, slurp(err), status
end

return M
