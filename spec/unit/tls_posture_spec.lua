-- TLS posture, the pure parts: the reverse name of an address, when the
-- smtp gatherer falls back to clear text, and the checks tls.versions and
-- rdns on hand-made facts (the live ones: spec/integration/tls_posture_spec.lua).
local rdns = require "mxprobe.gather.rdns"
local smtp = require "mxprobe.gather.smtp"
local judge = require "mxprobe.judge"
local facts_io = require "mxprobe.facts"

describe("gather.rdns.reverse_name #unit", function()
  it("reverses the octets of an IPv4 address under in-addr.arpa", function()
    assert.equal("1.1.0.127.in-addr.arpa", rdns.reverse_name("127.0.1.1", "ipv4"))
    assert.equal("10.2.0.192.in-addr.arpa", rdns.reverse_name("192.0.2.10"))
  end)
  it("writes all 32 nibbles of an IPv6 address under ip6.arpa, :: expanded", function()
    assert.equal("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
      rdns.reverse_name("::1", "ipv6"))
    assert.equal("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa",
      rdns.reverse_name("4321:0:1:2:3:4:567:89ab", "ipv6"))
    assert.equal("0.1.0.0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
      rdns.reverse_name("2001:db8::2:10", "ipv6"))
  end)
  it("takes an embedded IPv4 tail", function()
    assert.equal(rdns.reverse_name("::ffff:c000:20a", "ipv6"), rdns.reverse_name("::ffff:192.0.2.10", "ipv6"))
  end)
  it("refuses what is not an address", function()
    assert.is_nil(rdns.reverse_name("256.0.0.1", "ipv4"))
    assert.is_nil(rdns.reverse_name("1::2::3", "ipv6"))
    assert.is_nil(rdns.reverse_name("1:2:3", "ipv6"))
    assert.is_nil(rdns.reverse_name("mx.example.test", "ipv4"))
  end)
end)

describe("gather.smtp.fallback_after #unit", function()
  local ok220 = { status = "ok", reply = { code = 220, lines = { "go" } } }
  local tls_ok = { status = "ok" }
  it("is nil without STARTTLS, after a refused STARTTLS, and after a working session", function()
    assert.is_nil(smtp.fallback_after({}))
    assert.is_nil(smtp.fallback_after({ starttls = { status = "ok", reply = { code = 454, lines = {} } } }))
    assert.is_nil(smtp.fallback_after({ starttls = ok220, tls = tls_ok,
      ehlo_tls = { status = "ok", reply = { code = 250, lines = {} } } }))
  end)
  it("names the phase that broke the TLS session", function()
    assert.equal("starttls", smtp.fallback_after({ starttls = { status = "closed" } }))
    assert.equal("tls", smtp.fallback_after({ starttls = ok220, tls = { status = "tls" } }))
    assert.equal("ehlo_tls", smtp.fallback_after({ starttls = ok220, tls = tls_ok, ehlo_tls = { status = "closed" } }))
    assert.equal("ehlo_tls", smtp.fallback_after({ starttls = ok220, tls = tls_ok,
      ehlo_tls = { status = "ok", reply = { code = 554, lines = {} } } }))
  end)
  it("does not reconnect after a 421 inside TLS: that is throttling", function()
    assert.is_nil(smtp.fallback_after({ starttls = ok220, tls = tls_ok,
      ehlo_tls = { status = "ok", reply = { code = 421, lines = {} } } }))
  end)
end)

-- facts of one healthy target (address literal), with `more` fields on it
local function target_facts(more)
  local t = { address = "192.0.2.1", family = "ipv4", port = 25, smtp = {
    status = "complete", time_ms = 5, transcript = {},
    connect = { status = "ok" },
    banner = { status = "ok", reply = { code = 220, lines = { "mx.example.test ESMTP" } } },
    ehlo = { status = "ok", command = "EHLO", reply = { code = 250, lines = { "mx.example.test", "STARTTLS" } },
             extensions = { STARTTLS = "" } },
  } }
  for k, v in pairs(more) do t[k] = v end
  return { schema = "mxprobe.facts/2", query = "[192.0.2.1]", kind = "address", started = 1, finished = 2,
           run = { id = "x", tool = { name = "mxprobe", version = "0" }, versions = {}, prober = {} },
           mx = {}, targets = { t } }
end

local function by_code(j)
  local out = {}
  for _, f in ipairs(j.findings) do out[f.code] = f end
  return out
end

local function v(version, status, cipher)
  return { version = version, protocols = version:lower(), status = status, cipher = cipher,
           negotiated = status == "accepted" and version or nil }
end

