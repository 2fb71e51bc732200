-- mxprobe.cli.output -- where the CLI's results go, every write checked.
--
--   output.stream(path) -> writer | nil, message
--       JSON Lines: stdout (path nil or "-") or the file path opened for
--       appending; writer:line(s) writes one line and flushes it at once
--   output.document(path) -> writer | nil, message
--       a whole document: stdout, or a temporary file in path's directory
--       that writer:commit() renames over path (so path holds either its
--       old content or the complete new one); writer:abort() removes it
--   writer:write(s) / writer:line(s) / writer:flush() -> true | nil, message
--   writer:commit() -> true | nil, message   (flush, close, rename)
--
-- A failed write or flush (a full disk, a closed stdout, EPIPE when
-- SIGPIPE is ignored) returns nil, "cannot write to <where>: <reason>"; the
-- caller ends the run with that one line and status 3. Once a write failed
-- the writer stays failed. (With SIGPIPE at its default, a closed pipe ends
-- the process quietly inside write(2), as for any Unix filter.)

local core = require "mxprobe.core"

local M = {}

local Writer = {}
Writer.__index = Writer

local function new(fh, where, tmp, path)
  return setmetatable({ fh = fh, where = where, tmp = tmp, path = path }, Writer)
end

function Writer:failed(err)
  self.err = self.err or ("cannot write to %s: %s"):format(self.where, tostring(err))
  return nil, self.err
end

function Writer:write(s)
  if self.err then return nil, self.err end
  local ok, err = self.fh:write(s)
  if not ok then return self:failed(err) end
  return true
end

function Writer:flush()
  if self.err then return nil, self.err end
  local ok, err = self.fh:flush()
  if not ok then return self:failed(err) end
  return true
end

--- One line (s has no newline of its own), flushed at once: a reader, or a
-- --resume after a crash, only ever sees complete lines.
function Writer:line(s)
  if self.err then return nil, self.err end
  -- two pieces, not s .. "\n": a result line is 10-20 KB (bulk CPU)
  local ok, err = self.fh:write(s, "\n")
  if not ok then return self:failed(err) end
  return self:flush()
end

function Writer:commit()
  local ok, err = self:flush()
  if not ok then
    self:abort()
    return nil, err
  end
  if self.tmp then
    local cok, cerr = self.fh:close()
    self.closed = true
    if not cok then
      self:abort()
      return self:failed(cerr)
    end
    local rok, rerr = os.rename(self.tmp, self.path)
    if not rok then
      self:abort()
      return nil, ("cannot write to %s: %s"):format(self.path, tostring(rerr))
    end
    self.tmp = nil
  elseif self.path then
    local cok, cerr = self.fh:close()
    self.closed = true
    if not cok then return self:failed(cerr) end
  end
  return true
end

function Writer:abort()
  if self.tmp then
    if not self.closed then pcall(self.fh.close, self.fh) end
    os.remove(self.tmp)
    self.tmp = nil
  end
end

function M.stream(path)
  if path == nil or path == "-" then return new(io.stdout, "stdout") end
  local fh, err = io.open(path, "ab")
  if not fh then return nil, ("cannot write to %s"):format(tostring(err)) end
  return new(fh, path, nil, path)
end

function M.document(path)
  if path == nil or path == "-" then return new(io.stdout, "stdout") end
  local dir, base = path:match("^(.*/)([^/]*)$")
  if not dir then dir, base = "", path end
  if base == "" then return nil, ("cannot write to %s: a directory"):format(path) end
  local rnd = core.random_bytes(6) or tostring(os.time())
  local tmp = ("%s.%s.%s.tmp"):format(dir, base, (rnd:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
  local fh, err = io.open(tmp, "wb")
  if not fh then return nil, ("cannot write to %s: %s"):format(path, tostring(err):gsub("^[^:]*: ", "", 1)) end
  return new(fh, path, tmp, path)
end

return M
