-- mxprobe.chaincache -- a run's cache of what is computed from a presented
-- certificate chain: its decoded fields and verification (gatherer smtp),
-- its DANE match (gatherer dane). Decoding is most of a probe's CPU, and
-- many domains of one provider show the same chain (nmap's sslcert shares
-- a certificate per host:port the same way).
--
--   chaincache.new() -> cache      (the shape { entries = {}, n = 0 })
--   chaincache.get(cache, key, now, compute, bounds_of) -> result | nil, err
--   chaincache.bounds(certificates) -> the dates of certificate facts
--
-- An entry is used for SECONDS at most (the CA store's own certificates
-- may expire, records may change) and only while none of its bounds -- the
-- notBefore/notAfter dates of the chain's certificates -- has passed since
-- it was made; at MAX entries the cache starts afresh. Each use gets its
-- own copy: each fact has one place.

local M = {}

M.MAX = 1024      -- entries a cache keeps
M.SECONDS = 300   -- and for how long at most

function M.new()
  return { entries = {}, n = 0 }
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

--- The notBefore/notAfter dates of a list of certificate facts.
function M.bounds(certs)
  local out = {}
  for _, c in ipairs(type(certs) == "table" and certs or {}) do
    for _, b in ipairs { c.not_before or false, c.not_after or false } do
      if type(b) == "number" then out[#out + 1] = b end
    end
  end
  return out
end

--- The result for key at time now (epoch seconds): a copy of the cached
-- one while it holds, else compute() -> result | nil, err, kept with the
-- dates bounds_of(result) returns. cache.decoded counts the computations.
function M.get(cache, key, now, compute, bounds_of)
  local e = cache.entries[key]
  if e and now - e.at < M.SECONDS then
    local crossed = false
    for _, b in ipairs(e.bounds) do
      if b > e.at and b <= now then crossed = true break end
    end
    if not crossed then return copy(e.result) end
  end
  local r, err = compute()
  if not r then return nil, err end
  cache.decoded = (cache.decoded or 0) + 1
  if cache.n >= M.MAX then cache.entries, cache.n = {}, 0 end
  if not cache.entries[key] then cache.n = cache.n + 1 end
  cache.entries[key] = { result = copy(r), at = now, bounds = bounds_of(r) }
  return r
end

return M
