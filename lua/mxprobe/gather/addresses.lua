-- Gatherer addresses -- the A and AAAA records of one MX host.
--
-- What:   A and AAAA, asked at once; the CNAME chain if the name is an
--         alias; each distinct address once, at most max_addresses (a
--         hostile zone must not turn one probe into a port scan).
-- Scope:  mx (each MX host, or the host of a "host" query).
-- Writes: mx[i].dns = { status, cname, a = query, aaaa = query, addresses,
--         addresses_dropped }
-- Gives:  the addresses { address, family } (-> one target each).

local dns = require "mxprobe.dns"
local loop = require "mxprobe.loop"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "addresses", title = "Addresses of each MX host",
  scope = "mx", key = "dns", needs = { "mx" }, intrusive = false, produces = "targets",
}

M.schema = S.record({
  status = S.enum { "ok", "no-address", "nxdomain", "dns-error" },
  cname = S.list(S.str), a = T.dns_query, aaaa = T.dns_query,
  addresses = S.list(S.record({ address = S.str, family = S.enum { "ipv4", "ipv6" } }, { "address", "family" })),
  addresses_dropped = S.int,
}, { "status", "a", "aaaa", "addresses" })

local function copy_list(l)
  if not l then return nil end
  local out = {}
  for i, v in ipairs(l) do out[i] = v end
  return out
end

function M.run(mx, ctx)
  local deadline = ctx:dns_deadline()
  local a, aaaa
  loop.all {
    function() a = dns.query(ctx.resolver, mx.name, "A", deadline) end,
    function() aaaa = dns.query(ctx.resolver, mx.name, "AAAA", deadline) end,
  }
  -- a copy: each table appears once in the facts
  local out = { a = a, aaaa = aaaa, cname = copy_list(a.cname or aaaa.cname), addresses = {} }
  local seen, dropped, max = {}, 0, ctx.options.max_addresses
  for _, q in ipairs { a, aaaa } do
    for _, r in ipairs(q.records) do
      if not seen[r.address] then
        seen[r.address] = true
        if #out.addresses < max then
          out.addresses[#out.addresses + 1] = { address = r.address, family = q.type == "A" and "ipv4" or "ipv6" }
        else
          dropped = dropped + 1
        end
      end
    end
  end
  if dropped > 0 then out.addresses_dropped = dropped end
  if #out.addresses > 0 then
    out.status = "ok"
  elseif a.status == "nxdomain" or aaaa.status == "nxdomain" then
    out.status = "nxdomain"
  elseif (a.status == "ok" or a.status == "nodata") and (aaaa.status == "ok" or aaaa.status == "nodata") then
    out.status = "no-address"
  else
    out.status = "dns-error"
  end
  -- the orchestrator makes one new target of each: nothing is shared
  return out, out.addresses
end

return M
