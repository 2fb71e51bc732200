-- mxprobe.cli.results -- what becomes of each result of a run: a line
-- written at once (jsonl, facts) or kept for one whole document (text,
-- json and the other report formats); counted for the progress line and
-- the exit status.
--
--   results.new{fmt, policy, out, prog} -> R
--   R.emit(facts, i [, ready]) -> true | nil, message (a write that failed)
--       i: the query's place in the input, the order of a whole document;
--       ready: a line a worker already rendered for a line format,
--       { line = s, verdict = "ok"|...|"-" } (then facts is nil; "-": a
--       facts line, not judged)
--   R:status() -> exit status of everything judged, R.saved_verdicts (the
--       lines a --resume found) included; nothing judged: 0 for facts, else 3
--   R:document(color) -> true | nil, message: the report of the kept
--       results written to out and committed
--   results.policy(path, expiry_days) -> policy | nil, message: the policy
--       of --policy FILE (nil: the default) and --expiry-days N
--   results.renderer{fmt, policy, expiry_days} -> render | nil, message:
--       render(facts) -> line, verdict ("-" for facts) of a line format
--       (jsonl: judged under results.policy(policy, expiry_days)); the same
--       in a worker process (--workers) as here

local facts_io = require "mxprobe.facts"
local judge = require "mxprobe.judge"
local report_json = require "mxprobe.report.json"
local text = require "mxprobe.text"

local M = {}

local EXIT_UNKNOWN = 3

function M.policy(path, expiry_days)
  local pol = require "mxprobe.policy"
  local policy, err
  if path then
    policy, err = pol.load(path)
    if not policy then return nil, err end
  else
    policy = pol.default()
  end
  if expiry_days then
    if expiry_days < 0 then return nil, "--expiry-days must not be negative" end
    policy, err = pol.merge(policy, { thresholds = { expiry_days = expiry_days } }, "--expiry-days")
    if not policy then return nil, err end
  end
  return policy
end

-- the line of facts f in a line format, and its verdict
local function render_with(fmt, policy)
  if fmt == "facts" then
    return function(f) return facts_io.encode(f), "-" end
  end
  return function(f)
    local j = judge.run(f, policy)
    return report_json.result_line(f, j), j.verdict
  end
end

function M.renderer(spec)
  if spec.fmt ~= "jsonl" and spec.fmt ~= "facts" then return nil, "not a line format: " .. tostring(spec.fmt) end
  local policy
  if spec.fmt == "jsonl" then
    local err
    policy, err = M.policy(spec.policy, spec.expiry_days)
    if not policy then return nil, err end
  end
  return render_with(spec.fmt, policy)
end

local R_ = {}
R_.__index = R_

function M.new(o)
  local fmt, policy, out, prog = o.fmt, o.policy, o.out, o.prog
  local R = setmetatable({ fmt = fmt, policy = policy, out = out, prog = prog, results = {}, judgements = {}, max = 0,
    skipped = {} }, R_)
  local render = (fmt == "facts" or fmt == "jsonl") and render_with(fmt, policy)
  function R.emit(f, i, ready)
    if render then
      local line, verdict
      if ready then line, verdict = ready.line, ready.verdict else line, verdict = render(f) end
      local ok, err = out:line(line)
      if fmt == "facts" then
        -- a worker's line: read back only when it may hold an error
        if ready and line:find('"error"', 1, true) then f = require("mxprobe.json").decode(line) end
        if type(f) == "table" and f.error then prog:say(text.utf8(tostring(f.query)) .. ": " .. f.error) end
        verdict = nil
      end
      prog:finished(verdict)
      return ok, err
    end
    local j = judge.run(f, policy)
    R.results[i], R.judgements[i] = f, j
    if i > R.max then R.max = i end
    prog:finished(j.verdict)
    return true
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
