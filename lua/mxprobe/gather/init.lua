-- mxprobe.gather -- the gatherers, in the order they run within a scope.
--
-- Each entry is the module name of one gatherer. A gatherer module returns
--   { id = "smtp", title = "...",
--     scope = "domain" | "mx" | "target",   -- what one run of it is about
--     key = "smtp",                        -- the one facts field it writes
--     needs = { "addresses" },             -- gatherers that must run first
--     intrusive = false | "why",           -- does more than a sender would
--     produces = "mx" | "targets" | nil,   -- the next scope's entries
--     run = function(subject, ctx, env) return value [, children] end }
-- The orchestrator (mxprobe.probe) calls run once per subject of its scope
-- -- the facts table, one mx[i] or one targets[i] -- stores the value as
-- subject[key], and turns the children of a producing gatherer into the
-- next scope's entries. `ctx` is the run context (mxprobe.run), `env` is
-- { facts = the query's facts, mx = the MX entry of a target }. A gatherer
-- records what happened: network failures are facts, not errors.
-- Adding one: a new file here, one line below, a section in docs/facts.md.

local M = {}

M.modules = {
  "mxprobe.gather.mx",          -- domain: MX records -> the MX hosts
  "mxprobe.gather.tls_rpt",     -- domain: the TLS-RPT record (RFC 8460)
  -- MTA-STS (issue 8): the _mta-sts TXT record and the HTTPS policy
  "mxprobe.gather.mta_sts",     -- domain: MTA-STS record and policy (RFC 8461)
  "mxprobe.gather.addresses",   -- mx: A/AAAA of each MX host -> the targets
  "mxprobe.gather.tlsa",        -- mx: DANE TLSA records of each MX host (RFC 7672)
  "mxprobe.gather.smtp",        -- target: the SMTP dialog, STARTTLS, TLS, relay test
  "mxprobe.gather.dane",        -- target: DANE, the TLSA records against the chain
  -- TLS posture: after the main dialog, one short dialog per TLS version;
  -- and the reverse DNS of each target address
  "mxprobe.gather.tls_versions", -- target: TLS 1.0 ... 1.3 accepted, one dialog each
  "mxprobe.gather.rdns",        -- target: PTR of the address, forward-confirmed
}

M.SCOPES = { "domain", "mx", "target" }

-- the gatherer tables, in order (a fresh list each call)
function M.list()
  local out = {}
  for i, name in ipairs(M.modules) do out[i] = require(name) end
  return out
end

-- the gatherers of one scope, in order
function M.of_scope(scope, list)
  local out = {}
  for _, g in ipairs(list or M.list()) do
    if g.scope == scope then out[#out + 1] = g end
  end
  return out
end

return M