describe("check tls.versions #unit", function()
  it("warns about TLS 1.0 and 1.1 accepted, naming each version's cipher", function()
    local f = target_facts { tls_versions = { status = "tested", versions = {
      v("TLSv1.0", "accepted", "ECDHE-ECDSA-AES256-SHA"), v("TLSv1.1", "accepted", "ECDHE-ECDSA-AES256-SHA"),
      v("TLSv1.2", "accepted", "ECDHE-ECDSA-AES256-GCM-SHA384"), v("TLSv1.3", "accepted", "TLS_AES_256_GCM_SHA384"),
    } } }
    assert.is_true((facts_io.validate(f)))
    local c = by_code(judge.run(f))
    assert.equal("fail", c["tls.versions.deprecated"].state)
    assert.equal("warning", c["tls.versions.deprecated"].severity)
    assert.equal("accepts TLSv1.0 and TLSv1.1, deprecated by RFC 8996", c["tls.versions.deprecated"].message)
    assert.equal("TLSv1.0: ECDHE-ECDSA-AES256-SHA; TLSv1.1: ECDHE-ECDSA-AES256-SHA",
      c["tls.versions.deprecated"].evidence)
    assert.is_nil(c["tls.versions.no-modern"])
    assert.equal("TLS versions accepted: TLSv1.0 (ECDHE-ECDSA-AES256-SHA), TLSv1.1 (ECDHE-ECDSA-AES256-SHA), "
      .. "TLSv1.2 (ECDHE-ECDSA-AES256-GCM-SHA384), TLSv1.3 (TLS_AES_256_GCM_SHA384)",
      c["tls.versions.accepted"].message)
  end)
  it("is critical when neither TLS 1.2 nor 1.3 is accepted", function()
    local f = target_facts { tls_versions = { status = "tested", versions = {
      v("TLSv1.0", "accepted", "ECDHE-RSA-AES128-SHA"), v("TLSv1.1", "refused"), v("TLSv1.2", "refused"),
      v("TLSv1.3", "refused") } } }
    local c = by_code(judge.run(f))
    assert.equal("fail", c["tls.versions.no-modern"].state)
    assert.equal("critical", c["tls.versions.no-modern"].severity)
    assert.equal("accepts TLSv1.0, deprecated by RFC 8996", c["tls.versions.deprecated"].message)
    assert.equal("accepted: TLSv1.0 (ECDHE-RSA-AES128-SHA); refused: TLSv1.1, TLSv1.2, TLSv1.3",
      c["tls.versions.no-modern"].evidence)
  end)
  it("does not call a version refused that it could not test", function()
    local f = target_facts { tls_versions = { status = "tested", versions = {
      v("TLSv1.0", "refused"), v("TLSv1.1", "refused"), v("TLSv1.2", "untested"), v("TLSv1.3", "refused") } } }
    local c = by_code(judge.run(f))
    assert.is_nil(c["tls.versions.no-modern"])
    assert.is_nil(c["tls.versions.deprecated"])
    assert.equal("TLS versions accepted: none; refused: TLSv1.0, TLSv1.1, TLSv1.3; not tested: TLSv1.2",
      c["tls.versions.accepted"].message)
  end)
  it("is not applicable when skipped, saying why", function()
    local c = by_code(judge.run(target_facts { tls_versions = { status = "skipped",
      reason = "not asked for (--no-tls-versions)", versions = {} } }))
    assert.equal("na", c["tls.versions"].state)
    assert.equal("the TLS versions were not tried: not asked for (--no-tls-versions)", c["tls.versions"].message)
  end)
end)

