-- dns.mx on the classes of MX host addresses (issue 12): the findings for
-- skipped, refused and internal addresses and for an MX exchange written
-- as an address, on the saved "good" facts with the gatherer's new fields.
local judge = require "mxprobe.judge"
local fixtures = require "fixtures.facts._load"

local function of(j, code)
  local out = {}
  for _, f in ipairs(j.findings) do if f.code == code then out[#out + 1] = f end end
  return out
end

describe("dns.mx on address classes #unit", function()
  it("changes no verdict for a loopback address (info, n/a)", function()
    local facts = fixtures.load("good")
    local before = judge.run(fixtures.load("good"))
    for _, mx in ipairs(facts.mx) do
      for _, a in ipairs(mx.dns.addresses) do a.class = "loopback" end
    end
    local j = judge.run(facts)
    assert.equal(before.verdict, j.verdict)
    assert.same(before.scores.score, j.scores.score)
    local f = of(j, "dns.mx.address-internal")
    assert.equal(#facts.targets, #f)
    assert.equal("na", f[1].state)
    assert.equal("info", f[1].severity)
    assert.equal(0, f[1].weight)
    assert.matches("a loopback address", f[1].message, 1, true)
  end)

  it("reports each unusable address, and a host with only those as unusable", function()
    local facts = fixtures.load("good")
    for _, mx in ipairs(facts.mx) do
      mx.dns.skipped = { { address = "0.0.0.0", family = "ipv4", class = "unspecified", reason = "unusable" } }
      mx.dns.addresses = {}
    end
    facts.targets = {}
    local j = judge.run(facts)
    local f = of(j, "dns.mx.address-unusable")
    assert.equal(#facts.mx, #f)
    assert.equal("fail", f[1].state)
    assert.equal("0.0.0.0", f[1].target.address)
    assert.matches("an unspecified address: not a mail server's, not probed", f[1].message, 1, true)
    assert.equal("fail", of(j, "dns.mx.unusable")[1].state)
    assert.equal("critical", j.verdict)
  end)

  it("makes a host refused by --public-only 'could not test', not unusable", function()
    local facts = fixtures.load("good")
    for _, mx in ipairs(facts.mx) do
      mx.dns.skipped = {}
      for i, a in ipairs(mx.dns.addresses) do
        mx.dns.skipped[i] = { address = a.address, family = a.family, class = "loopback", reason = "not-public" }
      end
      mx.dns.addresses = {}
    end
    facts.targets = {}
    local j = judge.run(facts)
    assert.equal(0, #of(j, "dns.mx.unusable"))
    assert.equal("untested", of(j, "dns.mx.address-refused")[1].state)
    assert.equal("unknown", j.verdict)
  end)

  it("reports an MX exchange written as an address, IPv4 or IPv6", function()
    for _, name in ipairs { "192.0.2.25", "2001:db8::25" } do
      local facts = fixtures.load("good")
      facts.mx[1].name = name
      local j = judge.run(facts)
      local f = of(j, "dns.mx.address-name")
      assert.equal(1, #f, name)
      assert.equal("fail", f[1].state)
      assert.equal(name, f[1].target.mx)
      assert.equal(0, #of(j, "dns.mx.invalid-name"))
    end
  end)
end)
