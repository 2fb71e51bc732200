-- TLS posture and identity on the lab's real Postfix and NSD (issue 9
-- items 1 and 4): the TLS versions each server accepts, from one short
-- STARTTLS dialog per version, and the reverse DNS of each address. The
-- scenarios (spec/lab/README.md, 127.0.40.x): tlsold (TLS 1.0 to 1.3,
-- PTR matching), tls13 (TLS 1.3 only, no PTR), rdnsbad (PTR not
-- forward-confirmed), rdnstwo (two PTRs); and the existing good and tls12;
-- item 5 on the existing mxcname (an MX alias whose certificate names only
-- the canonical name).
local mxprobe = require "mxprobe"
local facts_io = require "mxprobe.facts"
local loop = require "mxprobe.loop"
local lab = require "support.lab"

local read_log = lab.maillog

-- the smtpd "disconnect" summaries of one lab service in a log, sorted
local function disconnects(log, service)
  local out = lab.disconnects(log, service)
  table.sort(out)
  return out
end

local finding = lab.finding

-- the codes of a target's findings that fail and count (not info), sorted
local function failures(j, address)
  local out = {}
  for _, f in ipairs(j.findings) do
    if f.state == "fail" and f.severity ~= "info" and f.target and f.target.address == address then
      out[#out + 1] = f.code
    end
  end
  table.sort(out)
  return out
end

-- { {version, status, negotiated} } of a target
local function versions(t)
  local out = {}
  for i, v in ipairs(t.tls_versions.versions) do out[i] = { v.version, v.status, v.negotiated } end
  return out
end

describe("TLS posture on the lab #integration", function()
  local F, J = {}, {}
  local DOMAINS = { "tlsold", "tls13", "tls12", "good", "rdnsbad", "rdnstwo" }
  local from

  setup(function()
    loop.sleep(300)   -- earlier sessions reach the log before we mark ours
    from = #read_log()
    local q = {}
    for i, d in ipairs(DOMAINS) do q[i] = d .. ".example.test" end
    local list = assert(mxprobe.probe_list(q, lab.options()))
    for i, d in ipairs(DOMAINS) do
      F[d] = list[i]
      J[d] = mxprobe.judge(list[i])
    end
  end)

  it("gathers facts the schema validates, before and after JSON", function()
    for _, d in ipairs(DOMAINS) do
      local ok, errs = facts_io.validate(F[d])
      assert.is_true(ok, d .. ": " .. table.concat(errs or {}, "; "))
      local back = assert(facts_io.decode(facts_io.encode(F[d])))[1]
      assert.is_true((facts_io.validate(back)), d)
    end
  end)

  describe("TLS versions", function()
    it("sees TLS 1.0 and 1.1 where Postfix still accepts them, and warns (RFC 8996)", function()
      local t = F.tlsold.targets[1]
      assert.equal("tested", t.tls_versions.status)
      assert.same({ { "TLSv1.0", "accepted", "TLSv1" }, { "TLSv1.1", "accepted", "TLSv1.1" },
                    { "TLSv1.2", "accepted", "TLSv1.2" }, { "TLSv1.3", "accepted", "TLSv1.3" } }, versions(t))
      assert.equal("ECDHE-ECDSA-AES256-SHA", t.tls_versions.versions[1].cipher)
      assert.equal("ECDHE-ECDSA-AES256-SHA", t.tls_versions.versions[2].cipher)
      assert.equal("tlsv1.0", t.tls_versions.versions[1].protocols)
      assert.same({ "tls.versions.deprecated" }, failures(J.tlsold, "127.0.40.1"))
      local f = finding(J.tlsold, "tls.versions.deprecated")
      assert.equal("warning", f.severity)
      assert.equal("accepts TLSv1.0 and TLSv1.1, deprecated by RFC 8996", f.message)
      assert.equal("TLSv1.0: ECDHE-ECDSA-AES256-SHA; TLSv1.1: ECDHE-ECDSA-AES256-SHA", f.evidence)
      assert.equal("warning", J.tlsold.verdict)
      -- the main dialog negotiated the best one, as before
      assert.equal("TLSv1.3", t.smtp.tls.version)
    end)

    it("sees a TLS 1.3-only server refuse the others with an alert, and finds nothing wrong with it", function()
      local t = F.tls13.targets[1]
      assert.same({ { "TLSv1.0", "refused" }, { "TLSv1.1", "refused" }, { "TLSv1.2", "refused" },
                    { "TLSv1.3", "accepted", "TLSv1.3" } }, versions(t))
      for i = 1, 3 do
        assert.matches("alert protocol version", t.tls_versions.versions[i].error, 1, true)
      end
      assert.equal("TLS_AES_256_GCM_SHA384", t.tls_versions.versions[4].cipher)
      assert.equal("TLS versions accepted: TLSv1.3 (TLS_AES_256_GCM_SHA384); refused: TLSv1.0, TLSv1.1, TLSv1.2",
        finding(J.tls13, "tls.versions.accepted").message)
      assert.same({ "rdns.missing" }, failures(J.tls13, "127.0.40.2"))
    end)

    it("sees the TLS 1.2-only server and the healthy one as they are", function()
      assert.same({ { "TLSv1.0", "refused" }, { "TLSv1.1", "refused" }, { "TLSv1.2", "accepted", "TLSv1.2" },
                    { "TLSv1.3", "refused" } }, versions(F.tls12.targets[1]))
      assert.same({}, failures(J.tls12, "127.0.17.1"))
      for i, a in ipairs { "127.0.1.1", "127.0.1.2" } do
        assert.same({ { "TLSv1.0", "refused" }, { "TLSv1.1", "refused" }, { "TLSv1.2", "accepted", "TLSv1.2" },
                      { "TLSv1.3", "accepted", "TLSv1.3" } }, versions(F.good.targets[i]))
        assert.same({}, failures(J.good, a))
      end
      assert.equal("ok", J.good.verdict)
    end)

    it("does not try versions where the main dialog had no TLS", function()
      local tv = F.rdnsbad.targets[1].tls_versions
      assert.same({ status = "skipped", reason = "no TLS session in the main dialog", versions = {} }, tv)
      assert.equal("na", finding(J.rdnsbad, "tls.versions").state)
    end)

    it("holds each version dialog to EHLO, STARTTLS and QUIT: Postfix's own log, one line per connection", function()
      local log
      for _ = 1, 50 do
        log = read_log():sub(from + 1)
        if #disconnects(log, "lab-tls13") >= 5 and #disconnects(log, "lab-tlsold") >= 5 then break end
        loop.sleep(100)
      end
      -- the main dialog, then one per version: accepted ones end with QUIT
      -- inside TLS, refused ones at the failed handshake; never MAIL or RCPT
      assert.same({
        "ehlo=1 starttls=0/1 commands=1/2", "ehlo=1 starttls=0/1 commands=1/2",
        "ehlo=1 starttls=0/1 commands=1/2", "ehlo=1 starttls=1 quit=1 commands=3",
        "ehlo=2 starttls=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=7/8",
      }, disconnects(log, "lab-tls13"))
      assert.same({
        "ehlo=1 starttls=1 quit=1 commands=3", "ehlo=1 starttls=1 quit=1 commands=3",
        "ehlo=1 starttls=1 quit=1 commands=3", "ehlo=1 starttls=1 quit=1 commands=3",
        "ehlo=2 starttls=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=7/8",
      }, disconnects(log, "lab-tlsold"))
      -- no TLS in the main dialog, no version dialog
      assert.same({ "ehlo=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=5/6" }, disconnects(log, "lab-rdnsbad"))
    end)

    it("tells two MX that accept different versions apart (consistency)", function()
      -- after the log spec above has counted its lines: busted runs the
      -- tests of a block in order, and this probe would add to them
      local f = finding(mxprobe.judge(assert(mxprobe.probe("versionsmixed.example.test", lab.options()))),
        "consistency.versions-mixed")
      assert.equal("fail", f.state)
      assert.equal("the 2 TLS targets accept 2 different sets of TLS versions", f.message)
      assert.equal("TLSv1.0 TLSv1.1 TLSv1.2 TLSv1.3: mx.tlsold.example.test [127.0.40.1]; "
        .. "TLSv1.3: mx.tls13.example.test [127.0.40.2]", f.evidence)
      assert.is_nil(finding(J.good, "consistency.versions-mixed"))
    end)
  end)

  describe("reverse DNS", function()
    it("finds the PTR of a lab address and confirms it forward", function()
      local r = F.tlsold.targets[1].rdns
      assert.equal("1.40.0.127.in-addr.arpa", r.name)
      assert.equal("ok", r.ptr.status)
      assert.is_true(r.ptr.ad)
      assert.same({ "mx.tlsold.example.test" }, r.names)
      assert.equal(1, #r.forward)
      assert.equal("A", r.forward[1].query.type)
      assert.same({ "127.0.40.1" }, { r.forward[1].query.records[1].address })
      assert.is_true(r.forward[1].confirmed)
      assert.is_true(r.confirmed)
      local f = finding(J.tlsold, "rdns.ok")
      assert.equal("PTR mx.tlsold.example.test, forward-confirmed", f.message)
      assert.is_nil(finding(J.tlsold, "rdns.names-differ"))
    end)

    it("reports an address without PTR", function()
      local r = F.tls13.targets[1].rdns
      assert.equal("nxdomain", r.ptr.status)
      assert.same({}, r.names)
      assert.is_false(r.confirmed)
      local f = finding(J.tls13, "rdns.missing")
      assert.equal("fail", f.state)
      assert.equal("no PTR record for 127.0.40.2", f.message)
      assert.equal("2.40.0.127.in-addr.arpa: nxdomain", f.evidence)
    end)

    it("reports a PTR whose name has another address, and shows the four names", function()
      local r = F.rdnsbad.targets[1].rdns
      assert.same({ "ptr.rdnsbad.example.test" }, r.names)
      assert.equal("127.0.40.99", r.forward[1].query.records[1].address)
      assert.is_false(r.confirmed)
      assert.same({ "rdns.unconfirmed", "tls.starttls.missing" }, failures(J.rdnsbad, "127.0.40.3"))
      assert.equal("PTR ptr.rdnsbad.example.test does not resolve back to 127.0.40.3 (not forward-confirmed)",
        finding(J.rdnsbad, "rdns.unconfirmed").message)
      assert.equal("3.40.0.127.in-addr.arpa PTR ptr.rdnsbad.example.test; ptr.rdnsbad.example.test A 127.0.40.99",
        finding(J.rdnsbad, "rdns.unconfirmed").evidence)
      local d = finding(J.rdnsbad, "rdns.names-differ")
      assert.equal("info", d.severity)
      assert.equal("PTR: ptr.rdnsbad.example.test; banner: mx.rdnsbad.example.test; "
        .. "EHLO: mx.rdnsbad.example.test; MX: mx.rdnsbad.example.test", d.evidence)
    end)

    it("asks the reverse name of an IPv6 address, 32 nibbles under ip6.arpa, and confirms it with AAAA", function()
      local f = assert(mxprobe.probe("v6only.example.test", lab.options { tls_versions = false }))
      local t = f.targets[1]
      assert.equal("::1", t.address)
      local r = t.rdns
      assert.equal("1." .. ("0."):rep(31) .. "ip6.arpa", r.name)
      -- Unbound answers ::1 from its own local data: localhost
      assert.equal("ok", r.ptr.status)
      assert.same({ "localhost" }, r.names)
      assert.equal("AAAA", r.forward[1].query.type)
      assert.is_true(r.confirmed)
      local j = mxprobe.judge(f)
      assert.equal("pass", finding(j, "rdns.ok").state)
      assert.equal("PTR: localhost; banner: mx.v6only.example.test; EHLO: mx.v6only.example.test; "
        .. "MX: mx.v6only.example.test", finding(j, "rdns.names-differ").evidence)
    end)

    it("reports two PTRs (both confirmed)", function()
      local r = F.rdnstwo.targets[1].rdns
      local names = { r.names[1], r.names[2] }
      table.sort(names)
      assert.same({ "alias.rdnstwo.example.test", "mx.rdnstwo.example.test" }, names)
      assert.is_true(r.forward[1].confirmed)
      assert.is_true(r.forward[2].confirmed)
      assert.equal("pass", finding(J.rdnstwo, "rdns.ok").state)
      local f = finding(J.rdnstwo, "rdns.several")
      assert.equal("fail", f.state)
      assert.equal("info", f.severity)
      assert.matches("^2 PTR records for 127%.0%.40%.4: ", f.message)
    end)
  end)
end)

describe("names: a certificate for the CNAME-expanded name only #integration", function()
  it("says the certificate covers the name the MX alias leads to, not the MX name", function()
    local f = assert(mxprobe.probe("mxcname.example.test", lab.options { tls_versions = false }))
    local t = f.targets[1]
    assert.same({ "mx1.good.example.test" }, f.mx[1].dns.cname)
    local v = t.smtp.verify
    assert.equal("alias.mxcname.example.test", v.name)
    assert.is_false(v.name_match)
    assert.equal("mx1.good.example.test", v.cname)
    assert.is_true(v.cname_match)
    assert.is_true((facts_io.validate(f)))
    local j = mxprobe.judge(f)
    assert.is_nil(finding(j, "tls.cert.name-mismatch"))
    local c = finding(j, "tls.cert.cname-only")
    assert.equal("fail", c.state)
    -- the alias leads to mx1.good, whose TLSA records are secure: under
    -- DANE, which may use the CNAME-expanded name, that is information
    -- (the certificate rule); judged without the TLSA facts, the MX is
    -- opportunistic and it is a warning
    assert.same({ mx = "alias.mxcname.example.test", regime = "dane" },
      { mx = j.regimes[1].mx, regime = j.regimes[1].regime })
    assert.equal("info", c.severity)
    f.mx[1].tlsa = nil
    assert.equal("warning", finding(mxprobe.judge(f), "tls.cert.cname-only").severity)
    assert.equal("the certificate covers mx1.good.example.test, the name the MX alias.mxcname.example.test is an "
      .. "alias of, but not the MX name as published: senders that verify check that (DANE may use both, "
      .. "RFC 7672 §2.2.3)", c.message)
    assert.matches("mx1.good.example.test", c.evidence, 1, true)
  end)

  it("keeps name-mismatch for a certificate that covers neither", function()
    local f = assert(mxprobe.probe("wrongname.example.test", lab.options { tls_versions = false }))
    local v = f.targets[1].smtp.verify
    assert.is_false(v.name_match)
    assert.is_nil(v.cname)
    local j = mxprobe.judge(f)
    assert.equal("fail", finding(j, "tls.cert.name-mismatch").state)
    assert.is_nil(finding(j, "tls.cert.cname-only"))
  end)
end)

describe("TLS posture in the CLI #integration", function()
  it("shows the versions and the reverse DNS of each target in the text report", function()
    local out, _, status = lab.cli("--no-color " .. lab.lab_args() .. " tlsold.example.test")
    assert.equal(1, status)
    assert.truthy(out:find("\n    TLS versions accepted: TLSv1.0 TLSv1.1 TLSv1.2 TLSv1.3 · "
      .. "reverse DNS: mx.tlsold.example.test (forward-confirmed)\n", 1, true), out)
    assert.truthy(out:find("tls.versions.deprecated", 1, true), out)
  end)

  it("skips the version dialogs with --no-tls-versions", function()
    local out, _, status = lab.cli("--json --no-tls-versions " .. lab.lab_args() .. " tlsold.example.test")
    assert.equal(0, status)
    local doc = require("cjson").decode(out)
    local t = doc.results[1].facts.targets[1]
    assert.equal("skipped", t.tls_versions.status)
    assert.equal("not asked for (--no-tls-versions)", t.tls_versions.reason)
  end)
end)
