-- Gatherer tls_rpt -- the domain's SMTP TLS Reporting record (RFC 8460).
--
-- What:   the TXT records at _smtp._tls.<domain>; of each one that starts
--         with "v=TLSRPTv1" (RFC 8460 §3: others are not TLS-RPT records),
--         its fields as written: the version, the rua URIs in order, and any
--         other key=value pair. Nothing is judged here (how many records, a
--         rua that is neither mailto: nor https:, are findings of a check).
-- Scope:  domain (queries of kind "domain" only).
-- Writes: facts.tls_rpt = { query, records = { {text, version, rua, fields} } }

local dns = require "mxprobe.dns"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "tls_rpt", title = "TLS-RPT record (RFC 8460)",
  scope = "domain", key = "tls_rpt", needs = {}, intrusive = false,
}

M.schema = S.record({
  query = T.dns_query,
  records = S.list(S.record({
    text = S.str, version = S.str, rua = S.list(S.str), fields = S.map(S.str),
  }, { "text", "version", "rua", "fields" })),
}, { "query", "records" })

--- The fields of one TLS-RPT record text, or nil when it is not one (pure).
-- RFC 8460 §3: tlsrpt-record = "v=TLSRPTv1" *(";" field) [";"], fields
-- "key=value" with optional whitespace around ";"; rua is a comma-separated
-- list of URIs.
function M.parse(txt)
  if txt:sub(1, 10) ~= "v=TLSRPTv1" then return nil end
  local rec = { text = txt, version = "TLSRPTv1", rua = {}, fields = {} }
  for part in (txt:sub(11) .. ";"):gmatch("([^;]*);") do
    local k, v = part:match("^%s*([%w_%.%-]+)%s*=%s*(.-)%s*$")
    if k then
      rec.fields[k] = v
      if k == "rua" then
        for uri in (v .. ","):gmatch("%s*([^,]-)%s*,") do
          if uri ~= "" then rec.rua[#rec.rua + 1] = uri end
        end
      end
    end
  end
  return rec
end

function M.run(facts, ctx)
  local q = dns.query(ctx.resolver, "_smtp._tls." .. facts.domain, "TXT", ctx:dns_deadline())
  local out = { query = q, records = {} }
  for _, r in ipairs(q.records) do
    local rec = type(r.text) == "string" and M.parse(r.text)
    if rec then out.records[#out.records + 1] = rec end
  end
  return out
end

return M
