-- mxprobe.regime -- which sending regime applies to each MX host: the
-- verdict follows the sender (issue 8, part 4).
--
--   regime.of_mx(mx, facts)  -> { mx = name, regime = R, reason = text }
--   regime.of_facts(facts)   -> { <of_mx of each facts.mx entry>, ... } (MX order)
--   regime.mx_matches(pattern, host) -> bool (an MTA-STS "mx:" pattern)
--   regime.REGIMES           -> the names, strictest first
--
-- R is one of
--   "dane"             DANE applies (RFC 7672 §2.2): the TLSA RRset is
--                      DNSSEC-secure, the host's addresses are secure and a
--                      record is usable -- or the TLSA answer is bogus, which
--                      DANE senders treat as a failure. DANE takes precedence
--                      over MTA-STS (RFC 8461 §2).
--   "mta-sts-enforce"  an MTA-STS policy in mode enforce (facts.mta_sts.policy;
--                      the reason says whether it lists this MX)
--   "mta-sts-testing"  an MTA-STS policy in mode testing
--   "opportunistic"    neither (an MTA-STS policy in mode none included):
--                      senders deliver over any TLS, or in clear text
-- Pure: reads the facts only (checks.dane's state of the MX entry, and
-- facts.mta_sts.policy = { mode, mx = { pattern, ... } }, present only when
-- a policy applies per RFC 8461 -- the contract with the MTA-STS gatherer).

local dane = require "mxprobe.checks.dane"
local tlsa = require "mxprobe.gather.tlsa"

local M = {}

M.REGIMES = { "dane", "mta-sts-enforce", "mta-sts-testing", "opportunistic" }

local function lower(s) return (tostring(s):lower():gsub("%.$", "")) end

--- Does an MTA-STS mx pattern cover host (RFC 8461 §4.1)? Exact, or "*."
-- standing for exactly one leftmost label; anchored, case-insensitive.
function M.mx_matches(pattern, host)
  if type(pattern) ~= "string" or type(host) ~= "string" then return false end
  pattern, host = lower(pattern), lower(host)
  if pattern:sub(1, 2) == "*." then
    local rest = pattern:sub(3)
    if rest == "" then return false end
    local label = host:sub(1, #host - #rest - 1)
    return #host > #rest + 1 and host:sub(-#rest - 1) == "." .. rest and label ~= "" and not label:find(".", 1, true)
  end
  return pattern == host
end

local DANE_WHY = {
  absent = "no TLSA lookup", skipped = "no TLSA lookup (no address)", error = "the TLSA lookup failed",
  none = "no TLSA records", ["no-validation"] = "DANE not tested: the resolver does not validate",
  insecure = "TLSA records, but not DNSSEC-secure", unusable = "only unusable TLSA records",
  ["bogus-address"] = "the address records are bogus",
}

function M.of_mx(mx, facts)
  local name = type(mx) == "table" and type(mx.name) == "string" and mx.name or "?"
  local st = "absent"
  if type(mx) == "table" then st = dane.state(mx, facts) end
  local out = { mx = name }
  if st == "usable" then
    out.regime = "dane"
    out.reason = "DANE: DNSSEC-secure TLSA records at " .. tlsa.owner(mx.tlsa.base_domain or name)
    return out
  elseif st == "bogus" then
    out.regime = "dane"
    out.reason = "DANE: the TLSA answer is bogus (DANE senders defer mail)"
    return out
  end
  local mts = type(facts) == "table" and type(facts.mta_sts) == "table" and facts.mta_sts or nil
  local policy = mts and type(mts.policy) == "table" and mts.policy or nil
  local mode = policy and policy.mode
  if mode == "enforce" or mode == "testing" then
    local listed = false
    for _, p in ipairs(type(policy.mx) == "table" and policy.mx or {}) do
      if M.mx_matches(p, name) then listed = true break end
    end
    out.regime = mode == "enforce" and "mta-sts-enforce" or "mta-sts-testing"
    out.reason = ("MTA-STS policy in mode %s %s this MX"):format(mode, listed and "lists" or "does not list")
      .. " (" .. (DANE_WHY[st] or st) .. ")"
    return out
  end
  out.regime = "opportunistic"
  out.reason = (DANE_WHY[st] or st) .. (mode == "none" and "; MTA-STS policy in mode none" or "; no MTA-STS policy")
  return out
end

function M.of_facts(facts)
  local out = {}
  for _, mx in ipairs(type(facts) == "table" and type(facts.mx) == "table" and facts.mx or {}) do
    if type(mx) == "table" then out[#out + 1] = M.of_mx(mx, facts) end
  end
  return out
end

return M
