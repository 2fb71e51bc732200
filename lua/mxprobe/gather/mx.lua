-- Gatherer mx -- the MX records of a domain, and the MX hosts to probe.
--
-- What:   one MX query; the plan it implies: hosts in preference order
--         (ties by name, so runs are reproducible), a host listed twice
--         probed once at its best preference, at most max_mx hosts; a null
--         MX (RFC 7505: one record, exchange ".") means no mail; no MX at
--         all (NODATA) means the domain itself is the implicit MX (RFC 5321
--         §5.1).
-- Scope:  domain (queries of kind "domain" only).
-- Writes: facts.dns = { resolver, mx = query, null_mx, implicit_mx, mx_dropped }
-- Gives:  the MX hosts { name, preference, implicit } (-> facts.mx).

local dns = require "mxprobe.dns"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "mx", title = "MX records and the MX plan",
  scope = "domain", key = "dns", needs = {}, intrusive = false, produces = "mx",
}

M.schema = S.record({
  resolver = S.str, mx = T.dns_query, null_mx = S.bool, implicit_mx = S.bool, mx_dropped = S.int,
}, { "resolver", "mx", "null_mx", "implicit_mx" })

--- The MX plan from an MX query record (pure: unit-tested on fixtures).
-- Returns { null_mx = bool, implicit = bool, hosts = {{name, preference}...} }.
function M.plan(q)
  local plan = { null_mx = false, implicit = false, hosts = {} }
  if q.status == "nodata" then
    plan.implicit = true
    return plan
  end
  if q.status ~= "ok" then return plan end
  local recs = {}
  for i, r in ipairs(q.records) do recs[i] = r end
  table.sort(recs, function(x, y)
    if x.preference ~= y.preference then return x.preference < y.preference end
    return x.exchange < y.exchange
  end)
  if #recs == 1 and recs[1].exchange == "." then
    plan.null_mx = true
    return plan
  end
  local seen = {}
  for _, r in ipairs(recs) do
    -- "." among other MX is meaningless (RFC 7505 §3): skip it
    if r.exchange ~= "." and not seen[r.exchange] then
      seen[r.exchange] = true
      plan.hosts[#plan.hosts + 1] = { name = r.exchange, preference = r.preference }
    end
  end
  return plan
end

function M.run(facts, ctx)
  local q = dns.query(ctx.resolver, facts.domain, "MX", ctx:dns_deadline())
  local plan = M.plan(q)
  local out = {
    resolver = dns.resolver_string(ctx.resolver), mx = q,
    null_mx = plan.null_mx, implicit_mx = plan.implicit,
  }
  if plan.implicit then
    return out, { { name = facts.domain, preference = 0, implicit = true } }
  end
  local hosts, max = {}, ctx.options.max_mx
  for i, h in ipairs(plan.hosts) do
    if i > max then
      out.mx_dropped = #plan.hosts - max
      break
    end
    hosts[i] = h
  end
  return out, hosts
end

return M
