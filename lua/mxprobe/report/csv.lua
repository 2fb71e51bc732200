-- mxprobe.report.csv -- one row per target, for spreadsheets.
--
--   csv.render(facts_list, judgement_list, opts) -> string
--   csv.COLUMNS -> the header, in order (docs/report.md)
--   csv.cell(v) -> one field as written
--
-- A header row, then one row per target (MX host, address) in facts
-- order; a query with no target (NXDOMAIN, null MX, an error) gets one
-- row with the target columns empty. opts.now: the clock of "days left"
-- (default the judgement's `now`).
--
-- RFC 4180: fields separated by commas, records ended by CRLF, a field
-- holding a comma, a double quote, CR or LF is enclosed in double quotes
-- with its quotes doubled. Text is valid UTF-8 (an invalid byte becomes
-- \xNN, as in the facts); C0 controls other than TAB, CR and LF, and DEL,
-- are written \xNN. CSV injection: a text field that begins with `=`,
-- `+`, `-`, `@`, TAB or CR gets a leading `'`, so a spreadsheet shows it
-- and never evaluates it. Numbers this report computes (scores, days
-- left, milliseconds) are written as plain numbers.

local view = require "mxprobe.report.view"
local text = require "mxprobe.text"

local M = {}

M.COLUMNS = {
  "domain", "verdict", "domain_grade", "domain_score", "mx", "preference", "address", "port",
  "grade", "score", "regime", "tls_state", "tls_version", "cipher", "cert_subject", "cert_issuer",
  "cert_not_after", "days_left", "trusted", "relay", "failing_codes", "untested_codes",
  "domain_codes", "connect_ms", "banner_ms", "handshake_ms", "tls_accepted", "rdns", "banner",
}

local function number(n)
  if type(n) ~= "number" or n ~= n or n == math.huge or n == -math.huge then return "" end
  if math.type(n) == "integer" then return tostring(n) end
  if n == math.floor(n) and math.abs(n) < 2^53 then return string.format("%d", n) end
  return (string.format("%.3f", n):gsub("0+$", ""):gsub("%.$", ""))
end

function M.cell(v)
  if v == nil then return "" end
  if type(v) == "number" then return number(v) end
  if type(v) == "boolean" then return v and "yes" or "no" end
  local s = text.utf8(tostring(v))
  s = s:gsub("[%z\1-\8\11\12\14-\31\127]", function(c) return string.format("\\x%02X", c:byte()) end)
  if s:find("^[=+%-@\t\r]") then s = "'" .. s end
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end
local cell = M.cell

local function date(t)
  if type(t) ~= "number" then return nil end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function row(values)
  local out = {}
  for i, name in ipairs(M.COLUMNS) do out[i] = cell(values[name]) end
  return table.concat(out, ",") .. "\r\n"
end

local function regimes(q)
  local list = view.regime_names(q)
  return list and table.concat(list, " ")
end

function M.render(facts_list, judgement_list, opts)
  local out = { table.concat(M.COLUMNS, ",") .. "\r\n" }
  for _, q in ipairs(view.queries(facts_list, judgement_list, opts)) do
    local dcodes = {}
    for _, f in ipairs(q.domain_findings) do
      if view.failing(f) then dcodes[#dcodes + 1] = f.code end
    end
    local base = {
      domain = q.name, verdict = q.verdict, domain_grade = q.grade, domain_score = q.score,
      domain_codes = table.concat(dcodes, " "),
    }
    if #q.targets == 0 then
      base.regime = regimes(q)
      out[#out + 1] = row(base)
    end
    for _, t in ipairs(q.targets) do
      local v = {}
      for k, x in pairs(base) do v[k] = x end
      local c = t.cert or {}
      v.mx, v.preference, v.address, v.port = t.mx, t.preference, t.address, t.port
      v.grade, v.score = t.grade, t.score
      v.regime = t.regime or regimes(q)
      v.tls_state, v.tls_version, v.cipher = t.tls_state, t.tls_version, t.cipher
      v.cert_subject, v.cert_issuer = c.subject, c.issuer
      v.cert_not_after = date(c.not_after)
      v.days_left = t.days_left and math.floor(t.days_left) or nil
      if t.cert then v.trusted = t.verify_ok == true end
      v.relay = t.relay
      v.failing_codes = table.concat(t.failing_codes, " ")
      v.untested_codes = table.concat(t.untested_codes, " ")
      v.connect_ms, v.banner_ms, v.handshake_ms = t.connect_ms, t.banner_ms, t.handshake_ms
      v.tls_accepted = t.tls_versions and table.concat(t.tls_versions, " ") or nil
      v.rdns, v.banner = t.rdns, t.banner
      out[#out + 1] = row(v)
    end
  end
  return table.concat(out)
end

return M
