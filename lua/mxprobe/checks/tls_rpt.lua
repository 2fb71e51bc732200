-- Check tls_rpt -- the domain's SMTP TLS Reporting record (RFC 8460).
--
-- What:   exactly one TXT record starting with "v=TLSRPTv1" at
--         _smtp._tls.<domain> (§3: with several, senders send no reports),
--         with a rua field of one or more URIs, each mailto: or https:
--         (§3). No record: not applicable (tls_rpt.none), or an info
--         finding (tls_rpt.missing) when the domain publishes MTA-STS or
--         DANE, whose failures are what TLS-RPT reports.
-- Needs:  facts.kind, facts.tls_rpt (gatherer tls_rpt), facts.mta_sts.txt_status
--         and facts.mx[i].tlsa (the DANE gatherer's, when present) to say
--         whether a report would be useful.
-- Scope:  the domain (target nil).
-- Example finding:
--   { code = "tls_rpt.bad-scheme", severity = "warning", state = "fail",
--     message = "the TLS-RPT rua \"ftp://x.example\" is neither mailto: nor https:",
--     evidence = "v=TLSRPTv1; rua=ftp://x.example" }

local U = require "mxprobe.checks.util"

-- luacheck: push no max line length
local CODES = {
  ["tls_rpt"] = { severity = "info", weight = 0 },
  ["tls_rpt.ok"] = { severity = "ok", weight = 0 },
  ["tls_rpt.none"] = { severity = "info", weight = 0 },
  ["tls_rpt.missing"] = { severity = "info", weight = 0,
    fix = "Publish \"v=TLSRPTv1; rua=mailto:ADDRESS\" at _smtp._tls.DOMAIN to receive senders' reports of the MTA-STS or DANE failures they meet (RFC 8460)." },
  ["tls_rpt.dns-error"] = { severity = "warning", weight = 5,
    fix = "Check the domain's name servers: the _smtp._tls TXT query failed." },
  ["tls_rpt.several"] = { severity = "warning", weight = 10,
    fix = "Publish exactly one v=TLSRPTv1 record at _smtp._tls.DOMAIN: with several, senders send no reports (RFC 8460 §3)." },
  ["tls_rpt.no-rua"] = { severity = "warning", weight = 10,
    fix = "Add rua= with one or more mailto: or https: URIs to the TLS-RPT record (RFC 8460 §3)." },
  ["tls_rpt.bad-scheme"] = { severity = "warning", weight = 10,
    fix = "List only mailto: and https: URIs in the TLS-RPT rua field (RFC 8460 §3)." },
}
-- luacheck: pop

-- does the domain publish something whose failures TLS-RPT would report?
local function protected(facts)
  local m = U.tbl(facts.mta_sts)
  if m and m.txt_status == "ok" then return "MTA-STS" end
  for _, mx in ipairs(U.list(facts.mx)) do
    local tlsa = type(mx) == "table" and U.tbl(mx.tlsa)
    if tlsa and (#U.list(tlsa.records) > 0 or #U.list(U.tbl(tlsa.query) and tlsa.query.records) > 0) then
      return "DANE"
    end
  end
  return nil
end

local function run(facts)
  if facts.kind ~= "domain" then
    return { { code = "tls_rpt", state = "na",
      message = "TLS-RPT is a property of a domain; a host or address was probed" } }
  end
  local r = U.tbl(facts.tls_rpt)
  if not r then
    return { { code = "tls_rpt", state = "untested", message = "TLS-RPT was not gathered (facts without tls_rpt)" } }
  end
  local domain = U.str(facts.domain) or "?"
  local q = U.tbl(r.query) or {}
  local records = U.list(r.records)
  if #records == 0 then
    if q.status ~= "ok" and q.status ~= "nodata" and q.status ~= "nxdomain" then
      return { { code = "tls_rpt.dns-error", state = "untested",
        message = string.format("the _smtp._tls.%s TXT query failed (%s)", domain, tostring(q.status)),
        evidence = U.str(q.error) or tostring(q.status) } }
    end
    local why = protected(facts)
    if why then
      return { { code = "tls_rpt.missing", state = "fail",
        message = string.format("no TLS-RPT record, though the domain publishes %s: its failures go unreported",
          why) } }
    end
    return { { code = "tls_rpt.none", state = "na", message = "no TLS-RPT record (_smtp._tls TXT)" } }
  end
  if #records > 1 then
    local texts = {}
    for _, rec in ipairs(records) do texts[#texts + 1] = tostring(type(rec) == "table" and rec.text) end
    return { { code = "tls_rpt.several", state = "fail",
      message = string.format("_smtp._tls.%s has %d v=TLSRPTv1 records: senders send no reports",
        domain, #records),
      evidence = U.cut(table.concat(texts, " | "), 600, "…") } }
  end
  local rec = U.tbl(records[1]) or {}
  local rua = U.list(rec.rua)
  if #rua == 0 then
    return { { code = "tls_rpt.no-rua", state = "fail",
      message = "the TLS-RPT record has no rua URI: reports have nowhere to go", evidence = U.str(rec.text) } }
  end
  local out, bad = {}, {}
  for _, uri in ipairs(rua) do
    local s = tostring(uri)
    local scheme = s:match("^([%a][%w+.%-]*):")
    scheme = scheme and scheme:lower()
    if scheme ~= "mailto" and scheme ~= "https" then bad[#bad + 1] = s end
  end
  if #bad > 0 then
    out[#out + 1] = { code = "tls_rpt.bad-scheme", state = "fail",
      message = string.format("the TLS-RPT rua %s neither mailto: nor https:: %s",
        #bad == 1 and "URI is" or "URIs are", U.cut(table.concat(bad, ", "), 300, "…")),
      evidence = U.str(rec.text) }
  else
    out[#out + 1] = { code = "tls_rpt.ok", state = "pass",
      message = string.format("TLS-RPT reports go to %s", U.cut(table.concat(rua, ", "), 300, "…")) }
  end
  return out
end

return {
  id = "tls_rpt",
  title = "TLS reporting (RFC 8460)",
  scope = "domain",
  requires = { "tls_rpt" },
  codes = CODES,
  run = run,
}
