-- Check dns.mx -- the MX set of the domain and the addresses of each host.
--
-- What:   does the domain exist, does it publish MX records (or a null MX,
--         RFC 7505, or rely on the implicit MX of RFC 5321 §5.1), does every
--         MX host resolve to an address without a CNAME in the way (RFC 2181
--         §10.3), is there any redundancy (more than one host or address).
-- Needs:  facts.kind, facts.dns.mx, facts.dns.null_mx, facts.dns.implicit_mx,
--         facts.mx[i].{name, preference, implicit}, facts.mx[i].dns.{status,
--         cname, a, aaaa, addresses} (the implicit MX host is listed too).
-- Scope:  the domain (target nil) and each MX host (target = {mx = name}).
-- Example finding:
--   { code = "dns.mx.cname", severity = "warning", state = "fail",
--     target = { mx = "mail.example.org" },
--     message = "MX host mail.example.org is an alias (CNAME to host7.example.net)",
--     evidence = "mail.example.org CNAME host7.example.net",
--     remediation = "Point the MX record at the canonical name host7.example.net." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["dns.mx"] = { severity = "info", weight = 0 },
  ["dns.mx.ok"] = { severity = "ok", weight = 0 },
  ["dns.mx.nxdomain"] = { severity = "critical", weight = 100, alias = "dns.nxdomain",
    fix = "Register the domain or fix its delegation; no mail can be delivered to a name that does not exist." },
  ["dns.mx.servfail"] = { severity = "critical", weight = 100, alias = "dns.servfail",
    fix = "Check the domain's authoritative servers and its DNSSEC chain (expired signatures, a DS without DNSKEY): a validating resolver cannot get an answer." },
  ["dns.mx.error"] = { severity = "warning", weight = 15, alias = "dns.error",
    fix = "Retry; if it persists, check the resolver mxprobe uses (--resolver) and the domain's name servers." },
  ["dns.mx.none"] = { severity = "critical", weight = 100,
    fix = "Publish MX records for the domain, or a null MX (\"MX 0 .\") if it does not receive mail." },
  ["dns.mx.null"] = { severity = "info", weight = 0 },
  ["dns.mx.implicit"] = { severity = "warning", weight = 15,
    fix = "Publish an explicit MX record; relying on the A/AAAA fallback of RFC 5321 §5.1 is fragile." },
  ["dns.mx.cname"] = { severity = "warning", weight = 10,
    fix = "Point the MX record at the canonical host name, not at an alias (RFC 2181 §10.3, RFC 5321 §5.1)." },
  ["dns.mx.no-address"] = { severity = "warning", weight = 15,
    fix = "Give the MX host an A and/or AAAA record, or remove the MX record." },
  ["dns.mx.dangling"] = { severity = "warning", weight = 20,
    fix = "Remove the MX record or create the host it names; a dangling MX can be taken over by whoever registers that name." },
  ["dns.mx.unusable"] = { severity = "critical", weight = 100,
    fix = "Fix the MX hosts' address records: as published, no sender can reach any MX." },
  ["dns.mx.single"] = { severity = "info", weight = 5,
    fix = "Add a second MX host (or a second address) so that mail is not deferred when the only one is down." },
  ["dns.mx.same-address"] = { severity = "warning", weight = 10,
    fix = "Give the MX hosts distinct addresses; several MX names on one address add no redundancy." },
  -- robustness (issue 12): addresses from DNS that are not probed or not public, address-shaped names
  ["dns.mx.address-name"] = { severity = "warning", weight = 20,
    fix = "Point the MX record at a host name that has A/AAAA records; an MX exchange must be a host name, never an address (RFC 5321 §5.1, RFC 7505 §3)." },
  ["dns.mx.address-unusable"] = { severity = "warning", weight = 20,
    fix = "Remove the address record: an unspecified, multicast, broadcast or reserved address is never a mail server's; mxprobe does not connect to it." },
  ["dns.mx.address-internal"] = { severity = "info", weight = 0,
    fix = "Publish public addresses for a public MX host; a loopback, private, link-local or documentation address is unreachable from the Internet (fine in a lab or an internal zone)." },
  ["dns.mx.address-refused"] = { severity = "warning", weight = 0,
    fix = "Not probed because of --public-only: the MX host resolves to an address that is not public. Probe without --public-only to test it." },
  ["dns.mx.invalid-name"] = { severity = "warning", weight = 20,
    fix = "Point the MX record at a host name of letters, digits and hyphens (RFC 1123 §2.1, RFC 5321 §2.3.5); many senders refuse other names." },
}
-- luacheck: pop

