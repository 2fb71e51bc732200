-- The facts of every lab scenario, gathered from the real servers of the
-- lab (NSD + Unbound + Postfix on loopback; spec/lab/README.md).
local mxprobe = require "mxprobe"
local lab = require "support.lab"

local DOMAINS = {
  "good", "expired", "wrongname", "selfsigned", "incomplete", "notls", "openrelay",
  "greylist", "postscreen", "slowbanner", "closed", "blackhole", "nullmx", "implicit",
  "nxdomain", "v6only", "mxcname", "dangling", "noaddr", "samehost", "mixed", "single",
  "expiring", "weakkey", "helo", "tls12",
}

describe("probe of the lab #integration", function()
  local F = {}
  local elapsed

  setup(function()
    local queries = {}
    for i, d in ipairs(DOMAINS) do queries[i] = d .. ".example.test" end
    local core = require "mxprobe.core"
    local start = core.now()
    local list = assert(mxprobe.probe_list(queries, lab.options { timeout = 5 }))
    elapsed = core.now() - start
    for i, d in ipairs(DOMAINS) do F[d] = list[i] end
  end)

  -- the dialog facts of a target, and the target itself
  local function target(d, i) return F[d].targets[i or 1].smtp end
  local function where(d, i) return F[d].targets[i or 1] end

  it("probes every domain concurrently: all of them take about as long as the slowest", function()
    -- the blackhole's 5 s connect timeout is the slowest single phase
    assert.is_true(elapsed < 15000, ("took %.0f ms"):format(elapsed))
    for _, d in ipairs(DOMAINS) do assert.equal("mxprobe.facts/2", F[d].schema) end
  end)

  it("says who probed, with what: one run id, the prober's names, the libraries' versions", function()
    local r = F.good.run
    assert.matches("^%x+$", r.id)
    assert.equal(32, #r.id)
    for _, d in ipairs(DOMAINS) do assert.equal(r.id, F[d].run.id) end
    assert.same({ ehlo_name = "client.mxprobe.test", mail_from = "mxprobe@example.net",
                  relay_rcpt = "mxprobe-relay-test@example.net" }, r.prober)
    assert.equal("0.2.0", r.versions.mxprobe)
    assert.matches("^OpenSSL 3%.", r.versions.openssl)
    assert.matches("^%d+%.%d+", r.versions.ldns)
    assert.matches("^127%.0%.0%.1:%d+$", target("good").source)
  end)

  it("gathers facts that the v2 schema validates, for every scenario", function()
    lab.assert_valid_facts(F, DOMAINS)
  end)

  describe("good.example.test (two healthy MX)", function()
    it("lists both MX in preference order, DNSSEC-validated", function()
      local f = F.good
      assert.equal("ok", f.dns.mx.status)
      assert.is_true(f.dns.mx.ad)
      assert.same({ "mx1.good.example.test", "mx2.good.example.test" }, { f.mx[1].name, f.mx[2].name })
      assert.same({ 10, 20 }, { f.mx[1].preference, f.mx[2].preference })
      assert.same({ "127.0.1.1", "127.0.1.2" }, { where("good", 1).address, where("good", 2).address })
    end)
    it("runs the whole dialog on each target", function()
      for i = 1, 2 do
        local t = target("good", i)
        assert.equal("complete", t.status)
        assert.equal(220, t.banner.reply.code)
        assert.equal("EHLO", t.ehlo.command)
        assert.is_string(t.ehlo.extensions.STARTTLS)
        assert.equal(220, t.starttls.reply.code)
        assert.equal("ok", t.tls.status)
        assert.matches("^TLSv1%.[23]$", t.tls.version)
        assert.is_true(t.tls.cipher_bits >= 128)
        assert.equal(250, t.ehlo_tls.reply.code)
        assert.equal(221, t.quit.reply.code)
      end
    end)
    it("reads the TLS-RPT record, and records its absence elsewhere", function()
      local r = F.good.tls_rpt
      assert.equal("_smtp._tls.good.example.test", r.query.name)
      assert.equal("ok", r.query.status)
      assert.is_true(r.query.ad)
      assert.equal(1, #r.records)
      assert.same({ "mailto:tlsrpt@good.example.test", "https://reports.good.example.test/tlsrpt" }, r.records[1].rua)
      assert.equal("nxdomain", F.single.tls_rpt.query.status)
      assert.same({}, F.single.tls_rpt.records)
    end)
    it("captures a trusted chain that names the MX", function()
      local t = target("good", 1)
      assert.equal("mx1.good.example.test", t.certificates[1].subject_cn)
      assert.is_true(#t.certificates >= 2)
      assert.is_true(t.verify.ok)
      assert.is_true(t.verify.name_match)
    end)
    it("is refused as a relay and accepts postmaster", function()
      local r = target("good", 1).relay
      assert.equal("tested", r.status)
      assert.equal(250, r.mail_from.reply.code)
      assert.is_true(r.rcpt_external.reply.code >= 500)
      assert.equal(250, r.rcpt_control.reply.code)
      assert.equal(250, r.rset.reply.code)
    end)
    it("never sends DATA", function()
      for _, e in ipairs(target("good", 1).transcript) do
        if e.dir == "C" then assert.is_nil(e.line:upper():match("^DATA")) end
      end
    end)
  end)

  describe("certificate scenarios", function()
    it("reports an expired certificate as expired", function()
      local t = target("expired")
      assert.equal("ok", t.tls.status)
      assert.is_false(t.verify.ok)
      assert.equal("expired", t.verify.reason)
      assert.is_true(t.certificates[1].not_after < os.time())
    end)
    it("reports a certificate for another name as a name mismatch on a trusted chain", function()
      local t = target("wrongname")
      assert.is_false(t.verify.name_match)
      assert.is_nil(t.verify.reason)
    end)
    it("reports a self-signed certificate as self-signed", function()
      assert.equal("self-signed", target("selfsigned").verify.reason)
    end)
    it("reports a chain without its intermediate as incomplete", function()
      local t = target("incomplete")
      assert.equal(1, #t.certificates)
      assert.equal("incomplete-chain", t.verify.reason)
    end)
    it("reports a 1024-bit key and a SHA-1 signature", function()
      local t = target("weakkey")
      assert.equal("RSA", t.certificates[1].key_type)
      assert.equal(1024, t.certificates[1].key_bits)
      assert.matches("SHA1", t.certificates[1].sig_alg)
      local reasons = {}
      for _, e in ipairs(t.verify.errors) do reasons[e.reason] = true end
      assert.is_true(reasons["weak-key"])
      assert.is_true(reasons["weak-signature"])
    end)
    it("records the TLS version a server is limited to", function()
      assert.equal("TLSv1.2", target("tls12").tls.version)
    end)
    it("sees a certificate that expires within days", function()
      local left = target("expiring").certificates[1].not_after - os.time()
      assert.is_true(left > 0 and left < 6 * 86400)
      assert.is_true(target("expiring").verify.ok)
    end)
  end)

  describe("SMTP scenarios", function()
    it("records that a server offers no STARTTLS", function()
      local t = target("notls")
      assert.equal("complete", t.status)
      assert.is_nil(t.ehlo.extensions.STARTTLS)
      assert.is_nil(t.starttls)
      assert.is_nil(t.tls)
    end)
    it("falls back to HELO when EHLO is refused, and stops when HELO is too", function()
      local t = target("helo")
      assert.equal("HELO", t.ehlo.command)
      assert.equal(550, t.ehlo.ehlo_reply.code)
      assert.equal(550, t.ehlo.reply.code)
      assert.equal("rejected", t.status)
      assert.equal("ehlo", t.stopped_at)
      assert.equal(221, t.quit.reply.code)
    end)
    it("records an open relay accepting an outside recipient", function()
      assert.equal(250, target("openrelay").relay.rcpt_external.reply.code)
    end)
    it("keeps greylisting's 451 as it came", function()
      local r = target("greylist").relay
      assert.equal(451, r.rcpt_external.reply.code)
      assert.equal("tested", r.status)
    end)
    it("waits for postscreen's complete multi-line greeting before speaking", function()
      local t = target("postscreen")
      assert.equal("complete", t.status)
      assert.equal(220, t.banner.reply.code)
      assert.is_true(#t.banner.reply.lines >= 2)
      assert.is_true(t.banner.time_ms >= 1500)
      -- nothing was sent before the final 220 line
      local first_c, final_s
      for i, e in ipairs(t.transcript) do
        if e.dir == "C" and not first_c then first_c = i end
        if e.dir == "S" and e.line:match("^220 ") and not final_s then final_s = i end
      end
      assert.is_true(final_s < first_c)
    end)
    it("waits for a slow banner", function()
      local t = target("slowbanner")
      assert.equal("ok", t.banner.status)
      assert.is_true(t.banner.first_byte_ms >= 2500)
    end)
  end)

  describe("TCP scenarios", function()
    it("tells a closed port (refused)", function()
      local t = target("closed")
      assert.equal("refused", t.connect.status)
      assert.equal("connect", t.stopped_at)
    end)
    it("tells a connect timeout from a refusal", function()
      local t = target("blackhole")
      assert.equal("timeout", t.connect.status)
      assert.is_true(t.connect.time_ms >= 4900)
    end)
    it("probes an IPv6-only MX on ::1", function()
      local t = where("v6only")
      assert.equal("ipv6", t.family)
      assert.equal("::1", t.address)
      assert.equal("complete", t.smtp.status)
    end)
  end)

  describe("DNS scenarios", function()
    it("recognises a null MX and probes nothing", function()
      assert.is_true(F.nullmx.dns.null_mx)
      assert.equal(0, #F.nullmx.targets)
    end)
    it("falls back to the implicit MX (the domain's own address)", function()
      local f = F.implicit
      assert.equal("nodata", f.dns.mx.status)
      assert.is_true(f.dns.implicit_mx)
      assert.equal("127.0.13.1", f.targets[1].address)
      assert.equal("complete", f.targets[1].smtp.status)
    end)
    it("records NXDOMAIN", function()
      assert.equal("nxdomain", F.nxdomain.dns.mx.status)
      assert.equal(0, #F.nxdomain.targets)
    end)
    it("records an MX that is a CNAME, and follows it", function()
      local mx = F.mxcname.mx[1]
      assert.equal("alias.mxcname.example.test", mx.name)
      assert.same({ "mx1.good.example.test" }, mx.dns.cname)
      assert.equal("127.0.1.1", F.mxcname.targets[1].address)
    end)
    it("records a dangling MX and an MX without address", function()
      assert.equal("nxdomain", F.dangling.mx[1].dns.status)
      assert.equal("no-address", F.noaddr.mx[1].dns.status)
      assert.equal(0, #F.dangling.targets + #F.noaddr.targets)
    end)
    it("records MX hosts sharing one address", function()
      local f = F.samehost
      assert.equal(2, #f.targets)
      assert.equal(f.targets[1].address, f.targets[2].address)
    end)
    it("records one MX with TLS and one without", function()
      local f = F.mixed
      assert.equal("ok", f.targets[1].smtp.tls.status)
      assert.is_nil(f.targets[2].smtp.tls)
    end)
  end)
end)
