-- mxprobe.cli.progress -- the progress line of a bulk run, on stderr, and
-- the summary by verdict at its end.
--
--   progress.new{out, tty, show, total, now} -> P
--       out: a file (io.stderr); tty: out is a terminal (then one line is
--       redrawn in place with \r and erase-line; otherwise, when shown at
--       all, a plain line now and then, no control characters); show:
--       draw it at all; total: queries expected (nil: unknown); now():
--       seconds, for the specs (default core.now()/1000)
--   P:started() / P:finished(verdict) -- one query pulled / done
--   P:say(msg) -- a line on stderr that the progress line does not garble
--   P:done() -- clears the progress line
--   P:line() -> "120/1000 done, 35.2/s, 64 in flight, ETA 25s"
--   P:summary() -> "1000 done: 900 ok, 60 warning, 30 critical, 10 unknown"

local core = require "mxprobe.core"

local M = {}

local P = {}
P.__index = P

local TTY_EVERY, PLAIN_EVERY = 0.2, 5   -- seconds between redraws
local VERDICTS = { "ok", "warning", "critical", "unknown" }

function M.new(o)
  local now = o.now or function() return core.now() / 1000 end
  return setmetatable({
    out = o.out or io.stderr, tty = o.tty, show = o.show, total = o.total, now = now,
    t0 = now(), last = nil, started_n = 0, done_n = 0, verdicts = {}, drawn = false,
  }, P)
end

local function duration(s)
  s = math.floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60)
end
M.duration = duration

function P:line()
  local elapsed = self.now() - self.t0
  local rate = elapsed > 0 and self.done_n / elapsed or 0
  local parts = {}
  parts[1] = self.total and ("%d/%d done"):format(self.done_n, self.total) or ("%d done"):format(self.done_n)
  parts[2] = ("%.1f/s"):format(rate)
  parts[3] = ("%d in flight"):format(self.started_n - self.done_n)
  if self.total and rate > 0 and self.done_n < self.total then
    parts[4] = "ETA " .. duration((self.total - self.done_n) / rate)
  end
  return table.concat(parts, ", ")
end

function P:draw(force)
  if not self.show then return end
  local t = self.now()
  if not force and self.last and t - self.last < (self.tty and TTY_EVERY or PLAIN_EVERY) then return end
  self.last = t
  -- stderr failing is not worth ending the run over: the results go elsewhere
  if self.tty then
    self.out:write("\r", self:line(), "\27[K")
    self.drawn = true
  else
    self.out:write("mxprobe: ", self:line(), "\n")
  end
  self.out:flush()
end

function P:clear()
  if self.drawn then
    self.out:write("\r\27[K")
    self.drawn = false
  end
end

function P:started()
  self.started_n = self.started_n + 1
  self:draw(false)
end

function P:finished(verdict)
  self.done_n = self.done_n + 1
  if verdict then self.verdicts[verdict] = (self.verdicts[verdict] or 0) + 1 end
  self:draw(self.done_n == self.total)   -- the last one always shows
end

function P:say(msg)
  self:clear()
  self.out:write("mxprobe: ", msg, "\n")
  self.out:flush()
end

function P:done()
  self:clear()
  self.out:flush()
end

function P:summary()
  local parts = {}
  for _, v in ipairs(VERDICTS) do
    if self.verdicts[v] then parts[#parts + 1] = ("%d %s"):format(self.verdicts[v], v) end
  end
  local s = ("%d done"):format(self.done_n)
  if #parts > 0 then s = s .. ": " .. table.concat(parts, ", ") end
  return s .. (" in %s"):format(duration(self.now() - self.t0))
end

return M
