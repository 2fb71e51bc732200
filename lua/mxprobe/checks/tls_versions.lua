-- Check tls.versions -- which TLS versions does the server accept?
--
-- What:   from one short STARTTLS dialog per version (gather/tls_versions):
--         TLS 1.0 or 1.1 accepted is a warning (RFC 8996 deprecates both:
--         a downgrade target, and a sign of an old TLS stack); neither TLS
--         1.2 nor 1.3 accepted is critical (modern senders cannot do TLS
--         with it: they defer or send in clear text). The versions accepted,
--         each with the cipher it negotiated, are listed in an info line.
--         Not applicable when the versions were not tried (--no-tls-versions,
--         no TLS session in the main dialog); a version whose dialog stopped
--         before its handshake ended is "not tested" in the list, and
--         "neither 1.2 nor 1.3" is only said when both were tried and
--         refused.
-- Needs:  targets[i].tls_versions.{status, reason, versions[j].{version,
--         status, cipher, error}}.
-- Scope:  each target.
-- Example finding:
--   { code = "tls.versions.deprecated", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "accepts TLSv1.0 and TLSv1.1, deprecated by RFC 8996",
--     evidence = "TLSv1.0: ECDHE-ECDSA-AES256-SHA; TLSv1.1: ECDHE-ECDSA-AES256-SHA" }

local U = require "mxprobe.checks.util"

-- luacheck: push no max line length
local CODES = {
  ["tls.versions"] = { severity = "info", weight = 0 },
  ["tls.versions.accepted"] = { severity = "info", weight = 0 },
  ["tls.versions.deprecated"] = { severity = "warning", weight = 15,
    fix = "Disable TLS 1.0 and 1.1 (RFC 8996). Postfix: smtpd_tls_protocols = >=TLSv1.2 (and smtpd_tls_mandatory_protocols); Exim: tls_require_ciphers / openssl_options = +no_tlsv1 +no_tlsv1_1." },
  ["tls.versions.no-modern"] = { severity = "critical", weight = 50,
    fix = "Enable TLS 1.2 and TLS 1.3: update the MTA's TLS library and allow them in its configuration (Postfix: smtpd_tls_protocols = >=TLSv1.2). Senders that require a modern TLS version cannot use STARTTLS here." },
}
-- luacheck: pop

local DEPRECATED = { ["TLSv1.0"] = true, ["TLSv1.1"] = true }
local MODERN = { ["TLSv1.2"] = true, ["TLSv1.3"] = true }

-- "TLSv1.2 (ECDHE-ECDSA-AES256-GCM-SHA384)"
local function with_cipher(v)
  local c = U.str(v.cipher)
  return tostring(v.version) .. (c and (" (" .. c .. ")") or "")
end

local function run(facts)
  return U.each_target(facts, function(t)
    local tv = U.tbl(t.tls_versions)
    if not tv then
      return { U.finding("tls.versions", "na", t, "the TLS versions were not tried (facts without tls_versions)") }
    end
    if tv.status ~= "tested" then
      return { U.finding("tls.versions", "na", t,
        "the TLS versions were not tried: " .. (U.str(tv.reason) or tostring(tv.status))) }
    end
    local accepted, refused, untested, deprecated = {}, {}, {}, {}
    local modern_accepted, modern_refused = 0, 0
    for _, v in ipairs(U.list(tv.versions)) do
      if type(v) == "table" then
        local name = tostring(v.version)
        if v.status == "accepted" then
          accepted[#accepted + 1] = with_cipher(v)
          if DEPRECATED[name] then deprecated[#deprecated + 1] = v end
          if MODERN[name] then modern_accepted = modern_accepted + 1 end
        elseif v.status == "refused" then
          refused[#refused + 1] = name
          if MODERN[name] then modern_refused = modern_refused + 1 end
        else
          untested[#untested + 1] = name
        end
      end
    end
    local parts = {}
    parts[#parts + 1] = "accepted: " .. (#accepted > 0 and table.concat(accepted, ", ") or "none")
    if #refused > 0 then parts[#parts + 1] = "refused: " .. table.concat(refused, ", ") end
    if #untested > 0 then parts[#parts + 1] = "not tested: " .. table.concat(untested, ", ") end
    local summary = table.concat(parts, "; ")
    local out = {}
    if #deprecated > 0 then
      local names, ev = {}, {}
      for i, v in ipairs(deprecated) do
        names[i] = tostring(v.version)
        ev[i] = tostring(v.version) .. ": " .. (U.str(v.cipher) or "?")
      end
      out[#out + 1] = U.finding("tls.versions.deprecated", "fail", t,
        string.format("accepts %s, deprecated by RFC 8996", table.concat(names, " and ")),
        table.concat(ev, "; "))
    end
    if modern_accepted == 0 and modern_refused == 2 then
      out[#out + 1] = U.finding("tls.versions.no-modern", "fail", t,
        "accepts neither TLS 1.2 nor TLS 1.3", summary)
    end
    out[#out + 1] = U.finding("tls.versions.accepted", "pass", t, "TLS versions " .. summary, summary)
    return out
  end)
end

return {
  id = "tls.versions",
  title = "TLS versions accepted",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
