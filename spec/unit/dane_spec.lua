-- DANE without sockets: core.x509_dane on the captured PEM fixtures
-- (spec/fixtures/certs) with TLSA data computed by openssl there
-- (expected.lua), the record rules of check dane, the check and the regime
-- on facts captured from the lab (spec/fixtures/facts/dane-*.json), and the
-- certificate rule of the judge.
local core = require "mxprobe.core"
local fixtures = require "fixtures.facts._load"
local gdane = require "mxprobe.gather.dane"
local tlsa = require "mxprobe.gather.tlsa"
local cdane = require "mxprobe.checks.dane"
local regime = require "mxprobe.regime"
local judge = require "mxprobe.judge"
local policy = require "mxprobe.policy"
local util = require "mxprobe.checks.util"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local dir = here .. "/../fixtures/certs/"
local expected = dofile(dir .. "expected.lua")

local function read(name)
  local f = assert(io.open(dir .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local T2030 = 1893456000   -- inside the fixtures' validity
local CHAIN = read("chain.pem") -- leaf (mx1.example.test) + intermediate

local function rec(u, s, m, data) return { usage = u, selector = s, mtype = m, data = data } end

local function codes(findings)
  local out = {}
  for _, f in ipairs(findings) do out[#out + 1] = f.code .. " " .. f.state end
  return out
end

describe("core.x509_dane #unit", function()
  it("matches DANE-EE records against the leaf's SPKI and certificate (SHA-256, any hex case)", function()
    local r = assert(core.x509_dane(CHAIN, { records = {
      rec(3, 1, 1, expected.leaf.spki_sha256), rec(3, 0, 1, expected.leaf.sha256:upper()),
      rec(3, 1, 1, expected["leaf-ec"].spki_sha256),
    }, time = T2030 }))
    assert.equal(2, r.chain_length)
    assert.same({ { record = 1, depth = 0 }, { record = 2, depth = 0 } }, r.matches)
    assert.same({}, r.ta)
  end)

  it("matches a DANE-TA record against the intermediate, verifies the chain to it and checks the names", function()
    local r = assert(core.x509_dane(CHAIN, { records = { rec(2, 1, 1, expected.intermediate.spki_sha256) },
      names = { "nomatch.example", "mx1.example.test" }, time = T2030 }))
    assert.same({ { record = 1, depth = 1 } }, r.matches)
    assert.equal(1, #r.ta)
    assert.same({ depth = 1, ok = true, errors = {}, name_match = true, name = "mx1.example.test" }, r.ta[1])
  end)

  it("reports a DANE-TA chain that fails: the leaf not yet valid, a name that does not match", function()
    local r = assert(core.x509_dane(CHAIN, { records = { rec(2, 0, 1, expected.intermediate.sha256) },
      names = { "other.example.org" }, time = 1577836800 }))
    local ta = r.ta[1]
    assert.is_false(ta.ok)
    assert.equal("not-yet-valid", ta.reason)
    assert.is_false(ta.name_match)
    assert.is_nil(ta.name)
  end)

  it("matches nothing for bad hex, unknown selectors or matching types, and a wrong length", function()
    local r = assert(core.x509_dane(CHAIN, { records = {
      rec(3, 1, 1, "zz" .. expected.leaf.spki_sha256:sub(3)), rec(3, 2, 1, expected.leaf.spki_sha256),
      rec(3, 1, 3, expected.leaf.spki_sha256), rec(3, 1, 1, expected.leaf.spki_sha256:sub(1, 63)),
      rec(3, 1, 2, expected.leaf.spki_sha256),
    }, time = T2030 }))
    assert.same({}, r.matches)
  end)

  it("refuses misuse: no records list, more than the limit", function()
    assert.has_error(function() core.x509_dane(CHAIN, {}) end)
    local many = {}
    for i = 1, core.limits.x509_dane_records_max + 1 do many[i] = rec(3, 1, 1, "00") end
    assert.has_error(function() core.x509_dane(CHAIN, { records = many }) end)
    assert.equal(64, core.limits.x509_dane_records_max)
  end)

  it("returns nil, message, code for text without a certificate", function()
    local r, msg, code = core.x509_dane("no pem here", { records = {} })
    assert.is_nil(r)
    assert.matches("no PEM certificate", msg)
    assert.equal("protocol", code)
  end)
end)

describe("gather.dane and gather.tlsa helpers #unit", function()
  it("names the TLSA base domain, then the MX host, as reference identifiers", function()
    local mx = { name = "alias.a.test.", tlsa = { base_domain = "mx.b.test" } }
    assert.same({ "mx.b.test", "alias.a.test" }, gdane.names(mx))
    assert.same({ "mx.a.test" }, gdane.names({ name = "MX.A.test", tlsa = { base_domain = "mx.a.test" } }))
  end)
  it("writes the TLSA owner name of a host", function()
    assert.equal("_25._tcp.mx.example.test", tlsa.owner("MX.Example.Test."))
  end)
  it("calls addresses secure only when every answer has AD and one holds records", function()
    local ok = { status = "ok", ad = true }
    assert.is_true(tlsa.addresses_secure({ a = ok, aaaa = { status = "nodata", ad = true } }))
    assert.is_false(tlsa.addresses_secure({ a = ok, aaaa = { status = "nodata", ad = false } }))
    local none = { status = "nodata", ad = true }
    assert.is_false(tlsa.addresses_secure({ a = none, aaaa = { status = "nodata", ad = true } }))
    assert.is_false(tlsa.addresses_secure({ a = ok, aaaa = { status = "timeout" } }))
  end)
end)

describe("gather.dane: the run's cache #unit", function()
  local recs = { rec(3, 1, 1, expected.leaf.spki_sha256) }
  it("matches a chain once for the same records and names, and gives each use its own copy", function()
    local cache = { entries = {}, n = 0 }
    local a = gdane.cached(cache, CHAIN, recs, { "mx1.example.test" }, T2030, {})
    local b = gdane.cached(cache, CHAIN, recs, { "mx1.example.test" }, T2030 + 10, {})
    assert.equal(1, cache.decoded)
    assert.same(a, b)
    assert.are_not.equal(a, b)
    gdane.cached(cache, CHAIN, recs, { "other.example.test" }, T2030 + 10, {})
    assert.equal(2, cache.decoded)
  end)
  it("matches again after CACHE_SECONDS, or once a certificate date has passed", function()
    local cache = { entries = {}, n = 0 }
    gdane.cached(cache, CHAIN, recs, {}, T2030, { T2030 + 5 })
    gdane.cached(cache, CHAIN, recs, {}, T2030 + 4, { T2030 + 5 })
    assert.equal(1, cache.decoded)
    gdane.cached(cache, CHAIN, recs, {}, T2030 + 6, { T2030 + 5 })
    assert.equal(2, cache.decoded)
    gdane.cached(cache, CHAIN, recs, {}, T2030 + 6 + gdane.CACHE_SECONDS, {})
    assert.equal(3, cache.decoded)
  end)
end)

describe("check dane: which records count #unit", function()
  it("calls PKIX usages, unknown parameters and wrong lengths unusable", function()
    assert.matches("PKIX%-TA", cdane.unusable(rec(0, 1, 1, ("a"):rep(64))))
    assert.matches("PKIX%-EE", cdane.unusable(rec(1, 1, 1, ("a"):rep(64))))
    assert.equal("unknown selector 2", cdane.unusable(rec(3, 2, 1, ("a"):rep(64))))
    assert.equal("unknown matching type 3", cdane.unusable(rec(3, 1, 3, ("a"):rep(64))))
    assert.equal("62 hex digits for a SHA-256 digest", cdane.unusable(rec(3, 1, 1, ("a"):rep(62))))
    assert.equal("data is not hex", cdane.unusable(rec(3, 1, 1, ("a"):rep(63))))
    assert.is_nil(cdane.unusable(rec(3, 1, 2, ("a"):rep(128))))
    assert.is_nil(cdane.unusable(rec(2, 0, 0, "3082")))
  end)
  it("uses only the strongest digest per usage and selector, and always the exact ones (RFC 7671 §9)", function()
    local s = cdane.select({ rec(3, 1, 1, ("a"):rep(64)), rec(3, 1, 2, ("b"):rep(128)), rec(3, 1, 0, "3059"),
      rec(2, 1, 1, ("c"):rep(64)), rec(1, 1, 2, ("d"):rep(128)) })
    assert.same({ 2, 3, 4 }, s.used)
    assert.matches("weaker digest", s.ignored[1])
    assert.matches("PKIX%-EE", s.ignored[5])
  end)
end)

describe("check dane on captured lab facts #unit", function()
  local ctx = { policy = policy.default(), util = util }
  local function run(name)
    local f = fixtures.load(name)
    ctx.now = f.finished
    local c = require "mxprobe.checks.dane"
    return c.run(f, ctx), f
  end

  it("finds the DANE-TA match beside a stale DANE-EE record", function()
    local out = run("dane-stale")
    assert.same({ "dane.match pass", "dane.rollover.non-primary fail" }, codes(out))
    assert.matches("(DANE-TA, chain certificate at depth 1, name mx.dane-stale.example.test)", out[1].message, 1, true)
  end)
  it("finds the pinned expired leaf matched", function()
    assert.same({ "dane.match pass", "dane.rollover.single fail" }, codes((run("dane-expired"))))
  end)
  it("finds the bogus TLSA answer, with the CD answer as evidence", function()
    local out = run("dane-bogus")
    assert.same({ "dane.bogus fail" }, codes(out))
    assert.matches("SERVFAIL; with checking disabled (CD): NOERROR, 1 record", out[1].evidence, 1, true)
  end)
  it("says not applicable for facts without TLSA lookups", function()
    assert.same({ "dane na" }, codes((run("expired"))))
  end)
  it("calls a damaged TLSA record unusable, and the same chain a mismatch when the data changes", function()
    local f = fixtures.load("dane-expired")
    local q = f.mx[1].tlsa.queries[1]
    local data = q.records[1].data
    q.records[1].data = data:sub(1, 62)
    assert.same({ "dane.unusable fail" }, codes(cdane.run(f, ctx)))
    q.records[1].data = ("0"):rep(64)
    f.targets[1].dane = gdane.match(f.targets[1].smtp.tls.chain_pem, q.records, gdane.names(f.mx[1]),
      math.floor(f.finished))
    assert.same({ "dane.mismatch fail" }, codes(cdane.run(f, ctx)))
    -- and the real data matches again, through the gatherer's matcher
    q.records[1].data = data
    f.targets[1].dane = gdane.match(f.targets[1].smtp.tls.chain_pem, q.records, gdane.names(f.mx[1]),
      math.floor(f.finished))
    assert.same({ { record = 1, depth = 0 } }, f.targets[1].dane.matches)
  end)
end)

describe("mxprobe.regime #unit", function()
  it("matches MTA-STS mx patterns anchored, one label for the wildcard (RFC 8461 §4.1)", function()
    assert.is_true(regime.mx_matches("mx.example.test", "MX.example.test."))
    assert.is_true(regime.mx_matches("*.example.test", "mx.example.test"))
    assert.is_false(regime.mx_matches("*.example.test", "a.mx.example.test"))
    assert.is_false(regime.mx_matches("*.example.test", "example.test"))
    assert.is_false(regime.mx_matches("*.example.test", "mxexample.test"))
    assert.is_false(regime.mx_matches("example.test", "mx.example.test"))
    assert.is_false(regime.mx_matches("*.", "mx.example.test"))
  end)

  local function with_policy(name, mode, mx)
    local f = fixtures.load(name)
    f.mta_sts = { policy = { mode = mode, mx = mx } }
    return f
  end

  it("names DANE first, even beside an MTA-STS policy in enforce mode (RFC 8461 §2)", function()
    local r = regime.of_facts(with_policy("dane-expired", "enforce", { "mx.dane-expired.example.test" }))
    assert.same({ { mx = "mx.dane-expired.example.test", regime = "dane",
      reason = "DANE: DNSSEC-secure TLSA records at _25._tcp.mx.dane-expired.example.test" } }, r)
  end)

  it("names the MTA-STS mode, and says whether the policy lists the MX", function()
    local r = regime.of_facts(with_policy("expired", "enforce", { "*.expired.example.test" }))
    assert.same({ { mx = "mx.expired.example.test", regime = "mta-sts-enforce",
      reason = "MTA-STS policy in mode enforce lists this MX (no TLSA lookup)" } }, r)
    r = regime.of_facts(with_policy("expired", "testing", { "*.example.test" }))
    assert.same({ { mx = "mx.expired.example.test", regime = "mta-sts-testing",
      reason = "MTA-STS policy in mode testing does not list this MX (no TLSA lookup)" } }, r)
    r = regime.of_facts(with_policy("expired", "none", { "mx.expired.example.test" }))
    assert.same({ { mx = "mx.expired.example.test", regime = "opportunistic",
      reason = "no TLSA lookup; MTA-STS policy in mode none" } }, r)
  end)

  it("is empty for an address literal (no MX)", function()
    assert.same({}, regime.of_facts(fixtures.load("address")))
  end)
end)

describe("the certificate rule #unit", function()
  local function sev(j, code)
    for _, f in ipairs(j.findings) do if f.code == code then return f.severity, f.weight end end
  end
  local function with_policy(name, mode)
    local f = fixtures.load(name)
    f.mta_sts = { policy = { mode = mode, mx = { "mx.expired.example.test" } } }
    return f
  end

  it("grades one PKIX failure by the regime of its MX", function()
    assert.same({ "warning", 40 }, { sev(judge.run(fixtures.load("expired")), "tls.cert.expired") })
    assert.same({ "critical", 40 }, { sev(judge.run(with_policy("expired", "enforce")), "tls.cert.expired") })
    assert.same({ "warning", 40 }, { sev(judge.run(with_policy("expired", "testing")), "tls.cert.expired") })
    assert.same({ "info", 0 }, { sev(judge.run(fixtures.load("dane-expired")), "tls.cert.expired") })
    assert.equal("critical", judge.run(with_policy("expired", "enforce")).verdict)
    assert.equal("ok", judge.run(fixtures.load("dane-expired")).verdict)
  end)

  it("lets a policy file change it per regime, and a code's own severity win everywhere", function()
    local p = policy.resolve({ regime_severities = { dane = { ["tls.cert.expired"] = "warning" } } })
    assert.same({ "warning", 40 }, { sev(judge.run(fixtures.load("dane-expired"), p), "tls.cert.expired") })
    p = policy.resolve({ severities = { ["tls.cert.expired"] = "critical" } })
    assert.equal("critical", (sev(judge.run(fixtures.load("dane-expired"), p), "tls.cert.expired")))
    assert.equal("critical", (sev(judge.run(fixtures.load("expired"), p), "tls.cert.expired")))
  end)

  it("refuses an unknown regime or severity in a policy", function()
    assert.is_nil((policy.merge(nil, { regime_severities = { pkix = {} } })))
    local _, err = policy.merge(nil, { regime_severities = { dane = { ["tls.cert.expired"] = "fatal" } } })
    assert.matches("regime_severities", err)
  end)

  it("returns the regimes with the judgement, in MX order", function()
    local j = judge.run(fixtures.load("good"))
    assert.same({ "mx1.good.example.test", "mx2.good.example.test" }, { j.regimes[1].mx, j.regimes[2].mx })
  end)
end)
