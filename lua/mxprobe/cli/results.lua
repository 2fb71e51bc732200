-- mxprobe.cli.results -- what becomes of each result of a run: a line
-- written at once (jsonl, facts) or kept for one whole document (text,
-- json and the other report formats); counted for the progress line and
-- the exit status.
--
--   results.new{fmt, policy, out, prog} -> R
--   R.emit(facts, i) -> true | nil, message (a write that failed)
--       i: the query's place in the input, the order of a whole document
--   R:status() -> exit status of everything judged, R.saved_verdicts (the
--       lines a --resume found) included; nothing judged: 0 for facts, else 3
--   R:document(color) -> true | nil, message: the report of the kept
--       results written to out and committed

local facts_io = require "mxprobe.facts"
local judge = require "mxprobe.judge"
local report_json = require "mxprobe.report.json"
local text = require "mxprobe.text"

local M = {}

local EXIT_UNKNOWN = 3

local R_ = {}
R_.__index = R_

function M.new(o)
  local fmt, policy, out, prog = o.fmt, o.policy, o.out, o.prog
  local R = setmetatable({ fmt = fmt, policy = policy, out = out, prog = prog, results = {}, judgements = {}, max = 0,
    skipped = {} }, R_)
  function R.emit(f, i)
    local ok, err = true, nil
    if fmt == "facts" then
      ok, err = out:line(facts_io.encode(f))
      if f.error then prog:say(text.utf8(tostring(f.query)) .. ": " .. f.error) end
      prog:finished(nil)
    else
      local j = judge.run(f, policy)
      if fmt == "jsonl" then
        ok, err = out:line(report_json.result_line(f, j))
      else
        R.results[i], R.judgements[i] = f, j
        if i > R.max then R.max = i end
      end
      prog:finished(j.verdict)
    end
    return ok, err
  end
  return R
end

function R_:status()
  local list = {}
  for v in pairs(self.prog.verdicts) do list[#list + 1] = { verdict = v } end
  for v in pairs(self.saved_verdicts or {}) do list[#list + 1] = { verdict = v } end
  if #list == 0 then return self.fmt == "facts" and 0 or EXIT_UNKNOWN end
  return judge.exit_status(list)
end

function R_:document(color)
  local flist, jlist = {}, {}
  for i = 1, self.max do
    if self.results[i] then
      flist[#flist + 1], jlist[#jlist + 1] = self.results[i], self.judgements[i]
    end
  end
  -- required here, not at the top: mxprobe requires nothing of the CLI
  local doc = require("mxprobe").report(flist, jlist, { format = self.fmt, color = color,
    policy = self.policy })  -- the thresholds a report shows (nagios perfdata) follow --policy/--expiry-days
  if doc:sub(-1) ~= "\n" then doc = doc .. "\n" end
  local ok, err = self.out:write(doc)
  if not ok then return nil, err end
  return self.out:commit()
end

return M
