-- mxprobe.report.formats -- the report formats, by name: each is the
-- module mxprobe.report.<name> with render(facts_list, judgements, opts)
-- -> string. mxprobe.report() and the CLI's --format take their names
-- from here, so a new format is one file and one line below.
-- (jsonl and facts are not reports: the CLI writes them line by line as
-- results arrive.)

local M = {}

M.names = {
  "text",   -- human report (default)
  "json",   -- one JSON document, schema mxprobe.report/1
  -- reports (issue 11)
  "html",   -- one self-contained HTML5 document (inline CSS and SVG)
  "csv",    -- one row per target, RFC 4180, for spreadsheets
  "nagios", -- monitoring-plugin output: status line, perfdata
}

--- Is name a report format?
function M.known(name)
  for _, n in ipairs(M.names) do
    if n == name then return true end
  end
  return false
end

return M
