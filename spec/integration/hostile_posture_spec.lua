-- TLS posture (issue 9 items 2 and 3; issue 12's first "false OK"): the
-- session after the handshake is judged, and when it fails the probe
-- reconnects in clear text as opportunistic senders do. Faults Postfix
-- cannot be configured to produce, from the hostile peer on 127.0.40.66
-- (the TLS posture lab range): a session that closes right after the
-- handshake, answers EHLO in plaintext inside TLS, stalls inside TLS,
-- refuses EHLO and HELO inside TLS, or answers STARTTLS with 250.
local H = require "hostile.peer"

local ADDR = "127.0.40.66"
local T_MS = H.TIMEOUT * 1000

describe("hostile peer: the TLS session after the handshake #hostile #integration", function()
  local port = 2640
  after_each(H.stop_all)

  -- probes one peer with fault (extra peer args); returns the dialog facts,
  -- the facts, elapsed ms, the judgement and the peer
  local function probe(fault, extra, opts)
    port = port + 1
    local listen = ("%s:%d"):format(ADDR, port)
    local peer = H.start("smtp", listen, fault, extra)
    local o = { tls_versions = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    local facts, ms = H.probe(("[%s]:%d"):format(ADDR, port), o)
    H.check_common(facts, ms)
    local _, _, judgement = H.check_reports(facts)
    return facts.targets[1].smtp, facts, ms, judgement, peer
  end

  local function finding(j, code)
    local found
    for _, f in ipairs(j.findings) do
      if f.code == code then
        assert.is_nil(found, "two findings " .. code)
        found = f
      end
    end
    return found
  end

  -- the codes of the failing findings that count (not info), sorted
  local function failures(j)
    local out = {}
    for _, f in ipairs(j.findings) do
      if f.state == "fail" and f.severity ~= "info" then out[#out + 1] = f.code end
    end
    table.sort(out)
    return out
  end

  -- the commands of a dialog's transcript, in order
  local function sent(s)
    local out = {}
    for _, e in ipairs(s.transcript) do
      if e.dir == "C" then out[#out + 1] = e.line end
    end
    return out
  end

  local PLAIN = { "EHLO client.mxprobe.test", "MAIL FROM:<mxprobe@example.net>",
                  "RCPT TO:<mxprobe-relay-test@example.net>", "RSET", "QUIT" }

  -- the common shape of a session that died after the handshake: the TLS
  -- session recorded as established, the main dialog stopped at EHLO inside
  -- TLS, one plaintext fallback on a second connection, relay denied there
  local function died(t, j, peer, status)
    assert.equal("ok", t.tls.status)
    assert.equal(status, t.ehlo_tls.status)
    assert.equal(status, t.status)
    assert.equal("ehlo_tls", t.stopped_at)
    assert.is_nil(t.relay)
    local fb = t.fallback
    assert.equal("ehlo_tls", fb.after)
    assert.equal("complete", fb.status)
    assert.is_nil(fb.starttls)
    assert.is_nil(fb.tls)
    assert.equal(250, fb.ehlo.reply.code)
    assert.equal("tested", fb.relay.status)
    assert.equal(554, fb.relay.rcpt_external.reply.code)
    assert.same(PLAIN, sent(fb))
    -- two connections, one after the other, as the peer saw them
    assert.is_true(H.wait_output(peer, "client: .*client: "))
    assert.same({ t.source, fb.source }, H.clients(peer))
    assert.are_not.equal(t.source, fb.source)
    -- the verdict can never be ok there
    assert.equal("critical", j.verdict)
    assert.is_nil(finding(j, "tls.session.ok"))
    local r = finding(j, "relay.denied")
    assert.equal("pass", r.state)
    assert.matches("in the plaintext fallback dialog", r.message, 1, true)
  end

  it("fails a session the server closes right after the handshake, and falls back to clear text", function()
    local t, _, _, j, peer = probe("close-after-tls")
    died(t, j, peer, "closed")
    assert.same({ "tls.session.closed" }, failures(j))
    local f = finding(j, "tls.session.closed")
    assert.equal("critical", f.severity)
    assert.matches("closed in answer to EHLO inside TLS", f.message, 1, true)
    assert.equal(t.ehlo_tls.error, f.evidence)
  end)

  it("fails a session that answers EHLO in plaintext inside TLS", function()
    local t, _, _, j, peer = probe("plaintext-in-tls")
    died(t, j, peer, "tls")
    assert.same({ "tls.session.broken" }, failures(j))
    local f = finding(j, "tls.session.broken")
    assert.matches("was not TLS (plaintext inside TLS?)", f.message, 1, true)
    assert.equal(t.ehlo_tls.error, f.evidence)
  end)

  it("fails a session that never answers inside TLS, at the phase deadline", function()
    local t, _, _, j, peer = probe("stall-in-tls")
    died(t, j, peer, "timeout")
    assert.is_true(t.ehlo_tls.time_ms >= T_MS and t.ehlo_tls.time_ms < T_MS + 300, t.ehlo_tls.time_ms)
    assert.same({ "tls.session.timeout" }, failures(j))
    assert.equal("fail", finding(j, "tls.session.timeout").state)
  end)

  it("fails a session that refuses EHLO and HELO inside TLS, with both replies as evidence", function()
    local t, _, _, j, peer = probe("refuse-ehlo-in-tls")
    assert.equal("rejected", t.status)
    assert.equal("HELO", t.ehlo_tls.command)
    assert.equal(554, t.ehlo_tls.ehlo_reply.code)
    assert.equal(554, t.ehlo_tls.reply.code)
    -- QUIT inside TLS was answered: the session itself works
    assert.equal(221, t.quit.reply.code)
    local fb = t.fallback
    assert.equal("ehlo_tls", fb.after)
    assert.equal("complete", fb.status)
    assert.same(PLAIN, sent(fb))
    assert.same({ t.source, fb.source }, H.clients(peer))
    assert.equal("critical", j.verdict)
    assert.same({ "tls.session.ehlo-refused" }, failures(j))
    local f = finding(j, "tls.session.ehlo-refused")
    assert.matches("EHLO and HELO refused inside TLS (554)", f.message, 1, true)
    assert.equal("EHLO: 554 5.7.1 hostile.test: no EHLO for you inside TLS; "
      .. "HELO: 554 5.7.1 hostile.test: no HELO for you inside TLS", f.evidence)
  end)

  it("fails a 250 to STARTTLS (not 220) and goes on in plaintext on the same connection", function()
    local t, _, _, j, peer = probe("starttls-250")
    assert.equal("complete", t.status)
    assert.equal(250, t.starttls.reply.code)
    assert.is_nil(t.tls)
    assert.is_nil(t.fallback)
    assert.equal("tested", t.relay.status)
    assert.same({ t.source }, H.clients(peer))
    assert.equal("critical", j.verdict)
    assert.same({ "tls.starttls.bad-reply" }, failures(j))
    assert.equal("250 2.0.0 hostile.test STARTTLS ok, go ahead", finding(j, "tls.starttls.bad-reply").evidence)
  end)

  it("concludes \"open relay\" behind broken TLS: the relay verdict comes from the plaintext fallback", function()
    local t, _, _, j = probe("close-after-tls", "--open-relay")
    assert.equal("closed", t.ehlo_tls.status)
    assert.is_nil(t.relay)
    assert.equal(250, t.fallback.relay.rcpt_external.reply.code)
    local f = finding(j, "relay.open")
    assert.equal("fail", f.state)
    assert.equal("critical", f.severity)
    assert.matches("open relay (in the plaintext fallback dialog", f.message, 1, true)
    assert.same({ "relay.open", "tls.session.closed" }, failures(j))
  end)

  it("falls back after a failed handshake too, and keeps the handshake failure reported", function()
    local t, _, _, j, peer = probe("close-mid-handshake")
    assert.equal("tls", t.tls.status)
    assert.equal("tls", t.stopped_at)
    assert.equal("tls", t.fallback.after)
    assert.equal("complete", t.fallback.status)
    assert.same(PLAIN, sent(t.fallback))
    assert.same({ t.source, t.fallback.source }, H.clients(peer))
    assert.same({ "tls.session.failed" }, failures(j))
    assert.equal("pass", finding(j, "relay.denied").state)
  end)

  it("finds a server that speaks only TLS 1.0: neither 1.2 nor 1.3 (critical), 1.0 deprecated", function()
    local t, facts, _, j, peer = probe("tls10", nil, { tls_versions = true })
    assert.equal("TLSv1", t.tls.version)
    local tv = facts.targets[1].tls_versions
    assert.equal("tested", tv.status)
    local got = {}
    for i, v in ipairs(tv.versions) do got[i] = v.version .. " " .. v.status end
    assert.same({ "TLSv1.0 accepted", "TLSv1.1 refused", "TLSv1.2 refused", "TLSv1.3 refused" }, got)
    -- the main dialog and one per version: five connections
    assert.is_true(H.wait_output(peer, ("client: .*"):rep(5)))
    assert.equal(5, #H.clients(peer))
    assert.same({ "tls.session.old-version", "tls.versions.deprecated", "tls.versions.no-modern" }, failures(j))
    local f = finding(j, "tls.versions.no-modern")
    assert.equal("critical", f.severity)
    assert.equal("accepted: TLSv1.0 (" .. tv.versions[1].cipher .. "); refused: TLSv1.1, TLSv1.2, TLSv1.3",
      f.evidence)
  end)

  it("does not reconnect after a refused STARTTLS (454): the session goes on in plaintext", function()
    local t, _, _, _, peer = probe("454-starttls")
    assert.equal("complete", t.status)
    assert.is_nil(t.fallback)
    assert.same({ t.source }, H.clients(peer))
  end)
end)
