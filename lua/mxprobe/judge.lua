-- mxprobe.judge -- facts -> findings, scores and a verdict.
--
--   judge.run(facts, policy, ctx) -> judgement
--     policy: a policy from mxprobe.policy (nil: the default; a plain
--             overlay table is merged onto the default)
--     facts:  schema mxprobe.facts/2 (docs/facts.md)
--     ctx:    { now = epoch seconds } -- the clock of the judgement; default
--             the time the facts were gathered (facts.finished), so a saved
--             facts file is judged as of its capture
--   judgement = {
--     schema = "mxprobe.judgement/1", query, domain, now,
--     findings = { {code, check, severity, state, weight, target, message,
--                   evidence, remediation}, ... },   -- check order
--     scores = see mxprobe.score,
--     verdict = "ok" | "warning" | "critical" | "unknown",
--     counts = { critical, warning, info, ok, pass, fail, na, untested },
--     summary = "critical: 1 critical, 2 warnings, 1 not tested",
--     regimes = { { mx, regime, reason }, ... },  -- mxprobe.regime, MX order
--   }
--   judge.exit_status(judgements | judgement) -> 0 ok, 1 warning,
--     2 critical, 3 could not test (monitoring-plugin convention)
--   judge.checks(policy) -> the checks that run under policy, in order
--   judge.codes -> the codes the judge itself emits (declared as
--     mxprobe.checks.judge)
--   judge.clip(s) -> s cut to a finding field's maximum (4096 bytes, whole
--     characters, "…" when cut)
--
-- A check that raises, loops past its instruction budget or returns
-- something that is not a list of findings becomes one finding
-- `mxprobe.check-error` (state untested): it never stops the judgement.
-- A check whose `requires` names a top-level facts field that is missing
-- (e.g. "dns" in facts that never had a DNS phase) is not run; facts with
-- `error` set (the query could not be probed at all) get one finding,
-- mxprobe.query-error, and no check runs.

local policy_mod = require "mxprobe.policy"
local score = require "mxprobe.score"
local builtin = require "mxprobe.checks"
local util = require "mxprobe.checks.util"
local text = require "mxprobe.text"
local regime = require "mxprobe.regime"

local M = {}

M.SCHEMA = "mxprobe.facts/2"

-- the judge's own codes (declared in the check registry, mxprobe.checks)
M.codes = builtin.codes(builtin.judge)

local STATES = { pass = true, fail = true, na = true, untested = true }
local SEVERITIES = { critical = true, warning = true, info = true, ok = true }
local FIELD_MAX = 4096

-- a text field of a finding, at most FIELD_MAX bytes (and a mark), cut on
-- a character boundary
function M.clip(s)
  return text.cut(s, FIELD_MAX, "…")
end
local clip = M.clip

