-- DNS faults of the hostile peer (spec/hostile/peer.py dns, UDP and TCP on
-- one port): each `it` starts its own responder on 127.0.66.53, probes the
-- domain h.test through it (dns_timeout 2 s), and asserts the status of
-- the query records, that nothing waits past its deadline, and that the
-- facts and reports stay valid. A responder's A answers point at
-- 127.0.66.3, where an SMTP peer can sit, so a whole domain probe runs too.
local core = require "mxprobe.core"
local dns = require "mxprobe.dns"
local H = require "hostile.peer"

local DNS_ADDR = "127.0.66.53"
local SMTP_ADDR = "127.0.66.3"
local D_MS = H.DNS_TIMEOUT * 1000
local SLACK = H.PHASE_SLACK_MS

-- a wait cut by a deadline of d ms lasted d ms, and at most SLACK more
local function at_deadline(ms, d, what)
  assert.is_true(ms >= d and ms <= d + SLACK, ("%s: %.1f ms, deadline %d ms"):format(what, ms, d))
end

describe("hostile DNS peer #hostile #integration", function()
  local port = 5299

  after_each(H.stop_all)
  teardown(H.stop_all)

  -- one responder for one fault; returns the facts, elapsed ms, judgement
  local function probe(fault, opts)
    port = port + 1
    local resolver = ("%s:%d"):format(DNS_ADDR, port)
    H.start("dns", resolver, fault, "--a " .. SMTP_ADDR .. " --count 64")
    local o = { resolver = resolver, port = 2599 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local facts, ms = H.probe("h.test", o)
    assert.equal("domain", facts.kind)
    assert.equal("h.test", facts.domain)
    local limit
    if #facts.targets == 0 then
      -- no SMTP at all: only DNS deadlines apply (MX, then A/AAAA at once)
      limit = 2 * D_MS + 1000
    end
    H.check_common(facts, ms, limit)
    local _, _, judgement = H.check_reports(facts)
    return facts, ms, judgement
  end

  -- a DNS fault that leaves nothing to test: "could not test" (dns.mx.error,
  -- untested), never a verdict that calls the domain fine, nor one that
  -- blames it for what may be the resolver's fault
  local function could_not_test(j)
    assert.equal("untested", H.codes(j)["dns.mx.error"])
    assert.equal("unknown", j.verdict)
  end

  it("answers normally and lets a whole domain probe reach the SMTP peer (the harness works)", function()
    H.start("smtp", SMTP_ADDR .. ":2525", "normal")
    local facts = probe("normal", { port = 2525 })
    local q = facts.dns.mx
    assert.equal("ok", q.status)
    assert.equal("mx.h.test", q.records[1].exchange)
    assert.equal("mx.h.test", facts.mx[1].name)
    assert.equal(1, #facts.targets)
    -- the A answer is kept once, where it was used: mx[1].dns.a
    local a = facts.mx[1].dns.a
    assert.equal("mx.h.test", a.name)
    assert.equal("ok", a.status)
    assert.same({ SMTP_ADDR }, { a.records[1].address })
    assert.equal(1, #a.records)
    assert.equal("nodata", facts.mx[1].dns.aaaa.status)
    assert.equal("ok", facts.mx[1].dns.status)
    -- with its class (issue 12): the lab is on loopback
    assert.same({ { address = SMTP_ADDR, family = "ipv4", class = "loopback" } }, facts.mx[1].dns.addresses)
    assert.is_nil(facts.dns.queries)
    local t = facts.targets[1]
    assert.equal("mx.h.test", t.mx)
    assert.equal(SMTP_ADDR, t.address)
    assert.equal(2525, t.port)
    local s = t.smtp
    assert.equal("complete", s.status)
    assert.equal("ok", s.tls.status)
    -- a trusted chain, for mx.hostile.test: not for the MX name mx.h.test
    assert.is_true(s.verify.ok)
    assert.is_false(s.verify.name_match)
    -- the control recipient is at the domain probed
    assert.equal("RCPT TO:<postmaster@h.test>", s.relay.rcpt_control.line)
  end)

  it("carries a hostile banner found through DNS into escaped reports", function()
    H.start("smtp", SMTP_ADDR .. ":2526", "ansi-banner")
    local facts = probe("normal", { port = 2526 })
    local t = facts.targets[1]
    assert.equal("mx.h.test", t.mx)
    assert.is_truthy(t.smtp.banner.reply.lines[1]:find("\27]52;", 1, true))
    local plain = H.check_reports(facts)
    assert.is_truthy(plain:find("\\x1B]52;", 1, true))
  end)

  for _, fault in ipairs { "wrong-id", "wrong-question" } do
    it(("ignores answers with the %s, keeps waiting, then reports protocol at the deadline"):format(fault:sub(7)),
      function()
        local facts, ms, j = probe(fault)
        local q = facts.dns.mx
        assert.equal("protocol", q.status)
        assert.matches("wrong ID or question", q.error, 1, true)
        -- each try was answered, and each answer was refused
        assert.equal(dns.UDP_TRIES, q.rejected)
        assert.equal("answer with a wrong ID or question", q.rejected_reason)
        at_deadline(q.time_ms, D_MS, "MX query")
        assert.is_true(ms < D_MS + 1000, ms)
        assert.same({}, q.records)
        assert.equal(0, #facts.mx)
        assert.equal(0, #facts.targets)
        could_not_test(j)
      end)
  end

  it("reports truncation without a TCP answer as the TCP failure, at once", function()
    local facts, ms, j = probe("truncated-no-tcp")
    local q = facts.dns.mx
    assert.is_true(q.tc)
    assert.equal("tcp", q.transport)
    assert.equal("closed", q.status)
    assert.matches("over TCP", q.error, 1, true)
    assert.is_true(ms < 1000, ms)
    could_not_test(j)
  end)

  it("refuses a compression loop as a protocol error, without looping", function()
    local facts, ms, j = probe("compression-loop")
    local q = facts.dns.mx
    assert.equal("protocol", q.status)
    assert.matches("compression", q.error)
    -- each try's answer is refused as garbled, then the deadline ends it
    assert.equal(dns.UDP_TRIES, q.rejected)
    assert.equal("protocol", q.rejected_code)
    at_deadline(q.time_ms, D_MS, "MX query")
    assert.is_true(ms < D_MS + 1000, ms)
    could_not_test(j)
  end)

  it("refuses 1,000 MX records over TCP (after TC) as too-long, at once", function()
    local facts, ms, j = probe("many-mx")
    local q = facts.dns.mx
    assert.is_true(q.tc)
    assert.equal("tcp", q.transport)
    assert.equal("too-long", q.status)
    assert.matches("1000 records", q.error, 1, true)
    assert.equal(0, #facts.mx)
    assert.is_true(ms < 1000, ms)
    could_not_test(j)
  end)

  it("refuses 1,000 MX records in one large UDP datagram as too-long, within the DNS deadline", function()
    local facts, ms, j = probe("many-mx-udp")
    local q = facts.dns.mx
    assert.equal("udp", q.transport)
    assert.equal("too-long", q.status)
    assert.matches("1000 records", q.error, 1, true)
    assert.equal(dns.UDP_TRIES, q.rejected)
    assert.equal("too-long", q.rejected_code)
    at_deadline(q.time_ms, D_MS, "MX query")
    assert.is_true(ms < D_MS + 1000, ms)
    assert.equal(0, #facts.mx)
    could_not_test(j)
  end)

  it("detects an MX host whose CNAME chain leads back to itself, with no target probed", function()
    local facts, ms, j = probe("mx-cname-self")
    assert.equal("ok", facts.dns.mx.status)
    local mx = facts.mx[1]
    assert.equal("mx.h.test", mx.name)
    assert.equal("dns-error", mx.dns.status)
    assert.same({}, mx.dns.addresses)
    assert.equal("A", mx.dns.a.type)
    assert.equal("AAAA", mx.dns.aaaa.type)
    for _, q in ipairs { mx.dns.a, mx.dns.aaaa } do
      assert.equal("mx.h.test", q.name)
      assert.equal("protocol", q.status)
      assert.matches("CNAME loop", q.error, 1, true)
    end
    assert.equal(0, #facts.targets)
    assert.is_true(ms < 1000, ms)
    could_not_test(j)
  end)

  it("detects an MX question answered with a CNAME loop", function()
    local facts, ms, j = probe("cname-loop")
    local q = facts.dns.mx
    assert.equal("protocol", q.status)
    assert.matches("CNAME loop", q.error, 1, true)
    assert.equal(0, #facts.mx)
    assert.equal(0, #facts.targets)
    assert.is_true(ms < 1000, ms)
    could_not_test(j)
  end)

  describe("MX names holding escape sequences, NUL, invalid UTF-8 and dots", function()
    local function hostile_names(smtp_port)
      H.start("smtp", ("%s:%d"):format(SMTP_ADDR, smtp_port), "normal")
      local facts = probe("hostile-names", { port = smtp_port, relay_test = false })
      assert.equal(5, #facts.dns.mx.records)
      assert.equal(5, #facts.mx)
      return facts
    end

    it("keeps them as printable evidence and lets none reach a report raw", function()
      local facts = hostile_names(2527)
      for _, mx in ipairs(facts.mx) do
        assert.is_nil(mx.name:find("[%z\1-\31\127]"), mx.name)
        assert.is_truthy(utf8.len(mx.name))
      end
      local plain = H.check_reports(facts)
      assert.is_truthy(plain:find("h.test", 1, true))
    end)

    it("never sends a name that is not a host name as TLS SNI (fixed engine bug)", function()
      local facts = hostile_names(2528)
      local smtp = nil
      for _, p in ipairs(H.peers()) do
        if p.fault == "normal" and p.listen == SMTP_ADDR .. ":2528" then smtp = p end
      end
      assert.is_table(smtp)
      -- one target per MX host (each resolves to SMTP_ADDR), none of them
      -- a host name: t.mx is the DNS presentation form: "dot\\.inside.h.test"
      -- is one label "dot.inside"; "\\027[2j..." an ESC byte
      assert.equal(5, #facts.targets)
      for _, t in ipairs(facts.targets) do
        assert.is_truthy(t.mx:find("[^%w%-%.]"), t.mx)
        assert.equal("ok", t.smtp.tls.status, t.mx)
        assert.is_nil(t.smtp.tls.servername, t.mx)
      end
      -- the peer got five handshakes and, per target, those of the TLS 1.2
      -- and 1.3 version dialogs (TLS posture; it refuses 1.0 and 1.1
      -- before its SNI callback), and not one SNI
      for _, t in ipairs(facts.targets) do
        local accepted = {}
        for _, v in ipairs(t.tls_versions.versions) do
          if v.status == "accepted" then accepted[#accepted + 1] = v.version end
        end
        assert.same({ "TLSv1.2", "TLSv1.3" }, accepted)
      end
      assert.equal(15, select(2, H.output(smtp):gsub("sni: %(none%)", "")))
      assert.is_nil(H.output(smtp):find("sni: '[^']*\\", 1), H.output(smtp))
    end)
  end)

  describe("a domain whose DNS multiplies its targets (64 MX hosts x 64 A records, each address twice)",
    function()
      local function many_targets()
        local facts = probe("many-targets", { relay_test = false })
        assert.equal("ok", facts.dns.mx.status)
        -- the first max_mx hosts by preference are kept, the rest counted
        local max_mx = require("mxprobe.probe").defaults.max_mx
        assert.equal(16, max_mx)
        assert.equal(16, #facts.mx)
        assert.equal(64 - 16, facts.dns.mx_dropped)
        return facts
      end

      it("probes each (MX host, address) once, as the facts schema says (fixed engine bug)", function()
        local facts = many_targets()
        local seen, dup = {}, nil
        for _, t in ipairs(facts.targets) do
          local key = ("%s|%s|%d"):format(t.mx, t.address, t.port)
          if seen[key] then dup = key end
          seen[key] = true
        end
        assert.is_nil(dup)
      end)

      it("caps the targets of one domain: MX x A records must not become MX x A connections (fixed engine bug)",
        function()
          local facts = many_targets()
          -- 64 x 32 distinct pairs here, 256 x 256 = 65,536 at the RR limit:
          -- a hostile zone must not turn one probe into a port scan. Kept:
          -- max_mx hosts x max_addresses addresses each, the rest counted
          local max_addresses = require("mxprobe.probe").defaults.max_addresses
          assert.equal(16, max_addresses)
          for _, mx in ipairs(facts.mx) do
            assert.equal(16, #mx.dns.addresses, mx.name)
            assert.equal(32 - 16, mx.dns.addresses_dropped, mx.name)
            assert.equal(64, #mx.dns.a.records, mx.name)
          end
          assert.equal(16 * 16, #facts.targets)
          assert.is_true(#facts.targets <= core.limits.dns_rr_max, #facts.targets .. " targets")
        end)
    end)

  it("records SERVFAIL as servfail, at once, and judges it a failure", function()
    local facts, ms, j = probe("servfail")
    local q = facts.dns.mx
    assert.equal("servfail", q.status)
    assert.equal("SERVFAIL", q.rcode)
    assert.is_true(ms < 1000, ms)
    assert.equal("fail", H.codes(j)["dns.mx.servfail"])
    assert.equal("critical", j.verdict)
  end)

  it("times out on silence at the DNS deadline", function()
    local facts, ms, j = probe("no-answer")
    local q = facts.dns.mx
    assert.equal("timeout", q.status)
    assert.is_nil(q.rejected)
    at_deadline(q.time_ms, D_MS, "MX query")
    assert.is_true(ms < D_MS + 1000, ms)
    could_not_test(j)
  end)
end)
