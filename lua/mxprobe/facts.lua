-- mxprobe.facts: saving and loading facts tables (JSON, lua-cjson).
--
-- `mxprobe --facts` writes JSON Lines: one facts document per line, so a
-- run over a million domains streams and a partial file is still usable.
-- The loader takes that, a single document, or a JSON array of documents.

local cjson = require "cjson"

local M = {}

M.SCHEMA = "mxprobe.facts/1"

local codec = cjson.new()
codec.encode_sparse_array(true)
codec.decode_max_depth(64)

function M.encode(facts)
  return codec.encode(facts)
end

local function check(doc, where)
  if type(doc) ~= "table" or doc.schema == nil then
    return nil, where .. ": not an mxprobe facts document"
  end
  if doc.schema ~= M.SCHEMA then
    return nil, ("%s: facts schema %s, this mxprobe reads %s"):format(where, tostring(doc.schema), M.SCHEMA)
  end
  -- cjson decodes JSON null as a light userdata: facts never hold one
  local function strip(t, depth)
    if depth > 64 then return end
    for k, v in pairs(t) do
      if v == cjson.null then t[k] = nil
      elseif type(v) == "table" then strip(v, depth + 1) end
    end
  end
  strip(doc, 1)
  return doc
end

--- Decodes text holding facts; returns a list of facts, or nil, message.
function M.decode(text, name)
  name = name or "facts"
  local ok, doc = pcall(codec.decode, text)
  if ok then
    if type(doc) == "table" and doc.schema == nil and #doc > 0 then
      local list = {}
      for i, d in ipairs(doc) do
        local f, err = check(d, ("%s: document %d"):format(name, i))
        if not f then return nil, err end
        list[i] = f
      end
      return list
    end
    local f, err = check(doc, name)
    if not f then return nil, err end
    return { f }
  end
  -- JSON Lines
  local list, n = {}, 0
  for line in text:gmatch("[^\n]+") do
    n = n + 1
    if line:find("%S") then
      local lok, d = pcall(codec.decode, line)
      if not lok then
        return nil, ("%s:%d: invalid JSON (%s)"):format(name, n, tostring(d):gsub("^.-: ", ""))
      end
      local f, err = check(d, ("%s:%d"):format(name, n))
      if not f then return nil, err end
      list[#list + 1] = f
    end
  end
  if #list == 0 then return nil, name .. ": no facts in it" end
  return list
end

--- Reads a facts file; returns a list of facts, or nil, message.
function M.load(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot read facts file: " .. tostring(err) end
  local data = f:read("a")
  f:close()
  return M.decode(data, path)
end

return M
