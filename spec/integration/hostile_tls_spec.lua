-- TLS/X.509 faults of the hostile peer: a real TLS handshake (python ssl)
-- presenting the chains of spec/hostile/certs/ (made by make-certs.sh).
-- The probe asks for "mx.hostile.test:PORT" (a host query, so the name is
-- checked and sent as SNI); a DNS peer answers its A with 127.0.66.2, where
-- one SMTP peer per fault listens. The specs trust certs/ca.pem.
local core = require "mxprobe.core"
local H = require "hostile.peer"

local ADDR = "127.0.66.2"
local DNS = "127.0.66.54:5300"
local NAME = "mx.hostile.test"
local T_MS = H.TIMEOUT * 1000

describe("hostile TLS peer: certificates and chains #hostile #integration", function()
  local port = 2524
  local dns

  setup(function()
    dns = H.start("dns", DNS, "normal", "--a " .. ADDR, true)
  end)
  after_each(H.stop_all)
  teardown(function()
    H.stop_all()
    H.stop(dns)
  end)

  -- one SMTP peer presenting the chain of `fault`; returns the target, the
  -- facts and the judgement, after the checks every hostile probe passes
  local function probe(fault)
    port = port + 1
    H.start("smtp", ("%s:%d"):format(ADDR, port), fault)
    local facts, ms = H.probe(("%s:%d"):format(NAME, port), { resolver = DNS })
    H.check_common(facts, ms)
    local _, _, judgement = H.check_reports(facts)
    assert.equal("host", facts.kind)
    assert.equal(1, #facts.targets)
    local t = facts.targets[1]
    assert.equal(ADDR, t.address)
    assert.equal(220, t.starttls.reply.code)
    return t, facts, judgement
  end

  local function finding(j, code)
    for _, f in ipairs(j.findings) do
      if f.code == code then return f end
    end
  end

  it("verifies the good chain by name (the harness works)", function()
    local t, _, j = probe("normal")
    assert.equal("complete", t.status)
    assert.equal("ok", t.tls.status)
    assert.equal(NAME, t.tls.servername)
    assert.is_true(t.verify.ok)
    assert.is_true(t.verify.name_match)
    assert.equal("pass", finding(j, "tls.cert.ok").state)
  end)

  it("keeps a NUL inside the CN and SAN as evidence and does not match the name before it", function()
    local t, facts, j = probe("cert-nul-cn")
    local leaf = t.certificates[1]
    assert.equal("mx.hostile.test\0.evil.example", leaf.subject_cn)
    assert.equal("mx.hostile.test\0.evil.example", leaf.san_dns[1])
    assert.is_false(t.verify.name_match)
    assert.equal("fail", finding(j, "tls.cert.name-mismatch").state)
    assert.is_nil(finding(j, "tls.cert.ok"))
    local plain = H.check_reports(facts)
    assert.is_nil(plain:find("\0", 1, true))
  end)

  it("takes a certificate with 3,000 SANs, keeping at most the SAN limit and the true count", function()
    local t = probe("cert-many-sans")
    local leaf = t.certificates[1]
    assert.equal("ok", t.tls.status)
    assert.equal(3000, leaf.san_count)
    assert.equal(core.limits.x509_san_max, #leaf.san_dns)
    assert.equal(NAME, leaf.san_dns[1])
    assert.is_true(t.verify.name_match)
    assert.is_true(t.tls.handshake_ms < T_MS)
  end)

  it("completes the handshake of a 200-certificate chain in time and names the chain limit it hit", function()
    local t = probe("chain-200")
    assert.equal("ok", t.tls.status)
    assert.is_true(t.tls.handshake_ms < T_MS)
    assert.matches("more than " .. core.limits.x509_chain_max .. " certificates", t.tls.chain_error)
    assert.equal("complete", t.status)
  end)

  it("keeps the first certificates of a 200-certificate chain, leaf first, and judges them (fixed engine bug)",
    function()
      local t, _, j = probe("chain-200")
      -- the partial facts are kept: the leaf and the chain up to the limit
      assert.is_table(t.certificates)
      assert.equal(core.limits.x509_chain_max, #t.certificates)
      assert.equal(NAME, t.certificates[1].subject_cn)
      -- and the report does not say "no certificate was captured": 200 were
      local cert = finding(j, "tls.cert")
      assert.is_falsy(cert and cert.message:find("no certificate", 1, true))
      local failed = false
      for _, f in ipairs(j.findings) do
        if f.code:match("^tls%.cert%.") and f.state == "fail" then failed = true end
      end
      assert.is_true(failed)
    end)

  it("keeps a chain in the order it was presented (leaf, int1, int2) and verifies it", function()
    local t = probe("chain-wrong-order")
    assert.equal(3, #t.certificates)
    assert.equal(3, t.verify.chain_length)
    assert.equal(NAME, t.certificates[1].subject_cn)
    assert.equal("hostile order int1", t.certificates[2].subject_cn)
    assert.equal("hostile order int2", t.certificates[3].subject_cn)
    -- int2 issued the leaf, yet comes last
    assert.equal(t.certificates[3].subject, t.certificates[1].issuer)
    assert.is_true(t.verify.ok)
  end)

  it("reports a chain sent in the wrong order as a finding (fixed engine bug)", function()
    local _, _, j = probe("chain-wrong-order")
    -- a finding about the chain's order (its code or message; the CNs
    -- "hostile order intN" in the evidence do not count), not a pass
    local found
    for _, f in ipairs(j.findings) do
      local text = (f.code .. " " .. (f.message or "")):lower()
      if text:find("order", 1, true) and f.state ~= "pass" then found = f end
    end
    assert.is_table(found)
  end)

  it("lists an unknown critical extension and does not trust the certificate", function()
    local t, _, j = probe("unknown-critical-ext")
    assert.same({ "1.3.6.1.4.1.55555.1.1" }, t.certificates[1].unknown_critical)
    assert.is_false(t.verify.ok)
    assert.matches("critical extension", t.verify.detail)
    assert.equal(0, t.verify.depth)
    assert.equal("fail", finding(j, "tls.cert.untrusted").state)
  end)

  it("handshakes with a 16384-bit RSA key within the phase deadline and records its size", function()
    local t = probe("rsa-16384")
    assert.equal("ok", t.tls.status)
    assert.is_true(t.tls.handshake_ms < T_MS, t.tls.handshake_ms)
    assert.equal("RSA", t.certificates[1].key_type)
    assert.equal(16384, t.certificates[1].key_bits)
    assert.is_true(t.verify.ok)
    assert.equal("complete", t.status)
  end)
end)
