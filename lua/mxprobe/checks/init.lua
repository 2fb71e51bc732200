-- mxprobe.checks -- the built-in checks, in the order they run and report.
--
-- Each entry is the module name of one check. A check module returns
--   { id = "tls.cert", title = "...", scope = "target" | "domain",
--     requires = { "targets" },           -- facts fields it reads
--     codes = {                           -- every code it can emit:
--       ["tls.cert.expired"] = { severity = "critical", weight = 40,
--                                fix = "Renew the certificate ...",
--                                alias = "old.code" },  -- optional
--       ... },
--     run = function(facts, ctx) return { finding, ... } end }
-- Every code starts with the check's id (`tls.cert.*`; the code equal to
-- the id is the check's own "not applicable"/"not tested" line). severity
-- and weight are the defaults a policy overrides; `alias` is the code's
-- name before 0.2, still accepted in policy files for one release.
-- `run` is pure: the clock is ctx.now (epoch seconds), thresholds are
-- ctx.policy.thresholds, helpers are ctx.util (mxprobe.checks.util). It
-- reads facts schema mxprobe.facts/2 (docs/facts.md): a target's dialog
-- under targets[i].smtp, an MX host's DNS answers under mx[i].dns.
-- A finding is { code, state = "pass"|"fail"|"na"|"untested",
-- target = { mx, address } or nil, message, evidence, remediation };
-- the judge adds severity, weight and (when absent) the fix from here.
--
-- A check added by a policy file may also declare its codes the 0.1 way:
-- `codes = { "a.b", ... }` with `severities`, `weights` and `remediation`
-- maps beside it; declaration() reads both.

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
  "mxprobe.checks.tls_versions",  -- TLS posture: versions accepted
  "mxprobe.checks.tls_cert",
  "mxprobe.checks.tls_chain_order",
  "mxprobe.checks.dane",            -- DANE for SMTP (RFC 7672)
  "mxprobe.checks.relay",
  "mxprobe.checks.consistency",
  -- MTA-STS and TLS-RPT (issue 8)
  "mxprobe.checks.mta_sts",
  "mxprobe.checks.tls_rpt",
  "mxprobe.checks.rdns",          -- TLS posture: reverse DNS of each target
  "mxprobe.checks.smtp_repeat",   -- repeat/greylist: --repeat, tries of one target
}

-- The judge's own codes, declared like a check's (the judge emits them; it
-- is listed here so that the policy's defaults and docs/codes.md come from
-- one registry).
M.judge = {
  id = "mxprobe",
  title = "The judge itself",
  scope = "domain",
  codes = {
    ["mxprobe.check-error"] = { severity = "warning", weight = 15,
      fix = "A bug in the check (or in a policy file's check): the evidence has the error. "
        .. "The other checks ran normally." },
    ["mxprobe.query-error"] = { severity = "warning", weight = 15,
      fix = "Check the name given to mxprobe: it is not a valid domain, host name or address literal." },
  },
}

-- the list of check tables, in order (a fresh list each call)
function M.list()
  local out = {}
  for i, name in ipairs(M.modules) do out[i] = require(name) end
  return out
end

-- the codes a check declares, sorted (either form of `codes`)
function M.codes(check)
  local out = {}
  local codes = type(check) == "table" and type(check.codes) == "table" and check.codes or {}
  for k, v in pairs(codes) do
    if type(k) == "string" then out[#out + 1] = k
    elseif type(v) == "string" then out[#out + 1] = v end
  end
  table.sort(out)
  return out
end

local function field(check, name, code)
  local t = check[name]
  if type(t) == "table" then return t[code] end
  return nil
end

-- what a check declares about one of its codes: { severity, weight, fix,
-- alias } (fields nil when not declared), or nil when it does not declare
-- the code at all
function M.declaration(check, code)
  if type(check) ~= "table" or type(check.codes) ~= "table" then return nil end
  local d = check.codes[code]
  if type(d) == "table" then
    return { severity = d.severity, weight = d.weight, fix = d.fix, alias = d.alias }
  end
  local listed = false
  for _, c in ipairs(check.codes) do if c == code then listed = true break end end
  if not listed then return nil end
  return { severity = field(check, "severities", code), weight = field(check, "weights", code),
    fix = field(check, "remediation", code) }
end

-- every built-in code -> its declaration, the judge's included
function M.declarations()
  local out = {}
  local all = M.list()
  all[#all + 1] = M.judge
  for _, c in ipairs(all) do
    for _, code in ipairs(M.codes(c)) do out[code] = M.declaration(c, code) end
  end
  return out
end

-- old code -> new code, for the built-in codes renamed in 0.2
function M.aliases()
  local out = {}
  for code, d in pairs(M.declarations()) do
    if type(d.alias) == "string" then out[d.alias] = code end
  end
  return out
end

return M