describe("check rdns #unit", function()
  local function q(name, qtype, status, records)
    return { name = name, type = qtype, status = status, records = records or {} }
  end
  local REV = "1.2.0.192.in-addr.arpa"

  it("passes a forward-confirmed PTR whose name agrees with the banner and EHLO", function()
    local c = by_code(judge.run(target_facts { rdns = { name = REV,
      ptr = q(REV, "PTR", "ok", { { target = "mx.example.test." } }), names = { "mx.example.test" },
      forward = { { name = "mx.example.test", confirmed = true,
                    query = q("mx.example.test", "A", "ok", { { address = "192.0.2.1" } }) } },
      confirmed = true } }))
    assert.equal("pass", c["rdns.ok"].state)
    assert.equal("PTR mx.example.test, forward-confirmed", c["rdns.ok"].message)
    assert.equal(REV .. " PTR mx.example.test; mx.example.test A 192.0.2.1", c["rdns.ok"].evidence)
    assert.is_nil(c["rdns.names-differ"])
  end)
  it("reports a missing PTR", function()
    local c = by_code(judge.run(target_facts { rdns = { name = REV, ptr = q(REV, "PTR", "nxdomain"),
      names = {}, forward = {}, confirmed = false } }))
    assert.equal("fail", c["rdns.missing"].state)
    assert.equal("warning", c["rdns.missing"].severity)
    assert.equal("no PTR record for 192.0.2.1", c["rdns.missing"].message)
  end)
  it("reports a PTR that does not resolve back, several PTRs, and names that differ (all four shown)", function()
    local f = target_facts { rdns = { name = REV,
      ptr = q(REV, "PTR", "ok", { { target = "a.example.test." }, { target = "b.example.test." } }),
      names = { "a.example.test", "b.example.test" },
      forward = {
        { name = "a.example.test", confirmed = false,
          query = q("a.example.test", "A", "ok", { { address = "192.0.2.9" } }) },
        { name = "b.example.test", confirmed = false, query = q("b.example.test", "A", "nxdomain") } },
      confirmed = false } }
    f.targets[1].mx = "mx.example.test"
    assert.is_true((facts_io.validate(f)))
    local c = by_code(judge.run(f))
    assert.equal("PTR a.example.test, b.example.test does not resolve back to 192.0.2.1 (not forward-confirmed)",
      c["rdns.unconfirmed"].message)
    assert.equal(REV .. " PTR a.example.test, b.example.test; a.example.test A 192.0.2.9; b.example.test A (nxdomain)",
      c["rdns.unconfirmed"].evidence)
    assert.equal("2 PTR records for 192.0.2.1: a.example.test, b.example.test", c["rdns.several"].message)
    assert.equal("PTR: a.example.test; banner: mx.example.test; EHLO: mx.example.test; MX: mx.example.test",
      c["rdns.names-differ"].evidence)
    assert.equal("info", c["rdns.names-differ"].severity)
  end)
  it("could not test when the PTR lookup failed", function()
    local c = by_code(judge.run(target_facts { rdns = { name = REV, ptr = q(REV, "PTR", "servfail"),
      names = {}, forward = {}, confirmed = false } }))
    assert.equal("untested", c["rdns"].state)
  end)
end)

describe("report.text: the TLS posture line of a target #unit", function()
  local text = require "mxprobe.report.text"
  it("shows the versions accepted and refused and the reverse DNS, escaped", function()
    local f = target_facts {
      tls_versions = { status = "tested", versions = {
        v("TLSv1.0", "refused"), v("TLSv1.1", "refused"), v("TLSv1.2", "accepted", "X"),
        v("TLSv1.3", "accepted", "Y") } },
      rdns = { name = "1.2.0.192.in-addr.arpa", ptr = { name = "1.2.0.192.in-addr.arpa", type = "PTR", status = "ok",
        records = {} }, names = { "mx.example.test\27[2J" }, forward = {}, confirmed = false },
    }
    local out = text.render({ f }, { judge.run(f) }, {})
    assert.truthy(out:find("\n    TLS versions accepted: TLSv1.2 TLSv1.3; refused: TLSv1.0 TLSv1.1 · "
      .. "reverse DNS: mx.example.test\\x1B[2J (not forward-confirmed)\n", 1, true), out)
    f.targets[1].smtp.fallback = { status = "complete", after = "ehlo_tls", time_ms = 1, transcript = {} }
    out = text.render({ f }, { judge.run(f) }, {})
    assert.truthy(out:find("(not forward-confirmed) · reconnected in clear text after the TLS failure "
      .. "(ehlo_tls): complete\n", 1, true), out)
  end)
  it("says when there is no PTR, and shows nothing for facts without either", function()
    local f = target_facts { rdns = { name = "x", ptr = { name = "x", type = "PTR", status = "nxdomain", records = {} },
      names = {}, forward = {}, confirmed = false } }
    assert.truthy(text.render({ f }, { judge.run(f) }, {}):find("\n    reverse DNS: no PTR\n", 1, true))
    local g = target_facts {}
    local out = text.render({ g }, { judge.run(g) }, {})
    assert.is_nil(out:find("reverse DNS: ", 1, true))
    assert.is_nil(out:find("TLS versions accepted: ", 1, true))
  end)
end)

