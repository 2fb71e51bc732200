-- Gatherer dane -- which TLSA record matches which presented certificate.
--
-- What:   the presented chain (targets[i].smtp.tls.chain_pem) against the
--         TLSA records of its MX host (mx[i].tlsa), in one decode of the
--         chain (core.x509_dane): every (record, certificate) pair that
--         matches -- selector 0 the DER certificate, 1 its DER
--         SubjectPublicKeyInfo; matching type 0 exact, 1 SHA-256, 2
--         SHA-512 -- whatever the record's usage; and for each certificate
--         a DANE-TA(2) record matches, the chain verified with that
--         certificate as the only trust anchor, and the leaf's names
--         checked against the reference identifiers of RFC 7672 §3.2.2:
--         the TLSA base domain, then the MX host name when they differ.
--         Which records count (usages 0/1 are unusable for SMTP, the
--         strongest digest of RFC 7671 §9) is judged by the check dane.
-- Scope:  target; needs smtp (the chain) and tlsa (the records). Nothing
--         is written when the MX host has no TLSA records or no chain was
--         captured.
-- Writes: targets[i].dane = { status, error, names, matches, ta,
--         chain_length } (docs/facts.md)

local chaincache = require "mxprobe.chaincache"
local core = require "mxprobe.core"
local S = require "mxprobe.schema"
local tlsa = require "mxprobe.gather.tlsa"

local M = {
  id = "dane", title = "DANE: TLSA records against the presented chain (RFC 7671, RFC 7672)",
  scope = "target", key = "dane", needs = { "smtp", "tlsa" }, intrusive = false,
}

M.schema = S.record({
  status = S.enum { "ok", "error" }, error = S.str,
  names = S.list(S.str),
  chain_length = S.int,
  matches = S.list(S.record({ record = S.int, depth = S.int }, { "record", "depth" })),
  ta = S.list(S.record({
    depth = S.int, ok = S.bool, reason = S.str, detail = S.str, name_match = S.bool, name = S.str,
    errors = S.list(S.record { depth = S.int, reason = S.str, detail = S.str }),
  }, { "depth", "ok", "name_match" })),
}, { "status" })

--- The reference identifiers of RFC 7672 §3.2.2 for an MX entry (pure).
function M.names(mx)
  local out = {}
  local base = type(mx.tlsa) == "table" and mx.tlsa.base_domain
  if type(base) == "string" then out[1] = base end
  local name = type(mx.name) == "string" and mx.name:lower():gsub("%.$", "")
  if name and name ~= out[1] then out[#out + 1] = name end
  return out
end

M.CACHE_MAX, M.CACHE_SECONDS = chaincache.MAX, chaincache.SECONDS  -- DANE results a run keeps

--- The facts for one chain and one list of records (pure but for the
-- clock: `when` is the verification time, epoch seconds).
function M.match(pem, records, names, when)
  local recs = {}
  for i, r in ipairs(records) do
    recs[i] = { usage = r.usage, selector = r.selector, mtype = r.mtype, data = r.data or "" }
  end
  local r, err = core.x509_dane(pem, { records = recs, names = names, time = when })
  if not r then return { status = "error", error = err, names = names } end
  return { status = "ok", names = names, chain_length = r.chain_length, matches = r.matches, ta = r.ta }
end

--- M.match through a run's cache (mxprobe.chaincache, as the smtp
-- gatherer's decoded chains): many domains of one provider show the same
-- chain and publish the same records. bounds: the chain's certificate
-- dates, after which the match is made again.
function M.cached(cache, pem, records, names, now, bounds)
  local parts = { pem }
  for _, r in ipairs(records) do
    parts[#parts + 1] = ("%s %s %s %s"):format(r.usage, r.selector, r.mtype, r.data)
  end
  for _, n in ipairs(names) do parts[#parts + 1] = n end
  return chaincache.get(cache, table.concat(parts, "\0"), now, function() return M.match(pem, records, names, now) end,
    function() return bounds or {} end)
end

function M.run(t, ctx, env)
  local mx = env.mx
  if type(mx) ~= "table" then return nil end
  local records = tlsa.records(mx.tlsa)
  local smtp = type(t.smtp) == "table" and t.smtp or {}
  local pem = type(smtp.tls) == "table" and smtp.tls.chain_pem
  if #records == 0 or type(pem) ~= "string" then return nil end
  local now = math.floor(core.time())
  if ctx.options.chain_cache == false then return M.match(pem, records, M.names(mx), now) end
  ctx.cache.dane = ctx.cache.dane or chaincache.new()
  return M.cached(ctx.cache.dane, pem, records, M.names(mx), now, chaincache.bounds(smtp.certificates))
end

return M
