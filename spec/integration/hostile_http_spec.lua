-- Hostile HTTP on the MTA-STS policy fetch (issue 8): what no real web
-- server does, from spec/hostile/peer.py's "https" mode. Each fault gets a
-- DNS peer (fault "mta-sts": _mta-sts.hostile.test has a v=STSv1 record, every
-- A is the fault's address) and an HTTPS peer on that address, port 443,
-- presenting certs/normal.pem (*.hostile.test: mta-sts.hostile.test verifies
-- against certs/ca.pem). The probe is a whole domain probe of hostile.test;
-- its SMTP target (the same address, port 25) refuses at once. Each fault
-- must end within its deadline with a finding, keep bounded facts, and give
-- escaped text and JSON reports.
local cjson = require "cjson"
local H = require "hostile.peer"

local T_MS = H.TIMEOUT * 1000
local BASE = 200     -- addresses 127.0.66.200 ... (no other spec uses them)

describe("hostile HTTPS peer: the MTA-STS policy fetch #hostile #integration", function()
  local n = 0
  after_each(H.stop_all)
  teardown(H.stop_all)

  -- probes hostile.test against an HTTPS peer with `fault`; returns the
  -- mta_sts facts, the {code = state} of the mta_sts findings, elapsed ms,
  -- the facts and the HTTPS peer
  local function probe(fault, extra)
    n = n + 1
    local addr = ("127.0.66.%d"):format(BASE + n)
    H.start("dns", addr .. ":5300", "mta-sts", "--a " .. addr)
    local peer = H.start("https", addr .. ":443", fault, extra)
    local facts, ms = H.probe("hostile.test", { resolver = addr .. ":5300" })
    H.check_common(facts, ms)
    local _, doc, judgement = H.check_reports(facts)
    assert.equal("mxprobe.report/1", doc.schema)
    local codes = {}
    for _, f in ipairs(judgement.findings) do
      if f.code:match("^mta_sts") then codes[f.code] = f.state end
    end
    local m = facts.mta_sts
    assert.equal("ok", m.txt_status)
    assert.equal(addr, m.fetch.address)
    -- bounded: what one fetch leaves in the facts
    assert.is_true(#cjson.encode(m) < 40 * 1024, #cjson.encode(m))
    if m.fetch.partial then assert.is_true(#m.fetch.partial <= 1024 + 3) end
    return m, codes, ms, facts, peer
  end

  it("fetches a well-formed policy (the harness works)", function()
    local m, codes, ms, _, peer = probe("normal")
    assert.equal("ok", m.fetch.status)
    assert.equal("mta-sts.hostile.test", m.fetch.tls.servername)
    assert.same({ mode = "enforce", mx = { "mx.hostile.test" }, max_age = 86400, id = "hostile1" }, m.policy)
    assert.same({ ["mta_sts.ok"] = "pass" }, codes)
    assert.is_true(ms < T_MS, ms)
    assert.truthy(H.wait_output(peer, "sni: 'mta%-sts%.hostile%.test'"))
    assert.truthy(H.wait_output(peer, "request: b'GET /%.well%-known/mta%-sts%.txt HTTP/1%.1'"))
  end)

  it("stops endless header fields at the header cap", function()
    local m, codes, ms = probe("endless-headers")
    assert.equal("too-long", m.fetch.status)
    assert.matches("HTTP header section longer than 8192 bytes", m.fetch.error)
    assert.is_nil(m.policy)
    assert.same({ ["mta_sts.fetch-too-large"] = "fail" }, codes)
    assert.is_true(ms < T_MS, ms)
  end)

  it("refuses a 10 MB body as soon as its Content-Length is read", function()
    local m, codes, ms = probe("huge-body")
    assert.equal("too-long", m.fetch.status)
    assert.matches("HTTP body of 10485760 bytes, over the cap of 65536", m.fetch.error)
    assert.same({ ["mta_sts.fetch-too-large"] = "fail" }, codes)
    assert.is_true(ms < T_MS, ms)
  end)

  it("stops a 10 MB body without a length at 64 KiB", function()
    local m, codes, ms = probe("huge-body-close")
    assert.equal("too-long", m.fetch.status)
    assert.matches("HTTP body longer than 65536 bytes", m.fetch.error)
    assert.same({ ["mta_sts.fetch-too-large"] = "fail" }, codes)
    assert.is_true(ms < T_MS, ms)
  end)

  it("reports a Content-Length longer than the body as a broken response", function()
    local m, codes = probe("cl-short")
    assert.equal("protocol", m.fetch.status)
    assert.equal("HTTP response: body ended after 68 of 1000 bytes", m.fetch.error)
    assert.same({ ["mta_sts.fetch-failed"] = "fail" }, codes)
  end)

  it("reads no more than a short Content-Length: the cut policy is invalid", function()
    local m, codes = probe("cl-long")
    assert.equal("ok", m.fetch.status)
    assert.equal("version: STSv1\r\nmode", m.fetch.http.body)
    assert.is_false(m.parsed.valid)
    assert.is_nil(m.policy)
    assert.same({ ["mta_sts.policy-mode"] = "fail", ["mta_sts.policy-max-age"] = "fail",
      ["mta_sts.policy-mx"] = "fail" }, codes)
  end)

  it("refuses a chunk size that overflows, before any of it arrives", function()
    local m, codes, ms = probe("chunk-overflow")
    assert.equal("too-long", m.fetch.status)
    assert.matches("HTTP chunk of more than 65536 bytes", m.fetch.error)
    assert.same({ ["mta_sts.fetch-too-large"] = "fail" }, codes)
    assert.is_true(ms < T_MS, ms)
  end)

  it("gives up on a drip-fed response at the fetch deadline, keeping what came", function()
    local m, codes, ms = probe("drip", "--delay 0.2")
    assert.equal("timeout", m.fetch.status)
    assert.is_true(m.fetch.time_ms >= T_MS - 50 and m.fetch.time_ms < T_MS + H.PHASE_SLACK_MS, m.fetch.time_ms)
    assert.matches("^HTTP/1%.1 ", m.fetch.partial)   -- the bytes that came in time
    assert.same({ ["mta_sts.fetch-timeout"] = "fail" }, codes)
    assert.is_true(ms < T_MS + 1000, ms)
  end)

  it("keeps NULs, escapes and invalid UTF-8 of a policy out of the patterns and out of the reports raw", function()
    local m, codes, _, facts = probe("hostile-policy")
    assert.equal("ok", m.fetch.status)
    assert.is_false(m.parsed.valid)
    assert.same({}, m.parsed.mx)
    assert.is_nil(m.policy)
    assert.same({ ["mta_sts.policy-mode"] = "fail", ["mta_sts.policy-max-age"] = "fail",
      ["mta_sts.policy-mx"] = "fail" }, codes)
    -- server bytes are valid UTF-8 in the facts (check_common), the 8-bit
    -- header as \xNN, and the CLI's text report is escaped too
    local evil
    for _, h in ipairs(m.fetch.http.headers) do if h.name == "x-evil" then evil = h.value end end
    assert.equal("\\xFF\\xFE\\xC3( \u{202E}", evil)
    assert.truthy(utf8.len(m.fetch.http.body))
    assert.equal("hostile.test", facts.domain)
  end)
  -- regress: the domain scope ran to its end before any SMTP dialog began,
  -- so a policy host that stalls held up every MX probe by its timeout.
  -- Now the gatherers no later scope needs (mta_sts, tls_rpt) run beside
  -- the MX and target scopes: the slow SMTP dialog and the stalled fetch
  -- overlap, and the whole probe takes about the longer of the two, not
  -- their sum.
  it("does not hold up the SMTP dialog while the policy fetch stalls", function()
    local addr = ("127.0.66.%d"):format(BASE + 20)
    H.start("dns", addr .. ":5300", "mta-sts", "--a " .. addr)
    H.start("https", addr .. ":443", "drip", "--delay 0.2")
    H.start("smtp", addr .. ":25", "slow-replies", "--delay 0.3")
    -- the main dialog only: the version dialogs would lengthen the probe
    local facts, ms = H.probe("hostile.test", { resolver = addr .. ":5300", tls_versions = false })
    H.check_common(facts, ms)
    local fetch, smtp = facts.mta_sts.fetch, facts.targets[1].smtp
    assert.equal("timeout", fetch.status)
    assert.is_true(fetch.time_ms >= T_MS - 50, fetch.time_ms)
    assert.equal("complete", smtp.status)
    assert.is_true(smtp.time_ms >= 2000, smtp.time_ms)   -- eight or more slow replies
    -- one after the other it would be fetch + dialog: 2 s more
    assert.is_true(ms < smtp.time_ms + 1000, ("probe %.0f ms, dialog %.0f ms"):format(ms, smtp.time_ms))
  end)
end)
