-- mxprobe.policy.default -- the default policy, as data.
--
-- severities: code -> "critical" | "warning" | "info" | "ok". The verdict
--   (and the exit status) is the worst severity among failed findings;
--   an "untested" finding of severity warning or critical makes the
--   verdict "unknown" when nothing failed. Codes that only name a check
--   (tls.cert, relay, ...) are its "not applicable"/"not tested" findings.
-- weights: code -> points taken off a score (0-100) when the finding fails.
--   Only state "fail" costs points: pass, n/a and untested never do.
-- A policy file (see docs/codes.md, examples/) overrides any of these.

return {
  severities = {
    -- dns.mx
    ["dns.mx"] = "info",
    ["dns.mx.ok"] = "ok",
    ["dns.nxdomain"] = "critical",
    ["dns.servfail"] = "critical",
    ["dns.error"] = "warning",
    ["dns.mx.none"] = "critical",
    ["dns.mx.null"] = "info",
    ["dns.mx.implicit"] = "warning",
    ["dns.mx.cname"] = "warning",
    ["dns.mx.invalid-name"] = "warning",
    ["dns.mx.no-address"] = "warning",
    ["dns.mx.dangling"] = "warning",
    ["dns.mx.unusable"] = "critical",
    ["dns.mx.single"] = "info",
    ["dns.mx.same-address"] = "warning",
    -- tcp
    ["tcp"] = "info",
    ["tcp.ok"] = "ok",
    ["tcp.refused"] = "critical",
    ["tcp.timeout"] = "warning",
    ["tcp.unreachable"] = "warning",
    ["tcp.error"] = "warning",
    ["tcp.slow"] = "warning",
    -- smtp.banner
    ["smtp.banner"] = "info",
    ["smtp.banner.ok"] = "ok",
    ["smtp.banner.missing"] = "critical",
    ["smtp.banner.invalid"] = "critical",
    ["smtp.banner.rejected"] = "warning",
    ["smtp.banner.slow"] = "warning",
    ["smtp.banner.multiline"] = "info",
    ["smtp.banner.no-hostname"] = "warning",
    ["smtp.banner.name-mismatch"] = "info",
    -- smtp.ehlo, smtp.extensions, smtp.throttle
    ["smtp.ehlo"] = "info",
    ["smtp.ehlo.ok"] = "ok",
    ["smtp.ehlo.rejected"] = "critical",
    ["smtp.ehlo.helo-only"] = "warning",
    ["smtp.extensions"] = "info",
    ["smtp.ehlo.pipelining"] = "info",
    ["smtp.ehlo.size"] = "info",
    ["smtp.ehlo.8bitmime"] = "info",
    ["smtp.ehlo.smtputf8"] = "info",
    ["smtp.throttled"] = "warning",
    ["smtp.timeout"] = "warning",
    ["smtp.unsolicited"] = "warning",
    ["tls.chain.order"] = "warning",
    ["tls.chain.too-long"] = "warning",
    -- tls.starttls, tls.session
    ["tls.starttls"] = "info",
    ["tls.starttls.ok"] = "ok",
    ["tls.starttls.missing"] = "warning",
    ["tls.starttls.refused"] = "critical",
    ["tls.session"] = "info",
    ["tls.handshake.ok"] = "ok",
    ["tls.handshake.failed"] = "critical",
    ["tls.version.old"] = "warning",
    ["tls.cipher.weak"] = "warning",
    -- tls.cert
    ["tls.cert"] = "info",
    ["tls.cert.ok"] = "ok",
    ["tls.cert.expired"] = "critical",
    ["tls.cert.expiring"] = "warning",
    ["tls.cert.not-yet-valid"] = "critical",
    ["tls.cert.self-signed"] = "warning",
    ["tls.cert.untrusted"] = "warning",
    ["tls.cert.incomplete-chain"] = "warning",
    ["tls.cert.name-mismatch"] = "warning",
    ["tls.cert.weak-key"] = "warning",
    ["tls.cert.sha1"] = "warning",
    -- relay
    ["relay"] = "info",
    ["relay.open"] = "critical",
    ["relay.accepts-any"] = "warning",
    ["relay.denied"] = "ok",
    ["relay.auth-required"] = "ok",
    ["relay.inconclusive"] = "info",
    ["relay.control-rejected"] = "warning",
    -- consistency
    ["consistency.tls-mixed"] = "warning",
    ["consistency.cert-mixed"] = "info",
    -- the judge itself
    ["mxprobe.check-error"] = "warning",
    ["mxprobe.query-error"] = "warning",
  },

  weights = {
    ["dns.nxdomain"] = 100,
    ["dns.servfail"] = 100,
    ["dns.mx.none"] = 100,
    ["dns.mx.implicit"] = 15,
    ["dns.mx.cname"] = 10,
    ["dns.mx.invalid-name"] = 20,
    ["dns.mx.no-address"] = 15,
    ["dns.mx.dangling"] = 20,
    ["dns.mx.unusable"] = 100,
    ["dns.mx.single"] = 5,
    ["dns.mx.same-address"] = 10,
    ["tcp.refused"] = 60,
    ["tcp.slow"] = 10,
    ["smtp.banner.missing"] = 60,
    ["smtp.banner.invalid"] = 60,
    ["smtp.banner.slow"] = 10,
    ["smtp.banner.no-hostname"] = 5,
    ["smtp.banner.name-mismatch"] = 0,
    ["smtp.ehlo.rejected"] = 60,
    ["smtp.ehlo.helo-only"] = 50,   -- no ESMTP means no STARTTLS: costs what tls.starttls.missing costs
    ["smtp.ehlo.pipelining"] = 0,
    ["smtp.ehlo.size"] = 0,
    ["smtp.ehlo.8bitmime"] = 0,
    ["smtp.ehlo.smtputf8"] = 0,
    ["smtp.unsolicited"] = 15,
    ["tls.chain.order"] = 10,
    ["tls.chain.too-long"] = 10,
    ["tls.starttls.missing"] = 50,
    ["tls.starttls.refused"] = 50,
    ["tls.handshake.failed"] = 50,
    ["tls.version.old"] = 15,
    ["tls.cipher.weak"] = 15,
    ["tls.cert.expired"] = 40,
    ["tls.cert.expiring"] = 10,
    ["tls.cert.not-yet-valid"] = 40,
    ["tls.cert.self-signed"] = 20,
    ["tls.cert.untrusted"] = 20,
    ["tls.cert.incomplete-chain"] = 15,
    ["tls.cert.name-mismatch"] = 15,
    ["tls.cert.weak-key"] = 15,
    ["tls.cert.sha1"] = 10,
    ["relay.open"] = 100,
    ["relay.accepts-any"] = 40,
    ["relay.control-rejected"] = 15,
    ["consistency.tls-mixed"] = 15,
    ["consistency.cert-mixed"] = 5,
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
