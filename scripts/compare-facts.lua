-- Compares v1 facts (converted by scripts/facts-v1-to-v2.lua) with v2
-- facts of the same queries, field by field, modulo what changes from one
-- probe to the next (durations, timestamps, TTLs, our source port, the run
-- id) and what only v2 records. Prints every difference; exits 1 if any.
--
--   lua5.4 scripts/compare-facts.lua v1.jsonl v2.jsonl

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local json = require "mxprobe.json"
local convert = dofile("scripts/facts-v1-to-v2.lua").convert

-- volatile from one probe to the next, or new in v2 (no v1 counterpart)
local SKIP = {
  time_ms = true, t_ms = true, handshake_ms = true, first_byte_ms = true, started = true,
  finished = true, ttl = true, run = true, source = true, chain_pem = true, protocols = true,
  tls_rpt = true,
  mta_sts = true,   -- MTA-STS (issue 8): new in v2
  -- DANE (new in v2): the TLSA facts, the match, a query's RRSIG/CD marks
  tlsa = true, dane = true, signed = true, cd = true,
}

local function load(path)
  local out = {}
  for line in io.lines(path) do
    if line:find("%S") then
      local d = assert(json.decode(line))
      out[d.query] = d
    end
  end
  return out
end

-- a resolver may rotate the records of an RRset between two answers:
-- records compare as a set
local function canonical_records(list)
  local out = {}
  for i, r in ipairs(list) do
    local c = {}
    for k, v in pairs(r) do if not SKIP[k] then c[k] = v end end
    out[i] = json.encode(c)
  end
  table.sort(out)
  return out
end

local diffs = 0
local function diff(path, a, b)
  if path:match("%.records$") and type(a) == "table" and type(b) == "table" then
    a, b = canonical_records(a), canonical_records(b)
  end
  if type(a) ~= type(b) then
    diffs = diffs + 1
    print(("%s: v1 %s, v2 %s"):format(path, json.encode(a), json.encode(b)))
    return
  end
  if type(a) ~= "table" then
    if a ~= b then
      diffs = diffs + 1
      print(("%s: v1 %s, v2 %s"):format(path, json.encode(a), json.encode(b)))
    end
    return
  end
  local keys = {}
  for k in pairs(a) do keys[k] = true end
  for k in pairs(b) do keys[k] = true end
  for k in pairs(keys) do
    if not SKIP[k] then diff(path .. "." .. tostring(k), a[k], b[k]) end
  end
end

local v1, v2 = load(arg[1]), load(arg[2])
local n = 0
for q, old in pairs(v1) do
  n = n + 1
  if not v2[q] then
    diffs = diffs + 1
    print(q .. ": missing from v2")
  else
    diff(q, convert(old), v2[q])
  end
end
for q in pairs(v2) do
  if not v1[q] then diffs = diffs + 1 print(q .. ": missing from v1") end
end
print(("%d queries compared, %d differences"):format(n, diffs))
os.exit(diffs == 0 and 0 or 1)
