-- mxprobe.facts: the facts table's schema, its validator, and saving and
-- loading facts (JSON, through mxprobe.json).
--
-- `mxprobe --facts` writes JSON Lines: one facts document per line, so a
-- run over a million domains streams and a partial file is still usable.
-- The loader takes that, a single document, or a JSON array of documents.
-- The schema (docs/facts.md) is the structure the orchestrator builds --
-- the query, its MX hosts, its targets -- plus, in each scope, the one key
-- each gatherer writes, described by the gatherer itself.

local json = require "mxprobe.json"
local S = require "mxprobe.schema"
local gather = require "mxprobe.gather"

local M = {}

M.SCHEMA = "mxprobe.facts/2"
M.FILE_MAX = 256 * 1024 * 1024    -- bytes of one facts file read at most

-- the structure, before the gatherers' keys are added
local DOMAIN = S.record({
  schema = S.enum { M.SCHEMA },
  run = S.record({
    id = S.str, tool = S.record({ name = S.str, version = S.str }, { "name", "version" }),
    versions = S.map(S.str),
    prober = S.record({ ehlo_name = S.str, mail_from = S.str, relay_rcpt = S.str }),
  }, { "id", "tool", "versions", "prober" }),
  options = S.map(S.any),
  query = S.str, kind = S.enum { "domain", "host", "address" }, domain = S.str, error = S.str,
  started = S.num, finished = S.num,
}, { "schema", "run", "query", "kind", "started", "mx", "targets" })

local MX = S.record({ name = S.str, preference = S.int, implicit = S.bool }, { "name", "preference" })

local TARGET = S.record({
  mx = S.str, preference = S.int, address = S.str, family = S.enum { "ipv4", "ipv6" }, port = S.int,
}, { "address", "family", "port" })

--- The whole facts schema: the structure plus every registered
-- gatherer's key in its scope.
function M.schema()
  local more = { domain = {}, mx = {}, target = {} }
  for _, g in ipairs(gather.list()) do
    more[g.scope][g.key] = g.schema or S.any
  end
  local target = S.extend(TARGET, more.target)
  local mx = S.extend(MX, more.mx)
  more.domain.mx = S.list(mx)
  more.domain.targets = S.list(target)
  return S.extend(DOMAIN, more.domain)
end

--- Checks a facts table against the schema: true, or nil, {problems}.
function M.validate(facts)
  return S.validate(facts, M.schema())
end

local list_keys
--- The field names that are lists in the facts: the structure's and every
-- gatherer's (from the schema), so an empty one is written [].
function M.list_keys()
  list_keys = list_keys or S.list_fields(M.schema())
  return list_keys
end

function M.encode(facts)
  return json.encode(facts, M.list_keys())
end

local function check(doc, where)
  if type(doc) ~= "table" or doc.schema == nil then
    return nil, where .. ": not an mxprobe facts document"
  end
  if doc.schema == "mxprobe.facts/1" then
    return nil, ("%s: facts schema mxprobe.facts/1 (mxprobe 0.1); this mxprobe reads %s -- probe again")
      :format(where, M.SCHEMA)
  end
  if doc.schema ~= M.SCHEMA then
    return nil, ("%s: facts schema %s, this mxprobe reads %s"):format(where, tostring(doc.schema), M.SCHEMA)
  end
  return doc
end

--- Decodes text holding facts; returns a list of facts, or nil, message.
function M.decode(text, name)
  name = name or "facts"
  local doc = json.decode(text)
  if doc ~= nil then
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
      local d, jerr = json.decode(line)
      if d == nil then
        return nil, ("%s:%d: invalid JSON (%s)"):format(name, n, tostring(jerr))
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
  local data, rerr = f:read(M.FILE_MAX + 1)
  f:close()
  if not data then
    if rerr then return nil, ("cannot read facts file %s: %s"):format(path, rerr) end
    return nil, path .. ": empty facts file"
  end
  if #data > M.FILE_MAX then
    return nil, ("%s: larger than %d MiB; split it"):format(path, M.FILE_MAX // (1024 * 1024))
  end
  return M.decode(data, path)
end

return M