-- a host name in DNS presentation form: letters, digits, hyphens, dots;
-- anything else (here as ldns escapes: \027, \., \000) is not one
local function valid_hostname(name)
  if #name > 253 or not name:match("^[%w_][%w%-_%.]*$") then return false end
  for label in (name .. "."):gmatch("([^.]*)%.") do
    if #label == 0 or #label > 63 or label:sub(1, 1) == "-" or label:sub(-1) == "-" then return false end
  end
  return true
end

-- an MX exchange written as an address: all-digit last label (IPv4 and
-- no TLD is all digits, RFC 1123 §2.1) or hex digits and colons (IPv6)
local function address_shaped(name)
  return name:match("^[%d.]+$") ~= nil and name:match("%d$") ~= nil
    or (name:find(":", 1, true) ~= nil and name:match("^[%x:.]+$") ~= nil)
end

-- "a loopback", "an unspecified"
local function a_class(class)
  class = tostring(class)
  return (class:match("^[aeiou]") and "an " or "a ") .. class
end

-- robustness (issue 12): what the addresses gatherer classified or skipped
local function address_findings(mx, out)
  local name = U.str(mx.name) or "?"
  local d = U.mx_dns(mx)
  for _, s in ipairs(U.list(d.skipped)) do
    if type(s) == "table" and U.str(s.address) then
      local refa = { mx = name, address = s.address }
      if s.reason == "not-public" then
        out[#out + 1] = {
          code = "dns.mx.address-refused", state = "untested", target = refa,
          message = string.format("MX host %s resolves to %s, %s address: not probed (--public-only)",
            name, s.address, a_class(s.class)),
          evidence = name .. " -> " .. s.address .. " (" .. tostring(s.class) .. ")",
        }
      else
        out[#out + 1] = {
          code = "dns.mx.address-unusable", state = "fail", target = refa,
          message = string.format("MX host %s resolves to %s, %s address: not a mail server's, not probed",
            name, s.address, a_class(s.class)),
          evidence = name .. " -> " .. s.address .. " (" .. tostring(s.class) .. ")",
        }
      end
    end
  end
  for _, a in ipairs(U.list(d.addresses)) do
    if type(a) == "table" and U.str(a.address) and U.str(a.class) and a.class ~= "global" then
      out[#out + 1] = {
        code = "dns.mx.address-internal", state = "na", target = { mx = name, address = a.address },
        message = string.format("MX host %s resolves to %s, %s address (not reachable from the Internet)",
          name, a.address, a_class(a.class)),
        evidence = name .. " -> " .. a.address .. " (" .. a.class .. ")",
      }
    end
  end
end

-- the addresses of an MX host that count as published (probed, or refused
-- only by --public-only)
local function published(mx)
  local n = #U.list(U.mx_dns(mx).addresses)
  for _, s in ipairs(U.list(U.mx_dns(mx).skipped)) do
    if type(s) == "table" and s.reason == "not-public" then n = n + 1 end
  end
  return n
end

