-- Addresses from DNS (issue 12, robustness): a hostile responder on
-- 127.0.66.56 answers the A/AAAA of the MX host with addresses that must
-- never be connected to (0.0.0.0, ::, multicast, broadcast), an IPv4-mapped
-- IPv6 twin of the one real address, or writes the MX exchange as an
-- address. Nothing listens on the probe port 2599 of 127.0.66.3, so the one
-- address that is probed is refused at once; what matters is which
-- addresses became targets and which findings say why the rest did not.
-- Only addresses that cannot leave the machine are used (before the fix,
-- they were connected to).
local H = require "hostile.peer"

local DNS_ADDR = "127.0.66.56"
local REAL = "127.0.66.3"

local function by_code(j, code)
  local out = {}
  for _, f in ipairs(j.findings) do
    if f.code == code then out[#out + 1] = f end
  end
  return out
end

describe("addresses from DNS #hostile #integration", function()
  local port = 5400

  after_each(H.stop_all)
  teardown(H.stop_all)

  local function probe(fault, opts)
    port = port + 1
    local resolver = ("%s:%d"):format(DNS_ADDR, port)
    H.start("dns", resolver, fault, "--a " .. REAL)
    local o = { resolver = resolver, port = 2599 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local facts, ms = H.probe("h.test", o)
    H.check_common(facts, ms)
    local _, _, judgement = H.check_reports(facts)
    return facts, judgement
  end

  it("never connects to unspecified, multicast or broadcast addresses, and says why each was skipped", function()
    local facts, j = probe("odd-addresses")
    -- one target: the one unicast address (its ::ffff: twin is the same)
    assert.equal(1, #facts.targets)
    assert.equal(REAL, facts.targets[1].address)
    assert.equal("ipv4", facts.targets[1].family)
    local d = facts.mx[1].dns
    assert.same({ { address = REAL, family = "ipv4", class = "loopback" } }, d.addresses)
    local skipped = {}
    for _, s in ipairs(d.skipped) do
      assert.equal("unusable", s.reason)
      skipped[s.address] = s.class
    end
    assert.same({
      ["0.0.0.0"] = "unspecified", ["224.0.0.1"] = "multicast", ["255.255.255.255"] = "broadcast",
      ["::"] = "unspecified", ["ff02::1"] = "multicast",
    }, skipped)
    assert.equal(5, #d.skipped)
    -- one finding per skipped address, naming it; the loopback one is info
    local unusable = by_code(j, "dns.mx.address-unusable")
    assert.equal(5, #unusable)
    for _, f in ipairs(unusable) do
      assert.equal("fail", f.state)
      assert.equal("warning", f.severity)
      assert.equal("mx.h.test", f.target.mx)
      assert.truthy(skipped[f.target.address])
      assert.matches("not probed", f.message, 1, true)
    end
    local internal = by_code(j, "dns.mx.address-internal")
    assert.equal(1, #internal)
    assert.equal("na", internal[1].state)
    assert.equal("info", internal[1].severity)
    assert.equal(REAL, internal[1].target.address)
  end)

  it("counts an IPv4-mapped IPv6 address as its IPv4 address under the per-address cap", function()
    local facts = probe("odd-addresses", { max_addresses = 1 })
    assert.equal(1, #facts.targets)
    assert.equal(REAL, facts.targets[1].address)
    -- 6 distinct addresses (the real one, 5 unusable); its ::ffff: twin
    -- is not a 7th: 1 probed, 1 skipped listed, 4 past the cap
    local d = facts.mx[1].dns
    assert.equal(1, #d.addresses)
    assert.equal(1, #d.skipped)
    assert.equal(4, d.addresses_dropped)
  end)

  it("reports an MX exchange written as an address", function()
    local facts, j = probe("address-exchange")
    assert.equal(REAL, facts.mx[1].name)
    local f = by_code(j, "dns.mx.address-name")
    assert.equal(1, #f)
    assert.equal("fail", f[1].state)
    assert.equal(REAL, f[1].target.mx)
    assert.is_nil(H.codes(j)["dns.mx.invalid-name"])
  end)

  it("with public_only, probes no loopback address from DNS and says so: could not test", function()
    local facts, j = probe("normal", { public_only = true })
    assert.equal(0, #facts.targets)
    assert.same({ { address = REAL, family = "ipv4", class = "loopback", reason = "not-public" } },
      facts.mx[1].dns.skipped)
    assert.equal(true, facts.options.public_only)
    local f = by_code(j, "dns.mx.address-refused")
    assert.equal(1, #f)
    assert.equal("untested", f[1].state)
    assert.equal("warning", f[1].severity)
    assert.is_nil(H.codes(j)["dns.mx.unusable"])
    assert.equal("unknown", j.verdict)
    -- the same through the CLI flag: could not test (exit 3)
    local out, _, status = H.cli(("--public-only --resolver %s:%d --port 2599 --dns-timeout 2 h.test")
      :format(DNS_ADDR, port))
    assert.equal(3, status)
    assert.truthy(out:find("dns.mx.address-refused", 1, true))
    assert.truthy(out:find("MX host mx.h.test resolves to 127.0.66.3, a loopback address: not probed (--public-only)",
      1, true))
  end)
end)
