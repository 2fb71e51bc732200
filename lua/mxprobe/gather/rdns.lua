-- Gatherer rdns -- the reverse DNS of one target address, forward-confirmed.
--
-- What:   the PTR records of the address (IPv4: d.c.b.a.in-addr.arpa;
--         IPv6: 32 nibbles under ip6.arpa), then the A (IPv4) or AAAA
--         (IPv6) records of each PTR name: the reverse DNS is
--         forward-confirmed when one of those names has the address
--         (FCrDNS, what many receivers check of a sending host; admins
--         compare it with the banner and EHLO names when something is off).
--         At most NAMES_MAX PTR names are followed (a hostile zone must not
--         turn one address into hundreds of queries). Nothing is judged
--         here (checks/rdns.lua).
-- Scope:  target; needs nothing but the address, so it runs beside the
--         SMTP dialog.
-- Writes: targets[i].rdns = { name, ptr = query, names, names_dropped,
--         forward = { {name, query, confirmed} }, confirmed }

local core = require "mxprobe.core"
local dns = require "mxprobe.dns"
local loop = require "mxprobe.loop"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "rdns", title = "Reverse DNS of each target address",
  scope = "target", key = "rdns", needs = {}, intrusive = false,
}

M.NAMES_MAX = 8   -- PTR names whose A/AAAA are asked

M.schema = S.record({
  name = S.str,
  ptr = T.dns_query,
  names = S.list(S.str),
  names_dropped = S.int,
  forward = S.list(S.record({ name = S.str, query = T.dns_query, confirmed = S.bool },
                            { "name", "query", "confirmed" })),
  confirmed = S.bool,
  error = S.str,
}, { "names", "forward", "confirmed" })

-- the 8 groups of an IPv6 address as 4-digit hex strings, or nil (pure)
local function ipv6_groups(addr)
  addr = addr:lower()
  -- an embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups
  local head, v4 = addr:match("^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if v4 then
    local a, b, c, d = v4:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
    addr = head .. ("%x:%x"):format(a * 256 + b, c * 256 + d)
  end
  local left, right = addr:match("^(.-)::(.*)$")
  local parts = {}
  local function split(s, out)
    if s == "" then return true end
    for g in (s .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then return false end
      out[#out + 1] = ("%04x"):format(tonumber(g, 16))
    end
    return true
  end
  if left then
    local l, r = {}, {}
    if not (split(left, l) and split(right, r)) or #l + #r > 7 then return nil end
    for _, g in ipairs(l) do parts[#parts + 1] = g end
    for _ = 1, 8 - #l - #r do parts[#parts + 1] = "0000" end
    for _, g in ipairs(r) do parts[#parts + 1] = g end
  else
    if not split(addr, parts) or #parts ~= 8 then return nil end
  end
  return parts
end

--- The reverse DNS name of an address (pure): "1.1.0.127.in-addr.arpa",
-- "1.0.0.0. ... .ip6.arpa"; nil for text that is not an address.
function M.reverse_name(address, family)
  family = family or (address:find(":", 1, true) and "ipv6" or "ipv4")
  if family == "ipv4" then
    local a, b, c, d = address:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then return nil end
    for _, x in ipairs { a, b, c, d } do
      if tonumber(x) > 255 then return nil end
    end
    return ("%d.%d.%d.%d.in-addr.arpa"):format(tonumber(d), tonumber(c), tonumber(b), tonumber(a))
  end
  local groups = ipv6_groups(address)
  if not groups then return nil end
  local hex = table.concat(groups)
  local out = {}
  for i = #hex, 1, -1 do out[#out + 1] = hex:sub(i, i) end
  return table.concat(out, ".") .. ".ip6.arpa"
end

-- the canonical text of an address (so "::1" and "0::1" compare equal)
local function canonical(a)
  local _, c = core.parse_address(a)
  return c or a
end

function M.run(t, ctx)
  local out = { names = {}, forward = {}, confirmed = false }
  local name = M.reverse_name(t.address, t.family)
  if not name then
    out.error = "not an address: " .. tostring(t.address)
    return out
  end
  out.name = name
  out.ptr = dns.query(ctx.resolver, name, "PTR", ctx:dns_deadline())
  local seen = {}
  for _, r in ipairs(out.ptr.records) do
    local n = type(r.target) == "string" and r.target:lower():gsub("%.$", "") or nil
    if n and n ~= "" and not seen[n] then
      seen[n] = true
      if #out.names < M.NAMES_MAX then
        out.names[#out.names + 1] = n
      else
        out.names_dropped = (out.names_dropped or 0) + 1
      end
    end
  end
  local qtype = t.family == "ipv6" and "AAAA" or "A"
  local want = canonical(t.address)
  local fns = {}
  for i, n in ipairs(out.names) do
    fns[i] = function()
      local q = dns.query(ctx.resolver, n, qtype, ctx:dns_deadline())
      local confirmed = false
      for _, r in ipairs(q.records) do
        if type(r.address) == "string" and canonical(r.address) == want then confirmed = true end
      end
      out.forward[i] = { name = n, query = q, confirmed = confirmed }
      if confirmed then out.confirmed = true end
    end
  end
  if #fns > 0 then loop.all(fns) end
  return out
end

------------------------------------------------------------------------
-- hostshare (issue 10 item 3): the reverse DNS of an address is asked once
-- per run (no DNS cache answers it twice: mxprobe.dns has none) and
-- copied, with the time it was taken, to the other queries whose targets
-- have that address. Within one query nothing changes (each target asks).
local hostshare = require "mxprobe.hostshare"

M.schema = S.extend(M.schema, {
  shared = S.record({ at = S.num, host_dialog = S.bool }, { "at", "host_dialog" }),
})

local lookup = M.run

function M.run(t, ctx, env)
  local facts = env and env.facts
  local domain = facts and facts.kind == "domain" and facts.domain
  if ctx.options.share_hosts == false or not domain then return lookup(t, ctx, env) end
  local reg, now = hostshare.registry(ctx), core.time()
  local key = "rdns|" .. tostring(t.address)
  local e = hostshare.get(reg, key, now)
  if e and e.owner == facts then return lookup(t, ctx, env) end
  if not e then
    e = hostshare.open(reg, key, now)
    e.owner = facts
  end
  local v, at, ran = hostshare.once(e, M.id, ctx:dns_deadline() + ctx.options.dns_timeout * 1000,
    function() return lookup(t, ctx, env) end, now)
  if ran then
    hostshare.finish(e, true)
    return v
  end
  if v == nil then return lookup(t, ctx, env) end
  v.shared = { at = at, host_dialog = false }
  return v
end

return M