local function host_findings(mx, out)
  local name = U.str(mx.name) or "?"
  local ref = { mx = name }
  local d = U.mx_dns(mx)
  local status = d.status
  if address_shaped(name) then
    out[#out + 1] = {
      code = "dns.mx.address-name", state = "fail", target = ref,
      message = string.format("MX host %s is an address, not a host name", name),
      evidence = "MX " .. name,
    }
  elseif not valid_hostname(name) then
    out[#out + 1] = {
      code = "dns.mx.invalid-name", state = "fail", target = ref,
      message = string.format("MX host %s is not a valid host name", name),
      evidence = "MX " .. name,
    }
  end
  local cname = U.tbl(d.cname)
  if cname and #cname > 0 then
    local chain = {}
    for _, c in ipairs(cname) do chain[#chain + 1] = tostring(c) end
    out[#out + 1] = {
      code = "dns.mx.cname", state = "fail", target = ref,
      message = string.format("MX host %s is an alias (CNAME to %s)", name, chain[#chain]),
      evidence = name .. " CNAME " .. table.concat(chain, " -> "),
    }
  end
  if status == "nxdomain" then
    out[#out + 1] = {
      code = "dns.mx.dangling", state = "fail", target = ref,
      message = string.format("MX host %s does not exist (NXDOMAIN)", name),
      evidence = "A/AAAA " .. name .. ": NXDOMAIN",
    }
  elseif status == "no-address" then
    out[#out + 1] = {
      code = "dns.mx.no-address", state = "fail", target = ref,
      message = string.format("MX host %s has no A or AAAA record", name),
      evidence = "A/AAAA " .. name .. ": no records",
    }
  elseif status == "dns-error" then
    local parts = {}
    for _, q in ipairs({ U.tbl(d.a), U.tbl(d.aaaa) }) do
      parts[#parts + 1] = string.format("%s %s: %s", tostring(q.type), tostring(q.name),
        tostring(q.error or q.status))
    end
    out[#out + 1] = {
      code = "dns.mx.error", state = "untested", target = ref,
      message = string.format("the addresses of MX host %s could not be looked up", name),
      evidence = table.concat(parts, "; "),
    }
  end
end

local function run(facts)
  local out = {}
  local kind = facts.kind
  if kind == "address" then
    return { { code = "dns.mx", state = "na", message = "an address was probed: no MX lookup" } }
  end
  local dns = U.tbl(facts.dns) or {}
  local hosts = {}
  for _, mx in ipairs(U.list(facts.mx)) do
    if type(mx) == "table" then hosts[#hosts + 1] = mx end
  end

  if kind == "domain" then
    local q = U.tbl(dns.mx)
    local domain = U.str(facts.domain) or "?"
    if dns.null_mx == true then
      return { {
        code = "dns.mx.null", state = "na",
        message = domain .. " publishes a null MX (RFC 7505): it accepts no mail",
        evidence = "MX 0 .",
      } }
    end
    if not q then
      return { { code = "dns.mx.error", state = "untested", message = "no MX query was made" } }
    end
    if q.status == "nxdomain" then
      return { {
        code = "dns.mx.nxdomain", state = "fail",
        message = domain .. " does not exist (NXDOMAIN)",
        evidence = "MX " .. domain .. ": " .. tostring(q.rcode or "NXDOMAIN"),
      } }
    elseif q.status == "servfail" then
      return { {
        code = "dns.mx.servfail", state = "fail",
        message = "the resolver answered SERVFAIL for the MX of " .. domain,
        evidence = "MX " .. domain .. ": " .. tostring(q.rcode or "SERVFAIL")
          .. (U.str(q.error) and (" (" .. q.error .. ")") or ""),
      } }
    elseif q.status ~= "ok" and q.status ~= "nodata" then
      return { {
        code = "dns.mx.error", state = "untested",
        message = "the MX query for " .. domain .. " failed (" .. tostring(q.status) .. ")",
        evidence = U.str(q.error) or ("MX " .. domain .. ": " .. tostring(q.status)),
      } }
    end
    if dns.implicit_mx == true then
      -- facts v2 list the implicit MX host (the domain itself) whatever its
      -- address lookups gave: without an address there is no MX at all
      local h = hosts[1]
      for _, mx in ipairs(hosts) do if mx.implicit == true then h = mx break end end
      if h and published(h) == 0 and #U.list(U.mx_dns(h).skipped) == 0 then
        if U.mx_dns(h).status == "dns-error" then
          host_findings(h, out)
          return out
        end
        return { {
          code = "dns.mx.none", state = "fail",
          message = domain .. " has no MX record and no address: it cannot receive mail",
          evidence = "MX " .. domain .. ": " .. tostring(q.status),
        } }
      end
      out[#out + 1] = {
        code = "dns.mx.implicit", state = "fail",
        message = domain .. " has no MX record; senders fall back to its own address (implicit MX)",
        evidence = "MX " .. domain .. ": " .. tostring(q.status),
      }
    elseif #hosts == 0 then
      return { {
        code = "dns.mx.none", state = "fail",
        message = domain .. " has no MX record and no address: it cannot receive mail",
        evidence = "MX " .. domain .. ": " .. tostring(q.status),
      } }
    end
  end

  for _, mx in ipairs(hosts) do host_findings(mx, out) end

  -- usable hosts and their addresses
  local usable, errors, addrs, nhosts = 0, 0, {}, 0
  for _, mx in ipairs(hosts) do
    nhosts = nhosts + 1
    local n = published(mx)
    for _, a in ipairs(U.list(U.mx_dns(mx).addresses)) do
      if type(a) == "table" and U.str(a.address) then addrs[a.address] = true end
    end
    for _, a in ipairs(U.list(U.mx_dns(mx).skipped)) do
      if type(a) == "table" and a.reason == "not-public" and U.str(a.address) then addrs[a.address] = true end
    end
    if n > 0 then usable = usable + 1 end
    if U.mx_dns(mx).status == "dns-error" then errors = errors + 1 end
  end
  local naddr = 0
  for _ in pairs(addrs) do naddr = naddr + 1 end

  if kind == "domain" and nhosts > 0 and usable == 0 then
    if errors > 0 then
      out[#out + 1] = {
        code = "dns.mx.error", state = "untested",
        message = "no MX host address could be resolved",
      }
    else
      out[#out + 1] = {
        code = "dns.mx.unusable", state = "fail",
        message = "none of the " .. nhosts .. " MX hosts has an address: mail cannot be delivered",
      }
    end
  elseif kind == "domain" and usable > 0 then
    if nhosts == 1 and naddr == 1 and not dns.implicit_mx then
      out[#out + 1] = {
        code = "dns.mx.single", state = "fail",
        message = "only one MX host (" .. tostring(hosts[1].name) .. ") with one address: no fallback",
        evidence = tostring(hosts[1].name) .. " -> " .. next(addrs),
      }
    elseif usable > 1 and naddr == 1 then
      local names = {}
      for _, mx in ipairs(hosts) do
        if #U.list(U.mx_dns(mx).addresses) > 0 then names[#names + 1] = tostring(mx.name) end
      end
      out[#out + 1] = {
        code = "dns.mx.same-address", state = "fail",
        message = "all " .. usable .. " MX hosts with an address share one (" .. next(addrs) .. "): no real redundancy",
        evidence = table.concat(names, ", ") .. " -> " .. next(addrs),
      }
    end
    local fails = 0
    for _, f in ipairs(out) do if f.state == "fail" then fails = fails + 1 end end
    if fails == 0 then
      out[#out + 1] = {
        code = "dns.mx.ok", state = "pass",
        message = string.format("%d MX host%s, %d address%s", nhosts, nhosts == 1 and "" or "s",
          naddr, naddr == 1 and "" or "es"),
      }
    end
  end
  for _, mx in ipairs(hosts) do address_findings(mx, out) end
  return out
end

return {
  id = "dns.mx",
  title = "MX records and MX host addresses",
  scope = "domain",
  requires = { "dns" },
  codes = CODES,
  run = run,
}
