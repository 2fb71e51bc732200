-- mxprobe.cli.queries -- the queries of a bulk run: lines of a list file,
-- the identity of a query (for --shard and --resume), the shard hash, and
-- a streaming source for probe_many. Pure but for reading the list file.
--
--   queries.parse_line(line) -> query | nil (blank or comment)
--   queries.identity(q, as_host) -> key | nil, reason
--       the normalised query: "example.org", "mx.example.org:2525",
--       "[192.0.2.1]", "[2001:db8::1]:25"; two spellings of one query
--       ("Example.ORG." and "example.org") have one key
--   queries.fnv1a(s) -> 32-bit FNV-1a hash of s (an integer)
--   queries.parse_shard("I/N") -> i, n | nil, reason
--   queries.in_shard(key, i, n) -> boolean   (fnv1a(key) % n == i)
--   queries.selector{as_host, shard = {i, n}, skip = {[key] = true}}
--       -> fn(q) -> key | nil, why   (why: "invalid", message | "shard" | "done")
--   queries.source{args, read_line, name, select, on_invalid, stop}
--       -> iterator of query strings: the args first, then the lines that
--          read_line() returns (nil at the end), one line read per query
--          (a list of a million lines never sits in memory);
--          on_invalid(name, line_number, message) for a bad line, which is
--          skipped; stop() true ends the iterator early
--   queries.count(read_line, select) -> the number of queries in the lines
--   queries.file_lines(handle) -> read_line over a Lua file
--   queries.reader_lines(r, wait, on_error) -> read_line over a
--       core.line_reader: wait(fd) until r's descriptor is readable (inside
--       a loop task: loop.wait, so a slow stdin never blocks the probes);
--       a read error is on_error(message) and the end of the list
--
-- A list file has one query per line; spaces around it are trimmed, blank
-- lines and everything from a "#" on are ignored.

local core = require "mxprobe.core"
local query = require "mxprobe.query"

local M = {}

M.LINE_MAX = core.limits.list_line_max   -- bytes of one list line (longer: invalid)

function M.parse_line(line)
  local hash = line:find("#", 1, true)
  if hash then line = line:sub(1, hash - 1) end
  local first = line:find("%S")
  if not first then return nil end
  return line:match("^(.-)%s*$", first)
end

function M.identity(q, as_host)
  local p, err = query.parse(q, as_host)
  if not p then return nil, err end
  local key
  if p.kind == "address" then
    key = "[" .. p.address .. "]"
  else
    key = p.name
  end
  if p.port then key = key .. ":" .. p.port end
  return key
end

-- FNV-1a, 32 bits: the same on every machine and Lua build (in C: a
-- million queries are hashed once to count a list and once to probe it)
M.fnv1a = core.fnv1a32

function M.parse_shard(s)
  local i, n = tostring(s):match("^(%d+)/(%d+)$")
  i, n = math.tointeger(tonumber(i)), math.tointeger(tonumber(n))
  if not i or not n then return nil, ("--shard %s: expected I/N, e.g. 0/4"):format(tostring(s)) end
  if n < 1 or n > 1000000 then return nil, ("--shard %s: N must be 1 to 1000000"):format(s) end
  if i >= n then return nil, ("--shard %s: I must be 0 to N-1"):format(s) end
  return i, n
end

function M.in_shard(key, i, n)
  return M.fnv1a(key) % n == i
end

function M.selector(o)
  o = o or {}
  local shard, skip = o.shard, o.skip
  return function(q)
    local key, err = M.identity(q, o.as_host)
    if not key then return nil, "invalid", err end
    if shard and not M.in_shard(key, shard[1], shard[2]) then return nil, "shard" end
    if skip and skip[key] then return nil, "done" end
    return key
  end
end

function M.file_lines(handle)
  return function() return handle:read("L") end
end

function M.reader_lines(r, wait, on_error)
  return function()
    while true do
      local s = r:line()
      if s then return s end
      if s == nil then return nil end
      wait(r:fd())
      local n, err = r:fill()
      if not n then
        on_error(err)
        return nil
      end
    end
  end
end

-- the next query line of read_line: query | nil at the end
local function next_line(read_line, state, on_invalid, name)
  while true do
    local line = read_line()
    if line == nil then return nil end
    state.n = state.n + 1
    if #line > M.LINE_MAX then
      if on_invalid then on_invalid(name, state.n, ("line longer than %d bytes"):format(M.LINE_MAX)) end
    else
      local q = M.parse_line(line)
      if q then return q end
    end
  end
end

function M.source(o)
  local args, ai = o.args or {}, 0
  local state = { n = 0 }
  local select, on_invalid, stop = o.select, o.on_invalid, o.stop
  return function()
    while true do
      if stop and stop() then return nil end
      local q, where
      if ai < #args then
        ai = ai + 1
        q = args[ai]
      elseif o.read_line then
        q = next_line(o.read_line, state, on_invalid, o.name)
        if q == nil then return nil end
        where = state.n
      else
        return nil
      end
      local key, why, msg = true, nil, nil
      if select then key, why, msg = select(q) end
      if key then return q end
      if why == "invalid" and on_invalid and where then on_invalid(o.name, where, msg) end
    end
  end
end

function M.count(read_line, select)
  local n = 0
  local state = { n = 0 }
  while true do
    local q = next_line(read_line, state, nil, nil)
    if q == nil then return n end
    if not select or select(q) then n = n + 1 end
  end
end

return M
