-- What the CLI specs share: bin/mxprobe run from this tree, files, shell
-- scripts, JSON Lines output.
local cjson = require "cjson"

local M = {}

-- the environment that runs bin/mxprobe from the tree (and the core the
-- suite runs on: MXPROBE_CPATH points the sanitizer run at its build)
M.ENV = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;"')
  :format(os.getenv("MXPROBE_CPATH") or "build/?.so")

function M.fqdn(d) return d .. ".example.test" end

function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- The file's bytes; "" when it does not exist.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

--- A temporary file holding lines, one per line; its path.
function M.list_file(lines)
  local path = os.tmpname()
  M.write_file(path, table.concat(lines, "\n") .. "\n")
  return path
end

--- Runs a shell script; returns its stdout and exit status.
function M.sh(script)
  local p = assert(io.popen(script))
  local out = p:read("a")
  local _, _, st = p:close()
  return out, st
end

--- The JSON lines of s, every one complete and valid: the list of objects.
function M.json_lines(s)
  assert(s:sub(-1) == "\n", "the output ends with a complete line")
  local list = {}
  for line in s:gmatch("([^\n]*)\n") do list[#list + 1] = cjson.decode(line) end
  return list
end

return M
