-- Gatherer tlsa -- the DANE TLSA records of one MX host (RFC 7672 §2.2).
--
-- What:   the TLSA query _25._tcp.<host> through the validating resolver,
--         its AD bit (the DNSSEC status) and its records (usage, selector,
--         mtype, data as hex), at most RECORDS_MAX kept. When the host's
--         address answer was a CNAME chain, the fully expanded name is
--         asked first and the original name only when the expanded one has
--         no TLSA records (a NODATA or NXDOMAIN answer): RFC 7672 §2.2.2.
--         The name whose answer holds the records is the TLSA base domain;
--         the records stay in that query record (queries[i].records, cut to
--         RECORDS_MAX, the rest counted in records_dropped).
--         A SERVFAIL (the TLSA query, or the host's A/AAAA query made by the
--         addresses gatherer) is asked once more with checking disabled
--         (CD): when that answer comes, the resolver refused the data for
--         its signatures -- bogus -- and this is the evidence.
--         `servername` is the SNI a DANE client sends: the TLSA base domain
--         when DANE applies (records, a secure TLSA answer and secure
--         address answers), absent otherwise. Nothing else is judged here.
-- Scope:  mx (each MX host); needs the addresses gatherer (mx[i].dns).
--         Not asked when the host has no address for another reason than a
--         SERVFAIL (no target would be probed).
-- Writes: mx[i].tlsa = { queries, base_domain, servername,
--         records_dropped, cd_queries, skipped } (docs/facts.md)

local dns = require "mxprobe.dns"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "tlsa", title = "DANE TLSA records of each MX host (RFC 7672)",
  scope = "mx", key = "tlsa", needs = { "addresses" }, intrusive = false,
}

M.RECORDS_MAX = 32   -- TLSA records kept per host (the rest are counted)
M.PORT = 25

M.schema = S.record({
  queries = S.list(T.dns_query),
  base_domain = S.str, servername = S.str,
  records_dropped = S.int,
  cd_queries = S.list(T.dns_query),
  skipped = S.str,
}, { "queries" })

local function lower(name) return (tostring(name):lower():gsub("%.$", "")) end

--- The owner name of the TLSA records of a host (pure).
function M.owner(host)
  return ("_%d._tcp.%s"):format(M.PORT, lower(host))
end

--- Are the host's address answers DNSSEC-secure (pure)? Every A/AAAA
-- answer that holds records or denies them carries AD, and one holds
-- records. dns is mx[i].dns.
function M.addresses_secure(d)
  if type(d) ~= "table" then return false end
  local any = false
  for _, q in ipairs { d.a, d.aaaa } do
    if type(q) == "table" then
      if q.status == "ok" then
        any = true
        if q.ad ~= true then return false end
      elseif q.status == "nodata" or q.status == "nxdomain" then
        if q.ad ~= true then return false end
      else
        return false
      end
    end
  end
  return any
end

--- The query whose answer holds the TLSA records (or the last asked), and
-- whether DANE applies to the MX entry mx (pure): TLSA records present, the
-- TLSA answer secure (AD) and the host's address answers secure.
function M.applies(mx)
  local tl = type(mx) == "table" and mx.tlsa
  if #M.records(tl) == 0 then return false end
  local q = M.answer_query(tl)
  return q ~= nil and q.ad == true and M.addresses_secure(mx.dns)
end

--- The TLSA records of the base domain (a list, maybe empty; pure).
function M.records(tl)
  if type(tl) ~= "table" or not tl.base_domain then return {} end
  local q = M.answer_query(tl)
  local out = {}
  for _, r in ipairs(q and type(q.records) == "table" and q.records or {}) do
    if type(r) == "table" then out[#out + 1] = r end
  end
  return out
end

--- The TLSA query that answered (the one of the base domain, else the last
-- one asked), or nil (pure).
function M.answer_query(tl)
  if type(tl) ~= "table" or type(tl.queries) ~= "table" then return nil end
  local last
  for _, q in ipairs(tl.queries) do
    if type(q) == "table" then
      last = q
      if tl.base_domain and q.name == M.owner(tl.base_domain) then return q end
    end
  end
  return last
end

function M.run(mx, ctx)
  local d = type(mx.dns) == "table" and mx.dns or {}
  local out = { queries = {} }
  local deadline = ctx:dns_deadline()
  -- a SERVFAIL on the addresses: bogus, or another failure?
  for _, q in ipairs { d.a, d.aaaa } do
    if type(q) == "table" and q.status == "servfail" then
      out.cd_queries = out.cd_queries or {}
      table.insert(out.cd_queries, dns.query(ctx.resolver, mx.name, q.type, deadline, { cd = true }))
    end
  end
  if d.status ~= "ok" then
    out.skipped = "no address"
    return out
  end
  -- RFC 7672 §2.2.2: the CNAME-expanded name first, then the original
  local names = {}
  local chain = type(d.cname) == "table" and d.cname or nil
  if chain and #chain > 0 and lower(chain[#chain]) ~= lower(mx.name) then
    names[#names + 1] = lower(chain[#chain])
  end
  names[#names + 1] = lower(mx.name)
  for _, host in ipairs(names) do
    local q = dns.query(ctx.resolver, M.owner(host), "TLSA", deadline)
    out.queries[#out.queries + 1] = q
    if q.status == "ok" then
      out.base_domain = host
      if #q.records > M.RECORDS_MAX then
        out.records_dropped = #q.records - M.RECORDS_MAX
        for i = #q.records, M.RECORDS_MAX + 1, -1 do q.records[i] = nil end
      end
      break
    end
    if q.status == "servfail" then
      out.cd_queries = out.cd_queries or {}
      table.insert(out.cd_queries, dns.query(ctx.resolver, M.owner(host), "TLSA", deadline, { cd = true }))
    end
    -- only a denial (secure or not) lets the original name be tried
    if q.status ~= "nodata" and q.status ~= "nxdomain" then break end
  end
  if M.applies({ dns = d, tlsa = out }) then out.servername = out.base_domain end
  return out
end

return M
