-- Check rdns -- the reverse DNS of each target address.
--
-- What:   the address has a PTR record (rdns.missing when the reverse
--         zone answers NXDOMAIN or no data); one of the PTR names has the
--         address among its A/AAAA records, i.e. the reverse DNS is
--         forward-confirmed (rdns.unconfirmed otherwise); one PTR name
--         only (rdns.several: many receivers look at one); and the names a
--         sender sees agree -- the PTR name, the host name of the banner,
--         the name in the EHLO reply and the MX name (rdns.names-differ,
--         info: all four shown). Many receivers judge a host by its
--         forward-confirmed reverse DNS, and a mail host usually sends too.
--         A PTR lookup that failed (timeout, SERVFAIL, refused) is "could
--         not test" (info).
-- Needs:  targets[i].rdns.{name, ptr.{status, error}, names, forward[j].
--         {name, confirmed, query.records}, confirmed},
--         targets[i].smtp.banner.reply, targets[i].smtp.ehlo.reply,
--         targets[i].mx.
-- Scope:  each target.
-- Example finding:
--   { code = "rdns.unconfirmed", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "PTR mail.example.org does not resolve back to 192.0.2.10",
--     evidence = "10.2.0.192.in-addr.arpa PTR mail.example.org; mail.example.org A 192.0.2.99" }

local U = require "mxprobe.checks.util"

-- luacheck: push no max line length
local CODES = {
  ["rdns"] = { severity = "info", weight = 0 },
  ["rdns.ok"] = { severity = "ok", weight = 0 },
  ["rdns.missing"] = { severity = "warning", weight = 5,
    fix = "Ask whoever holds the address block (your provider) to publish a PTR record for the address, naming the mail host (its MX name or banner name), whose A/AAAA record has the address." },
  ["rdns.unconfirmed"] = { severity = "warning", weight = 5,
    fix = "Make the PTR name resolve back to the address (forward-confirmed reverse DNS): add the address to the A/AAAA records of the PTR name, or change the PTR to a name that has it." },
  ["rdns.several"] = { severity = "info", weight = 0,
    fix = "Publish one PTR record per address: receivers that check reverse DNS look at one name, often the first they get." },
  ["rdns.names-differ"] = { severity = "info", weight = 0,
    fix = "Nothing is broken by this alone; aligning the PTR name, the banner host name (Postfix: myhostname) and the EHLO name with the MX name makes the host easier to recognise and to trust." },
}
-- luacheck: pop

-- the host name a reply starts with ("mx1.example.org ESMTP Postfix" ->
-- "mx1.example.org"), lower case, or nil
local function host_of(reply)
  reply = U.tbl(reply)
  local first = reply and U.list(reply.lines)[1]
  if type(first) ~= "string" then return nil end
  local h = first:match("^%s*([%w][%w%-%.]*%.[%w%-%.]*[%w])")
  return h and h:lower():gsub("%.$", "") or nil
end

local function run(facts)
  return U.each_target(facts, function(t)
    local r = U.tbl(t.rdns)
    if not r then
      return { U.finding("rdns", "na", t, "reverse DNS not gathered (facts without rdns)") }
    end
    if U.str(r.error) then
      return { U.finding("rdns", "untested", t, "not tested: " .. r.error) }
    end
    local ptr = U.tbl(r.ptr) or {}
    local qname = U.str(r.name) or U.str(ptr.name) or "?"
    if ptr.status == "nxdomain" or ptr.status == "nodata" then
      return { U.finding("rdns.missing", "fail", t,
        "no PTR record for " .. tostring(t.address), qname .. ": " .. tostring(ptr.status)) }
    end
    if ptr.status ~= "ok" then
      return { U.finding("rdns", "untested", t,
        "not tested: the PTR lookup failed (" .. tostring(ptr.status) .. ")", U.str(ptr.error)) }
    end
    local names = {}
    for _, n in ipairs(U.list(r.names)) do
      if type(n) == "string" then names[#names + 1] = n end
    end
    local fwd = {}
    for _, f in ipairs(U.list(r.forward)) do
      if type(f) == "table" then
        local addrs = {}
        for _, rec in ipairs(U.list(U.tbl(f.query) and f.query.records)) do
          if type(rec) == "table" and U.str(rec.address) then addrs[#addrs + 1] = rec.address end
        end
        local q = U.tbl(f.query)
        fwd[#fwd + 1] = string.format("%s %s %s", tostring(f.name), q and tostring(q.type) or "A",
          #addrs > 0 and table.concat(addrs, ", ") or ("(" .. tostring(q and q.status or "?") .. ")"))
      end
    end
    local evidence = qname .. " PTR " .. table.concat(names, ", ")
      .. (#fwd > 0 and ("; " .. table.concat(fwd, "; ")) or "")
    local out = {}
    if r.confirmed == true then
      out[#out + 1] = U.finding("rdns.ok", "pass", t,
        string.format("PTR %s, forward-confirmed", table.concat(names, ", ")), evidence)
    else
      out[#out + 1] = U.finding("rdns.unconfirmed", "fail", t,
        string.format("PTR %s does not resolve back to %s (not forward-confirmed)",
          table.concat(names, ", "), tostring(t.address)), evidence)
    end
    if #names + (U.num(r.names_dropped) or 0) > 1 then
      out[#out + 1] = U.finding("rdns.several", "fail", t,
        string.format("%d PTR records for %s: %s", #names + (U.num(r.names_dropped) or 0),
          tostring(t.address), table.concat(names, ", ")), evidence)
    end
    -- the names a sender sees: do they agree?
    local s = U.smtp(t)
    local shown = {
      { "PTR", names[1] },
      { "banner", host_of(U.tbl(s.banner) and s.banner.reply) },
      { "EHLO", host_of(U.tbl(s.ehlo) and s.ehlo.reply) },
      { "MX", U.str(t.mx) and t.mx:lower() or nil },
    }
    local distinct, n, parts = {}, 0, {}
    for _, p in ipairs(shown) do
      if p[2] then
        if not distinct[p[2]] then distinct[p[2]] = true n = n + 1 end
      end
      parts[#parts + 1] = p[1] .. ": " .. (p[2] or "-")
    end
    if n > 1 then
      out[#out + 1] = U.finding("rdns.names-differ", "fail", t,
        "the PTR, banner, EHLO and MX names differ: " .. table.concat(parts, ", "),
        table.concat(parts, "; "))
    end
    return out
  end)
end

return {
  id = "rdns",
  title = "Reverse DNS",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
