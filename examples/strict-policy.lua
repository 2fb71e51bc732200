-- strict-policy.lua -- TLS required on every MX, certificates that verify,
-- and a 30-day expiry warning.
--
--   mxprobe --policy examples/strict-policy.lua example.org
--
-- Use it for a domain that publishes MTA-STS in enforce mode (or wants to):
-- then a sender refuses any MX without working, verifiable TLS, so every
-- such finding is critical here (exit status 2), and costs the whole score.
-- The certificate's PKIX failures are made critical through the certificate
-- rule (regime_severities, docs/codes.md): critical for every MX that DANE
-- does not cover, and still information where a DANE TLSA record decides.
-- Everything not mentioned keeps its default (declared by each check next to
-- its code, lua/mxprobe/checks/*.lua; listed in docs/codes.md).

local required = {
  "tls.starttls.missing",     -- no STARTTLS
  "tls.starttls.refused",     -- STARTTLS answered 454 / refused
  "tls.session.failed",     -- STARTTLS accepted, handshake failed
  "smtp.ehlo.helo-only",      -- no ESMTP, hence no STARTTLS
  "consistency.tls-mixed",    -- one MX without TLS is enough to lose
  "tls.session.old-version",          -- below TLS 1.2
  "tls.session.weak-cipher",
  "consistency.cert-mixed",
}

-- the PKIX failures: critical unless DANE applies to the MX
local pkix = {
  "tls.cert.expired", "tls.cert.not-yet-valid", "tls.cert.self-signed", "tls.cert.untrusted",
  "tls.cert.incomplete-chain", "tls.cert.name-mismatch",
}
local strict = {}
for _, code in ipairs(pkix) do
  strict[code] = "critical"
  required[#required + 1] = code   -- and its weight: 100
end

local severities, weights = {}, {}
for _, code in ipairs(required) do
  if not strict[code] then severities[code] = "critical" end
  weights[code] = 100
end
severities["tls.cert.expiring"] = "warning"
weights["tls.cert.expiring"] = 20

return {
  severities = severities,
  weights = weights,
  regime_severities = {
    opportunistic = strict, ["mta-sts-testing"] = strict, ["mta-sts-enforce"] = strict,
  },
  thresholds = {
    expiry_days = 30,            -- warn a month ahead, not two weeks
    tls_min_version = "TLSv1.2",
  },
}
