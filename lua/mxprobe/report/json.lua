-- mxprobe.report.json -- the machine report: one JSON document.
--
--   json.render(facts_list, judgement_list, opts) -> string (one line + "\n")
--   json.document(facts_list, judgement_list, opts) -> the table encoded
--
-- Schema "mxprobe.report/1", documented in docs/report.md:
--   { schema, tool, verdict, exit_status, results = [ { query, domain,
--     verdict, summary, scores, findings, regimes, facts } ] }
-- opts: facts = false leaves the facts out; now = epoch seconds adds
-- "generated".
--
-- Encoded by mxprobe.json, the one encoder of everything mxprobe writes:
-- always valid JSON, whatever a server sent or a facts file holds (strings
-- made valid UTF-8, an invalid byte becoming the four characters \xNN as
-- in the facts; control characters escaped; NaN and infinities null;
-- functions/userdata/cycles dropped), and an empty list that the facts or
-- report schema says is a list is written [] (not {}).

local json = require "mxprobe.json"
local judge = require "mxprobe.judge"
local text = require "mxprobe.text"

local M = {}

M.SCHEMA = "mxprobe.report/1"

-- the report's own list fields (docs/report.md); the facts' lists come from
-- mxprobe.facts (its schema and the gatherers'), so an empty list anywhere
-- in the document is written []
local REPORT_LIST_KEYS = { "results", "findings", "deductions", "untested", "hosts", "targets",
  "regimes" }   -- DANE/MTA-STS: the regime per MX

local list_keys
local function report_list_keys()
  if not list_keys then
    list_keys = {}
    for k in pairs(require("mxprobe.facts").list_keys()) do list_keys[k] = true end
    for _, k in ipairs(REPORT_LIST_KEYS) do list_keys[k] = true end
  end
  return list_keys
end
M.list_keys = report_list_keys

-- invalid UTF-8 bytes -> "\xNN", the same rule as the facts (mxprobe.text)
M.utf8_clean = text.utf8

-- the report as a Lua table (before cleaning)
function M.document(facts_list, judgement_list, opts)
  opts = opts or {}
  facts_list = type(facts_list) == "table" and facts_list or {}
  judgement_list = type(judgement_list) == "table" and judgement_list or {}
  local results = {}
  local n = math.max(#facts_list, #judgement_list)
  local tool
  for i = 1, n do
    local f = type(facts_list[i]) == "table" and facts_list[i] or {}
    local j = type(judgement_list[i]) == "table" and judgement_list[i] or {}
    tool = tool or (type(f.run) == "table" and f.run.tool) or f.tool
    results[i] = {
      query = f.query or j.query, domain = f.domain or j.domain,
      verdict = j.verdict, summary = j.summary, judged_at = j.now,
      exit_status = judge.exit_status(j),
      scores = j.scores, findings = j.findings or {},
      regimes = j.regimes,   -- the sending regime per MX (mxprobe.regime)
      facts = opts.facts ~= false and f or nil,
    }
  end
  local status = judge.exit_status(judgement_list)
  local verdicts = { [0] = "ok", [1] = "warning", [2] = "critical", [3] = "unknown" }
  return {
    schema = M.SCHEMA,
    tool = tool or { name = "mxprobe" },
    generated = type(opts.now) == "number" and opts.now or nil,
    verdict = verdicts[status],
    exit_status = status,
    results = results,
  }
end

-- bulk CLI: --format jsonl writes one result a line, as each query ends:
-- the same object as one element of the report's results, with a schema
-- id of its own (docs/report.md, "JSON Lines")
M.RESULT_SCHEMA = "mxprobe.result/1"

--- One result as a JSON line (no newline): facts f judged as j.
function M.result_line(f, j, opts)
  local r = M.document({ f }, { j }, opts).results[1]
  r.schema = M.RESULT_SCHEMA
  return json.encode(r, report_list_keys())
end

function M.render(facts_list, judgement_list, opts)
  return json.encode(M.document(facts_list, judgement_list, opts), report_list_keys()) .. "\n"
end

return M
