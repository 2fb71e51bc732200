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

  -- one SMTP peer presenting the chain of `fault`; returns the target's
  -- dialog facts (targets[1].smtp), the facts and the judgement, after the
  -- checks every hostile probe passes
  local function probe(fault)
    port = port + 1
    H.start("smtp", ("%s:%d"):format(ADDR, port), fault)
    local facts, ms = H.probe(("%s:%d"):format(NAME, port), { resolver = DNS })
    H.check_common(facts, ms)
    local _, _, judgement = H.check_reports(facts)
    assert.equal("host", facts.kind)
    assert.equal(1, #facts.mx)
    assert.equal(NAME, facts.mx[1].name)
    -- with its class (issue 12): the hostile peer is on loopback
    assert.same({ { address = ADDR, family = "ipv4", class = "loopback" } }, facts.mx[1].dns.addresses)
    assert.equal(1, #facts.targets)
    assert.equal(ADDR, facts.targets[1].address)
    local t = facts.targets[1].smtp
    assert.equal(220, t.starttls.reply.code)
    return t, facts, judgement
  end

  -- the sha256 of each certificate of a PEM chain, in order
  local function digests(pem)
    local certs = assert(core.x509_parse(pem))
    local out = {}
    for i, c in ipairs(certs) do out[i] = c.sha256 end
    return out
  end

  local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
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
    assert.equal("pass", finding(j, "tls.session.ok").state)
    -- the chain is kept as presented: the peer's certs/normal.pem
    assert.equal("all", t.tls.protocols)
    assert.is_string(t.tls.chain_pem)
    assert.same(digests(read("spec/hostile/certs/normal.pem")), digests(t.tls.chain_pem))
    assert.equal(t.certificates[1].sha256, digests(t.tls.chain_pem)[1])
    assert.is_nil(t.tls.chain_truncated)
  end)

  it("keeps a NUL inside the CN and SAN as evidence and does not match the name before it", function()
    local t, facts, j = probe("cert-nul-cn")
    local leaf = t.certificates[1]
    assert.equal("mx.hostile.test\0.evil.example", leaf.subject_cn)
    assert.equal("mx.hostile.test\0.evil.example", leaf.san_dns[1])
    assert.is_false(t.verify.name_match)
    assert.equal("fail", finding(j, "tls.cert.name-mismatch").state)
    assert.is_nil(finding(j, "tls.cert.ok"))
    assert.equal("warning", j.verdict)
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
    -- the facts say how many came, and keep (as PEM) the ones judged
    assert.is_true(t.tls.chain_truncated)
    assert.equal(200, t.tls.chain_presented)
    local kept = digests(t.tls.chain_pem)
    assert.equal(core.limits.x509_chain_max, #kept)
    local file = digests((require("mxprobe.probe").pem_prefix(read("spec/hostile/certs/chain-200.pem"),
      core.limits.x509_chain_max)))
    for i = 1, #kept do assert.equal(file[i], kept[i], i) end
    for i, c in ipairs(t.certificates) do assert.equal(c.sha256, kept[i], i) end
  end)

  it("keeps the first certificates of a 200-certificate chain, leaf first, and judges them (fixed engine bug)",
    function()
      local t, _, j = probe("chain-200")
      -- the partial facts are kept: the leaf and the chain up to the limit
      assert.is_table(t.certificates)
      assert.equal(core.limits.x509_chain_max, #t.certificates)
      assert.equal(NAME, t.certificates[1].subject_cn)
      -- and the report does not say "no certificate was captured": 200 were
      assert.is_nil(finding(j, "tls.cert"))
      -- the 32 kept end at an intermediate the CA did not issue
      assert.equal("incomplete-chain", t.verify.reason)
      assert.equal(core.limits.x509_chain_max - 1, t.verify.depth)
      assert.equal("fail", finding(j, "tls.cert.incomplete-chain").state)
      assert.equal("fail", finding(j, "tls.chain.too-long").state)
      assert.equal("warning", j.verdict)
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
    local f = finding(j, "tls.chain.order")
    assert.equal("fail", f.state)
    -- the evidence names the pair out of order: int1 sits where int2 belongs
    assert.matches("issuer CN=hostile order int2", f.evidence, 1, true)
    -- the chain itself verifies (OpenSSL reorders it)
    assert.equal("pass", finding(j, "tls.cert.ok").state)
    assert.equal("warning", j.verdict)
  end)

  it("lists an unknown critical extension and does not trust the certificate", function()
    local t, _, j = probe("unknown-critical-ext")
    assert.same({ "1.3.6.1.4.1.55555.1.1" }, t.certificates[1].unknown_critical)
    assert.is_false(t.verify.ok)
    assert.matches("critical extension", t.verify.detail)
    assert.equal(0, t.verify.depth)
    assert.equal("fail", finding(j, "tls.cert.untrusted").state)
    assert.equal("warning", j.verdict)
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
