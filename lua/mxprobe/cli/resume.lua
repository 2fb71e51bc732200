-- mxprobe.cli.resume -- what an interrupted run already saved.
--
--   resume.scan(path, schema, as_host) -> done, info | nil, message
--       reads the JSON Lines file path (a missing file is an empty one):
--       done = { [query key] = true } for every complete line (see
--       mxprobe.cli.queries.identity); info = { lines, torn } where torn is
--       the number of bytes after the last newline -- a line cut short by
--       a crash or a kill, which resume.drop_torn() cuts off -- and
--       verdicts = { [verdict] = count } of the saved judged results.
--       Each complete line must be JSON of the given schema (the format
--       that wrote it): anything else is an error naming file and line, and
--       nothing is changed.
--   resume.drop_torn(path, info) -> true | nil, message
--       truncates the file to its last complete line; the lines before it
--       are never rewritten.

local core = require "mxprobe.core"
local json = require "mxprobe.json"
local queries = require "mxprobe.cli.queries"
local text = require "mxprobe.text"

local M = {}

local function where(path, n)
  return ("%s:%d"):format(text.utf8(path), n)
end

function M.scan(path, schema, as_host)
  local fh, err = io.open(path, "rb")
  if not fh then
    -- nothing saved yet: a first run with --resume is an ordinary one
    local probe = io.open(path, "ab")
    if probe then
      probe:close()
      return {}, { lines = 0, torn = 0, size = 0, verdicts = {} }
    end
    return nil, "cannot read " .. tostring(err)
  end
  local done, n, size, verdicts = {}, 0, 0, {}
  while true do
    local line = fh:read("L")
    if line == nil then break end
    if line:sub(-1) ~= "\n" then
      fh:close()
      return done, { lines = n, torn = #line, size = size, verdicts = verdicts }
    end
    n = n + 1
    size = size + #line
    if line:find("%S") then
      local doc = json.decode(line)
      if type(doc) ~= "table" then
        fh:close()
        return nil, where(path, n) .. ": not a JSON line; cannot resume into this file"
      end
      if doc.schema ~= schema then
        fh:close()
        return nil, ("%s: a %s line, not %s: resume with the --format that wrote the file")
          :format(where(path, n), text.utf8(tostring(doc.schema)), schema)
      end
      local key = type(doc.query) == "string" and queries.identity(doc.query, as_host)
      if key then done[key] = true end
      if type(doc.verdict) == "string" then verdicts[doc.verdict] = (verdicts[doc.verdict] or 0) + 1 end
    end
  end
  fh:close()
  return done, { lines = n, torn = 0, size = size, verdicts = verdicts }
end

function M.drop_torn(path, info)
  if info.torn == 0 then return true end
  local ok, err = core.truncate(path, info.size)
  if not ok then return nil, err end
  return true
end

return M
