-- Repeated probes and the greylisting retry (issue 9 items 6 and 7), on
-- the lab's real Postfix and on the hostile peer (127.0.40.67, the TLS
-- posture range) for what Postfix cannot do: greylisting that lets the
-- retry through (an open relay behind greylisting), and STARTTLS offered
-- on every other connection (a load balancer with one node lacking TLS).
-- Both features are off by default; these probes turn them on.
local mxprobe = require "mxprobe"
local facts_io = require "mxprobe.facts"
local loop = require "mxprobe.loop"
local lab = require "support.lab"
local H = require "hostile.peer"

local read_log, disconnects = lab.maillog, lab.disconnects

local finding = lab.finding

-- the commands of a dialog's transcript, in order
local function sent(s)
  local out = {}
  for _, e in ipairs(s.transcript) do
    if e.dir == "C" then out[#out + 1] = e.line end
  end
  return out
end

describe("--greylist-retry and --repeat on the lab #integration", function()
  local F, J = {}, {}
  local log

  setup(function()
    loop.sleep(300)   -- earlier sessions reach the log before we mark ours
    local from = #read_log()
    F.greylist = assert(mxprobe.probe("greylist.example.test",
      lab.options { tls_versions = false, greylist_retry = 1 }))
    F.good = assert(mxprobe.probe("good.example.test", lab.options { tls_versions = false, ["repeat"] = 3 }))
    J.greylist, J.good = mxprobe.judge(F.greylist), mxprobe.judge(F.good)
    loop.sleep(500)   -- Postfix logs the last disconnect a moment later
    log = read_log():sub(from + 1)
  end)

  it("gathers facts the schema validates, before and after JSON", function()
    for name, f in pairs(F) do
      local ok, errs = facts_io.validate(f)
      assert.is_true(ok, name .. ": " .. table.concat(errs or {}, "; "))
      local back = assert(facts_io.decode(facts_io.encode(f)))[1]
      assert.is_true((facts_io.validate(back)), name)
    end
  end)

  it("retries greylisting's 451 once after the delay, and it is still 451: could not conclude", function()
    local s = F.greylist.targets[1].smtp
    assert.equal(451, s.relay.rcpt_external.reply.code)
    local r = s.relay_retry
    assert.equal("complete", r.status)
    assert.equal(1000, r.after_ms)
    assert.is_nil(r.plain)
    assert.equal("ok", r.tls.status)       -- the retry is the whole dialog, STARTTLS too
    assert.equal(451, r.relay.rcpt_external.reply.code)
    assert.same({ "EHLO client.mxprobe.test", "STARTTLS", "EHLO client.mxprobe.test",
                  "MAIL FROM:<mxprobe@example.net>", "RCPT TO:<mxprobe-relay-test@example.net>",
                  "RCPT TO:<postmaster@greylist.example.test>", "RSET", "QUIT" }, sent(r))
    local f = finding(J.greylist, "relay.inconclusive", "127.0.8.1")
    assert.equal("untested", f.state)
    assert.equal("RCPT TO <mxprobe-relay-test@example.net> temporarily refused (451, greylisting?): "
      .. "not an open relay, but not concluded (on the retry after 1 s; the first try was refused for now)",
      f.message)
    assert.matches("^first try: RCPT TO:<mxprobe%-relay%-test@example%.net> %-> 451 4%.7%.1 ", f.evidence)
    assert.matches("; retry after 1 s: MAIL FROM:<mxprobe@example.net> -> 250 2.1.0 Ok; ", f.evidence, 1, true)
  end)

  it("shows the second session in Postfix's own log, ended with RSET and QUIT, never DATA", function()
    local d = disconnects(log, "lab-greylist")
    assert.same({
      "ehlo=2 starttls=1 mail=1 rcpt=0/2 rset=1 quit=1 commands=6/8",
      "ehlo=2 starttls=1 mail=1 rcpt=0/2 rset=1 quit=1 commands=6/8",
    }, d)
    assert.is_nil(log:find("lab%-greylist/smtpd%[%d+%]: [^\n]*DATA"))
  end)

  it("probes each good server three times and finds no difference", function()
    for i, a in ipairs { "127.0.1.1", "127.0.1.2" } do
      local s = F.good.targets[i].smtp
      assert.equal(2, #s.repeats)
      for _, r in ipairs(s.repeats) do
        assert.equal("complete", r.status)
        assert.is_true(r.starttls)
        assert.equal(s.tls.version, r.tls_version)
        assert.equal(s.certificates[1].sha256, r.cert_sha256)
        assert.equal(1000, r.pause_ms)
        assert.is_true(r.verify_ok)
      end
      local f = finding(J.good, "smtp.repeat.same", a)
      assert.equal("pass", f.state)
      assert.equal("3 tries answered the same (status, banner, STARTTLS, TLS version, certificate)", f.message)
      assert.is_nil(finding(J.good, "smtp.repeat.differs", a))
    end
    assert.is_nil(finding(J.good, "consistency.mx-differs"))
    assert.equal("ok", J.good.verdict)
    -- the first dialog with the relay test, the repeats without: Postfix's log
    for _, svc in ipairs { "lab-good1", "lab-good2" } do
      assert.same({ "ehlo=2 starttls=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=7/8",
                    "ehlo=2 starttls=1 quit=1 commands=4",
                    "ehlo=2 starttls=1 quit=1 commands=4" }, disconnects(log, svc))
    end
  end)
end)

describe("--greylist-retry and --repeat from the command line #integration", function()
  it("passes both flags to the probe and records them in the facts", function()
    local out, stderr, status = lab.cli(lab.lab_args()
      .. " --no-tls-versions --repeat 2 --greylist-retry 1 --facts greylist.example.test")
    assert.equal("", stderr)
    assert.equal(0, status)   -- --facts: no judging
    local facts = assert(facts_io.decode(out))[1]
    assert.equal(2, facts.options["repeat"])
    assert.equal(1, facts.options.greylist_retry)
    local s = facts.targets[1].smtp
    assert.equal(1, #s.repeats)
    assert.equal("complete", s.repeats[1].status)
    assert.equal(1000, s.relay_retry.after_ms)
    assert.equal(451, s.relay_retry.relay.rcpt_external.reply.code)
  end)
end)

describe("--greylist-retry and --repeat on the hostile peer #hostile #integration", function()
  local ADDR = "127.0.40.67"
  local port = 2690
  after_each(H.stop_all)

  local function probe(fault, opts, extra)
    port = port + 1
    local peer = H.start("smtp", ("%s:%d"):format(ADDR, port), fault, extra)
    local o = { tls_versions = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    local facts, ms = H.probe(("[%s]:%d"):format(ADDR, port), o)
    H.check_common(facts, ms)
    local _, _, judgement = H.check_reports(facts)
    return facts.targets[1].smtp, judgement, peer
  end

  it("concludes an open relay from the retry after greylisting, the first 450 kept in the evidence", function()
    local s, j, peer = probe("greylist-once", { greylist_retry = 1 })
    assert.equal(450, s.relay.rcpt_external.reply.code)
    assert.equal(250, s.relay_retry.relay.rcpt_external.reply.code)
    local f = finding(j, "relay.open")
    assert.equal("fail", f.state)
    assert.equal("critical", f.severity)
    assert.equal("accepted RCPT TO <mxprobe-relay-test@example.net> (250) from an unauthenticated stranger: "
      .. "open relay (on the retry after 1 s; the first try was refused for now)", f.message)
    assert.equal("first try: RCPT TO:<mxprobe-relay-test@example.net> -> 450 4.7.1 Greylisted, please try "
      .. "again later; retry after 1 s: MAIL FROM:<mxprobe@example.net> -> 250 2.1.0 Ok; "
      .. "RCPT TO:<mxprobe-relay-test@example.net> -> 250 2.1.5 Ok", f.evidence)
    assert.is_nil(finding(j, "relay.inconclusive"))
    assert.equal("critical", j.verdict)
    -- two connections, the same dialog twice, never DATA
    assert.equal(2, #H.clients(peer))
    local once = { "EHLO client.mxprobe.test", "STARTTLS", "EHLO client.mxprobe.test",
                   "MAIL FROM:<mxprobe@example.net>", "RCPT TO:<mxprobe-relay-test@example.net>", "RSET", "QUIT" }
    local both = {}
    for _ = 1, 2 do for _, l in ipairs(once) do both[#both + 1] = l end end
    assert.same(both, H.lines(peer))
  end)

  it("retries in plaintext when the verdict came from the plaintext fallback", function()
    local s, j, peer = probe("close-after-tls", { greylist_retry = 1 }, "--greylist-once")
    assert.equal("ehlo_tls", s.fallback.after)
    assert.equal(450, s.fallback.relay.rcpt_external.reply.code)
    local r = s.relay_retry
    assert.is_true(r.plain)
    assert.is_nil(r.starttls)
    assert.equal(250, r.relay.rcpt_external.reply.code)
    local f = finding(j, "relay.open")
    assert.equal("accepted RCPT TO <mxprobe-relay-test@example.net> (250) from an unauthenticated stranger: "
      .. "open relay (in the plaintext fallback dialog, after the TLS session failed) "
      .. "(on the retry after 1 s; the first try was refused for now)", f.message)
    assert.matches("^first try: RCPT TO:<mxprobe%-relay%-test@example%.net> %-> 450 4%.7%.1 ", f.evidence)
    -- the main dialog, the fallback and the retry: three connections, never DATA
    assert.equal(3, #H.clients(peer))
    local plain = { "EHLO client.mxprobe.test", "MAIL FROM:<mxprobe@example.net>",
                    "RCPT TO:<mxprobe-relay-test@example.net>", "RSET", "QUIT" }
    local want = { "EHLO client.mxprobe.test", "STARTTLS", "EHLO client.mxprobe.test" }
    for _ = 1, 2 do for _, l in ipairs(plain) do want[#want + 1] = l end end
    assert.same(want, H.lines(peer))
  end)

  it("without --greylist-retry, the 450 stays could-not-conclude on one connection", function()
    local s, j, peer = probe("greylist-once")
    assert.is_nil(s.relay_retry)
    assert.equal("untested", finding(j, "relay.inconclusive").state)
    assert.equal(1, #H.clients(peer))
  end)

  it("does not retry when the delay would pass the probe deadline, and says why", function()
    local s, j, peer = probe("greylist-once", { greylist_retry = 30 })
    assert.same({ status = "skipped", after_ms = 30000,
      skipped = "the retry after 30 s would pass the probe deadline (--probe-timeout)" }, s.relay_retry)
    local f = finding(j, "relay.inconclusive")
    assert.equal("untested", f.state)
    assert.equal("RCPT TO <mxprobe-relay-test@example.net> temporarily refused (450, greylisting?): not an open "
      .. "relay, but not concluded; not retried: the retry after 30 s would pass the probe deadline (--probe-timeout)",
      f.message)
    assert.equal(1, #H.clients(peer))
  end)

  it("sees STARTTLS offered on every other connection with --repeat 3", function()
    local s, j, peer = probe("starttls-every-other", { ["repeat"] = 3 })
    assert.equal(3, #H.clients(peer))
    -- try 1 is the main dialog, tries 2 and 3 the repeats
    assert.is_table(s.tls)
    assert.same({ false, true }, { s.repeats[1].starttls, s.repeats[2].starttls })
    assert.is_nil(s.repeats[1].tls_version)
    assert.equal(s.tls.version, s.repeats[2].tls_version)
    assert.equal(s.certificates[1].sha256, s.repeats[2].cert_sha256)
    local f = finding(j, "smtp.repeat.differs")
    assert.equal("fail", f.state)
    assert.equal("warning", f.severity)
    assert.equal("3 tries differ in STARTTLS offered: a stale node behind a load balancer?", f.message)
    assert.equal("STARTTLS offered: yes (tries 1, 3), no (try 2)", f.evidence)
    -- the repeats hold no relay test: one MAIL FROM in all
    local mails = 0
    for _, l in ipairs(H.lines(peer)) do if l:find("^MAIL") then mails = mails + 1 end end
    assert.equal(1, mails)
  end)
end)
