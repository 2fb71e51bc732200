-- mxprobe.policy -- what the judge weighs: severities, weights, thresholds,
-- disabled checks and extra checks. The defaults are data in
-- mxprobe/policy/default.lua; a user's policy file overrides them.
--
-- A policy file is a Lua chunk that returns a table:
--
--   return {
--     severities = { ["tls.starttls.missing"] = "critical" },
--     weights    = { ["tls.starttls.missing"] = 100 },
--     thresholds = { expiry_days = 30 },
--     scoring    = { weakest_margin = 10 },
--     grades     = { { grade = "A", min = 95 }, ... },   -- replaces the list
--     regime_severities = { opportunistic = { ["tls.cert.expired"] = "critical" } },
--     disable    = { "smtp.extensions", "dns.mx.single" }, -- check ids or codes
--     checks     = { { id = "my.check", codes = {...}, run = function(facts, ctx) ... end } },
--   }
--
-- It runs in a sandbox: no require, io, os.execute, load or debug; only
-- the safe parts of the standard library, plus `default` (a copy of the
-- default policy, to build on). A check whose id is a built-in id replaces
-- that built-in check.
--
-- The default severities and weights are the ones the checks declare next
-- to their codes (checks/*.lua); this module only gathers them. A code
-- renamed in 0.2 may still be named by its old name (its `alias`, listed in
-- docs/codes.md) in severities, weights and disable, for one release: it
-- applies to the new code; when both names are given the new one wins.
--
--   policy.default()          -> policy
--   policy.load(path [, base]) -> policy | nil, "path:line: message"
--   policy.merge(base, overlay [, name]) -> policy | nil, message
--   policy.resolve(p)         -> policy (nil: the default; a plain overlay
--                                table: merged onto the default; raises if
--                                it is invalid)

local core = require "mxprobe.core"
local defaults = require "mxprobe.policy.default"
local checks = require "mxprobe.checks"
local text = require "mxprobe.text"

local M = {}

local SEVERITIES = { critical = true, warning = true, info = true, ok = true }
local TOP_KEYS = {
  severities = true, weights = true, thresholds = true, scoring = true,
  grades = true, disable = true, checks = true, name = true, description = true,
  regime_severities = true,   -- the certificate rule (regime.lua)
}
local REGIMES = { dane = true, ["mta-sts-enforce"] = true, ["mta-sts-testing"] = true, opportunistic = true }
local SCORING_KEYS = {
  default_weights = "table", critical_cap = "number", weakest_margin = "number",
  preference_decay = "number", check_instructions = "number",
}
local NUMERIC_THRESHOLDS = {
  expiry_days = true, connect_slow_ms = true, banner_slow_ms = true,
  cipher_bits_min = true, rsa_bits_min = true, ec_bits_min = true,
}
local TLS_VERSIONS = {
  ["TLSv1"] = true, ["TLSv1.0"] = true, ["TLSv1.1"] = true, ["TLSv1.2"] = true, ["TLSv1.3"] = true,
}
local MAX_FILE = 1024 * 1024
local LOAD_INSTRUCTIONS = 10000000

-- robustness (issue 12): the sandbox's limits. A policy's code (the file
-- at load time, its checks at judging time) runs in a coroutine of its
-- own under all of them at once; see run_limited.
M.LOAD_INSTRUCTIONS = LOAD_INSTRUCTIONS
M.CHECK_INSTRUCTIONS_MAX = 10000000  -- a policy's check, whatever scoring says
M.MEMORY_MAX = 64 * 1024 * 1024      -- bytes the Lua state may grow by during one run
M.PATTERN_MAX = 256                  -- bytes of one pattern
M.PATTERN_COST_MAX = 1e9             -- (#subject + 1) ^ (quantifiers + 1) * #pattern
M.COPY_DEPTH_MAX = 64                -- nesting of a table the policy returns
local HOOK_STEP = 1000

local function deepcopy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[deepcopy(k, seen)] = deepcopy(x, seen) end
  return out
end

local function finite(n)
  return type(n) == "number" and n == n and n ~= math.huge and n ~= -math.huge
end

-- the "error" type: { key = the offending key (to find its line), msg }
local function fail(key, fmt, ...)
  error({ key = key, msg = string.format(fmt, ...) }, 0)
end

local function check_map(name, t, valid, what)
  if type(t) ~= "table" then fail(name, "%s must be a table", name) end
  for k, v in pairs(t) do
    if type(k) ~= "string" then fail(name, "%s: keys must be codes (strings), got %s", name, type(k)) end
    if not valid(v) then fail(k, "%s[%q]: %s expected, got %s", name, k, what, tostring(v)) end
  end
end

local function normalise_grades(g)
  if type(g) ~= "table" or #g == 0 then fail("grades", "grades must be a non-empty list") end
  local out = {}
  for i, e in ipairs(g) do
    if type(e) ~= "table" then fail("grades", "grades[%d] must be a table", i) end
    local grade, min = e.grade or e[1], e.min or e[2]
    if type(grade) ~= "string" or grade == "" then fail("grades", "grades[%d]: grade must be a string", i) end
    if not finite(min) then fail("grades", "grades[%d]: min must be a number", i) end
    out[i] = { grade = grade, min = min }
  end
  table.sort(out, function(a, b) return a.min > b.min end)
  return out
end

-- the built-in codes renamed in 0.2: old -> new
local ALIASES = checks.aliases()
M.aliases = ALIASES

-- the new name of a code (itself when it was not renamed)
function M.canonical(code)
  return ALIASES[code] or code
end

-- a map keyed by codes with the old names moved to the new ones (the new
-- name wins when a map gives both)
local function unalias(map)
  local out = {}
  for k, v in pairs(map) do
    if not (ALIASES[k] and map[ALIASES[k]] ~= nil) then out[ALIASES[k] or k] = v end
  end
  return out
end

local function normalise_check(c, i)
  local key = "checks"
  if type(c) ~= "table" then fail(key, "checks[%d] must be a table", i) end
  if type(c.id) ~= "string" or not c.id:match("^[%w][%w%._%-]*$") then
    fail(key, "checks[%d]: id must be a string like \"my.check\"", i)
  end
  if type(c.run) ~= "function" then fail(c.id, "check %q: run must be a function", c.id) end
  if c.codes ~= nil then
    local what = "codes must be a list of strings or a map code -> { severity, weight, fix }"
    if type(c.codes) ~= "table" then fail(c.id, "check %q: %s", c.id, what) end
    for k, v in pairs(c.codes) do
      if math.type(k) == "integer" then
        if type(v) ~= "string" then fail(c.id, "check %q: %s", c.id, what) end
      elseif type(k) == "string" and type(v) == "table" then
        if v.severity ~= nil and not SEVERITIES[v.severity] then
          fail(k, "check %q: codes[%q].severity: \"critical\", \"warning\", \"info\" or \"ok\" expected, got %s",
            c.id, k, tostring(v.severity))
        end
        if v.weight ~= nil and not (finite(v.weight) and v.weight >= 0) then
          fail(k, "check %q: codes[%q].weight: a number >= 0 expected, got %s", c.id, k, tostring(v.weight))
        end
        if v.fix ~= nil and type(v.fix) ~= "string" then
          fail(k, "check %q: codes[%q].fix must be a string", c.id, k)
        end
      else
        fail(c.id, "check %q: %s", c.id, what)
      end
    end
  end
  for _, field in ipairs({ "severities", "weights", "remediation" }) do
    if c[field] ~= nil and type(c[field]) ~= "table" then
      fail(c.id, "check %q: %s must be a table", c.id, field)
    end
  end
  if c.severities then
    check_map("severities", c.severities, function(v) return SEVERITIES[v] end,
      "\"critical\", \"warning\", \"info\" or \"ok\"")
  end
  if c.weights then check_map("weights", c.weights, function(v) return finite(v) and v >= 0 end, "a number >= 0") end
  return c
end

-- merges a validated overlay into a copy of base; raises {key, msg}
local function merge(base, o)
  local p = deepcopy(base)
  p.checks = {}
  for i, c in ipairs(base.checks or {}) do p.checks[i] = c end -- functions: not copied
  for k in pairs(o) do
    if type(k) ~= "string" or not TOP_KEYS[k] then
      fail(k, "unknown key %s (expected one of: severities, weights, thresholds, scoring, grades, disable, checks, "
        .. "regime_severities)",
        type(k) == "string" and string.format("%q", k) or tostring(k))
    end
  end
  if o.severities ~= nil then
    check_map("severities", o.severities, function(v) return SEVERITIES[v] end,
      "\"critical\", \"warning\", \"info\" or \"ok\"")
    p.severities_set = p.severities_set or {}
    for k, v in pairs(unalias(o.severities)) do
      p.severities[k] = v
      p.severities_set[k] = true   -- wins over regime_severities
    end
  end
  if o.regime_severities ~= nil then
    if type(o.regime_severities) ~= "table" then fail("regime_severities", "regime_severities must be a table") end
    for r, map in pairs(o.regime_severities) do
      if not REGIMES[r] then
        fail("regime_severities", "regime_severities: unknown regime %s (dane, mta-sts-enforce, mta-sts-testing, "
          .. "opportunistic)", tostring(r))
      end
      check_map("regime_severities", map, function(v) return SEVERITIES[v] end,
        "\"critical\", \"warning\", \"info\" or \"ok\"")
      p.regime_severities[r] = p.regime_severities[r] or {}
      for k, v in pairs(unalias(map)) do p.regime_severities[r][k] = v end
    end
  end
  if o.weights ~= nil then
    check_map("weights", o.weights, function(v) return finite(v) and v >= 0 end, "a number >= 0")
    for k, v in pairs(unalias(o.weights)) do p.weights[k] = v end
  end
  if o.thresholds ~= nil then
    if type(o.thresholds) ~= "table" then fail("thresholds", "thresholds must be a table") end
    for k, v in pairs(o.thresholds) do
      if type(k) ~= "string" then fail("thresholds", "thresholds: keys must be strings") end
      if NUMERIC_THRESHOLDS[k] and not (finite(v) and v >= 0) then
        fail(k, "thresholds.%s: a number >= 0 expected, got %s", k, tostring(v))
      end
      if k == "tls_min_version" and not TLS_VERSIONS[v] then
        fail(k, "thresholds.tls_min_version: one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 expected, got %s", tostring(v))
      end
      p.thresholds[k] = v
    end
  end
  if o.scoring ~= nil then
    if type(o.scoring) ~= "table" then fail("scoring", "scoring must be a table") end
    for k, v in pairs(o.scoring) do
      local want = SCORING_KEYS[k]
      if not want then fail(k, "scoring: unknown key %s", tostring(k)) end
      if type(v) ~= want or (want == "number" and not finite(v)) then
        fail(k, "scoring.%s: %s expected, got %s", k, want, tostring(v))
      end
      if k == "default_weights" then
        check_map("default_weights", v, function(x) return finite(x) and x >= 0 end, "a number >= 0")
        for s, w in pairs(v) do p.scoring.default_weights[s] = w end
      else
        p.scoring[k] = v
      end
    end
  end
  if o.grades ~= nil then p.grades = normalise_grades(o.grades) end
  if o.disable ~= nil then
    if type(o.disable) ~= "table" then fail("disable", "disable must be a list of check ids or codes") end
    for k, v in pairs(o.disable) do
      local id = type(k) == "number" and v or k
      if type(id) ~= "string" then fail("disable", "disable must be a list of check ids or codes") end
      id = ALIASES[id] or id
      if v ~= false then p.disabled[id] = true else p.disabled[id] = nil end
    end
  end
  if o.checks ~= nil then
    if type(o.checks) ~= "table" then fail("checks", "checks must be a list of check tables") end
    local seen = {}
    for _, c in ipairs(p.checks) do seen[c.id] = true end
    for i, c in ipairs(o.checks) do
      c = normalise_check(c, i)
      if seen[c.id] then fail(c.id, "check %q is defined twice", c.id) end
      seen[c.id] = true
      p.checks[#p.checks + 1] = c
    end
  end
  return p
end

-- policy/default.lua plus the severities and weights the checks declare
local function default_data()
  local p = deepcopy(defaults)
  p.severities, p.weights = {}, {}
  for code, d in pairs(checks.declarations()) do
    p.severities[code] = d.severity
    p.weights[code] = d.weight
  end
  return p
end
local DEFAULT = default_data()

local function fresh_default()
  local p = deepcopy(DEFAULT)
  p.grades = normalise_grades(p.grades)
  p.disabled = {}
  for _, id in ipairs(p.disable or {}) do p.disabled[id] = true end
  p.disable = nil
  p.checks = {}
  p.sources = { "default" }
  p._resolved = true
  return p
end

-- the default policy (a fresh copy: callers may change it)
function M.default()
  return fresh_default()
end

-- overlay (a plain table like a policy file returns) merged onto base
function M.merge(base, overlay, name)
  base = base or fresh_default()
  if type(overlay) ~= "table" then return nil, (name or "policy") .. ": a table expected" end
  local ok, res = pcall(merge, base, overlay)
  if not ok then
    if type(res) == "table" then return nil, (name or "policy") .. ": " .. res.msg, res.key end
    return nil, (name or "policy") .. ": " .. tostring(res)
  end
  res.disable = nil
  res.sources = deepcopy(base.sources or {})
  res.sources[#res.sources + 1] = name or "table"
  res._resolved = true
  return res
end

-- the policy to use for `p`: the default for nil, p itself when resolved,
-- else p merged onto the default (raises on an invalid table: misuse)
function M.resolve(p)
  if p == nil then return fresh_default() end
  if type(p) == "table" and p._resolved then return p end
  local res, err = M.merge(fresh_default(), p, "policy")
  if not res then error(err, 3) end
  return res
end

-- ---- the sandbox (issue 12) ---------------------------------------------
--
-- Why this design: Lua's instruction hook raises an ordinary error, which
-- a pcall inside the policy would catch (an endless loop around a pcall
-- never stopped). Here every run of policy code is one coroutine with a
-- count hook, and the sandbox's own pcall and xpcall re-raise once the
-- budget is spent: each catch on the way up raises again, so the run ends
-- wherever it is, even inside a C function that calls back (table.sort,
-- string.gsub), which a yield from the hook could not leave. Memory: the
-- coroutine is resumed by core.resume_limited, which refuses any
-- allocation that makes the state grow past MEMORY_MAX for that resume (a
-- policy that catches "not enough memory" still fails). Patterns: Lua's
-- matcher is C and never yields to the hook, so find/match/gmatch/gsub
-- refuse a pattern whose worst case, (n+1)^(q+1)*m steps for a subject of
-- n bytes, a pattern of m bytes and q backtracking items (* + - ? %b %1),
-- is above PATTERN_COST_MAX. While policy code runs, the string
-- metatable's __index is the sandbox's string table (so ("").dump is
-- nil), and what it returns is copied with raw access inside the limits
-- (a table whose __index or __pairs loops never reaches mxprobe's own
-- code). setmetatable refuses __gc (a finalizer would run later, outside
-- every limit); collectgarbage, coroutine, debug, io, load, require and
-- all of os but time/date/clock/difftime are not there, nor
-- math.randomseed (math.random is the sandbox's own generator).

local string_mt = getmetatable("")
local GUARDS = setmetatable({}, { __mode = "k" })   -- check table -> its sandbox

-- the backtracking items of a pattern (conservative: may count more).
-- No string methods here: while policy code runs they are the sandbox's.
local sbyte, sformat = string.byte, string.format
local function quantifiers(p)
  local q, i = 0, 1
  while i <= #p do
    local c = sbyte(p, i)
    if c == 37 then                         -- %
      local n = sbyte(p, i + 1)
      if n == 98 or (n and n >= 48 and n <= 57) then q = q + 1 end   -- %b %0-9
      i = i + 2
    else
      if c == 42 or c == 43 or c == 45 or c == 63 then q = q + 1 end   -- * + - ?
      i = i + 1
    end
  end
  return q
end

local function checked_pattern(fname, s, p, plain)
  if type(s) == "number" then s = tostring(s) end
  if type(p) == "number" then p = tostring(p) end
  if type(s) ~= "string" or type(p) ~= "string" then return end
  if plain then
    -- a plain find compares up to #p bytes at each of #s places
    if (#s + 1) * (#p + 1) > M.PATTERN_COST_MAX then
      error(sformat("%s: plain search too costly for a subject of %d bytes (policy sandbox)", fname, #s), 3)
    end
    return
  end
  if #p > M.PATTERN_MAX then
    error(sformat("%s: pattern longer than %d bytes (policy sandbox)", fname, M.PATTERN_MAX), 3)
  end
  local cost = (#s + 1) ^ (quantifiers(p) + 1) * (#p + 1)
  if cost > M.PATTERN_COST_MAX then
    error(sformat("%s: pattern too costly for a subject of %d bytes (policy sandbox)", fname, #s), 3)
  end
end

local function sandbox_string(g)
  local str = {}
  for k, v in pairs(string) do str[k] = v end
  str.dump = nil
  local find, match, gmatch, gsub = string.find, string.match, string.gmatch, string.gsub
  str.find = function(s, p, init, plain)
    checked_pattern("string.find", s, p, plain)
    return find(s, p, init, plain)
  end
  str.match = function(s, p, init)
    checked_pattern("string.match", s, p)
    return match(s, p, init)
  end
  str.gmatch = function(s, p, init)
    checked_pattern("string.gmatch", s, p)
    return gmatch(s, p, init)
  end
  str.gsub = function(s, p, r, n)
    checked_pattern("string.gsub", s, p)
    return gsub(s, p, r, n)
  end
  g.string = str
  return str
end

-- a plain copy of v: tables read with next/rawget only (no metamethod
-- runs), no metatables; functions and scalars as they are
local function rawcopy(v, depth, seen)
  if type(v) ~= "table" then return v end
  if seen[v] then return seen[v] end
  if depth > M.COPY_DEPTH_MAX then error("a table nested more than " .. M.COPY_DEPTH_MAX .. " deep", 0) end
  local out = {}
  seen[v] = out
  local k, x = next(v)
  while k ~= nil do
    out[rawcopy(k, depth + 1, seen)] = rawcopy(x, depth + 1, seen)
    k, x = next(v, k)
  end
  return out
end

local function rawcopy_all(...)
  local n, out, seen = select("#", ...), { ... }, {}
  for i = 1, n do out[i] = rawcopy(out[i], 1, seen) end
  return table.unpack(out, 1, n)
end

-- runs fn(...) under the sandbox g's limits; true, results | false, message
local function run_limited(g, budget, what, fn, ...)
  local co = coroutine.create(function(...) return rawcopy_all(fn(...)) end)
  local step = math.min(HOOK_STEP, budget)
  local used = 0
  g.spent, g.message = false, what .. " ran past its instruction budget (endless loop?)"
  debug.sethook(co, function()
    if not g.spent then
      used = used + step
      if used < budget then return end
      g.spent = true
    end
    error(g.message, 0)
  end, "", step)
  local saved = string_mt.__index
  string_mt.__index = g.string
  local res = table.pack(pcall(core.resume_limited, co, M.MEMORY_MAX, ...))
  string_mt.__index = saved
  if not res[1] then error(res[2], 0) end          -- misuse: not the policy's fault
  if not res[2] and res[4] == "memory" then
    return false, sformat("%s ran past its memory limit (%d MiB)", what, M.MEMORY_MAX >> 20)
  end
  if g.spent then return false, g.message end
  if not res[2] then
    local e = res[3]
    if type(e) ~= "string" then return false, "raised a " .. type(e) .. " value" end
    return false, e
  end
  if coroutine.status(co) ~= "dead" then return false, what .. " yielded" end
  return true, table.unpack(res, 3, res.n)
end

local function sandbox()
  local function copy(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
  end
  local g = {}
  local str = sandbox_string(g)
  local function pcall_(f, ...)
    if g.spent then error(g.message, 0) end
    local r = table.pack(pcall(f, ...))
    if g.spent then error(g.message, 0) end
    return table.unpack(r, 1, r.n)
  end
  local function xpcall_(f, h, ...)
    if g.spent then error(g.message, 0) end
    local r = table.pack(xpcall(f, function(e)
      if g.spent then return e end
      return h(e)
    end, ...))
    if g.spent then error(g.message, 0) end
    return table.unpack(r, 1, r.n)
  end
  local function setmetatable_(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error("setmetatable: __gc is not allowed in a policy (policy sandbox)", 2)
    end
    return setmetatable(t, mt)
  end
  local m = copy(math)
  -- the sandbox's own generator: math.randomseed here changes nothing
  -- outside (DNS query IDs come from getrandom(2) in C anyway)
  local gen_state = core.random_u16() * 65536 + core.random_u16()
  m.randomseed = nil
  m.random = function(a, b)
    gen_state = (gen_state * 1103515245 + 12345) % 2147483648
    local r = gen_state / 2147483648
    if a == nil then return r end
    if b == nil then a, b = 1, a end
    if math.type(a) ~= "integer" or math.type(b) ~= "integer" or a > b then
      error("math.random: interval is empty or not integers", 2)
    end
    return a + math.floor(r * (b - a + 1))
  end
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall_, select = select, tonumber = tonumber, tostring = tostring,
    type = type, xpcall = xpcall_, rawequal = rawequal, rawget = rawget,
    rawlen = rawlen, rawset = rawset, setmetatable = setmetatable_,
    math = m, string = str, table = copy(table), utf8 = copy(utf8),
    os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime },
    _VERSION = _VERSION,
    default = deepcopy(DEFAULT),
  }
  env._G = env
  return env, g
end

--- Runs a policy file's check under its sandbox's limits: true, findings
-- | false, message; nil when the check is not a policy file's (issue 12).
function M.run_sandboxed(check, budget, facts, ctx)
  local g = GUARDS[check]
  if not g then return nil end
  if type(budget) ~= "number" or budget <= 0 or budget > M.CHECK_INSTRUCTIONS_MAX then
    budget = M.CHECK_INSTRUCTIONS_MAX
  end
  -- its own copies: a policy's code must not change what the built-in
  -- checks use (ctx.util) or the policy of the judgement
  local util = {}
  for k, v in pairs(ctx.util or {}) do util[k] = v end
  local cctx = { now = ctx.now, policy = deepcopy(ctx.policy), util = util }
  return run_limited(g, budget, "check " .. tostring(check.id), check.run, facts, cctx)
end

-- line of the first mention of `key` in src (for validation messages)
local function line_of(src, key)
  if type(key) ~= "string" or key == "" then return nil end
  local n = 0
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local code = line:gsub("%-%-.*$", "")
    local s = code:find(key, 1, true)
    if s then
      local before, after = code:sub(s - 1, s - 1), code:sub(s + #key, s + #key)
      if not before:match("[%w_]") and not after:match("[%w_]") then return n end
    end
  end
  return nil
end

-- path made safe for a message, and as a literal for a gsub pattern
local function shown(path)
  return text.visible(path)
end

-- loads the policy file at path onto base (default: the default policy)
function M.load(path, base)
  if type(path) ~= "string" then error("policy.load: path must be a string", 2) end
  local name = shown(path)
  local fh, oerr = io.open(path, "rb")
  if not fh then
    local why = tostring(oerr)
    if why:sub(1, #path + 2) == path .. ": " then why = why:sub(#path + 3) end
    return nil, name .. ": cannot read: " .. text.visible(why)
  end
  local src = fh:read(MAX_FILE + 1)
  fh:close()
  src = src or ""
  if #src > MAX_FILE then return nil, name .. ": larger than 1 MiB" end
  if src:sub(1, 1) == "\27" then return nil, name .. ": binary chunks are not accepted" end
  local env, g = sandbox()
  local chunk, lerr = load(src, "@" .. name, "t", env)
  if not chunk then return nil, text.visible(lerr) end
  local ok, res = run_limited(g, LOAD_INSTRUCTIONS, "policy file", chunk)
  if not ok then
    if res == g.message then res = "policy file runs too long (endless loop?)" end
    res = text.visible(res)
    if res:sub(1, #name) ~= name then res = name .. ": " .. res end
    return nil, res
  end
  if type(res) ~= "table" then
    return nil, name .. ": must return a table (got " .. type(res) .. ")"
  end
  if type(res.checks) == "table" then
    for _, c in pairs(res.checks) do
      if type(c) == "table" then GUARDS[c] = g end
    end
  end
  local p, merr, key = M.merge(base, res, name)
  if not p then
    local line = line_of(src, key)
    merr = text.visible(merr)
    if line and merr:sub(1, #name + 2) == name .. ": " then
      merr = name .. ":" .. line .. ": " .. merr:sub(#name + 3)
    end
    return nil, merr
  end
  return p
end

return M
