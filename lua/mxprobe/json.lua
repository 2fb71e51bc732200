-- mxprobe.json: one JSON encoder for everything mxprobe writes (facts,
-- reports), on lua-cjson.
--
--   json.encode(value [, list_keys]) -> string (one line, no newline)
--   json.decode(text)  -> value (JSON null -> nil in tables)
--
-- Always valid JSON, whatever a server sent or a facts file holds: every
-- string is made valid UTF-8 (an invalid byte becomes the four characters
-- \xNN, as in the facts), control characters are escaped by lua-cjson,
-- NaN and infinities become null, functions/userdata/cycles are dropped,
-- keys that are neither strings nor numbers are dropped, and an empty table
-- under a field named in list_keys (a set of field names: the callers know
-- their schemas -- mxprobe.facts, mxprobe.report.json) is written [];
-- lua-cjson alone writes every empty table as {}.

local cjson_mod = require "cjson"
local text = require "mxprobe.text"

local M = {}

local cjson = cjson_mod.new()
cjson.encode_sparse_array(true)
cjson.encode_max_depth(200)
cjson.encode_invalid_numbers(false)
cjson.decode_max_depth(64)

local NULL = cjson_mod.null
local MAX_DEPTH = 64
-- placeholder for an empty array: it holds bytes that no cleaned string can
-- (0xFF is never part of valid UTF-8), so the substitution below is exact
local EMPTY = "\255\254[]"
local EMPTY_QUOTED = '"\255\254%[%]"'

local utf8_clean = text.utf8

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

local NO_LISTS = {}
local LIST_KEYS

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

function M.encode(v, list_keys)
  LIST_KEYS = list_keys or NO_LISTS
  local s = cjson.encode(clean_value(v, nil, 0, {}))
  s = s:gsub(EMPTY_QUOTED, "[]")
  assert(utf8.len(s), "mxprobe.json: invalid UTF-8 escaped the cleaner")
  return s
end

-- JSON null dropped from tables (facts never hold one); depth-capped
local function strip(t, depth)
  if depth > MAX_DEPTH then return end
  for k, v in pairs(t) do
    if v == NULL then t[k] = nil
    elseif type(v) == "table" then strip(v, depth + 1) end
  end
end

--- Decodes JSON text; returns the value, or nil, message.
function M.decode(s)
  local ok, v = pcall(cjson.decode, s)
  if not ok then return nil, (tostring(v):gsub("^.-: ", "")) end
  if type(v) == "table" then strip(v, 1) end
  if v == NULL then v = nil end
  return v
end

return M
