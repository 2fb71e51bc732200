-- Check tls.cert -- the certificate the server presents after STARTTLS.
--
-- What:   validity dates against ctx.now (expired, expiring within
--         thresholds.expiry_days -- 14 by default -- not yet valid); the
--         chain verification result (self-signed, untrusted issuer,
--         incomplete chain); the name (verify.name_match: libcrypto's
--         X509_check_host of the MX host name, run by the prober -- the one
--         host-name matcher; without it the name is not judged); key strength (RSA/DSA below
--         thresholds.rsa_bits_min, EC below thresholds.ec_bits_min) and SHA-1
--         or MD5 signatures in the presented chain (the trust anchor's own
--         self-signature does not count). Not applicable without a TLS
--         session (the cause is reported once, by tls.starttls or
--         tls.session); could not test when the handshake was not reached.
-- Needs:  targets[i].smtp.certificates[j].{subject, issuer, subject_cn,
--         san_dns, not_before, not_after, key_type, key_bits, sig_alg,
--         self_issued, is_ca}, targets[i].smtp.verify.{ok, reason, detail, depth, errors, name,
--         name_match, cname, cname_match}, targets[i].mx; ctx.now.
--         A certificate that covers the CNAME-expanded name of an MX alias
--         but not the MX name is tls.cert.cname-only (TLS posture);
--         ctx.policy.thresholds.{expiry_days, rsa_bits_min, ec_bits_min}.
-- Scope:  each target.
-- Example finding:
--   { code = "tls.cert.expired", severity = "critical", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "the certificate expired 12 days ago (2025-11-16 00:00:00 UTC)",
--     evidence = "CN=mx1.example.org notAfter 2025-11-16 00:00:00 UTC; verify: expired at depth 0",
--     remediation = "Renew the certificate (certbot renew) and reload the MTA." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release. The
-- PKIX failures (expired, not-yet-valid, self-signed, untrusted,
-- incomplete-chain, name-mismatch) are declared with their opportunistic
-- severity; the judge applies the certificate rule per regime
-- (policy.regime_severities, docs/codes.md)
-- luacheck: push no max line length
local CODES = {
  ["tls.cert"] = { severity = "info", weight = 0 },
  ["tls.cert.ok"] = { severity = "ok", weight = 0 },
  ["tls.cert.expired"] = { severity = "warning", weight = 40,
    fix = "Renew the certificate (e.g. certbot renew), install the new chain in the MTA and reload it; automate renewal and monitor the expiry date." },
  ["tls.cert.expiring"] = { severity = "warning", weight = 10,
    fix = "Renew the certificate now and check that automatic renewal works and reloads the MTA." },
  ["tls.cert.not-yet-valid"] = { severity = "warning", weight = 40,
    fix = "Check the server's clock and the certificate's notBefore date; install a certificate that is valid now." },
  ["tls.cert.self-signed"] = { severity = "warning", weight = 20,
    fix = "Use a certificate from a public CA (e.g. Let's Encrypt), or publish a DANE TLSA record for this self-signed key." },
  ["tls.cert.untrusted"] = { severity = "warning", weight = 20,
    fix = "Use a certificate issued by a CA that senders trust, and serve its full chain; or publish DANE TLSA records." },
  ["tls.cert.incomplete-chain"] = { severity = "warning", weight = 15,
    fix = "Configure the MTA with the full chain (leaf and intermediates, e.g. fullchain.pem; Postfix: smtpd_tls_chain_files)." },
  ["tls.cert.name-mismatch"] = { severity = "warning", weight = 15,
    fix = "Get a certificate whose subjectAltName includes the MX host name (MTA-STS and DANE-less verifying senders check it)." },
  -- TLS posture: the certificate covers only the name the MX alias leads to
  ["tls.cert.cname-only"] = { severity = "warning", weight = 15,
    fix = "Add the MX host name as published (the alias) to the certificate's subjectAltName, or point the MX record at the canonical name the certificate covers: MX targets must not be aliases (RFC 2181 §10.3), and MTA-STS and verifying senders check the MX name." },
  ["tls.cert.weak-key"] = { severity = "warning", weight = 15,
    fix = "Issue a new certificate with an RSA key of at least 2048 bits or an ECDSA P-256 key." },
  ["tls.cert.sha1"] = { severity = "warning", weight = 10,
    fix = "Reissue the certificate (and use an intermediate) signed with SHA-256 or better." },
}
-- luacheck: pop

local TRUST_CODE = {
  ["self-signed"] = "tls.cert.self-signed",
  ["untrusted-root"] = "tls.cert.untrusted",
  ["unknown-issuer"] = "tls.cert.untrusted",
  ["invalid-ca"] = "tls.cert.untrusted",
  ["bad-signature"] = "tls.cert.untrusted",
  ["other"] = "tls.cert.untrusted",
  ["incomplete-chain"] = "tls.cert.incomplete-chain",
  ["weak-key"] = "tls.cert.weak-key",
  ["weak-signature"] = "tls.cert.sha1",
}

local function label(cert, depth)
  local name = U.str(cert.subject_cn) or U.str(cert.subject) or "?"
  if depth == 0 then return "CN=" .. name end
  return string.format("depth %d CN=%s", depth, name)
end

local function names_of(leaf)
  local out = {}
  for i, s in ipairs(U.list(leaf.san_dns)) do
    if i > 8 then out[#out + 1] = "…"; break end
    out[#out + 1] = tostring(s)
  end
  local n = U.num(leaf.san_count)
  local txt = #out > 0 and ("SAN " .. table.concat(out, ", ")) or "no DNS SAN"
  if n and n > #out then txt = txt .. string.format(" (%d entries)", math.tointeger(n) or n) end
  if U.str(leaf.subject_cn) then txt = txt .. "; CN " .. leaf.subject_cn end
  return txt
end

local function run(facts, ctx)
  local th = ctx.policy.thresholds
  local now = U.num(ctx.now) or os.time()
  local expiry_days = U.num(th.expiry_days) or 14
  local rsa_min = U.num(th.rsa_bits_min) or 2048
  local ec_min = U.num(th.ec_bits_min) or 224
  return U.each_target(facts, function(t)
    local state, why = U.tls_state(t)
    if state == "untested" then
      return { U.finding("tls.cert", "untested", t, "not tested: " .. why) }
    elseif state == "na" then
      return { U.finding("tls.cert", "na", t, "no certificate to judge: " .. why) }
    elseif state == "failed" then
      return { U.finding("tls.cert", "na", t, "no certificate to judge: " .. why) }
    end
    local certs = {}
    for _, c in ipairs(U.list(U.smtp(t).certificates)) do
      if type(c) == "table" then certs[#certs + 1] = c end
    end
    if #certs == 0 then
      return { U.finding("tls.cert", "untested", t, "not tested: no certificate was captured") }
    end
    local leaf = certs[1]
    local verify = U.tbl(U.smtp(t).verify)
    local out, by_code = {}, {}
    local function add(code, message, evidence)
      local f = by_code[code]
      if f then
        if evidence and evidence ~= "" then
          f.evidence = (f.evidence and f.evidence ~= "") and (f.evidence .. "; " .. evidence) or evidence
        end
        return
      end
      f = U.finding(code, "fail", t, message, evidence)
      by_code[code] = f
      out[#out + 1] = f
    end

    -- dates of the leaf, judged at ctx.now
    local nb, na = U.num(leaf.not_before), U.num(leaf.not_after)
    if na and na < now then
      add("tls.cert.expired",
        string.format("the certificate expired %s ago (%s)", U.days((now - na) / 86400), U.date(na)),
        label(leaf, 0) .. " notAfter " .. U.date(na))
    elseif na and na - now < expiry_days * 86400 then
      add("tls.cert.expiring",
        string.format("the certificate expires in %s (%s); warning threshold %s",
          U.days((na - now) / 86400), U.date(na), U.days(expiry_days)),
        label(leaf, 0) .. " notAfter " .. U.date(na))
    end
    if nb and nb > now then
      add("tls.cert.not-yet-valid",
        string.format("the certificate is not valid before %s", U.date(nb)),
        label(leaf, 0) .. " notBefore " .. U.date(nb))
    end

    -- chain verification (done by the prober against its CA store)
    if verify then
      local errors = {}
      for _, e in ipairs(U.list(verify.errors)) do
        if type(e) == "table" then errors[#errors + 1] = e end
      end
      if #errors == 0 and verify.ok ~= true and U.str(verify.reason) then
        errors[1] = { depth = verify.depth, reason = verify.reason, detail = verify.detail }
      end
      for _, e in ipairs(errors) do
        local depth = U.num(e.depth) or 0
        local reason = U.str(e.reason) or "other"
        local ev = string.format("verify: %s at depth %d%s", reason, math.tointeger(depth) or 0,
          U.str(e.detail) and (" (" .. e.detail .. ")") or "")
        if reason == "expired" then
          if depth > 0 then
            add("tls.cert.expired", string.format("a chain certificate (depth %d) has expired",
              math.tointeger(depth) or 0), ev)
          elseif by_code["tls.cert.expired"] then
            add("tls.cert.expired", "", ev)
          end
        elseif reason == "not-yet-valid" then
          if depth > 0 or by_code["tls.cert.not-yet-valid"] then
            add("tls.cert.not-yet-valid", string.format("a chain certificate (depth %d) is not yet valid",
              math.tointeger(depth) or 0), ev)
          end
        else
          local code = TRUST_CODE[reason] or "tls.cert.untrusted"
          local msg = ({
            ["tls.cert.self-signed"] = "the certificate is self-signed",
            ["tls.cert.untrusted"] = "the certificate chain is not trusted (" .. reason .. ")",
            ["tls.cert.incomplete-chain"] = "the server does not send the intermediate certificate(s)",
            ["tls.cert.weak-key"] = "a key in the chain is too weak for the verifier",
            ["tls.cert.sha1"] = "a signature in the chain uses a weak digest",
          })[code]
          if not (code == "tls.cert.untrusted" and by_code["tls.cert.self-signed"]) then
            add(code, msg, ev)
          end
        end
      end
    end

    -- key strength and signature digests of the presented chain
    for depth0, c in ipairs(certs) do
      local depth = depth0 - 1
      local anchor = depth > 0 and c.self_issued == true
      local kt = tostring(c.key_type or ""):upper()
      local bits = U.num(c.key_bits)
      if not anchor then
        if (kt == "RSA" or kt == "DSA") and bits and bits < rsa_min then
          add("tls.cert.weak-key", string.format("%s key of %d bits (minimum %d)", kt, bits, rsa_min),
            label(c, depth) .. string.format(" %s %d bits", kt, bits))
        elseif kt == "EC" and bits and bits < ec_min then
          add("tls.cert.weak-key", string.format("EC key of %d bits (minimum %d)", bits, ec_min),
            label(c, depth) .. string.format(" EC %d bits%s", bits, U.str(c.curve) and (" " .. c.curve) or ""))
        end
        local sig = tostring(c.sig_alg or ""):lower()
        if sig:find("sha1", 1, true) or sig:find("md5", 1, true) or sig:find("sha%-1") then
          add("tls.cert.sha1", string.format("the %s is signed with %s",
            depth == 0 and "certificate" or ("chain certificate at depth " .. depth), c.sig_alg),
            label(c, depth) .. " " .. tostring(c.sig_alg))
        end
      end
    end

    -- the name: libcrypto's X509_check_host as the prober ran it
    -- (verify.name_match); without that result the name is not judged here
    -- -- one host-name matcher, not a second one in Lua
    local name = verify and U.str(verify.name) or U.str(t.mx)
    local nm
    if verify and type(verify.name_match) == "boolean" then nm = verify.name_match end
    if nm == false and name and verify.cname_match == true and U.str(verify.cname) then
      -- TLS posture: it covers the CNAME-expanded name, not the MX name
      add("tls.cert.cname-only",
        string.format("the certificate covers %s, the name the MX %s is an alias of, but not the MX name "
          .. "as published: senders that verify check that (DANE may use both, RFC 7672 §2.2.3)",
          verify.cname, name), names_of(leaf))
    elseif nm == false and name then
      add("tls.cert.name-mismatch",
        string.format("the certificate does not cover the name %s", name), names_of(leaf))
    end

    if #out == 0 then
      local msg = string.format("%s, valid until %s (%s)",
        (verify and verify.ok == true) and "trusted" or "chain not verified",
        U.date(na), na and U.days((na - now) / 86400) or "?")
      if nm and name then msg = msg .. ", name " .. name .. " matches"
      elseif nm == nil then msg = msg .. ", name not checked" end
      out[1] = U.finding("tls.cert.ok", "pass", t, msg,
        label(leaf, 0) .. "; issuer " .. tostring(leaf.issuer or "?"))
    end
    return out
  end)
end

return {
  id = "tls.cert",
  title = "TLS certificate",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
