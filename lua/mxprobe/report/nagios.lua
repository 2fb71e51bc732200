-- mxprobe.report.nagios -- monitoring-plugin output (Nagios, Icinga,
-- Naemon, Checkmk, Zabbix through a plugin).
--
--   nagios.render(facts_list, judgement_list, opts) -> string
--   nagios.label(s) -> s safe inside a quoted perfdata label
--   nagios.line(s) -> s safe as plugin text (one line, no "|")
--
-- Output:
--   MXPROBE <STATUS> - <summary> | <perfdata>
--   <one line per finding that matters: failed critical/warning, and what
--    could not be tested; at most opts.max_lines (default 50)>
-- STATUS is OK, WARNING, CRITICAL or UNKNOWN: judge.exit_status over all
-- the judgements (critical > warning > could not test > ok), the exit
-- status the CLI returns with it (0, 1, 2, 3).
--
-- Perfdata, per target ("<mx>[<address>]", prefixed with the domain when
-- the run has several), as 'label'=value[UOM];warn;crit;min;max:
--   score       0-100 (absent when the target could not be tested)
--   cert_days   days until the leaf certificate's notAfter (floor);
--               warn "<expiry_days>:" and crit "0:" (alert below), from
--               the policy's thresholds.expiry_days
--   connect     ms, warn thresholds.connect_slow_ms
--   banner      ms (connect to complete greeting), warn thresholds.banner_slow_ms
--   handshake   ms (TLS)
-- The policy: opts.policy (a policy table or overlay, as judge.run takes
-- it); a judgement does not carry its policy, so without opts.policy the
-- default policy's thresholds are used.
--
-- Server bytes never break the syntax: a label keeps only letters,
-- digits and . _ - : [ ] @ (anything else becomes "_"); plugin text is
-- one line, controls escaped (mxprobe.report.text.escape) and "|" written
-- \x7C.

local view = require "mxprobe.report.view"
local textrep = require "mxprobe.report.text"
local judge = require "mxprobe.judge"
local policy_mod = require "mxprobe.policy"
local score = require "mxprobe.score"

local M = {}

local WORD = { [0] = "OK", [1] = "WARNING", [2] = "CRITICAL", [3] = "UNKNOWN" }

function M.label(s)
  return (tostring(s or ""):gsub("[^%w%.%_%-:%[%]@]", "_"))
end

function M.line(s, max)
  s = textrep.escape(s):gsub("|", "\\x7C")
  max = max or 400
  if utf8.len(s) > max then s = s:sub(1, utf8.offset(s, max) - 1) .. "…" end
  return s
end

local function number(n)
  if math.type(n) == "integer" then return tostring(n) end
  if n == math.floor(n) and math.abs(n) < 2^53 then return string.format("%d", n) end
  return (string.format("%.3f", n):gsub("0+$", ""):gsub("%.$", ""))
end

local function finite(n)
  return type(n) == "number" and n == n and n ~= math.huge and n ~= -math.huge
end

local function perf(out, label, value, uom, warn, crit, min, max)
  if not finite(value) then return end
  out[#out + 1] = string.format("'%s'=%s%s;%s;%s;%s;%s", label, number(value), uom or "",
    warn or "", crit or "", min or "", max or "")
end

local function target_name(t)
  return (t.mx or "") .. "[" .. tostring(t.address or "?") .. "]"
end

function M.render(facts_list, judgement_list, opts)
  opts = opts or {}
  local ok, p = pcall(policy_mod.resolve, opts.policy)
  if not ok then p = policy_mod.resolve(nil) end
  local th = p.thresholds or {}
  local expiry = finite(th.expiry_days) and th.expiry_days or 14
  local qs = view.queries(facts_list, judgement_list, opts)
  local status = judge.exit_status(type(judgement_list) == "table" and judgement_list or {})
  local many = #qs > 1

  -- summary
  local summary
  if #qs == 0 then
    summary = "nothing was probed"
  elseif not many then
    local q = qs[1]
    local parts = { M.line(q.name, 200) .. ": " .. M.line(q.summary or q.verdict, 200) }
    if q.score then
      parts[#parts + 1] = string.format("grade %s (%s/100)", M.line(q.grade or "?", 4), number(q.score))
    end
    local codes = {}
    for i = 1, math.min(3, #q.worst) do codes[i] = M.line(q.worst[i].code, 80) end
    if #codes > 0 then parts[#parts + 1] = table.concat(codes, ", ") end
    summary = table.concat(parts, "; ")
  else
    local n = { ok = 0, warning = 0, critical = 0, unknown = 0 }
    for _, q in ipairs(qs) do
      local v = n[q.verdict] and q.verdict or "unknown"
      n[v] = n[v] + 1
    end
    local parts = {}
    if n.critical > 0 then parts[#parts + 1] = n.critical .. " critical" end
    if n.warning > 0 then parts[#parts + 1] = n.warning .. " warning" end
    if n.unknown > 0 then parts[#parts + 1] = n.unknown .. " could not test" end
    if n.ok > 0 then parts[#parts + 1] = n.ok .. " ok" end
    summary = string.format("%d domains: %s", #qs, table.concat(parts, ", "))
  end

  -- perfdata
  local pd = {}
  for _, q in ipairs(qs) do
    local prefix = many and (M.label(q.name) .. " ") or ""
    for _, t in ipairs(q.targets) do
      local l = prefix .. M.label(target_name(t)) .. " "
      perf(pd, l .. "score", t.score, "", nil, nil, 0, 100)
      if t.days_left then
        perf(pd, l .. "cert_days", math.floor(t.days_left), "", number(expiry) .. ":", "0:")
      end
      local cw = finite(th.connect_slow_ms) and number(th.connect_slow_ms) or nil
      local bw = finite(th.banner_slow_ms) and number(th.banner_slow_ms) or nil
      perf(pd, l .. "connect", t.connect_ms, "ms", cw, nil, 0)
      perf(pd, l .. "banner", t.banner_ms, "ms", bw, nil, 0)
      perf(pd, l .. "handshake", t.handshake_ms, "ms", nil, nil, 0)
    end
  end

  local out = { "MXPROBE " .. WORD[status] .. " - " .. summary .. (#pd > 0 and (" | " .. table.concat(pd, " ")) or "") }

  -- the findings that matter, worst first
  local lines = {}
  for _, q in ipairs(qs) do
    local function add(f, where)
      if view.failing(f) or score.blocks_verdict(f) then
        lines[#lines + 1] = { rank = view.rank(f), text = string.format("%s: %s%s: %s %s",
          f.state == "fail" and f.severity:upper() or "NOT TESTED",
          M.line(q.name, 200), where and (" " .. M.line(where, 200)) or "",
          M.line(f.code, 80), M.line(f.message, 300)) }
      end
    end
    for _, f in ipairs(q.domain_findings) do add(f) end
    for _, t in ipairs(q.targets) do
      for _, f in ipairs(t.findings) do add(f, target_name(t)) end
    end
  end
  for i, e in ipairs(lines) do e.i = i end
  table.sort(lines, function(a, b)
    if a.rank ~= b.rank then return a.rank > b.rank end
    return a.i < b.i
  end)
  local max = type(opts.max_lines) == "number" and opts.max_lines or 50
  for i, e in ipairs(lines) do
    if i > max then
      out[#out + 1] = string.format("... and %d more", #lines - max)
      break
    end
    out[#out + 1] = e.text
  end
  return table.concat(out, "\n") .. "\n"
end

return M
