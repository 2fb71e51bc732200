-- Gatherer addresses -- the A and AAAA records of one MX host.
--
-- What:   A and AAAA, asked at once; the CNAME chain if the name is an
--         alias; each distinct address once, at most max_addresses (a
--         hostile zone must not turn one probe into a port scan).
--         Each address is classified (core.address_class) and an
--         IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address,
--         before the cap and the dedup. Addresses that are never a mail
--         server's (unspecified, multicast, broadcast, reserved) are not
--         probed but listed in `skipped` (reason "unusable"); with
--         --public-only (options.public_only) neither are loopback,
--         private, link-local and documentation addresses (reason
--         "not-public"). Otherwise those are probed and carry their class.
-- Scope:  mx (each MX host, or the host of a "host" query).
-- Writes: mx[i].dns = { status, cname, a = query, aaaa = query, addresses,
--         addresses_dropped, skipped }
-- Gives:  the addresses { address, family } (-> one target each).

local core = require "mxprobe.core"
local dns = require "mxprobe.dns"
local loop = require "mxprobe.loop"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "addresses", title = "Addresses of each MX host",
  scope = "mx", key = "dns", needs = { "mx" }, intrusive = false, produces = "targets",
}

-- robustness (issue 12): the class of each address, and what was skipped
M.CLASSES = { "unspecified", "loopback", "private", "link-local", "multicast", "broadcast", "reserved",
  "documentation", "global" }
M.UNUSABLE = { unspecified = true, multicast = true, broadcast = true, reserved = true }
M.NOT_PUBLIC = { loopback = true, private = true, ["link-local"] = true, documentation = true }

M.schema = S.record({
  status = S.enum { "ok", "no-address", "nxdomain", "dns-error" },
  cname = S.list(S.str), a = T.dns_query, aaaa = T.dns_query,
  addresses = S.list(S.record({ address = S.str, family = S.enum { "ipv4", "ipv6" }, class = S.enum(M.CLASSES) },
    { "address", "family" })),
  addresses_dropped = S.int,
  skipped = S.list(S.record({
    address = S.str, family = S.enum { "ipv4", "ipv6" }, class = S.enum(M.CLASSES),
    reason = S.enum { "unusable", "not-public" },
  }, { "address", "family", "class", "reason" })),
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
  local skipped = {}
  for _, q in ipairs { a, aaaa } do
    for _, r in ipairs(q.records) do
      -- the canonical form first: ::ffff:192.0.2.1 is 192.0.2.1
      local class, family, address = core.address_class(r.address)
      if class and not seen[address] then
        seen[address] = true
        local reason = M.UNUSABLE[class] and "unusable"
          or (ctx.options.public_only and M.NOT_PUBLIC[class] and "not-public") or nil
        if reason then
          if #skipped < max then
            skipped[#skipped + 1] = { address = address, family = family, class = class, reason = reason }
          else
            dropped = dropped + 1
          end
        elseif #out.addresses < max then
          out.addresses[#out.addresses + 1] = { address = address, family = family, class = class }
        else
          dropped = dropped + 1
        end
      end
    end
  end
  if dropped > 0 then out.addresses_dropped = dropped end
  if #skipped > 0 then out.skipped = skipped end
  if #out.addresses > 0 or #skipped > 0 then
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
