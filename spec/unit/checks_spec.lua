-- Unit specs of every built-in check, on saved facts (spec/fixtures/facts):
-- each check passes, fails, is not applicable and could not test where the
-- facts say so. No sockets.

local fixtures = require "fixtures.facts._load"
local policy = require "mxprobe.policy"
local util = require "mxprobe.checks.util"
local checks = require "mxprobe.checks"

local by_id = {}
for _, c in ipairs(checks.list()) do by_id[c.id] = c end

-- runs one check on facts (a fixture name or a table)
local function run(id, facts, overlay, now)
  if type(facts) == "string" then facts = fixtures.load(facts) end
  local ctx = { now = now or facts.finished, policy = policy.resolve(overlay), util = util }
  return by_id[id].run(facts, ctx) or {}
end

local function codes(findings)
  local set = {}
  for _, f in ipairs(findings) do set[f.code] = (set[f.code] or 0) + 1 end
  return set
end

local function find(findings, code, address)
  for _, f in ipairs(findings) do
    if f.code == code and (address == nil or (f.target and f.target.address == address)) then return f end
  end
  return nil
end

local function states(findings)
  local set = {}
  for _, f in ipairs(findings) do set[f.state] = true end
  return set
end

describe("built-in checks #unit", function()
  it("are listed in order with a uniform shape", function()
    local ids = {}
    for i, c in ipairs(checks.list()) do
      ids[i] = c.id
      assert.is_string(c.title)
      assert.is_table(c.requires)
      assert.is_table(c.codes)
      assert.is_function(c.run)
      assert.is_true(c.scope == "target" or c.scope == "domain", c.id)
    end
    assert.same({ "dns.mx", "tcp", "smtp.banner", "smtp.ehlo", "smtp.extensions", "smtp.throttle",
      "smtp.timeout", "smtp.unsolicited", "tls.starttls", "tls.session", "tls.versions", "tls.cert",
      "tls.chain", "dane", "relay", "consistency", "mta_sts", "tls_rpt", "rdns",
      "smtp.repeat" }, ids)  -- repeat/greylist
  end)

  it("declare each code with its default severity and weight, and name it after the check", function()
    local SEV = { critical = true, warning = true, info = true, ok = true }
    local all = checks.list()
    all[#all + 1] = checks.judge
    for _, c in ipairs(all) do
      for code, d in pairs(c.codes) do
        assert.is_string(code, c.id)
        assert.is_true(code == c.id or code:sub(1, #c.id + 1) == c.id .. ".",
          code .. " does not start with its check's id " .. c.id)
        assert.is_true(SEV[d.severity] == true, code .. ": severity " .. tostring(d.severity))
        assert.is_number(d.weight, code)
        assert.is_true(d.fix == nil or type(d.fix) == "string", code)
      end
    end
  end)

  it("never raise, never change the facts and always return the same findings, on every fixture", function()
    for _, name in ipairs(fixtures.names()) do
      for _, c in ipairs(checks.list()) do
        local facts = fixtures.load(name)
        local before = fixtures.copy(facts)
        local ok, a = pcall(run, c.id, facts)
        assert.is_true(ok, name .. " / " .. c.id .. ": " .. tostring(a))
        assert.same(before, facts, name .. " / " .. c.id .. " changed the facts")
        local b = run(c.id, facts)
        assert.same(a, b, name .. " / " .. c.id .. " is not deterministic")
      end
    end
  end)

  it("emit only the codes they declare, with valid states and known targets", function()
    local VALID = { pass = true, fail = true, na = true, untested = true }
    for _, name in ipairs(fixtures.names()) do
      local facts = fixtures.load(name)
      local addrs = {}
      for _, t in ipairs(facts.targets) do addrs[tostring(t.address)] = true end
      for _, c in ipairs(checks.list()) do
        local declared = c.codes
        for _, f in ipairs(run(c.id, facts)) do
          assert.is_table(declared[f.code], name .. ": " .. c.id .. " emitted undeclared " .. tostring(f.code))
          assert.is_true(VALID[f.state] == true, name .. ": bad state " .. tostring(f.state))
          assert.is_string(f.message)
          assert.is_nil(f.message:find("\n"), "message must be one line")
          -- a target check names its target; a domain check's findings name at most an MX host
          local address = f.target and f.target.address
          if c.scope == "target" then
            assert.is_true(addrs[tostring(address)] == true,
              name .. ": " .. c.id .. ": unknown target " .. tostring(address))
          else
            assert.is_nil(address, name .. ": " .. c.id .. " is a domain check")
          end
        end
      end
    end
  end)
end)

describe("check dns.mx #unit", function()
  it("passes a domain with two MX hosts", function()
    local f = run("dns.mx", "good")
    assert.same({ ["dns.mx.ok"] = 1 }, codes(f))
    assert.equal("pass", f[1].state)
  end)

  it("fails a domain that does not exist", function()
    local f = run("dns.mx", "nxdomain")
    assert.same({ ["dns.mx.nxdomain"] = 1 }, codes(f))
    assert.equal("fail", f[1].state)
    assert.is_nil(f[1].target)
  end)

  it("fails SERVFAIL and calls a DNS timeout could-not-test", function()
    local sf = run("dns.mx", "servfail")
    assert.same({ ["dns.mx.servfail"] = 1 }, codes(sf))
    assert.equal("fail", sf[1].state)
    local f = run("dns.mx", "dnstimeout")
    assert.same({ ["dns.mx.error"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
  end)

  it("fails a domain with neither MX nor address (the implicit MX host listed, without address)", function()
    local facts = fixtures.load("nomx")
    assert.is_true(facts.dns.implicit_mx)
    assert.is_true(facts.mx[1].implicit)
    assert.equal(0, #facts.mx[1].dns.addresses)
    local f = run("dns.mx", facts)
    assert.same({ ["dns.mx.none"] = 1 }, codes(f))
    assert.equal("fail", f[1].state)
  end)

  it("calls an implicit MX host whose lookups failed could-not-test, not \"no MX\"", function()
    local facts = fixtures.load("nomx")
    local d = facts.mx[1].dns
    d.status, d.a.status, d.a.error = "dns-error", "timeout", "A mx.noaddr.example.test: timed out"
    local f = run("dns.mx", facts)
    assert.same({ ["dns.mx.error"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
    assert.equal("mx.noaddr.example.test", f[1].target.mx)
    assert.matches("A mx.noaddr.example.test: timed out", f[1].evidence, 1, true)
  end)

  it("treats a null MX as not applicable, not as an error", function()
    local f = run("dns.mx", "nullmx")
    assert.same({ ["dns.mx.null"] = 1 }, codes(f))
    assert.equal("na", f[1].state)
  end)

  it("is not applicable to an address literal", function()
    local f = run("dns.mx", "address")
    assert.equal("na", f[1].state)
    assert.equal("dns.mx", f[1].code)
  end)

  it("flags the implicit MX", function()
    local f = run("dns.mx", "implicit")
    assert.same({ ["dns.mx.implicit"] = 1 }, codes(f))
    assert.equal("fail", f[1].state)
  end)

  it("reports an MX that is a CNAME, a dangling MX and an MX without address, per host", function()
    local f = run("dns.mx", "mxproblems")
    local cname = find(f, "dns.mx.cname")
    assert.equal("alias.mxproblems.example.test", cname.target.mx)
    assert.is_nil(cname.target.address)
    assert.equal("alias.mxproblems.example.test CNAME mx1.good.example.test", cname.evidence)
    assert.equal("gone.mxproblems.example.test", find(f, "dns.mx.dangling").target.mx)
    assert.equal("empty.mxproblems.example.test", find(f, "dns.mx.no-address").target.mx)
    assert.is_nil(find(f, "dns.mx.same-address"), "hosts without address do not share one")
  end)

  it("fails when no MX host has an address", function()
    local facts = fixtures.load("mxproblems")
    table.remove(facts.mx, 1)
    table.remove(facts.targets, 1)
    local f = find(run("dns.mx", facts), "dns.mx.unusable")
    assert.equal("fail", f.state)
    assert.is_nil(f.target)
  end)

  it("notes a single MX with one address and MX hosts sharing one address", function()
    assert.equal("fail", find(run("dns.mx", "expired"), "dns.mx.single").state)
    local same = find(run("dns.mx", "sameaddr"), "dns.mx.same-address")
    assert.equal("fail", same.state)
    assert.equal("all 2 MX hosts with an address share one (127.0.1.1): no real redundancy", same.message)
  end)
end)

describe("check tcp #unit", function()
  it("passes a connection and gives its time", function()
    local f = run("tcp", "good")
    assert.same({ ["tcp.ok"] = 2 }, codes(f))
  end)

  it("fails a refused connection", function()
    local f = find(run("tcp", "refused"), "tcp.refused", "127.0.11.1")
    assert.equal("fail", f.state)
    assert.equal("connect 127.0.11.1:25: Connection refused", f.evidence)
  end)

  it("calls a timeout could-not-test, never a failure", function()
    local f = run("tcp", "timeout")
    assert.same({ ["tcp.timeout"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
  end)

  it("calls an unreachable network could-not-test", function()
    local facts = fixtures.load("timeout")
    facts.targets[1].smtp.connect.status = "unreachable"
    assert.equal("untested", find(run("tcp", facts), "tcp.unreachable").state)
  end)

  it("flags a slow connect against the policy threshold", function()
    local facts = fixtures.load("good")
    facts.targets[1].smtp.connect.time_ms = 2500
    assert.equal("fail", find(run("tcp", facts), "tcp.slow", "127.0.1.1").state)
    assert.is_nil(find(run("tcp", facts, { thresholds = { connect_slow_ms = 3000 } }), "tcp.slow"))
  end)
end)

describe("check smtp.banner #unit", function()
  it("passes a prompt 220 greeting that names the MX", function()
    local f = run("smtp.banner", "good")
    assert.same({ ["smtp.banner.ok"] = 2 }, codes(f))
  end)

  it("recognises a postscreen multi-line greeting as info, not as an error or as slow", function()
    local f = run("smtp.banner", "postscreen")
    local m = find(f, "smtp.banner.multiline", "127.0.9.1")
    assert.equal("pass", m.state)
    assert.is_nil(find(f, "smtp.banner.slow"))
    assert.is_nil(find(f, "smtp.banner.missing"))
    assert.is_nil(find(f, "smtp.banner.no-hostname"))
    assert.equal("pass", find(f, "smtp.banner.ok", "127.0.9.1").state)
  end)

  it("fails a slow greeting, measured to the first byte", function()
    -- the lab's slow banner comes after 3.0 s (smtpd "sleep 3"): slow for a
    -- 2 s threshold, not for the default 5 s
    local facts = fixtures.load("slowbanner")
    assert.is_true(facts.targets[1].smtp.banner.first_byte_ms >= 3000)
    local strict = { thresholds = { banner_slow_ms = 2000 } }
    local f = find(run("smtp.banner", facts, strict), "smtp.banner.slow")
    assert.equal("fail", f.state)
    assert.equal("127.0.10.1", f.target.address)
    assert.is_nil(find(run("smtp.banner", "slowbanner"), "smtp.banner.slow"))
    assert.equal("pass", find(run("smtp.banner", "slowbanner"), "smtp.banner.ok", "127.0.10.1").state)
  end)

  it("fails a server that connects but never greets", function()
    local f = run("smtp.banner", "silent")
    assert.same({ ["smtp.banner.missing"] = 1 }, codes(f))
    assert.equal("fail", f[1].state)
  end)

  it("fails a greeting without a host name", function()
    local facts = fixtures.load("good")
    facts.targets[1].smtp.banner.reply = { code = 220, lines = { "ESMTP ready" }, text = "ESMTP ready" }
    assert.equal("fail", find(run("smtp.banner", facts), "smtp.banner.no-hostname", "127.0.1.1").state)
  end)

  it("fails what is not an SMTP greeting", function()
    local facts = fixtures.load("good")
    facts.targets[1].smtp.banner = { status = "protocol", error = "banner 127.0.1.1:25: not an SMTP reply",
      time_ms = 1 }
    assert.equal("fail", find(run("smtp.banner", facts), "smtp.banner.invalid", "127.0.1.1").state)
  end)

  it("notes a greeting name that differs from the MX name", function()
    local f = find(run("smtp.banner", "sameaddr"), "smtp.banner.name-mismatch")
    assert.equal("fail", f.state)
    -- both names share the good server, whose greeting names mx1.good
    assert.equal("the greeting names mx1.good.example.test, not the MX name a.samehost.example.test", f.message)
  end)

  it("calls a 554 greeting could-not-test (service refused to this client)", function()
    local f = run("smtp.banner", "banner554")
    assert.same({ ["smtp.banner.rejected"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
  end)

  it("does not judge the greeting of a refused connection or a 421", function()
    assert.equal("untested", find(run("smtp.banner", "refused"), "smtp.banner", "127.0.11.1").state)
    assert.equal("untested", find(run("smtp.banner", "throttled-banner"), "smtp.banner").state)
  end)
end)

describe("check smtp.ehlo #unit", function()
  it("passes EHLO", function()
    assert.same({ ["smtp.ehlo.ok"] = 2 }, codes(run("smtp.ehlo", "good")))
  end)

  it("fails a HELO-only server once", function()
    local f = run("smtp.ehlo", "heloonly")
    assert.same({ ["smtp.ehlo.helo-only"] = 1 }, codes(f))
    assert.matches("502", f[1].evidence, 1, true)
  end)

  it("fails when EHLO and HELO are both refused", function()
    local facts = fixtures.load("heloonly")
    facts.targets[1].smtp.ehlo.reply = { code = 550, lines = { "5.7.1 go away" }, text = "5.7.1 go away" }
    assert.equal("fail", find(run("smtp.ehlo", facts), "smtp.ehlo.rejected").state)
  end)

  it("calls a 421 at EHLO could-not-test", function()
    local facts = fixtures.load("good")
    facts.targets[1].smtp.ehlo.reply = { code = 421, lines = { "4.7.0 too busy" }, text = "4.7.0 too busy" }
    facts.targets[1].smtp.ehlo.extensions = {}
    local f = find(run("smtp.ehlo", facts), "smtp.ehlo", "127.0.1.1")
    assert.equal("untested", f.state)
    assert.matches("421", f.message, 1, true)
  end)
end)

describe("check smtp.extensions #unit", function()
  it("lists PIPELINING, SIZE, 8BITMIME and SMTPUTF8 as info", function()
    local f = run("smtp.extensions", "good")
    assert.equal(2, codes(f)["smtp.extensions.pipelining"])
    local size = find(f, "smtp.extensions.size", "127.0.1.1")
    assert.equal("pass", size.state)
    assert.matches("10240000", size.message, 1, true)
  end)

  it("reports a missing extension as a fail (information only)", function()
    -- every lab Postfix offers SMTPUTF8; the hostile peer offers PIPELINING, SIZE and 8BITMIME only
    assert.equal("fail", find(run("smtp.extensions", "authrequired"), "smtp.extensions.smtputf8", "127.0.66.70").state)
    assert.equal("pass", find(run("smtp.extensions", "notls"), "smtp.extensions.smtputf8", "127.0.6.1").state)
  end)

  it("is not applicable to HELO and not tested without a session", function()
    assert.equal("na", find(run("smtp.extensions", "heloonly"), "smtp.extensions").state)
    assert.equal("untested", find(run("smtp.extensions", "timeout"), "smtp.extensions").state)
  end)
end)

describe("check smtp.throttle #unit", function()
  it("reports a 421 once, as could-not-test, with the phase", function()
    local f = run("smtp.throttle", "throttled-starttls")
    assert.same({ ["smtp.throttle.421"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
    assert.matches("STARTTLS", f[1].message, 1, true)
    assert.matches("^421", f[1].evidence)
    assert.matches("greeting", run("smtp.throttle", "throttled-banner")[1].message, 1, true)
  end)

  it("is silent without a 421", function()
    assert.same({}, run("smtp.throttle", "good"))
    assert.same({}, run("smtp.throttle", "greylist"))
  end)
end)

describe("check tls.starttls #unit", function()
  it("passes STARTTLS answered 220", function()
    assert.same({ ["tls.starttls.ok"] = 2 }, codes(run("tls.starttls", "good")))
  end)

  it("fails STARTTLS not offered", function()
    local f = find(run("tls.starttls", "notls"), "tls.starttls.missing", "127.0.6.1")
    assert.equal("fail", f.state)
  end)

  it("fails STARTTLS answered 454", function()
    local f = run("tls.starttls", "starttls454")
    assert.same({ ["tls.starttls.refused"] = 1 }, codes(f))
    assert.matches("454", f[1].message, 1, true)
  end)

  it("calls a 421 at STARTTLS throttled and could-not-test, never \"no STARTTLS\"", function()
    local f = run("tls.starttls", "throttled-starttls")
    assert.is_nil(find(f, "tls.starttls.missing"))
    assert.is_nil(find(f, "tls.starttls.refused"))
    assert.equal("untested", find(f, "tls.starttls").state)
  end)

  it("is not applicable to a HELO-only server (helo-only says it once)", function()
    local f = run("tls.starttls", "heloonly")
    assert.same({ ["tls.starttls"] = 1 }, codes(f))
    assert.equal("na", f[1].state)
  end)

  it("is not tested when the connection failed", function()
    assert.equal("untested", find(run("tls.starttls", "timeout"), "tls.starttls").state)
  end)
end)

describe("check tls.session #unit", function()
  it("passes a TLS 1.3 handshake", function()
    local f = find(run("tls.session", "good"), "tls.session.ok", "127.0.1.1")
    assert.equal("pass", f.state)
    assert.matches("TLSv1.3", f.message, 1, true)
  end)

  it("fails a handshake that broke after 220", function()
    local f = run("tls.session", "handshake")
    assert.same({ ["tls.session.failed"] = 1 }, codes(f))
    -- the peer sends half a ServerHello and closes: OpenSSL sees the end of stream
    assert.matches("unexpected eof while reading", f[1].evidence, 1, true)
  end)

  it("fails TLS 1.0 and a 112-bit 3DES cipher", function()
    local f = run("tls.session", "weaktls")
    assert.equal("fail", find(f, "tls.session.old-version").state)
    assert.is_nil(find(f, "tls.session.weak-cipher")) -- what OpenSSL negotiates at TLS 1.0 has 256 bits
    local tls1 = { thresholds = { tls_min_version = "TLSv1" } }
    assert.is_nil(find(run("tls.session", "weaktls", tls1), "tls.session.old-version"))
    -- Debian 12's OpenSSL has no 3DES (nor any cipher under 128 bits the
    -- client offers), so no server can negotiate one: the cipher is put into
    -- the real TLS 1.0 facts by hand
    local facts = fixtures.load("weaktls")
    facts.targets[1].smtp.tls.cipher, facts.targets[1].smtp.tls.cipher_bits = "DES-CBC3-SHA", 112
    local weak = find(run("tls.session", facts), "tls.session.weak-cipher")
    assert.equal("fail", weak.state)
    assert.equal("weak cipher DES-CBC3-SHA (112-bit)", weak.message)
    assert.equal("TLSv1 DES-CBC3-SHA (112 bits)", weak.evidence)
    -- 112 bits allowed by the policy: 3DES is still a broken family
    local allow112 = { thresholds = { cipher_bits_min = 112 } }
    local allowed = find(run("tls.session", facts, allow112), "tls.session.weak-cipher")
    assert.equal("weak cipher DES-CBC3-SHA (broken family)", allowed.message)
  end)

  it("is not applicable without STARTTLS and not tested after a 421", function()
    assert.equal("na", find(run("tls.session", "notls"), "tls.session").state)
    assert.equal("untested", find(run("tls.session", "throttled-starttls"), "tls.session").state)
  end)

  it("calls a stalled handshake could-not-test", function()
    local facts = fixtures.load("handshake")
    facts.targets[1].smtp.tls.status = "timeout"
    local f = run("tls.session", facts)
    assert.same({ ["tls.session"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
  end)
end)

describe("check tls.cert #unit", function()
  it("passes a trusted, valid certificate for the MX name", function()
    local f = run("tls.cert", "good")
    assert.same({ ["tls.cert.ok"] = 2 }, codes(f))
  end)

  it("fails an expired certificate, with the date", function()
    local f = run("tls.cert", "expired")
    local e = find(f, "tls.cert.expired")
    assert.equal("fail", e.state)
    assert.matches("(2021-01-01 00:00:00 UTC)", e.message, 1, true)
    assert.matches("verify: expired", e.evidence, 1, true)
    assert.equal(1, codes(f)["tls.cert.expired"])
  end)

  it("judges dates at ctx.now, not at the wall clock", function()
    local later = fixtures.load("good").finished + 400 * 86400
    local l = run("tls.cert", "good", nil, later)
    assert.equal(2, codes(l)["tls.cert.expired"]) -- both targets
    assert.equal("fail", find(l, "tls.cert.expired", "127.0.1.1").state)
    assert.is_nil(find(l, "tls.cert.ok"))
    local earlier = fixtures.load("good").finished - 90 * 86400
    local e = run("tls.cert", "good", nil, earlier)
    assert.equal(2, codes(e)["tls.cert.not-yet-valid"])
    assert.equal("fail", find(e, "tls.cert.not-yet-valid", "127.0.1.1").state)
    assert.is_nil(find(e, "tls.cert.ok"))
  end)

  it("warns about expiry within expiry_days (14 by default, configurable)", function()
    assert.equal("fail", find(run("tls.cert", "expiring"), "tls.cert.expiring", "127.0.14.1").state)
    -- the lab makes it valid for 5 days from "up", probed seconds later: just under 5 days left
    assert.is_nil(find(run("tls.cert", "expiring", { thresholds = { expiry_days = 4 } }), "tls.cert.expiring"))
    assert.is_nil(find(run("tls.cert", "good"), "tls.cert.expiring"))
    local far = find(run("tls.cert", "good", { thresholds = { expiry_days = 365 } }), "tls.cert.expiring")
    assert.equal("fail", far.state)
  end)

  it("fails a self-signed certificate once (not also as untrusted)", function()
    local f = run("tls.cert", "selfsigned")
    assert.same({ ["tls.cert.self-signed"] = 1 }, codes(f))
  end)

  it("fails an incomplete chain", function()
    assert.same({ ["tls.cert.incomplete-chain"] = 1 }, codes(run("tls.cert", "incomplete")))
  end)

  it("fails an untrusted root, with the verifier's reason", function()
    local f = find(run("tls.cert", "untrusted"), "tls.cert.untrusted")
    assert.equal("fail", f.state)
    assert.matches("untrusted-root at depth 1", f.evidence, 1, true)
  end)

  it("fails a certificate for another name, and names what it covers", function()
    local f = find(run("tls.cert", "wrongname"), "tls.cert.name-mismatch", "127.0.3.1")
    assert.equal("fail", f.state)
    assert.equal("SAN other.example.org; CN other.example.org", f.evidence)
  end)

  it("takes the name match from libcrypto's X509_check_host (verify.name_match), never from a Lua copy", function()
    local facts = fixtures.load("good")
    local s = facts.targets[1].smtp
    -- the SANs do not decide: only the prober's name_match does
    s.certificates[1].san_dns, s.certificates[1].san_count = { "*.example.test" }, 1
    local ok = run("tls.cert", facts)
    assert.same({ ["tls.cert.ok"] = 2 }, codes(ok))
    assert.matches("name mx1.good.example.test matches", ok[1].message, 1, true)
    s.verify.name_match = false
    local f = find(run("tls.cert", facts), "tls.cert.name-mismatch", "127.0.1.1")
    assert.equal("fail", f.state)
    assert.equal("SAN *.example.test; CN mx1.good.example.test", f.evidence)
    -- no verify result: the name is not judged (and the finding says so)
    s.verify = nil
    local none = find(run("tls.cert", facts), "tls.cert.ok", "127.0.1.1")
    assert.equal("pass", none.state)
    assert.matches("chain not verified, valid until .*, name not checked$", none.message)
  end)

  it("fails a 1024-bit RSA key and a SHA-1 signature", function()
    local f = run("tls.cert", "weakkey")
    assert.equal(1, codes(f)["tls.cert.weak-key"])
    assert.equal("fail", find(f, "tls.cert.sha1").state)
  end)

  it("is not applicable without TLS: \"no TLS\" is never said twice", function()
    for _, name in ipairs({ "notls", "starttls454", "heloonly", "handshake" }) do
      local f = run("tls.cert", name)
      assert.same({ na = true }, states(f), name)
    end
  end)

  it("is not tested after a 421 or a timeout", function()
    assert.same({ untested = true }, states(run("tls.cert", "throttled-starttls")))
    assert.same({ untested = true }, states(run("tls.cert", "timeout")))
  end)
end)

describe("check relay #unit", function()
  it("passes a server that denies relaying", function()
    local f = find(run("relay", "good"), "relay.denied", "127.0.1.1")
    assert.equal("pass", f.state)
    assert.matches("554", f.evidence, 1, true)
  end)

  it("passes a server that wants authentication to relay", function()
    assert.same({ ["relay.auth-required"] = 1 }, codes(run("relay", "authrequired")))
  end)

  it("fails an open relay", function()
    local f = run("relay", "openrelay")
    assert.same({ ["relay.open"] = 1 }, codes(f))
    assert.equal("fail", f[1].state)
  end)

  it("tells a server that accepts any recipient from a relay by the control", function()
    local f = run("relay", "acceptsany")
    assert.same({ ["relay.accepts-any"] = 1 }, codes(f))
    assert.matches("postmaster", f[1].evidence, 1, true)
  end)

  it("never calls greylisting an open relay", function()
    local f = run("relay", "greylist")
    assert.same({ ["relay.inconclusive"] = 1 }, codes(f))
    assert.equal("untested", f[1].state)
    assert.matches("451", f[1].message, 1, true)
  end)

  it("fails a server that refuses mail for the domain's postmaster", function()
    local facts = fixtures.load("good")
    local ctl = facts.targets[1].smtp.relay.rcpt_control.reply
    ctl.code, ctl.lines, ctl.text = 550, { "5.1.1 User unknown" }, "5.1.1 User unknown"
    local f = run("relay", facts)
    assert.equal("pass", find(f, "relay.denied", "127.0.1.1").state)
    assert.equal("fail", find(f, "relay.control-rejected", "127.0.1.1").state)
  end)

  it("is not applicable with --no-relay-test and not tested without a session", function()
    assert.same({ na = true }, states(run("relay", "norelaytest")))
    assert.same({ untested = true }, states(run("relay", "timeout")))
    assert.same({ untested = true }, states(run("relay", "throttled-starttls")))
  end)
end)

describe("check consistency #unit", function()
  it("fails one MX with TLS and another without", function()
    local f = run("consistency", "tlsmixed")
    assert.same({ ["consistency.tls-mixed"] = 1 }, codes(f))
    assert.is_nil(f[1].target)
    assert.equal("TLS: mx1.mixed.example.test [127.0.1.1]; "
      .. "no TLS: mx2.mixed.example.test [127.0.6.1] (STARTTLS not offered)", f[1].evidence)
  end)

  it("notes certificates that verify on some MX only", function()
    -- no lab domain has two MX hosts with different certificates: good's
    -- second MX is given the wrongname server's real certificate and verify result
    local facts = fixtures.load("good")
    local wrong = fixtures.load("wrongname").targets[1].smtp
    facts.targets[2].smtp.certificates, facts.targets[2].smtp.verify = wrong.certificates, wrong.verify
    local f = run("consistency", facts)
    assert.same({ ["consistency.cert-mixed"] = 1 }, codes(f))
    assert.equal("fail", f[1].state)
    assert.equal("verified: mx1.good.example.test [127.0.1.1]; "
      .. "not verified: mx2.good.example.test [127.0.1.2] (name mismatch)", f[1].evidence)
    assert.same({}, run("consistency", "wrongname")) -- one MX only: nothing to compare
  end)

  it("is silent when the MX hosts agree, or when targets could not be tested", function()
    assert.same({}, run("consistency", "good"))
    assert.same({}, run("consistency", "notls"))
    local facts = fixtures.load("tlsmixed")
    facts.targets[2].smtp.connect = { status = "timeout", time_ms = 10000 }
    facts.targets[2].smtp.banner, facts.targets[2].smtp.ehlo, facts.targets[2].smtp.relay = nil, nil, nil
    assert.same({}, run("consistency", facts))
  end)
end)
