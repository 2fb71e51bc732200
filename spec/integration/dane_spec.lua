-- DANE for SMTP (RFC 7672) on the lab: real signed TLSA records (NSD,
-- ldns-signzone), the validating resolver (Unbound) and real Postfix
-- servers on 127.0.20.1-3 (spec/lab/README.md, "DANE"). Each scenario's
-- facts (mx[i].tlsa, targets[i].dane) and the exact findings of check dane,
-- the regime of its MX and the certificate rule's severities.
local mxprobe = require "mxprobe"
local lab = require "support.lab"
local tlsa = require "mxprobe.gather.tlsa"

local DOMAINS = {
  "dane-ee", "dane-ee512", "dane-ta", "dane-unusable", "dane-mismatch", "dane-rollover",
  "dane-stale", "dane-digest", "dane-cname", "dane-selfsigned", "dane-expired", "dane-bogus",
  "dane-bogusaddr", "unsigned", "good", "expired", "dane-taname", "dane-notls",
}

-- "code state severity" of every finding of check dane, in order
local function dane_findings(j)
  local out = {}
  for _, f in ipairs(j.findings) do
    if f.check == "dane" then out[#out + 1] = ("%s %s %s"):format(f.code, f.state, f.severity) end
  end
  return out
end

local function find(j, code)
  for _, f in ipairs(j.findings) do if f.code == code then return f end end
  return nil
end

describe("DANE on the lab #integration", function()
  local F, J = {}, {}

  setup(function()
    local queries = {}
    for i, d in ipairs(DOMAINS) do queries[i] = d .. ".example.test" end
    local list = assert(mxprobe.probe_list(queries, lab.options { timeout = 5 }))
    for i, d in ipairs(DOMAINS) do
      F[d] = list[i]
      J[d] = mxprobe.judge(list[i])
    end
  end)

  it("gathers facts that the schema validates, for every DANE scenario", function()
    lab.assert_valid_facts(F, DOMAINS)
  end)

  it("matches DANE-EE 3 1 1 against the leaf's key: a secure answer, one record, SNI the MX name", function()
    local mx, t = F["dane-ee"].mx[1], F["dane-ee"].targets[1]
    local q = mx.tlsa.queries[1]
    assert.equal(1, #mx.tlsa.queries)
    assert.equal("_25._tcp.mx.dane-ee.example.test", q.name)
    assert.equal("ok", q.status)
    assert.is_true(q.ad)
    assert.is_true(q.signed)
    assert.equal(1, #q.records)
    local r = q.records[1]
    assert.same({ 3, 1, 1 }, { r.usage, r.selector, r.mtype })
    assert.equal(t.smtp.certificates[1].spki_sha256, r.data)
    assert.equal("mx.dane-ee.example.test", mx.tlsa.base_domain)
    assert.equal("mx.dane-ee.example.test", mx.tlsa.servername)
    assert.equal("mx.dane-ee.example.test", t.smtp.tls.servername)
    assert.equal("ok", t.dane.status)
    assert.same({ "mx.dane-ee.example.test" }, t.dane.names)
    assert.same({ { record = 1, depth = 0 } }, t.dane.matches)
    assert.same({}, t.dane.ta)
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J["dane-ee"]))
    assert.matches("3 1 1 %x+… %(DANE%-EE, the leaf%)", find(J["dane-ee"], "dane.match").message)
    assert.equal("ok", J["dane-ee"].verdict)
    assert.same({ { mx = "mx.dane-ee.example.test", regime = "dane",
      reason = "DANE: DNSSEC-secure TLSA records at _25._tcp.mx.dane-ee.example.test" } }, J["dane-ee"].regimes)
  end)

  it("matches DANE-EE 3 1 2 (SHA-512 of the key)", function()
    local r = F["dane-ee512"].mx[1].tlsa.queries[1].records[1]
    assert.same({ 3, 1, 2 }, { r.usage, r.selector, r.mtype })
    assert.equal(128, #r.data)
    assert.same({ { record = 1, depth = 0 } }, F["dane-ee512"].targets[1].dane.matches)
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J["dane-ee512"]))
    assert.equal("ok", J["dane-ee512"].verdict)
  end)

  it("matches DANE-TA 2 1 1 against the intermediate, verifies the chain to it and checks the name", function()
    local d = F["dane-ta"].targets[1].dane
    assert.same({ { record = 1, depth = 1 } }, d.matches)
    assert.equal(1, #d.ta)
    assert.equal(1, d.ta[1].depth)
    assert.is_true(d.ta[1].ok)
    assert.is_true(d.ta[1].name_match)
    assert.equal("mx.dane-ta.example.test", d.ta[1].name)
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J["dane-ta"]))
    assert.matches("(DANE-TA, chain certificate at depth 1, name mx.dane-ta.example.test)",
      find(J["dane-ta"], "dane.match").message, 1, true)
  end)

  it("checks the names under DANE-TA: a chain that verifies to the anchor but names another host fails", function()
    local d = F["dane-taname"].targets[1].dane
    assert.same({ "mx.dane-taname.example.test" }, d.names)
    assert.is_true(d.ta[1].ok)
    assert.is_false(d.ta[1].name_match)
    assert.same({ "dane.mismatch fail critical" }, dane_findings(J["dane-taname"]))
    assert.matches("2 1 1 %x+… matches the certificate at depth 1 but the leaf does not match the names "
      .. "mx%.dane%-taname%.example%.test", find(J["dane-taname"], "dane.mismatch").evidence)
  end)

  it("calls an MX with TLSA records and no STARTTLS critical: DANE senders never fall back", function()
    assert.same({ "dane.no-tls fail critical" }, dane_findings(J["dane-notls"]))
    assert.is_nil(F["dane-notls"].targets[1].dane)
    assert.equal("critical", J["dane-notls"].verdict)
    assert.equal("dane", J["dane-notls"].regimes[1].regime)
  end)

  it("calls PKIX-TA/PKIX-EE records (0, 1) unusable: TLS mandatory but unauthenticated", function()
    local q = F["dane-unusable"].mx[1].tlsa.queries[1]
    local usages = {}
    for i, r in ipairs(q.records) do usages[i] = r.usage end
    table.sort(usages)
    assert.same({ 0, 1 }, usages)
    -- the records do match (PKIX-TA the intermediate, PKIX-EE the leaf):
    -- they are not used all the same
    local depths = {}
    for i, m in ipairs(F["dane-unusable"].targets[1].dane.matches) do depths[i] = m.depth end
    table.sort(depths)
    assert.same({ 0, 1 }, depths)
    assert.same({ "dane.unusable fail warning" }, dane_findings(J["dane-unusable"]))
    assert.equal("warning", J["dane-unusable"].verdict)
    assert.equal("opportunistic", J["dane-unusable"].regimes[1].regime)
  end)

  it("calls a record that matches nothing critical, and the CLI exits 2", function()
    assert.same({}, F["dane-mismatch"].targets[1].dane.matches)
    assert.same({ "dane.mismatch fail critical" }, dane_findings(J["dane-mismatch"]))
    local f = find(J["dane-mismatch"], "dane.mismatch")
    assert.matches("served leaf: 3 1 1 " .. F["dane-mismatch"].targets[1].smtp.certificates[1].spki_sha256,
      f.evidence, 1, true)
    assert.equal("critical", J["dane-mismatch"].verdict)
    assert.equal("dane", J["dane-mismatch"].regimes[1].regime)
    local out, _, st = lab.cli(lab.lab_args() .. " --no-color dane-mismatch.example.test")
    assert.equal(2, st)
    assert.matches("mx.dane-mismatch.example.test [127.0.20.1]  pref 10  dane  grade F (49/100)", out, 1, true)
    assert.matches("critical  dane.mismatch", out, 1, true)
  end)

  it("reports a rollover pair: the current key matches, the next one is published ahead", function()
    assert.equal(2, #F["dane-rollover"].mx[1].tlsa.queries[1].records)
    assert.equal(1, #F["dane-rollover"].targets[1].dane.matches)
    assert.same({ "dane.match pass ok", "dane.rollover.unmatched fail info" }, dane_findings(J["dane-rollover"]))
    assert.equal("ok", J["dane-rollover"].verdict)
  end)

  it("warns when only the DANE-TA record matches and the DANE-EE record is stale", function()
    assert.same({ "dane.match pass ok", "dane.rollover.non-primary fail warning" }, dane_findings(J["dane-stale"]))
    assert.equal("warning", J["dane-stale"].verdict)
  end)

  it("uses only the strongest digest: a matching 3 1 1 does not count beside a 3 1 2", function()
    -- the 3 1 1 record matches the leaf (a fact) ...
    assert.equal(1, #F["dane-digest"].targets[1].dane.matches)
    -- ... but RFC 7671 §9 ignores it: the 3 1 2 names another key
    assert.same({ "dane.mismatch fail critical" }, dane_findings(J["dane-digest"]))
    assert.matches("ignored: 3 1 1 %x+… %(weaker digest", find(J["dane-digest"], "dane.mismatch").evidence)
  end)

  it("looks up TLSA at the CNAME-expanded name first and sends it as SNI", function()
    local mx, t = F["dane-cname"].mx[1], F["dane-cname"].targets[1]
    assert.equal("alias.dane-cname.example.test", mx.name)
    assert.equal("_25._tcp.mx.dane-ee.example.test", mx.tlsa.queries[1].name)
    assert.equal(1, #mx.tlsa.queries)
    assert.equal("mx.dane-ee.example.test", mx.tlsa.base_domain)
    assert.equal("mx.dane-ee.example.test", t.smtp.tls.servername)
    assert.same({ "mx.dane-ee.example.test", "alias.dane-cname.example.test" }, t.dane.names)
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J["dane-cname"]))
    -- the certificate names only the CNAME target, not the alias: under
    -- DANE (which may use either name, RFC 7672 §2.2.3) that is information
    local f = find(J["dane-cname"], "tls.cert.cname-only")
    assert.same({ "fail", "info", 0 }, { f.state, f.severity, f.weight })
  end)

  it("finds a self-signed MX that matches its 3 1 1 record ok, and the CLI exits 0", function()
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J["dane-selfsigned"]))
    local f = find(J["dane-selfsigned"], "tls.cert.self-signed")
    assert.same({ "fail", "info", 0 }, { f.state, f.severity, f.weight })
    assert.equal("ok", J["dane-selfsigned"].verdict)
    local out, _, st = lab.cli(lab.lab_args() .. " --no-color dane-selfsigned.example.test")
    assert.equal(0, st)
    assert.matches("mx.dane-selfsigned.example.test [127.0.20.2]  pref 10  dane  grade A (100/100)", out, 1, true)
  end)

  it("finds an expired leaf that matches its 3 1 1 record ok: its dates do not matter under DANE-EE", function()
    assert.equal("expired", F["dane-expired"].targets[1].smtp.verify.reason)
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J["dane-expired"]))
    local f = find(J["dane-expired"], "tls.cert.expired")
    assert.same({ "fail", "info", 0 }, { f.state, f.severity, f.weight })
    assert.equal("ok", J["dane-expired"].verdict)
  end)

  it("proves a bogus TLSA answer with a CD query, and calls it critical", function()
    local tl = F["dane-bogus"].mx[1].tlsa
    assert.equal("servfail", tl.queries[1].status)
    assert.is_nil(tl.base_domain)
    assert.is_nil(tl.servername)
    assert.equal(1, #tl.cd_queries)
    assert.is_true(tl.cd_queries[1].cd)
    assert.equal("ok", tl.cd_queries[1].status)
    assert.equal(1, #tl.cd_queries[1].records)
    assert.same({ "dane.bogus fail critical" }, dane_findings(J["dane-bogus"]))
    assert.equal("_25._tcp.mx.dane-bogus.example.test TLSA: SERVFAIL; with checking disabled (CD): NOERROR, "
      .. "1 record -- the resolver rejected the signatures", find(J["dane-bogus"], "dane.bogus").evidence)
    assert.equal("critical", J["dane-bogus"].verdict)
    assert.equal("dane", J["dane-bogus"].regimes[1].regime)
  end)

  it("proves bogus address records with CD queries, and calls the MX host critical", function()
    local mx = F["dane-bogusaddr"].mx[1]
    assert.equal("mx.bogus.example.test", mx.name)
    assert.equal("servfail", mx.dns.a.status)
    assert.equal(0, #F["dane-bogusaddr"].targets)
    assert.equal("no address", mx.tlsa.skipped)
    assert.equal(2, #mx.tlsa.cd_queries)
    assert.equal("ok", mx.tlsa.cd_queries[1].status)
    assert.same({ "dane.bogus-address fail critical" }, dane_findings(J["dane-bogusaddr"]))
    assert.same({ mx = "mx.bogus.example.test" }, find(J["dane-bogusaddr"], "dane.bogus-address").target)
    assert.equal("critical", J["dane-bogusaddr"].verdict)
  end)

  it("says DANE does not apply to TLSA records in an unsigned zone", function()
    local q = F.unsigned.mx[1].tlsa.queries[1]
    assert.equal("ok", q.status)
    assert.is_false(q.ad)
    assert.is_nil(q.signed)
    assert.is_nil(F.unsigned.mx[1].tlsa.servername)
    assert.same({ "dane.insecure na info" }, dane_findings(J.unsigned))
    assert.equal("opportunistic", J.unsigned.regimes[1].regime)
  end)

  it("judges the good domain under DANE and the expired one (no TLSA) as opportunistic", function()
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info",
      "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(J.good))
    assert.same({ "dane", "dane" }, { J.good.regimes[1].regime, J.good.regimes[2].regime })
    assert.same({ "dane.none na info" }, dane_findings(J.expired))
    assert.equal("no TLSA records at _25._tcp.mx.expired.example.test: DANE not published (secure denial)",
      find(J.expired, "dane.none").message)
    assert.equal("opportunistic", J.expired.regimes[1].regime)
    assert.equal("warning", find(J.expired, "tls.cert.expired").severity)
  end)
end)

describe("DANE's SNI against a server that chooses its certificate by SNI #integration", function()
  it("sends the TLSA base domain, so the server shows the certificate the TLSA record pins", function()
    -- 127.0.20.4 serves the DANE leaf only for SNI mx.dane-sni.example.test
    -- (Postfix tls_server_sni_maps), its self-signed leaf otherwise
    local list = assert(mxprobe.probe_list({ "dane-sni.example.test", "[127.0.20.4]" }, lab.options()))
    local f, lit = list[1], list[2]
    assert.equal("alias.dane-sni.example.test", f.mx[1].name)
    assert.equal("mx.dane-sni.example.test", f.mx[1].tlsa.servername)
    assert.equal("mx.dane-sni.example.test", f.targets[1].smtp.tls.servername)
    assert.equal("mx.dane-ee.example.test", f.targets[1].smtp.certificates[1].subject_cn)
    assert.same({ "dane.match pass ok", "dane.rollover.single fail info" }, dane_findings(mxprobe.judge(f)))
    -- without that SNI, the other certificate
    assert.is_nil(lit.targets[1].smtp.tls.servername)
    assert.equal("mx.dane-selfsigned.example.test", lit.targets[1].smtp.certificates[1].subject_cn)
  end)
end)

describe("DANE through a resolver that does not validate #integration", function()
  it("says DANE could not be tested, never \"no DANE\"", function()
    -- NSD itself answers for the lab zone, with signatures, but sets no AD
    local f = assert(mxprobe.probe("dane-ee.example.test", lab.options { resolver = "127.0.53.1" }))
    local q = f.mx[1].tlsa.queries[1]
    assert.is_true(q.signed)
    assert.is_false(q.ad)
    local j = mxprobe.judge(f)
    assert.same({ "dane.no-validation untested warning" }, dane_findings(j))
    assert.equal("unknown", j.verdict)
    assert.equal("opportunistic", j.regimes[1].regime)
    assert.equal("DANE not tested: the resolver does not validate; no MTA-STS policy", j.regimes[1].reason)
  end)
end)

describe("OpenSSL's own DANE verifier as a second opinion #integration", function()
  -- openssl s_client -dane_tlsa_domain/-dane_tlsa_rrdata (the code Postfix
  -- uses for DANE) on the same server with the records mxprobe gathered:
  -- it must authenticate exactly where check dane says dane.match (with
  -- -dane_ee_no_namechecks, as Postfix sets: RFC 7672 §3.1.1). Not the
  -- PKIX-only scenario: OpenSSL honours usages 0/1 (with a CA store), SMTP
  -- does not (RFC 7672 §3.1.3).
  local CASES = { "dane-ee", "dane-ee512", "dane-ta", "dane-mismatch", "dane-rollover", "dane-stale",
    "dane-digest", "dane-taname", "dane-cname", "dane-sni", "dane-selfsigned", "dane-expired" }

  local function openssl_ok(t, mx)
    local args = {}
    local q = tlsa.answer_query(mx.tlsa)
    for _, r in ipairs(q.records) do
      args[#args + 1] = ("-dane_tlsa_rrdata '%d %d %d %s'"):format(r.usage, r.selector, r.mtype, r.data)
    end
    local base = mx.tlsa.base_domain
    local cmd = ("echo QUIT | timeout 10 openssl s_client -starttls smtp -connect %s:25 -servername %s "
      .. "-dane_tlsa_domain %s -dane_ee_no_namechecks %s 2>&1"):format(t.address, base, base, table.concat(args, " "))
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local code = out:match("Verify return code: (%d+)")
    assert.is_string(code, out)
    return code == "0", out
  end

  it("agrees with check dane on every scenario where DANE applies and TLS works", function()
    local queries = {}
    for i, d in ipairs(CASES) do queries[i] = d .. ".example.test" end
    local list = assert(mxprobe.probe_list(queries, lab.options { timeout = 5 }))
    local agreed = 0
    for i, d in ipairs(CASES) do
      local f = list[i]
      local ours = find(mxprobe.judge(f), "dane.match") ~= nil
      local theirs, out = openssl_ok(f.targets[1], f.mx[1])
      assert.equal(ours, theirs, d .. ": mxprobe " .. tostring(ours) .. ", openssl:\n" .. out)
      agreed = agreed + 1
    end
    assert.equal(#CASES, agreed)
  end)
end)
