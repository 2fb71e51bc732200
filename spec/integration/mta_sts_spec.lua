-- MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) on the lab: the sts-* and
-- rpt-* domains of spec/lab/example.test.zone, their policies served by the
-- lab's nginx on 127.0.30.1:443 by SNI (spec/lab/nginx.conf.in), their MX
-- the lab's Postfix servers. Each scenario: its facts, and its exact
-- mta_sts.* and tls_rpt.* findings (code, state, severity, target).
local mxprobe = require "mxprobe"
local lab = require "support.lab"

local DOMAINS = {
  "sts-enforce", "sts-testing", "sts-none", "sts-notlisted", "sts-wildcard", "sts-deep",
  "sts-expired", "sts-invalid", "sts-404", "sts-redirect", "sts-ctype", "sts-big",
  "sts-badcert", "sts-twotxt", "sts-badid", "sts-notxt", "sts-nohost",
  "rpt-badscheme", "rpt-two", "rpt-norua", "good",
}

describe("MTA-STS and TLS-RPT on the lab #integration", function()
  local F, J = {}, {}

  setup(function()
    local queries = {}
    for i, d in ipairs(DOMAINS) do queries[i] = d .. ".example.test" end
    local list = assert(mxprobe.probe_list(queries, lab.options { timeout = 5 }))
    for i, d in ipairs(DOMAINS) do
      F[d] = list[i]
      J[d] = assert(mxprobe.judge(list[i]))
    end
  end)

  -- "code state severity [address]" of each mta_sts.* / tls_rpt.* finding, sorted
  local function ours(d)
    local out = {}
    for _, f in ipairs(J[d].findings) do
      if f.code:match("^mta_sts") or f.code:match("^tls_rpt") then
        local where = f.target and f.target.address and (" " .. f.target.address)
          or f.target and f.target.mx and (" " .. f.target.mx) or ""
        out[#out + 1] = ("%s %s %s%s"):format(f.code, f.state, f.severity, where)
      end
    end
    table.sort(out)
    return out
  end

  local function sts(d) return F[d].mta_sts end

  it("gathers facts the schema validates, for every scenario, and through JSON", function()
    lab.assert_valid_facts(F, DOMAINS)
  end)

  it("enforce, every MX listed: the policy applies and the MX passes", function()
    local m = sts("sts-enforce")
    assert.equal("ok", m.txt_status)
    assert.equal("_mta-sts.sts-enforce.example.test", m.txt.name)
    assert.same({ { text = "v=STSv1; id=2026120601", fields = { id = "2026120601" }, valid = true,
      id = "2026120601" } }, m.records)
    assert.equal("mta-sts.sts-enforce.example.test", m.host)
    local f = m.fetch
    assert.equal("ok", f.status)
    assert.equal("https://mta-sts.sts-enforce.example.test/.well-known/mta-sts.txt", f.url)
    assert.equal("127.0.30.1", f.address)
    assert.equal(443, f.port)
    assert.equal("mta-sts.sts-enforce.example.test", f.tls.servername)
    assert.is_true(f.verify.ok)
    assert.is_true(f.verify.name_match)
    assert.equal(200, f.http.status)
    assert.equal("HTTP/1.1", f.http.version)
    assert.equal("text/plain", f.http.content_type)
    assert.equal("version: STSv1\r\nmode: enforce\r\nmx: mx1.good.example.test\r\nmax_age: 86400\r\n", f.http.body)
    assert.equal(#f.http.body, f.http.body_bytes)
    assert.is_true(#f.http.headers >= 2)
    assert.is_true(m.parsed.valid)
    -- the contract the per-MX regime reads
    assert.same({ mode = "enforce", mx = { "mx1.good.example.test" }, max_age = 86400, id = "2026120601" }, m.policy)
    assert.same({ "mta_sts.mx-ok pass ok mx1.good.example.test", "mta_sts.ok pass ok", "tls_rpt.missing fail info" },
      ours("sts-enforce"))
  end)

  it("testing, the MX's certificate names another host: a warning, not critical", function()
    assert.equal("testing", sts("sts-testing").policy.mode)
    assert.same({ "mta_sts.mx-tls-testing fail warning mx.wrongname.example.test", "mta_sts.ok pass ok",
      "tls_rpt.missing fail info" },
      ours("sts-testing"))
  end)

  it("none, the MX not listed: info only", function()
    assert.same({ mode = "none", mx = { "other.example.org" }, max_age = 86400, id = "2026120601" },
      sts("sts-none").policy)
    assert.same({ "mta_sts.mx-not-listed-none fail info mx1.good.example.test", "mta_sts.ok pass ok",
      "tls_rpt.missing fail info" }, ours("sts-none"))
  end)

  it("enforce, the MX not listed: critical, and the verdict is critical", function()
    assert.same({ "mta_sts.mx-not-listed fail critical mx1.good.example.test", "mta_sts.ok pass ok",
      "tls_rpt.missing fail info" }, ours("sts-notlisted"))
    assert.equal("critical", J["sts-notlisted"].verdict)
  end)

  it("a wildcard matches exactly one leftmost label: *.good.example.test covers mx1.good", function()
    assert.same({ "*.good.example.test" }, sts("sts-wildcard").policy.mx)
    assert.same({ "mta_sts.mx-ok pass ok mx1.good.example.test", "mta_sts.ok pass ok", "tls_rpt.missing fail info" },
      ours("sts-wildcard"))
  end)

  it("a wildcard never spans two labels: *.example.test does not cover mx1.good.example.test", function()
    assert.same({ "*.example.test" }, sts("sts-deep").policy.mx)
    assert.same({ "mta_sts.mx-not-listed fail critical mx1.good.example.test", "mta_sts.ok pass ok",
      "tls_rpt.missing fail info" }, ours("sts-deep"))
  end)

  it("enforce, the MX's certificate expired: critical", function()
    assert.same({ "mta_sts.mx-tls fail critical mx.expired.example.test", "mta_sts.ok pass ok",
      "tls_rpt.missing fail info" },
      ours("sts-expired"))
  end)

  it("an invalid policy: each bad field named, no policy applies", function()
    local m = sts("sts-invalid")
    assert.is_nil(m.policy)
    assert.is_false(m.parsed.valid)
    local kinds = {}
    for _, e in ipairs(m.parsed.errors) do kinds[#kinds + 1] = e.kind end
    assert.same({ "mode", "max_age", "mx" }, kinds)
    assert.same({ "mta_sts.policy-max-age fail warning", "mta_sts.policy-mode fail warning",
      "mta_sts.policy-mx fail warning", "tls_rpt.missing fail info" }, ours("sts-invalid"))
  end)

  it("404: no policy", function()
    local m = sts("sts-404")
    assert.equal("ok", m.fetch.status)
    assert.equal(404, m.fetch.http.status)
    assert.is_nil(m.parsed)
    assert.is_nil(m.policy)
    assert.same({ "mta_sts.fetch-status fail warning", "tls_rpt.missing fail info" }, ours("sts-404"))
  end)

  it("a redirect is a failure and is not followed", function()
    local m = sts("sts-redirect")
    assert.equal(301, m.fetch.http.status)
    local loc
    for _, h in ipairs(m.fetch.http.headers) do if h.name == "location" then loc = h.value end end
    assert.equal("https://mta-sts.sts-enforce.example.test/.well-known/mta-sts.txt", loc)
    assert.is_nil(m.policy)
    assert.same({ "mta_sts.fetch-redirect fail warning", "tls_rpt.missing fail info" }, ours("sts-redirect"))
  end)

  it("a valid policy served as text/html does not apply", function()
    local m = sts("sts-ctype")
    assert.equal("text/html", m.fetch.http.content_type)
    assert.is_true(m.parsed.valid)
    assert.is_nil(m.policy)
    assert.same({ "mta_sts.fetch-content-type fail warning", "tls_rpt.missing fail info" }, ours("sts-ctype"))
  end)

  it("a body over 64 KiB is refused as soon as its length is announced", function()
    local m = sts("sts-big")
    assert.equal("too-long", m.fetch.status)
    assert.matches("over the cap of 65536", m.fetch.error)
    assert.is_nil(m.fetch.http)
    assert.same({ "mta_sts.fetch-too-large fail warning", "tls_rpt.missing fail info" }, ours("sts-big"))
  end)

  it("a certificate not valid for mta-sts.<domain>: no request is sent", function()
    local m = sts("sts-badcert")
    assert.equal("untrusted", m.fetch.status)
    assert.is_true(m.fetch.verify.ok)             -- the chain is the lab CA's
    assert.is_false(m.fetch.verify.name_match)    -- for other.example.org
    assert.equal("certificate does not name mta-sts.sts-badcert.example.test", m.fetch.error)
    assert.equal("CN=other.example.org", m.fetch.verify.leaf_subject)
    assert.is_nil(m.fetch.http)
    assert.same({ "mta_sts.fetch-untrusted fail warning", "tls_rpt.missing fail info" }, ours("sts-badcert"))
  end)

  it("two v=STSv1 records: no policy, though the policy itself is fine", function()
    local m = sts("sts-twotxt")
    assert.equal("several", m.txt_status)
    assert.equal(2, #m.records)
    assert.is_true(m.parsed.valid)
    assert.is_nil(m.policy)
    assert.same({ "mta_sts.txt-several fail warning", "tls_rpt.none na info" }, ours("sts-twotxt"))
  end)

  it("an id that is not letters and digits: the record is invalid", function()
    local m = sts("sts-badid")
    assert.equal("invalid", m.txt_status)
    assert.is_false(m.records[1].valid)
    assert.is_nil(m.policy)
    assert.same({ "mta_sts.txt-invalid fail warning", "tls_rpt.none na info" }, ours("sts-badid"))
  end)

  it("a policy served without a TXT record is reported", function()
    local m = sts("sts-notxt")
    assert.equal("none", m.txt_status)
    assert.equal("ok", m.fetch.status)
    assert.is_nil(m.policy)
    assert.same({ "mta_sts.policy-without-txt fail warning", "tls_rpt.none na info" }, ours("sts-notxt"))
  end)

  it("a TXT record whose host has no address: no connection, a finding", function()
    local m = sts("sts-nohost")
    assert.equal("ok", m.txt_status)
    assert.equal("nxdomain", m.host_a.status)
    assert.same({ status = "no-address", url = "https://mta-sts.sts-nohost.example.test/.well-known/mta-sts.txt",
      port = 443, error = "mta-sts.sts-nohost.example.test has no address", time_ms = 0 }, m.fetch)
    assert.same({ "mta_sts.fetch-no-address fail warning", "tls_rpt.missing fail info" }, ours("sts-nohost"))
  end)

  it("a domain without MTA-STS costs no connection: no fetch at all", function()
    for _, d in ipairs { "good", "rpt-two", "rpt-norua", "rpt-badscheme" } do
      local m = sts(d)
      assert.equal("none", m.txt_status, d)
      assert.equal("nxdomain", m.txt.status, d)
      assert.equal("nxdomain", m.host_a.status, d)
      assert.is_nil(m.fetch, d)
      assert.is_nil(m.parsed, d)
      assert.is_nil(m.policy, d)
    end
  end)

  it("TLS-RPT: one good record, a bad scheme, two records, no rua", function()
    assert.same({ "mta_sts.none na info", "tls_rpt.ok pass ok" }, ours("good"))
    assert.same({ "mta_sts.none na info", "tls_rpt.bad-scheme fail warning" }, ours("rpt-badscheme"))
    assert.same({ "mta_sts.none na info", "tls_rpt.several fail warning" }, ours("rpt-two"))
    assert.same({ "mta_sts.none na info", "tls_rpt.no-rua fail warning" }, ours("rpt-norua"))
    assert.same({ "mailto:tlsrpt@good.example.test", "ftp://reports.example.test/tlsrpt" },
      F["rpt-badscheme"].tls_rpt.records[1].rua)
  end)
end)
