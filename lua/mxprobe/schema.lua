-- mxprobe.schema: a small vocabulary for describing plain-data tables
-- (the facts), and a validator. Gatherers describe the facts they write
-- with it; mxprobe.facts composes the whole facts schema from them.
--
--   S.str S.num S.int S.bool S.any        scalars (any: string/number/bool)
--   S.enum{"a", "b"}                      one of these strings
--   S.list(T)  S.map(T)                   array of T; string keys -> T
--   S.record({field = T, ...}, {"required", ...})
--   S.validate(value, T) -> true | nil, { "path: problem", ... }
--
-- The validator also refuses what JSON cannot say or what the facts
-- promise never to hold: NaN and infinities, functions and userdata, and a
-- table that appears twice (each fact has one place).

local M = {}

local function scalar(name, test)
  return { kind = "scalar", name = name, test = test }
end

M.str = scalar("string", function(v) return type(v) == "string" end)
M.bool = scalar("boolean", function(v) return type(v) == "boolean" end)
M.num = scalar("number", function(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end)
-- an integer, or a float with an exact integer value a double holds
-- exactly (|v| <= 2^53): 220.5 and 1e300 are not integers (issue 12)
M.int = scalar("integer", function(v)
  if math.type(v) == "integer" then return true end
  return type(v) == "number" and v == v and math.floor(v) == v and v >= -2 ^ 53 and v <= 2 ^ 53
end)
M.any = scalar("string, number or boolean", function(v)
  local t = type(v)
  return t == "string" or t == "boolean" or (t == "number" and v == v and v ~= math.huge and v ~= -math.huge)
end)

function M.enum(values)
  local set = {}
  for _, v in ipairs(values) do set[v] = true end
  return { kind = "enum", values = values, set = set }
end

function M.list(of) return { kind = "list", of = of } end
function M.map(of) return { kind = "map", of = of } end

function M.record(fields, required)
  return { kind = "record", fields = fields, required = required or {} }
end

--- A copy of record r with more fields (how gatherers extend a scope).
function M.extend(r, more)
  local fields = {}
  for k, v in pairs(r.fields) do fields[k] = v end
  for k, v in pairs(more) do fields[k] = v end
  return M.record(fields, r.required)
end

local check

local function is_list(v)
  local n = 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  return n == #v
end

local function describe(v)
  if type(v) == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge or v == -math.huge then return "infinity" end
    if math.floor(v) ~= v then return "a fraction" end
    if math.type(v) == "float" and (v > 2 ^ 53 or v < -2 ^ 53) then return "a number too large for an integer" end
  end
  return type(v)
end

check = function(v, T, path, errs, seen)
  if #errs >= 50 then return end
  if T.kind == "scalar" then
    if not T.test(v) then errs[#errs + 1] = ("%s: %s expected, got %s"):format(path, T.name, describe(v)) end
    return
  end
  if T.kind == "enum" then
    if not T.set[v] then
      errs[#errs + 1] = ("%s: %q is not one of %s"):format(path, tostring(v), table.concat(T.values, " "))
    end
    return
  end
  if type(v) ~= "table" then
    errs[#errs + 1] = ("%s: table expected, got %s"):format(path, type(v))
    return
  end
  if seen[v] then
    errs[#errs + 1] = ("%s: the same table as %s (each fact has one place)"):format(path, seen[v])
    return
  end
  seen[v] = path
  if T.kind == "list" then
    if not is_list(v) then errs[#errs + 1] = path .. ": list expected (keys 1..n)" return end
    for i, x in ipairs(v) do check(x, T.of, ("%s[%d]"):format(path, i), errs, seen) end
  elseif T.kind == "map" then
    for k, x in pairs(v) do
      if type(k) ~= "string" then
        errs[#errs + 1] = ("%s: key %s is not a string"):format(path, tostring(k))
      else
        check(x, T.of, path .. "." .. k, errs, seen)
      end
    end
  else -- record
    for k, x in pairs(v) do
      local FT = type(k) == "string" and T.fields[k]
      if not FT then
        errs[#errs + 1] = ("%s: unknown field %s"):format(path, tostring(k))
      else
        check(x, FT, path .. "." .. k, errs, seen)
      end
    end
    for _, k in ipairs(T.required) do
      if v[k] == nil then errs[#errs + 1] = ("%s: field %s missing"):format(path, k) end
    end
  end
end

function M.validate(v, T, root)
  local errs = {}
  check(v, T, root or "facts", errs, {})
  if #errs > 0 then return nil, errs end
  return true
end

-- every field name of T whose type is a list (for the JSON encoder)
function M.list_fields(T, out, seen)
  out, seen = out or {}, seen or {}
  if type(T) ~= "table" or seen[T] then return out end
  seen[T] = true
  if T.kind == "record" then
    for k, FT in pairs(T.fields) do
      if FT.kind == "list" then out[k] = true end
      M.list_fields(FT, out, seen)
    end
  elseif T.kind == "list" or T.kind == "map" then
    M.list_fields(T.of, out, seen)
  end
  return out
end

return M
