-- SMTP faults of the hostile peer (spec/hostile/peer.py smtp): each `it`
-- starts its own peer on 127.0.66.1, probes it through the Lua API with
-- short deadlines (2 s a phase, 8 s a target), kills it whatever happens
-- (after_each),
-- and asserts the diagnostic in the facts. Every probe must also end in
-- time, hold only valid UTF-8, encode to JSON cjson accepts, and give text
-- and JSON reports through which no control character of the server gets.
local cjson = require "cjson"
local H = require "hostile.peer"

local ADDR = "127.0.66.1"
local T_MS = H.TIMEOUT * 1000
local SLACK = H.PHASE_SLACK_MS

-- a wait cut by a deadline of d ms lasted d ms, and at most SLACK more
local function at_deadline(ms, d, what)
  assert.is_true(ms >= d and ms <= d + SLACK, ("%s: %.1f ms, deadline %d ms"):format(what, ms, d))
end

-- the finding of a code in a judgement (nil when there is none)
local function finding(j, code)
  for _, f in ipairs(j.findings) do
    if f.code == code then return f end
  end
end

describe("hostile SMTP peer #hostile #integration", function()
  local port = 2524

  -- every peer a test started is killed after it, pass or fail
  after_each(H.stop_all)
  teardown(H.stop_all)

  -- one peer for one fault; returns the target's dialog facts
  -- (targets[1].smtp), the facts, elapsed ms, the judgement and the peer,
  -- after the checks every hostile probe must pass
  local function probe(fault, extra, opts)
    port = port + 1
    local peer = H.start("smtp", ("%s:%d"):format(ADDR, port), fault, extra)
    local facts, ms = H.probe(("[%s]:%d"):format(ADDR, port), opts)
    H.check_common(facts, ms)
    local _, _, judgement = H.check_reports(facts)
    assert.equal(1, #facts.targets)
    assert.equal(ADDR, facts.targets[1].address)
    assert.equal(port, facts.targets[1].port)
    local t = facts.targets[1].smtp
    assert.equal("ok", t.connect.status)
    return t, facts, ms, judgement, peer
  end

  it("has a peer that refuses to listen anywhere but loopback", function()
    for _, listen in ipairs { "0.0.0.0:2599", "192.0.2.1:2599", "[::]:2599", "localhost:2599" } do
      local p = io.popen(("python3 %s smtp --listen %s --fault normal 2>&1; echo rc=$?"):format(H.SCRIPT, listen))
      local out = p:read("a")
      p:close()
      assert.matches("rc=2", out, 1, true)
      assert.is_nil(out:find("ready", 1, true), listen)
    end
  end)

  it("completes the whole dialog with the well-behaved peer (the harness works)", function()
    local t, _, _, j = probe("normal")
    assert.equal("complete", t.status)
    assert.is_nil(t.stopped_at)
    assert.equal(220, t.banner.reply.code)
    assert.equal("ok", t.tls.status)
    assert.is_true(t.verify.ok)
    assert.equal("tested", t.relay.status)
    assert.equal(221, t.quit.reply.code)
    local c = H.codes(j)
    assert.equal("pass", c["tls.starttls.ok"])
    assert.equal("pass", c["tls.session.ok"])
    assert.equal("pass", c["tls.cert.ok"])
    assert.equal("pass", c["relay.denied"])
    assert.equal("pass", c["smtp.extensions.pipelining"])
    assert.equal("ok", j.verdict)
  end)

  describe("a banner that does not come", function()
    it("times out on a peer that accepts and never sends, at the phase deadline", function()
      local t, _, ms, j = probe("no-banner")
      assert.equal("timeout", t.banner.status)
      assert.equal("banner", t.stopped_at)
      assert.equal("timeout", t.status)
      assert.is_nil(t.banner.partial)
      assert.is_nil(t.ehlo)
      at_deadline(t.banner.time_ms, T_MS, "banner")
      at_deadline(ms, T_MS, "probe")
      assert.equal("fail", H.codes(j)["smtp.banner.missing"])
      assert.equal("critical", j.verdict)
    end)

    it("times out on a banner drip-fed one byte a second, keeping the bytes that came", function()
      local t = probe("drip-banner")
      assert.equal("timeout", t.banner.status)
      assert.equal("banner", t.stopped_at)
      assert.is_string(t.banner.partial)
      -- one byte at 0 s, 1 s (and perhaps the third at 2 s, racing the deadline)
      assert.is_true(#t.banner.partial >= 2 and #t.banner.partial <= 3, t.banner.partial)
      assert.equal(1, ("220 hostile.test"):find(t.banner.partial, 1, true), t.banner.partial)
      assert.is_true(t.banner.first_byte_ms < 500)
      at_deadline(t.banner.time_ms, T_MS, "banner")
    end)
  end)

  describe("replies too big to hold", function()
    it("cuts endless 220- continuation lines off as too-long, quickly", function()
      local t, _, ms = probe("endless-continuation")
      assert.equal("too-long", t.banner.status)
      assert.equal("too-long", t.status)
      assert.equal("banner", t.stopped_at)
      assert.matches("^220%-hostile%.test endless continuation", t.banner.partial)
      assert.is_true(#t.banner.partial <= 1024)
      assert.is_true(ms < T_MS, ms)
    end)

    it("cuts a single 1 MiB line off as too-long without reading it all", function()
      local t, _, ms = probe("huge-line")
      assert.equal("too-long", t.banner.status)
      assert.equal("banner", t.stopped_at)
      assert.matches("longer than", t.banner.error)
      assert.matches("^220 AAAA", t.banner.partial)
      assert.is_true(#t.banner.partial <= 1024)
      assert.is_true(ms < T_MS, ms)
    end)

    it("cuts an EHLO reply of 10,000 extensions off as too-long, keeping the banner", function()
      local t = probe("ehlo-10000-extensions")
      assert.equal(220, t.banner.reply.code)
      assert.equal("too-long", t.ehlo.status)
      assert.equal("ehlo", t.stopped_at)
      assert.equal("too-long", t.status)
      assert.matches("^250%-hostile%.test", t.ehlo.partial)
      assert.is_nil(t.ehlo.extensions)
    end)
  end)

  describe("hostile bytes in a reply", function()
    it("keeps a NUL of the banner as evidence and lets none reach a report", function()
      local t, facts = probe("nul-banner")
      assert.equal(220, t.banner.reply.code)
      assert.equal("complete", t.status)
      assert.is_truthy(t.banner.reply.lines[1]:find("\0", 1, true))
      local plain = H.check_reports(facts)
      assert.is_nil(plain:find("\0", 1, true))
      assert.is_truthy(plain:find("\\x00", 1, true))
    end)

    it("keeps ANSI CSI, OSC 8, OSC 52, BEL, 8-bit CSI and bidi overrides as evidence, escaped in reports",
      function()
        local t, facts = probe("ansi-banner")
        assert.equal(220, t.banner.reply.code)
        assert.equal("complete", t.status)
        local line = t.banner.reply.lines[1]
        for _, seq in ipairs { "\27[2J", "\27]8;;https://evil.example/", "\27]52;c;", "\7", "\194\155",
                               "\226\128\174" } do
          assert.is_truthy(line:find(seq, 1, true), ("%q"):format(seq))
        end
        local plain, doc = H.check_reports(facts)
        assert.is_truthy(plain:find("\\x1B[2J", 1, true))
        -- the JSON report carries the evidence exactly, escaped as JSON
        local rt = doc.results[1].facts.targets[1].smtp
        assert.equal(line, rt.banner.reply.lines[1])
      end)

    it("makes invalid UTF-8 of the banner valid (\\xNN) in the facts and the reports", function()
      local t, facts = probe("invalid-utf8-banner")
      assert.equal(220, t.banner.reply.code)
      assert.equal("complete", t.status)
      local line = t.banner.reply.lines[1]
      assert.is_truthy(utf8.len(line))
      for _, esc in ipairs { "\\xFF", "\\xFE", "\\xC0", "\\xED" } do
        assert.is_truthy(line:find(esc, 1, true), esc)
      end
      assert.is_truthy(utf8.len(t.ehlo.reply.lines[1]))
      local plain = H.check_reports(facts)
      assert.is_truthy(plain:find("\\xFF", 1, true))
    end)

    it("prints the ANSI banner through the CLI with nothing a terminal acts on", function()
      port = port + 1
      H.start("smtp", ("%s:%d"):format(ADDR, port), "ansi-banner")
      local args = ("--no-color --timeout 2 --probe-timeout 8 --ca-file %s --ehlo-name client.mxprobe.test [%s]:%d")
        :format(H.CA_FILE, ADDR, port)
      local out, err = H.cli(args)
      assert.is_nil(H.terminal_unsafe(out))
      assert.is_nil(H.terminal_unsafe(err))
      assert.matches(ADDR, out, 1, true)
      local jout = H.cli("--facts " .. args)
      assert.is_nil(jout:find("[%z\1-\9\11-\31\127]"))
      local doc = cjson.decode(jout)
      assert.equal("mxprobe.facts/2", doc.schema)
      assert.is_truthy(doc.targets[1].smtp.banner.reply.lines[1]:find("\27[2J", 1, true))
    end)
  end)

  describe("malformed reply codes", function()
    it("calls a code that is not three digits a protocol error, keeping the line", function()
      local t = probe("bad-code")
      assert.equal("protocol", t.banner.status)
      assert.equal("protocol", t.status)
      assert.equal("banner", t.stopped_at)
      assert.matches("three%-digit", t.banner.error)
      assert.matches("^2X0 hostile", t.banner.partial)
    end)

    it("calls a code that changes mid-reply (250- then 354) a protocol error", function()
      local t = probe("code-change")
      assert.equal(220, t.banner.reply.code)
      assert.equal("protocol", t.ehlo.status)
      assert.equal("ehlo", t.stopped_at)
      assert.matches("changed from 250 to 354", t.ehlo.error)
    end)

    it("calls codes outside 2xx-5xx (600 and 199) protocol errors", function()
      for _, code in ipairs { 600, 199 } do
        local t = probe("code-out-of-range", "--code " .. code)
        assert.equal("protocol", t.banner.status, code)
        assert.equal("banner", t.stopped_at, code)
        assert.matches(tostring(code) .. " outside 2xx%-5xx", t.banner.error)
      end
    end)
  end)

  describe("a server that closes the connection", function()
    it("on accept, without a byte: connect ok, banner closed", function()
      local t = probe("close-on-accept")
      assert.equal("closed", t.banner.status)
      assert.equal("banner", t.stopped_at)
      assert.equal("closed", t.status)
      assert.is_nil(t.banner.partial)
      assert.is_true(t.banner.time_ms < 1000, t.banner.time_ms)
    end)

    it("after the banner: banner kept, EHLO closed", function()
      local t = probe("close-after-banner")
      assert.equal("ok", t.banner.status)
      assert.equal(220, t.banner.reply.code)
      assert.equal("closed", t.ehlo.status)
      assert.equal("ehlo", t.stopped_at)
      assert.equal("closed", t.status)
    end)

    it("after EHLO: the extensions kept, STARTTLS closed", function()
      local t = probe("close-after-ehlo")
      assert.equal("ok", t.ehlo.status)
      assert.is_truthy(t.ehlo.extensions.STARTTLS)
      assert.equal("closed", t.starttls.status)
      assert.equal("starttls", t.stopped_at)
      assert.equal("closed", t.status)
    end)

    it("after 220 to STARTTLS: the handshake fails at once, not at the deadline", function()
      local t, _, _, j = probe("close-after-starttls-220")
      assert.equal(220, t.starttls.reply.code)
      -- OpenSSL's "unexpected eof while reading" (0A000126): a TLS failure
      assert.equal("tls", t.tls.status)
      assert.matches("handshake failed", t.tls.error, 1, true)
      assert.equal("fail", H.codes(j)["tls.session.failed"])
      assert.equal("critical", j.verdict)
      assert.equal("tls", t.stopped_at)
      assert.is_true(t.tls.handshake_ms < 1000, t.tls.handshake_ms)
    end)

    it("in the middle of the handshake: fails at once, not at the deadline", function()
      local t, _, _, j = probe("close-mid-handshake")
      assert.equal(220, t.starttls.reply.code)
      assert.equal("tls", t.tls.status)
      assert.matches("handshake failed", t.tls.error, 1, true)
      assert.equal("fail", H.codes(j)["tls.session.failed"])
      assert.equal("tls", t.stopped_at)
      assert.is_true(t.tls.handshake_ms < 1000, t.tls.handshake_ms)
    end)

    it("after RCPT: TLS and MAIL FROM kept, RCPT closed", function()
      local t = probe("close-after-rcpt")
      assert.equal("ok", t.tls.status)
      assert.equal("ok", t.ehlo_tls.status)
      assert.equal(250, t.relay.mail_from.reply.code)
      assert.equal("closed", t.relay.rcpt_external.status)
      assert.equal("closed", t.relay.status)
      assert.equal("rcpt_external", t.stopped_at)
      assert.equal("closed", t.status)
      assert.is_nil(t.relay.rcpt_control)
      assert.is_nil(t.quit)
    end)
  end)

  describe("421: throttled, could not test", function()
    local function not_missing_starttls(j, plain)
      local c = H.codes(j)
      assert.equal("untested", c["smtp.throttle.421"])
      assert.is_nil(c["tls.starttls.missing"])
      assert.is_nil(plain:find("STARTTLS not offered", 1, true))
    end

    it("at the banner: kept as 421, target rejected, no QUIT", function()
      local t, facts, _, j = probe("421-banner")
      assert.equal("ok", t.banner.status)
      assert.equal(421, t.banner.reply.code)
      assert.equal("rejected", t.status)
      assert.equal("banner", t.stopped_at)
      assert.is_nil(t.ehlo)
      assert.is_nil(t.quit)
      not_missing_starttls(j, (H.check_reports(facts)))
    end)

    it("at EHLO: kept as 421, no HELO tried, target rejected", function()
      local t, facts, _, j = probe("421-ehlo")
      assert.equal(421, t.ehlo.reply.code)
      assert.is_nil(t.ehlo.ehlo_reply)
      assert.equal("rejected", t.status)
      assert.equal("ehlo", t.stopped_at)
      assert.is_nil(t.quit)
      not_missing_starttls(j, (H.check_reports(facts)))
    end)

    it("records the EHLO phase's command as \"EHLO\", as on success, when EHLO is refused or cut (fixed engine bug)",
      function()
        for _, fault in ipairs { "421-ehlo", "close-after-banner", "code-change" } do
          local t = probe(fault)
          assert.is_table(t.ehlo, fault)
          assert.equal("EHLO", t.ehlo.command, fault)
        end
      end)

    it("at STARTTLS: the STARTTLS phase recorded as 421 (not 'no STARTTLS'), target rejected", function()
      local t, facts, _, j = probe("421-starttls")
      assert.is_truthy(t.ehlo.extensions.STARTTLS)
      assert.equal("ok", t.starttls.status)
      assert.equal(421, t.starttls.reply.code)
      assert.equal("rejected", t.status)
      assert.equal("starttls", t.stopped_at)
      assert.is_nil(t.tls)
      assert.is_nil(t.relay)
      local plain = H.check_reports(facts)
      not_missing_starttls(j, plain)
      assert.equal("untested", H.codes(j)["tls.starttls"])
    end)
  end)

  describe("STARTTLS that goes wrong", function()
    it("454: recorded, no TLS, the dialog goes on in plaintext as a sender's would", function()
      local t, _, _, j = probe("454-starttls")
      assert.equal(454, t.starttls.reply.code)
      assert.is_nil(t.tls)
      assert.equal("tested", t.relay.status)
      assert.equal("complete", t.status)
      local c = H.codes(j)
      assert.equal("fail", c["tls.starttls.refused"])
      assert.equal("na", c["tls.session"])
      assert.equal("na", c["tls.cert"])
      assert.equal("critical", j.verdict)
    end)

    it("220 then plaintext garbage: the garbage noted, the handshake fails at once", function()
      local t = probe("starttls-plaintext-garbage")
      assert.equal(220, t.starttls.reply.code)
      assert.matches("plaintext garbage", t.starttls.unsolicited, 1, true)
      assert.equal("tls", t.tls.status)
      assert.equal("tls", t.stopped_at)
      assert.is_true(t.tls.handshake_ms < 1000, t.tls.handshake_ms)
    end)

    it("220 then no TLS byte ever: the handshake times out at the phase deadline, partial facts kept",
      function()
        local t, _, ms = probe("stall-handshake")
        assert.equal(220, t.starttls.reply.code)
        assert.equal("timeout", t.tls.status)
        assert.equal("tls", t.stopped_at)
        assert.equal("timeout", t.status)
        at_deadline(t.tls.handshake_ms, T_MS, "handshake")
        assert.equal("", t.ehlo.extensions.STARTTLS)
        assert.is_nil(t.ehlo_tls)
        assert.is_nil(t.relay)
        assert.is_true(ms < T_MS + 1500, ms)
      end)
  end)

  it("stops a server slow at every reply (each in time) at the probe deadline, keeping what it got", function()
    local probe_timeout = 4
    local t, _, ms, j = probe("slow-replies", "--delay 1.5", { probe_timeout = probe_timeout })
    -- banner at 1.5 s and EHLO at 3 s came in time; STARTTLS hit the 4 s deadline
    assert.equal(220, t.banner.reply.code)
    assert.equal(250, t.ehlo.reply.code)
    assert.equal("timeout", t.status)
    assert.equal("starttls", t.stopped_at)
    assert.equal("timeout", t.starttls.status)
    assert.matches("^probe deadline reached", t.starttls.error)
    at_deadline(t.time_ms, probe_timeout * 1000, "dialog")
    assert.is_true(ms < probe_timeout * 1000 + H.SLACK_MS, ms)
    local f = finding(j, "smtp.timeout")
    assert.equal("untested", f.state)
    assert.equal(t.starttls.error, f.evidence)
  end)

  it("never calls a server whose TLS handshake stalls OK (fixed engine bug)", function()
    local t, _, _, j = probe("stall-handshake")
    assert.equal("timeout", t.tls.status)
    -- a handshake that never completes fails every sender's STARTTLS: at
    -- least "could not test", never "OK, grade A"
    local f = finding(j, "smtp.timeout")
    assert.equal("untested", f.state)
    assert.equal(t.tls.error, f.evidence)
    assert.equal("untested", H.codes(j)["tls.session"])
    assert.equal("unknown", j.verdict)
  end)

  it("never calls a server OK when the probe deadline cut the dialog before TLS (fixed engine bug)", function()
    local t, _, _, j = probe("slow-replies", "--delay 1.5", { probe_timeout = 4 })
    assert.is_nil(t.tls)
    assert.equal("timeout", t.status)
    local c = H.codes(j)
    assert.equal("untested", c["smtp.timeout"])
    assert.equal("untested", c["tls.starttls"])
    assert.equal("unknown", j.verdict)
  end)

  it("ends the relay test cut at RCPT in a finding that says it could not conclude", function()
    local _, _, _, j = probe("close-after-rcpt")
    assert.equal("untested", H.codes(j)["relay.inconclusive"])
    assert.is_nil(H.codes(j)["relay.denied"])
    assert.is_nil(H.codes(j)["relay.open"])
  end)

  it("reports replies sent before their command as a finding (fixed engine bug)", function()
    local t, _, _, j = probe("pipelining-abuse")
    assert.is_string(t.ehlo.unsolicited)
    local f = finding(j, "smtp.unsolicited")
    assert.equal("fail", f.state)
    -- the evidence is the bytes that came before EHLO
    assert.matches("250-early.hostile.test", f.evidence, 1, true)
    assert.equal("warning", j.verdict)
  end)

  it("notes replies sent before their command (pipelining abuse) and answers each command with its own reply",
    function()
      local t = probe("pipelining-abuse")
      assert.equal(220, t.banner.reply.code)
      assert.matches("250-early.hostile.test", t.ehlo.unsolicited, 1, true)
      assert.equal("hostile.test ESMTP mxprobe hostile peer", t.ehlo.reply.lines[1])
      assert.matches("250 2.1.0 Sender ok", t.starttls.unsolicited, 1, true)
      assert.equal(220, t.starttls.reply.code)
      assert.equal("ok", t.tls.status)
      assert.equal("complete", t.status)
    end)

  describe("a server that never answers a relay-test command (v1 recorded the stop as \"mail\"/\"rcpt\": no evidence)",
    function()
      it("at MAIL FROM: stops at mail_from at the phase deadline; the timeout finding carries the phase's error",
        function()
          local t, _, ms, j = probe("stall-mail-from")
          assert.equal("ok", t.ehlo_tls.status)
          local m = t.relay.mail_from
          assert.equal("MAIL", m.command)
          assert.equal("timeout", m.status)
          assert.is_string(m.error)
          at_deadline(m.time_ms, T_MS, "MAIL FROM")
          assert.equal("timeout", t.relay.status)
          assert.equal("mail_from", t.stopped_at)
          assert.equal("timeout", t.status)
          assert.is_nil(t.relay.rcpt_external)
          assert.is_nil(t.quit)
          assert.is_true(ms >= T_MS, ms)
          local f = finding(j, "smtp.timeout")
          assert.is_table(f, "no smtp.timeout finding")
          assert.equal("untested", f.state)
          assert.equal(m.error, f.evidence)
          assert.is_nil(H.codes(j)["relay.denied"])
          assert.equal("unknown", j.verdict)
        end)

      it("at RCPT TO: stops at rcpt_external at the phase deadline; the timeout finding carries the phase's error",
        function()
          local t, _, _, j = probe("stall-rcpt")
          assert.equal(250, t.relay.mail_from.reply.code)
          local r = t.relay.rcpt_external
          assert.equal("RCPT", r.command)
          assert.equal("timeout", r.status)
          assert.is_string(r.error)
          at_deadline(r.time_ms, T_MS, "RCPT TO")
          assert.equal("timeout", t.relay.status)
          assert.equal("rcpt_external", t.stopped_at)
          assert.equal("timeout", t.status)
          assert.is_nil(t.relay.rset)
          assert.is_nil(t.quit)
          local f = finding(j, "smtp.timeout")
          assert.is_table(f, "no smtp.timeout finding")
          assert.equal("untested", f.state)
          assert.equal(r.error, f.evidence)
          assert.is_nil(H.codes(j)["relay.denied"])
          assert.is_nil(H.codes(j)["relay.open"])
          assert.equal("unknown", j.verdict)
        end)
    end)
end)
