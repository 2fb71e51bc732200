-- The smtp gatherer's pure parts: the run's cache of decoded chains.
local smtp = require "mxprobe.gather.smtp"

local function read(p) return assert(io.open(p)):read("a") end

describe("gather.smtp.chain_result #unit", function()
  local pem = read("spec/fixtures/certs/chain.pem")
  local opts = { name = "mx1.example.test", ca_file = "spec/fixtures/certs/root.pem" }

  it("decodes a chain once per run and hands each probe its own copy", function()
    local cache = { entries = {}, n = 0 }
    local a = assert(smtp.chain_result(cache, pem, opts, 1800000000))
    local b = assert(smtp.chain_result(cache, pem, opts, 1800000001))
    assert.equal(1, cache.decoded)
    assert.same(a, b)
    assert.are_not.equal(a.certificates, b.certificates)
    assert.are_not.equal(a.certificates[1].san_dns, b.certificates[1].san_dns)
  end)
  it("decodes again for another name or CA file", function()
    local cache = { entries = {}, n = 0 }
    smtp.chain_result(cache, pem, opts, 1800000000)
    smtp.chain_result(cache, pem, { name = "other.example.test", ca_file = opts.ca_file }, 1800000000)
    smtp.chain_result(cache, pem, { name = opts.name }, 1800000000)
    assert.equal(3, cache.decoded)
  end)
  it("decodes again once a certificate's notAfter has passed, or after CHAIN_CACHE_SECONDS", function()
    local cache = { entries = {}, n = 0 }
    local first = assert(smtp.chain_result(cache, pem, opts))
    local expiry = first.certificates[1].not_after
    cache = { entries = {}, n = 0 }
    smtp.chain_result(cache, pem, opts, expiry - 10)
    smtp.chain_result(cache, pem, opts, expiry - 1)
    assert.equal(1, cache.decoded)
    smtp.chain_result(cache, pem, opts, expiry + 1)       -- the leaf expired in between
    assert.equal(2, cache.decoded)
    smtp.chain_result(cache, pem, opts, expiry + 1 + smtp.CHAIN_CACHE_SECONDS)
    assert.equal(3, cache.decoded)
  end)
  it("keeps at most CHAIN_CACHE_MAX chains", function()
    local cache = { entries = {}, n = smtp.CHAIN_CACHE_MAX }
    smtp.chain_result(cache, pem, opts, 1800000000)
    assert.equal(1, cache.n)
  end)
end)
