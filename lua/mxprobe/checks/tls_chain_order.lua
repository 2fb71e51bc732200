-- Check tls.chain -- is the presented chain complete in count and in order?
--
-- What:   each certificate after the leaf should be the issuer of the one
--         before it (RFC 8446 §4.4.2: "each following certificate SHOULD
--         directly certify the one immediately preceding it"). OpenSSL
--         reorders, but other senders' TLS stacks fail on a shuffled chain.
--         Also: a chain longer than mxprobe keeps (MXP_X509_CHAIN_MAX).
-- Needs:  targets[i].smtp.certificates[*].{subject, issuer}, targets[i].smtp.tls.
--         {chain_presented, chain_truncated}.
-- Scope:  each target with a captured chain; silent otherwise.
-- Example finding:
--   { code = "tls.chain.order", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "certificate 2 of the chain does not issue certificate 1: the chain is out of order",
--     evidence = "1 issuer CN=R3,O=Let's Encrypt / 2 subject CN=ISRG Root X1" }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["tls.chain.order"] = { severity = "warning", weight = 10,
    fix = "Serve the chain leaf first, then each issuer in turn (Postfix: smtpd_tls_chain_files lists the key, the leaf, then the intermediates in order)." },
  ["tls.chain.too-long"] = { severity = "warning", weight = 10,
    fix = "Serve only the leaf and the intermediates up to (not including) the root: a few certificates, not dozens." },
}
-- luacheck: pop

local function run(facts)
  return U.each_target(facts, function(t)
    local s = U.smtp(t)
    local certs = U.list(s.certificates)
    local tls = U.tbl(s.tls) or {}
    local out = {}
    if tls.chain_truncated then
      out[#out + 1] = U.finding("tls.chain.too-long", "fail", t,
        ("the server presented %s certificates; only the first %d were kept")
          :format(tostring(tls.chain_presented or "?"), #certs))
    end
    for i = 2, #certs do
      local prev, cur = U.tbl(certs[i - 1]), U.tbl(certs[i])
      if prev and cur and U.str(prev.issuer) and prev.issuer ~= cur.subject then
        out[#out + 1] = U.finding("tls.chain.order", "fail", t,
          ("certificate %d of the chain does not issue certificate %d: the chain is out of order"):format(i, i - 1),
          ("%d issuer %s / %d subject %s"):format(i - 1, prev.issuer, i, tostring(cur.subject)))
        break
      end
    end
    return out
  end)
end

return {
  id = "tls.chain",
  title = "Certificate chain order and length",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
