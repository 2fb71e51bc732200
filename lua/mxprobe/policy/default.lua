-- mxprobe.policy.default -- the default policy, as data.
--
-- The default severity and weight of each code are not here: each check
-- declares them next to the code (lua/mxprobe/checks/*.lua, `codes`), and
-- mxprobe.policy gathers them into policy.severities and policy.weights.
--   severity: "critical" | "warning" | "info" | "ok". The verdict (and the
--     exit status) is the worst severity among failed findings; an
--     "untested" finding of severity warning or critical makes the verdict
--     "unknown" when nothing failed (score.blocks_verdict).
--   weight: points taken off a score (0-100) when the finding fails. Only
--     state "fail" costs points: pass, n/a and untested never do.
-- A policy file (see docs/codes.md, examples/) overrides any of these.

-- The certificate rule (docs/codes.md, "The certificate rule"): the PKIX
-- failures of tls.cert are judged by what the senders of each MX host's
-- regime (mxprobe.regime) enforce. A policy file may change this table per
-- regime and code; a code that the file names in `severities` keeps that
-- severity in every regime.
-- tls.cert.cname-only is a name failure for senders that check the MX
-- name as published (MTA-STS); DANE may use the CNAME-expanded name
-- (RFC 7672 §2.2.3).
local PKIX = { "tls.cert.expired", "tls.cert.not-yet-valid", "tls.cert.self-signed", "tls.cert.untrusted",
  "tls.cert.incomplete-chain", "tls.cert.name-mismatch", "tls.cert.cname-only" }
local function pkix(severity)
  local t = {}
  for _, code in ipairs(PKIX) do t[code] = severity end
  return t
end

return {
  -- severity of a code per regime; "info" also makes the code cost nothing
  regime_severities = {
    dane = pkix("info"),                  -- the TLSA match decides (RFC 7672 §3.1)
    ["mta-sts-enforce"] = pkix("critical"), -- senders refuse the MX (RFC 8461 §4.2)
    ["mta-sts-testing"] = pkix("warning"),  -- senders deliver, and report
    opportunistic = pkix("warning"),        -- senders deliver anyway
  },

  thresholds = {
    expiry_days = 14,          -- tls.cert.expiring: days before notAfter
    connect_slow_ms = 2000,    -- tcp.slow
    banner_slow_ms = 5000,     -- smtp.banner.slow: connect to first byte
    tls_min_version = "TLSv1.2", -- tls.version.old below this
    cipher_bits_min = 128,     -- tls.cipher.weak below this
    rsa_bits_min = 2048,       -- tls.cert.weak-key (RSA, DSA)
    ec_bits_min = 224,         -- tls.cert.weak-key (EC)
  },

  scoring = {
    -- weight of a failed code that `weights` does not list, by severity
    default_weights = { critical = 50, warning = 15, info = 0, ok = 0 },
    -- a target (or the domain) with a critical failure scores at most this
    critical_cap = 49,
    -- the domain score is at most this many points above its weakest
    -- reachable target: senders (and attackers) fall back to the weakest
    weakest_margin = 15,
    -- weight of an MX host in the domain mean: decay^(rank - 1), rank 1 for
    -- the lowest preference value, equal preferences share a rank
    preference_decay = 0.5,
    -- instruction budget of one check run (a runaway policy check is cut)
    check_instructions = 50000000,
  },

  -- a score gets the first grade whose minimum it reaches
  grades = {
    { grade = "A", min = 90 },
    { grade = "B", min = 75 },
    { grade = "C", min = 60 },
    { grade = "D", min = 50 },
    { grade = "F", min = 0 },
  },

  -- check ids or codes switched off
  disable = {},
}