describe("check tls.cert: a certificate for the CNAME-expanded name only #unit", function()
  local fixtures = require "fixtures.facts._load"
  local function codes_of(f)
    local out = {}
    for _, x in ipairs(judge.run(f).findings) do
      if x.check == "tls.cert" then out[#out + 1] = x.code .. " " .. x.state end
    end
    table.sort(out)
    return out
  end
  it("reports cname-only instead of name-mismatch when the leaf covers the alias's target", function()
    local f = fixtures.load("mxproblems")
    local ver = f.targets[1].smtp.verify
    assert.is_false(ver.name_match)
    assert.same({ "tls.cert.name-mismatch fail" }, codes_of(f))
    ver.cname, ver.cname_match = "mx1.good.example.test", true
    assert.same({ "tls.cert.cname-only fail" }, codes_of(f))
    ver.cname_match = false
    assert.same({ "tls.cert.name-mismatch fail" }, codes_of(f))
  end)
end)

describe("check consistency: TLS versions across targets #unit", function()
  local function two(a, b)
    local f = target_facts { tls_versions = { status = "tested", versions = a } }
    local t1 = f.targets[1]
    local t2 = {}
    for k, x in pairs(t1) do t2[k] = x end
    t2.address = "192.0.2.2"
    t2.tls_versions = { status = "tested", versions = b }
    for _, t in ipairs { t1, t2 } do
      t.smtp = {
        status = "complete", time_ms = 5, transcript = {}, connect = { status = "ok" },
        banner = { status = "ok", reply = { code = 220, lines = { "mx.example.test ESMTP" } } },
        ehlo = { status = "ok", command = "EHLO", reply = { code = 250, lines = { "mx.example.test" } },
                 extensions = { STARTTLS = "" } },
        starttls = { status = "ok", command = "STARTTLS", reply = { code = 220, lines = { "go" } } },
        tls = { status = "ok", version = "TLSv1.3", cipher = "TLS_AES_256_GCM_SHA384", cipher_bits = 256 },
        ehlo_tls = { status = "ok", command = "EHLO", reply = { code = 250, lines = { "mx.example.test" } },
                     extensions = {} },
      }
    end
    f.targets[2] = t2
    return by_code(judge.run(f))
  end
  local modern = { v("TLSv1.0", "refused"), v("TLSv1.1", "refused"), v("TLSv1.2", "accepted", "X"),
                   v("TLSv1.3", "accepted", "Y") }
  local old = { v("TLSv1.0", "accepted", "X"), v("TLSv1.1", "accepted", "X"), v("TLSv1.2", "accepted", "X"),
                v("TLSv1.3", "accepted", "Y") }
  it("reports targets that accept different versions, naming each set", function()
    local c = two(modern, old)
    local f = c["consistency.versions-mixed"]
    assert.equal("fail", f.state)
    assert.equal("the 2 TLS targets accept 2 different sets of TLS versions", f.message)
    assert.equal("TLSv1.2 TLSv1.3: [192.0.2.1]; TLSv1.0 TLSv1.1 TLSv1.2 TLSv1.3: [192.0.2.2]", f.evidence)
  end)
  it("is silent when they agree, or when a version of one could not be tested", function()
    assert.is_nil(two(modern, modern)["consistency.versions-mixed"])
    local partial = { v("TLSv1.0", "untested"), v("TLSv1.1", "accepted", "X"), v("TLSv1.2", "accepted", "X"),
                      v("TLSv1.3", "accepted", "Y") }
    assert.is_nil(two(modern, partial)["consistency.versions-mixed"])
  end)
end)

describe("TLS posture on facts from real probes (fixtures) #unit", function()
  local fixtures = require "fixtures.facts._load"
  local function judged(name)
    local f = fixtures.load(name)
    assert.is_true((facts_io.validate(f)))
    return f, judge.run(f), by_code(judge.run(f))
  end
  it("tlsold: TLS 1.0 and 1.1 accepted, a warning; reverse DNS confirmed", function()
    local f, j, c = judged("tlsold")
    assert.equal("tested", f.targets[1].tls_versions.status)
    assert.equal("fail", c["tls.versions.deprecated"].state)
    assert.equal("pass", c["rdns.ok"].state)
    assert.equal("warning", j.verdict)
  end)
  it("rdnsbad: a PTR that does not resolve back", function()
    local f, _, c = judged("rdnsbad")
    assert.is_false(f.targets[1].rdns.confirmed)
    assert.equal("fail", c["rdns.unconfirmed"].state)
    assert.equal("na", c["tls.versions"].state)
  end)
  it("tlsdies: a session closed after the handshake is critical; the relay verdict is the fallback's", function()
    local f, j, c = judged("tlsdies")
    local s = f.targets[1].smtp
    assert.equal("closed", s.ehlo_tls.status)
    assert.equal("ehlo_tls", s.fallback.after)
    assert.equal("fail", c["tls.session.closed"].state)
    assert.is_nil(c["tls.session.ok"])
    assert.equal("pass", c["relay.denied"].state)
    assert.equal("critical", j.verdict)
  end)
end)
