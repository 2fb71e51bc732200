-- mxprobe.report.json -- the machine report: one JSON document.
--
--   json.render(facts_list, judgement_list, opts) -> string (one line + "\n")
--   json.document(facts_list, judgement_list, opts) -> the table encoded
--
-- Schema "mxprobe.report/1", documented in docs/report.md:
--   { schema, tool, verdict, exit_status, results = [ { query, domain,
--     verdict, summary, scores, findings, facts } ] }
-- opts: facts = false leaves the facts out; now = epoch seconds adds
-- "generated".
--
-- Always valid JSON, whatever a server sent or a facts file holds: every
-- string is made valid UTF-8 (an invalid byte becomes the four characters
-- \xNN, as in the facts), control characters are escaped by lua-cjson,
-- NaN and infinities become null, functions/userdata/cycles are dropped,
-- keys that are neither strings nor numbers are dropped, and an empty list
-- that the schema says is a list is written [] (not {}).

local cjson_mod = require "cjson"
local judge = require "mxprobe.judge"

local M = {}

M.SCHEMA = "mxprobe.report/1"

local cjson = cjson_mod.new()
cjson.encode_sparse_array(true)
cjson.encode_max_depth(200)
cjson.encode_invalid_numbers(false)

local NULL = cjson_mod.null
local MAX_DEPTH = 64
-- placeholder for an empty array: it holds bytes that no cleaned string can
-- (0xFF is never part of valid UTF-8), so the substitution below is exact
local EMPTY = "\255\254[]"
local EMPTY_QUOTED = '"\255\254%[%]"'

-- fields that are lists in the facts, the judgement and the report
-- (facts v2: docs/facts.md; the same names as mxprobe.json's LIST_KEYS)
local LIST_KEYS = {
  targets = true, mx = true, records = true, addresses = true,
  certificates = true, transcript = true, lines = true, errors = true,
  san_dns = true, san_ip = true, cname = true, unknown_critical = true,
  findings = true, deductions = true, untested = true, hosts = true, results = true,
}

-- invalid UTF-8 bytes -> "\xNN", the same rule as the facts (mxprobe.text)
local utf8_clean = require("mxprobe.text").utf8
M.utf8_clean = utf8_clean

-- is t a proper array 1..n (n > 0)?
local function array_len(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return nil end
    if k > n then n = k end
  end
  if n == 0 then return nil end
  for i = 1, n do if t[i] == nil then return nil end end
  return n
end

local clean

local function clean_value(v, key, depth, seen)
  local tv = type(v)
  if tv == "string" then return utf8_clean(v) end
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return NULL end
    return v
  end
  if tv == "boolean" then return v end
  if v == NULL then return NULL end
  if tv == "table" then return clean(v, key, depth, seen) end
  return nil -- functions, userdata, threads
end

clean = function(t, key, depth, seen)
  if depth > MAX_DEPTH or seen[t] then return nil end
  seen[t] = true
  local out
  local n = array_len(t)
  if n then
    out = {}
    for i = 1, n do
      local v = clean_value(t[i], nil, depth + 1, seen)
      if v == nil then v = NULL end
      out[i] = v
    end
  elseif next(t) == nil then
    out = LIST_KEYS[key] and EMPTY or {}
  else
    out = {}
    for k, v in pairs(t) do
      local kk
      if type(k) == "string" then
        kk = utf8_clean(k)
      elseif type(k) == "number" and k == k and k ~= math.huge and k ~= -math.huge then
        kk = tostring(math.tointeger(k) or k)
      end
      if kk ~= nil then
        local cv = clean_value(v, kk, depth + 1, seen)
        if cv ~= nil then out[kk] = cv end
      end
    end
    if next(out) == nil then out = LIST_KEYS[key] and EMPTY or {} end
  end
  seen[t] = nil
  return out
end

-- the report as a Lua table (before cleaning)
function M.document(facts_list, judgement_list, opts)
  opts = opts or {}
  facts_list = type(facts_list) == "table" and facts_list or {}
  judgement_list = type(judgement_list) == "table" and judgement_list or {}
  local results = {}
  local n = math.max(#facts_list, #judgement_list)
  local tool
  for i = 1, n do
    local f = type(facts_list[i]) == "table" and facts_list[i] or {}
    local j = type(judgement_list[i]) == "table" and judgement_list[i] or {}
    tool = tool or (type(f.run) == "table" and f.run.tool) or f.tool
    results[i] = {
      query = f.query or j.query, domain = f.domain or j.domain,
      verdict = j.verdict, summary = j.summary, judged_at = j.now,
      exit_status = judge.exit_status(j),
      scores = j.scores, findings = j.findings or {},
      facts = opts.facts ~= false and f or nil,
    }
  end
  local status = judge.exit_status(judgement_list)
  local verdicts = { [0] = "ok", [1] = "warning", [2] = "critical", [3] = "unknown" }
  return {
    schema = M.SCHEMA,
    tool = tool or { name = "mxprobe" },
    generated = type(opts.now) == "number" and opts.now or nil,
    verdict = verdicts[status],
    exit_status = status,
    results = results,
  }
end

function M.render(facts_list, judgement_list, opts)
  local doc = clean(M.document(facts_list, judgement_list, opts), nil, 0, {})
  local s = cjson.encode(doc)
  s = s:gsub(EMPTY_QUOTED, "[]")
  assert(utf8.len(s), "json report: invalid UTF-8 escaped the cleaner")
  return s .. "\n"
end

return M
