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

local defaults = require "mxprobe.policy.default"
local checks = require "mxprobe.checks"

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

local function sandbox()
  local function copy(t)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
  end
  local str = copy(string)
  str.dump = nil
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall, select = select, tonumber = tonumber, tostring = tostring,
    type = type, xpcall = xpcall, rawequal = rawequal, rawget = rawget,
    rawlen = rawlen, rawset = rawset, setmetatable = setmetatable,
    math = copy(math), string = str, table = copy(table), utf8 = copy(utf8),
    os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime },
    _VERSION = _VERSION,
    default = deepcopy(DEFAULT),
  }
  env._G = env
  return env
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

-- loads the policy file at path onto base (default: the default policy)
function M.load(path, base)
  if type(path) ~= "string" then error("policy.load: path must be a string", 2) end
  local fh, oerr = io.open(path, "rb")
  if not fh then
    return nil, path .. ": cannot read: " .. tostring(oerr):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", "")
  end
  local src = fh:read(MAX_FILE + 1)
  fh:close()
  src = src or ""
  if #src > MAX_FILE then return nil, path .. ": larger than 1 MiB" end
  if src:sub(1, 1) == "\27" then return nil, path .. ": binary chunks are not accepted" end
  local env = sandbox()
  local chunk, lerr = load(src, "@" .. path, "t", env)
  if not chunk then return nil, lerr end
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("policy file runs too long (endless loop?)") end, "", LOAD_INSTRUCTIONS)
  local ok, res = coroutine.resume(co)
  if not ok then
    if type(res) ~= "string" then return nil, path .. ": raised a " .. type(res) .. " value" end
    if not res:find(path, 1, true) then res = path .. ": " .. res end
    return nil, res
  end
  if coroutine.status(co) ~= "dead" then return nil, path .. ": the policy file yielded" end
  if type(res) ~= "table" then
    return nil, path .. ": must return a table (got " .. type(res) .. ")"
  end
  local p, merr, key = M.merge(base, res, path)
  if not p then
    local line = line_of(src, key)
    if line then
      merr = merr:gsub("^" .. path:gsub("%p", "%%%0") .. ": ", path .. ":" .. line .. ": ")
    end
    return nil, merr
  end
  return p
end

return M
