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

-- bulk CPU (issue 10 part 5): a table that is already clean is returned
-- as it is, not copied -- the copy of a facts document cost more than
-- lua-cjson's encoding of it. A copy is made (from the first entry that
-- changes, in the same pairs() order, so the result is the one the copy
-- would have been) only for a table that holds something to clean: an
-- invalid string, a NaN, a function, a number key of an object, an empty
-- list, a cycle or depth past MAX_DEPTH below it. A table with a metatable
-- is always copied (pairs and indexing may run its metamethods).
clean = function(t, key, depth, seen)
  if depth > MAX_DEPTH or seen[t] then return nil end
  seen[t] = true
  local out
  local n = array_len(t)
  if n then
    local copy = getmetatable(t) ~= nil
    if copy then out = {} end
    for i = 1, n do
      local v = t[i]
      local cv = clean_value(v, nil, depth + 1, seen)
      if cv == nil then cv = NULL end
      if out then
        out[i] = cv
      elseif not rawequal(cv, v) then
        out = table.move(t, 1, i - 1, 1, {})
        out[i] = cv
      end
    end
    out = out or t
  elseif next(t) == nil then
    if LIST_KEYS[key] then out = EMPTY elseif getmetatable(t) ~= nil then out = {} else out = t end
  else
    if getmetatable(t) ~= nil then out = {} end
    for k, v in pairs(t) do
      local kk
      if type(k) == "string" then
        kk = utf8_clean(k)
      elseif type(k) == "number" and k == k and k ~= math.huge and k ~= -math.huge then
        kk = tostring(math.tointeger(k) or k)
      end
      local cv
      if kk ~= nil then cv = clean_value(v, kk, depth + 1, seen) end
      if not out and (not rawequal(kk, k) or not rawequal(cv, v)) then
        -- the first change: what came before it was clean, taken as it is
        out = {}
        for k2, v2 in pairs(t) do
          if rawequal(k2, k) then break end
          out[k2] = v2
        end
      end
      if out and cv ~= nil then out[kk] = cv end
    end
    out = out or t
    if next(out) == nil then out = LIST_KEYS[key] and EMPTY or {} end
  end
  seen[t] = nil
  return out
end

-- the placeholders of empty lists -> [] (a plain search: a pattern tried
-- at every byte of a long document cost a fifth of the encoding)
local function empty_lists(s)
  local at = s:find(EMPTY, 1, true)
  if not at then return s, 0 end
  local parts, from = {}, 1
  while at do
    -- EMPTY is always a whole string: a quote before and after it
    parts[#parts + 1] = s:sub(from, at - 2)
    parts[#parts + 1] = "[]"
    from = at + #EMPTY + 1
    at = s:find(EMPTY, from, true)
  end
  parts[#parts + 1] = s:sub(from)
  return table.concat(parts), (#parts - 1) // 2
end

-- The fast path (bulk CPU, issue 10 part 5): most documents need no
-- cleaning at all, and lua-cjson alone encodes them as it would encode the
-- cleaned copy. plain() checks, without copying, what lua-cjson would do
-- otherwise: every table below MAX_DEPTH (so no cycle), without a
-- metatable, either an object with string keys only or a list 1..n; the
-- empty lists under list keys are noted (slots) to hold the placeholder
-- while lua-cjson runs. What it leaves to be found afterwards: a NaN, an
-- infinity, a function or userdata make lua-cjson raise, and a string that
-- is not valid UTF-8 makes the output invalid UTF-8 (lua-cjson passes
-- bytes >= 0x80 through as they are and escapes only ASCII, and a string
-- ends at an ASCII quote, so the output is valid exactly when every string
-- and key is). Any of these: the slow path, which cleans a copy.
local function plain(t, depth, slots)
  if depth > MAX_DEPTH or getmetatable(t) ~= nil then return false end
  local k1 = next(t)
  if k1 == nil then
    return true   -- {} (an empty list is handled by its parent)
  end
  if math.type(k1) == "integer" then
    local n, max = 0, 0
    for k, v in pairs(t) do
      if math.type(k) ~= "integer" or k < 1 then return false end
      n = n + 1
      if k > max then max = k end
      if type(v) == "table" and not plain(v, depth + 1, slots) then return false end
    end
    return max == n   -- 1..n, no hole
  end
  for k, v in pairs(t) do
    if type(k) ~= "string" then return false end
    if type(v) == "table" then
      if next(v) == nil then
        if LIST_KEYS[k] then
          if getmetatable(v) ~= nil then return false end
          slots[#slots + 1] = t
          slots[#slots + 1] = k
        end
      elseif not plain(v, depth + 1, slots) then
        return false
      end
    end
  end
  return true
end

local function fast(v)
  local slots = {}
  if not plain(v, 0, slots) then return nil end
  local saved = {}
  for i = 1, #slots, 2 do
    saved[i] = slots[i][slots[i + 1]]
    slots[i][slots[i + 1]] = EMPTY
  end
  local ok, s = pcall(cjson.encode, v)
  -- restored last to first: a slot seen twice (a table in two places) was
  -- saved the second time with the placeholder in it
  for i = #slots - 1, 1, -2 do slots[i][slots[i + 1]] = saved[i] end
  if not ok then return nil end
  -- exactly one placeholder a slot: none came from a string of the document
  local out, n = empty_lists(s)
  if n ~= #slots // 2 or not utf8.len(out) then return nil end
  return out
end

function M.encode(v, list_keys)
  LIST_KEYS = list_keys or NO_LISTS
  if type(v) == "table" then
    local s = fast(v)
    if s then return s end
  end
  local s = empty_lists(cjson.encode(clean_value(v, nil, 0, {})))
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
