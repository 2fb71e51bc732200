-- mxprobe.checks -- the built-in checks, in the order they run and report.
--
-- Each entry is the module name of one check. A check module returns
--   { id = "tls.cert", title = "...", scope = "target" | "domain",
--     requires = { "targets" },           -- facts fields it reads
--     codes = { "tls.cert.expired", ... }, -- every code it can emit
--     remediation = { [code] = "..." },   -- default remediation per code
--     run = function(facts, ctx) return { finding, ... } end }
-- `run` is pure: the clock is ctx.now (epoch seconds), thresholds are
-- ctx.policy.thresholds, helpers are ctx.util (mxprobe.checks.util).
-- A finding is { code, state = "pass"|"fail"|"na"|"untested",
-- target = { mx, address } or nil, message, evidence, remediation };
-- the judge adds severity and weight from the policy.

local M = {}

M.modules = {
  "mxprobe.checks.dns_mx",
  "mxprobe.checks.tcp",
  "mxprobe.checks.smtp_banner",
  "mxprobe.checks.smtp_ehlo",
  "mxprobe.checks.smtp_extensions",
  "mxprobe.checks.smtp_throttle",
  "mxprobe.checks.smtp_timeout",
  "mxprobe.checks.smtp_unsolicited",
  "mxprobe.checks.tls_starttls",
  "mxprobe.checks.tls_session",
  "mxprobe.checks.tls_cert",
  "mxprobe.checks.tls_chain_order",
  "mxprobe.checks.relay",
  "mxprobe.checks.consistency",
}

-- the list of check tables, in order (a fresh list each call)
function M.list()
  local out = {}
  for i, name in ipairs(M.modules) do out[i] = require(name) end
  return out
end

return M