-- the checks that run under policy p: built-ins (a policy check with the
-- same id replaces one), then the policy's own, minus the disabled
function M.checks(p)
  p = policy_mod.resolve(p)
  local extra, by_id = {}, {}
  for _, c in ipairs(p.checks or {}) do by_id[c.id] = c end
  local out, used = {}, {}
  for _, c in ipairs(builtin.list()) do
    local use = by_id[c.id] or c
    used[c.id] = true
    if not p.disabled[use.id] then out[#out + 1] = use end
  end
  for _, c in ipairs(p.checks or {}) do
    if not used[c.id] and not p.disabled[c.id] then extra[#extra + 1] = c end
  end
  for _, c in ipairs(extra) do out[#out + 1] = c end
  return out
end

-- runs check.run(facts, ctx) under an instruction budget; true, result or
-- false, message
local function run_check(check, facts, ctx, budget)
  -- a policy file's check: in its sandbox, under limits it cannot disable
  -- (issue 12)
  local sok, sres = policy_mod.run_sandboxed(check, budget, facts, ctx)
  if sok ~= nil then return sok, sres end
  local co = coroutine.create(check.run)
  if budget and budget > 0 then
    debug.sethook(co, function() error("check ran past its instruction budget (endless loop?)") end, "", budget)
  end
  local ok, res = coroutine.resume(co, facts, ctx)
  if not ok then
    if type(res) ~= "string" then res = "raised a " .. type(res) .. " value" end
    return false, res
  end
  if coroutine.status(co) ~= "dead" then return false, "check yielded" end
  return true, res
end

local function check_error(check, msg)
  return {
    code = "mxprobe.check-error", state = "untested",
    message = "check " .. tostring(check.id) .. " failed: " .. clip((tostring(msg):gsub("[\r\n].*", ""))),
    evidence = clip(tostring(msg)),
  }
end

-- a text field of a finding: a string clipped, a number or boolean as text
local function field(v)
  if v == nil then return nil end
  if type(v) == "string" then return clip(v) end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return nil
end

-- the codes already seen valid (bulk CPU: a run judges the same few
-- hundred codes again and again; bounded, a policy's check may make up codes)
local valid_codes, n_valid = {}, 0
local function valid_code(c)
  if type(c) ~= "string" then return false end
  if valid_codes[c] then return true end
  if not c:match("^[%w][%w%._%-]*$") then return false end
  if n_valid >= 4096 then valid_codes, n_valid = {}, 0 end
  valid_codes[c], n_valid = true, n_valid + 1
  return true
end

-- a finding as the check returned it -> a clean finding, or nil, why
local function clean(f)
  if type(f) ~= "table" then return nil, "a finding is not a table" end
  if not valid_code(f.code) then
    return nil, "a finding has no valid code"
  end
  if not STATES[f.state] then return nil, "finding " .. f.code .. " has no valid state" end
  local target
  if f.target ~= nil then
    if type(f.target) ~= "table" then return nil, "finding " .. f.code .. " has a target that is not a table" end
    target = {
      mx = type(f.target.mx) == "string" and f.target.mx or nil,
      address = type(f.target.address) == "string" and f.target.address or nil,
    }
    if not target.mx and not target.address then target = nil end
  end
  return {
    code = f.code, state = f.state, target = target,
    message = field(f.message) or f.code,
    evidence = field(f.evidence),
    remediation = field(f.remediation),
    severity = SEVERITIES[f.severity] and f.severity or nil,
  }
end

-- what check declares about code (severity, weight, fix): a map-form
-- declaration read where it is (bulk CPU: mxprobe.checks.declaration
-- copies it, a table per finding), the list form through the registry
local function declaration(check, code)
  local codes = type(check) == "table" and check.codes
  if type(codes) ~= "table" then return nil end
  local d = codes[code]
  if type(d) == "table" then return d end
  return builtin.declaration(check, code)
end

-- severity: the policy's (built-in defaults included), the finding's own,
-- the check's declaration (a policy file's check), else by state
local function severity_of(f, decl, p)
  return p.severities[f.code]
    or f.severity
    or (decl and SEVERITIES[decl.severity] and decl.severity)
    or (f.state == "fail" and "warning") or (f.state == "pass" and "ok") or "info"
end

local function weight_of(f, decl, p)
  local w = p.weights[f.code]
  if w == nil and decl then w = decl.weight end
  if type(w) ~= "number" or w ~= w or w < 0 then
    w = p.scoring.default_weights[f.severity] or 0
  end
  return w
end

local function verdict_of(findings)
  local v = "ok"
  local unknown = false
  for _, f in ipairs(findings) do
    if f.state == "fail" then
      if f.severity == "critical" then return "critical" end
      if f.severity == "warning" then v = "warning" end
    elseif score.blocks_verdict(f) then
      unknown = true
    end
  end
  if v == "ok" and unknown then return "unknown" end
  return v
end

local function plural(n, one, many)
  return string.format("%d %s", n, n == 1 and one or many)
end

function M.run(facts, p, ctx)
  if type(facts) ~= "table" then error("judge.run: facts must be a table", 2) end
  if facts.schema ~= nil and facts.schema ~= M.SCHEMA then
    error("judge.run: unsupported facts schema " .. tostring(facts.schema) .. " (expected " .. M.SCHEMA .. ")", 2)
  end
  p = policy_mod.resolve(p)
  ctx = type(ctx) == "table" and ctx or {}
  local now = util.num(ctx.now) or util.num(facts.finished) or util.num(facts.started) or os.time()
  local cctx = { now = now, policy = p, util = util }

  -- the certificate rule: a code's severity per regime of its MX host
  -- (policy.regime_severities), unless the policy file set the code's own
  local okr, regimes = pcall(regime.of_facts, facts)
  if not okr then regimes = {} end
  local regime_of = {}
  for _, r in ipairs(regimes) do regime_of[r.mx] = r.regime end
  local function regime_severity(f)
    local r = f.target and f.target.mx and regime_of[f.target.mx]
    local map = r and type(p.regime_severities) == "table" and p.regime_severities[r]
    if not map or (p.severities_set and p.severities_set[f.code]) then return nil end
    return SEVERITIES[map[f.code]] and map[f.code] or nil
  end

  local findings = {}
  local function add(f, check)
    if p.disabled[f.code] then return end
    local decl = declaration(check, f.code)
    f.check = check.id
    f.severity = severity_of(f, decl, p)
    f.weight = weight_of(f, decl, p)
    local rs = regime_severity(f)
    if rs then
      f.severity = rs
      if rs == "info" then f.weight = 0 end
    end
    if not f.remediation and decl and type(decl.fix) == "string" then f.remediation = decl.fix end
    findings[#findings + 1] = f
  end

  local judge_check = builtin.judge
  if type(facts.error) == "string" then
    add({ code = "mxprobe.query-error", state = "untested",
      message = "the query could not be probed: " .. clip((facts.error:gsub("[\r\n].*", ""))),
      evidence = clip(facts.error) }, judge_check)
  end

  -- a query that could not be probed at all has nothing for the checks
  local checks_to_run = type(facts.error) == "string" and {} or M.checks(p)
  for _, check in ipairs(checks_to_run) do
    local missing = false
    for _, need in ipairs(type(check.requires) == "table" and check.requires or {}) do
      if type(need) == "string" and type(facts[need]) ~= "table" then missing = true end
    end
    if missing then goto continue end
    local ok, res = run_check(check, facts, cctx, p.scoring.check_instructions)
    if ok and res ~= nil and type(res) ~= "table" then
      ok, res = false, "returned a " .. type(res) .. ", not a list of findings"
    end
    if not ok then
      add(check_error(check, res), judge_check)
    else
      local bad
      local list = {}
      for i, raw in ipairs(res or {}) do
        local f, why = clean(raw)
        if not f then bad = string.format("finding %d: %s", i, why) break end
        list[#list + 1] = f
      end
      if bad then
        add(check_error(check, "returned an invalid finding: " .. bad), judge_check)
      else
        for _, f in ipairs(list) do add(f, check) end
      end
    end
    ::continue::
  end

  local counts = { critical = 0, warning = 0, info = 0, ok = 0, pass = 0, fail = 0, na = 0, untested = 0 }
  for _, f in ipairs(findings) do
    counts[f.state] = counts[f.state] + 1
    if f.state == "fail" then counts[f.severity] = counts[f.severity] + 1 end
  end
  local verdict = verdict_of(findings)
  local untested_specific = 0
  for _, f in ipairs(findings) do
    if score.blocks_verdict(f) then untested_specific = untested_specific + 1 end
  end
  local parts = {}
  if counts.critical > 0 then parts[#parts + 1] = plural(counts.critical, "critical", "critical") end
  if counts.warning > 0 then parts[#parts + 1] = plural(counts.warning, "warning", "warnings") end
  if untested_specific > 0 then parts[#parts + 1] = plural(untested_specific, "not tested", "not tested") end
  local summary = verdict .. (#parts > 0 and (": " .. table.concat(parts, ", ")) or "")

  return {
    schema = "mxprobe.judgement/1",
    query = facts.query, domain = facts.domain, now = now,
    findings = findings,
    scores = score.compute(facts, findings, p),
    verdict = verdict,
    counts = counts,
    summary = summary,
    regimes = regimes,
  }
end

local STATUS = { ok = 0, warning = 1, critical = 2, unknown = 3 }
local ORDER = { [2] = 4, [1] = 3, [3] = 2, [0] = 1 }

-- exit status of one judgement or a list: critical > warning > unknown > ok;
-- no judgement at all is 3 (nothing could be tested)
function M.exit_status(judgements)
  if type(judgements) ~= "table" then return 3 end
  if judgements.verdict ~= nil then judgements = { judgements } end
  local best
  for _, j in ipairs(judgements) do
    local s = STATUS[type(j) == "table" and j.verdict] or 3
    if best == nil or ORDER[s] > ORDER[best] then best = s end
  end
  return best or 3
end

return M
