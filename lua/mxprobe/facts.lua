-- mxprobe.facts: the facts table's schema, its validator, and saving and
-- loading facts (JSON, through mxprobe.json).
--
-- `mxprobe --facts` writes JSON Lines: one facts document per line, so a
-- run over a million domains streams and a partial file is still usable.
-- The loader takes that, a single document, or a JSON array of documents.
-- The schema (docs/facts.md) is the structure the orchestrator builds --
-- the query, its MX hosts, its targets -- plus, in each scope, the one key
-- each gatherer writes, described by the gatherer itself.

local core = require "mxprobe.core"
local json = require "mxprobe.json"
local text_mod = require "mxprobe.text"
local S = require "mxprobe.schema"
local gather = require "mxprobe.gather"

local M = {}

M.SCHEMA = "mxprobe.facts/2"
M.FILE_MAX = 256 * 1024 * 1024    -- bytes of one facts file read at most
M.LINE_MAX = 16 * 1024 * 1024     -- bytes of one line of it (issue 12)
local CHUNK = 64 * 1024
local visible = text_mod.visible

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
    return nil, ("%s: facts schema %s, this mxprobe reads %s"):format(where, visible(doc.schema), M.SCHEMA)
  end
  return doc
end

--- Decodes text holding facts; returns a list of facts and, for each,
-- where it is ("name:LINE" or "name: document I"), or nil, message.
function M.decode(text, name)
  name = name or "facts"
  local doc = json.decode(text)
  if doc ~= nil then
    if type(doc) == "table" and doc.schema == nil and #doc > 0 then
      local list, where = {}, {}
      for i, d in ipairs(doc) do
        where[i] = ("%s: document %d"):format(name, i)
        local f, err = check(d, where[i])
        if not f then return nil, err end
        list[i] = f
      end
      return list, where
    end
    local f, err = check(doc, name)
    if not f then return nil, err end
    return { f }, { name }
  end
  -- JSON Lines
  local list, where, n = {}, {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:find("%S") then
      local d, jerr = json.decode(line)
      if d == nil then
        return nil, ("%s:%d: invalid JSON (%s)"):format(name, n, visible(jerr))
      end
      local f, err = check(d, ("%s:%d"):format(name, n))
      if not f then return nil, err end
      list[#list + 1] = f
      where[#list] = ("%s:%d"):format(name, n)
    end
  end
  if #list == 0 then return nil, name .. ": no facts in it" end
  return list, where
end

-- the text of a regular file read as a stream: at most FILE_MAX bytes
-- in all and LINE_MAX in one line; or nil, message
local function read_capped(f, shown)
  local parts, total, line_len, lineno = {}, 0, 0, 1
  while true do
    local chunk, rerr = f:read(CHUNK)
    if not chunk then
      if rerr then return nil, ("cannot read facts file %s: %s"):format(shown, visible(rerr)) end
      break
    end
    total = total + #chunk
    if total > M.FILE_MAX then
      return nil, ("%s: larger than %d MiB; split it"):format(shown, M.FILE_MAX // (1024 * 1024))
    end
    local pos = 1
    while true do
      local nl = chunk:find("\n", pos, true)
      line_len = line_len + ((nl or #chunk + 1) - pos)
      if line_len > M.LINE_MAX then
        return nil, ("%s:%d: line longer than %d MiB"):format(shown, lineno, M.LINE_MAX // (1024 * 1024))
      end
      if not nl then break end
      lineno, line_len, pos = lineno + 1, 0, nl + 1
    end
    parts[#parts + 1] = chunk
  end
  return table.concat(parts)
end

--- Reads a facts file and validates every document in it against the
-- schema; returns a list of facts, or nil, "file:line: field: what is
-- wrong". Only a regular file is read: a directory, a device or a FIFO is
-- refused in one line (issue 12).
function M.load(path)
  local shown = visible(path)
  local kind, serr = core.file_kind(path)
  if not kind then
    return nil, ("cannot read facts file %s: %s"):format(shown, visible(tostring(serr):gsub("^stat .-: ", "")))
  end
  if kind ~= "file" then
    return nil, ("%s: is a %s, not a facts file"):format(shown, kind:gsub("%-", " "))
  end
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot read facts file: " .. visible(err) end
  local data, rerr = read_capped(f, shown)
  f:close()
  if not data then return nil, rerr end
  if not data:find("%S") then return nil, shown .. ": empty facts file" end
  local list, where = M.decode(data, shown)
  if not list then return nil, where end
  for i, doc in ipairs(list) do
    local ok, problems = M.validate(doc)
    if not ok then
      local more = #problems > 1 and (" (and %d more)"):format(#problems - 1) or ""
      return nil, ("%s: %s%s"):format(where[i], visible(problems[1]), more)
    end
  end
  return list
end

return M
