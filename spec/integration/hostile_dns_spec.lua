-- DNS faults of the hostile peer (spec/hostile/peer.py dns, UDP and TCP on
-- one port): each `it` starts its own responder on 127.0.66.53, probes the
-- domain h.test through it (dns_timeout 2 s), and asserts the status of
-- the query records, that nothing waits past its deadline, and that the
-- facts and reports stay valid. A responder's A answers point at
-- 127.0.66.3, where an SMTP peer can sit, so a whole domain probe runs too.
local core = require "mxprobe.core"
local H = require "hostile.peer"

local DNS_ADDR = "127.0.66.53"
local SMTP_ADDR = "127.0.66.3"
local D_MS = H.DNS_TIMEOUT * 1000

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

  -- a DNS fault never ends in a verdict that calls the domain fine
  local function not_ok(j)
    assert.is_truthy(j.verdict ~= "ok", j.verdict)
  end

  it("answers normally and lets a whole domain probe reach the SMTP peer (the harness works)", function()
    H.start("smtp", SMTP_ADDR .. ":2525", "normal")
    local facts = probe("normal", { port = 2525 })
    local q = facts.dns.mx
    assert.equal("ok", q.status)
    assert.equal("mx.h.test", q.records[1].exchange)
    assert.equal("mx.h.test", facts.mx[1].name)
    assert.equal(1, #facts.targets)
    local t = facts.targets[1]
    assert.equal("mx.h.test", t.mx)
    assert.equal(SMTP_ADDR, t.address)
    assert.equal("complete", t.status)
    assert.equal("ok", t.tls.status)
    -- a trusted chain, for mx.hostile.test: not for the MX name mx.h.test
    assert.is_true(t.verify.ok)
    assert.is_false(t.verify.name_match)
  end)

  it("carries a hostile banner found through DNS into escaped reports", function()
    H.start("smtp", SMTP_ADDR .. ":2526", "ansi-banner")
    local facts = probe("normal", { port = 2526 })
    local t = facts.targets[1]
    assert.equal("mx.h.test", t.mx)
    assert.is_truthy(t.banner.reply.lines[1]:find("\27]52;", 1, true))
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
        assert.is_true(q.rejected >= 1)
        assert.is_true(q.time_ms >= D_MS - 100 and q.time_ms < D_MS + 500, q.time_ms)
        assert.is_true(ms < D_MS + 1000, ms)
        assert.same({}, q.records)
        assert.equal(0, #facts.targets)
        not_ok(j)
      end)
  end

  it("reports truncation without a TCP answer as the TCP failure, at once", function()
    local facts, ms, j = probe("truncated-no-tcp")
    local q = facts.dns.mx
    assert.is_true(q.tc)
    assert.equal("tcp", q.transport)
    assert.is_truthy(q.status == "closed" or q.status == "refused", q.status)
    assert.matches("over TCP", q.error, 1, true)
    assert.is_true(ms < 1000, ms)
    not_ok(j)
  end)

  it("refuses a compression loop as a protocol error, without looping", function()
    local facts, ms, j = probe("compression-loop")
    local q = facts.dns.mx
    assert.equal("protocol", q.status)
    assert.matches("compression", q.error)
    assert.is_true(ms < D_MS + 1000, ms)
    not_ok(j)
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
    not_ok(j)
  end)

  it("refuses 1,000 MX records in one large UDP datagram as too-long, within the DNS deadline", function()
    local facts, ms, j = probe("many-mx-udp")
    local q = facts.dns.mx
    assert.equal("udp", q.transport)
    assert.equal("too-long", q.status)
    assert.matches("1000 records", q.error, 1, true)
    assert.is_true(ms < D_MS + 1000, ms)
    not_ok(j)
  end)

  it("detects an MX host whose CNAME chain leads back to itself, with no target probed", function()
    local facts, ms, j = probe("mx-cname-self")
    assert.equal("ok", facts.dns.mx.status)
    local mx = facts.mx[1]
    assert.equal("mx.h.test", mx.name)
    assert.equal("dns-error", mx.status)
    for _, q in ipairs { mx.a, mx.aaaa } do
      assert.equal("protocol", q.status)
      assert.matches("CNAME loop", q.error, 1, true)
    end
    assert.equal(0, #facts.targets)
    assert.is_true(ms < 1000, ms)
    not_ok(j)
  end)

  it("detects an MX question answered with a CNAME loop", function()
    local facts, ms, j = probe("cname-loop")
    local q = facts.dns.mx
    assert.equal("protocol", q.status)
    assert.matches("CNAME loop", q.error, 1, true)
    assert.equal(0, #facts.targets)
    assert.is_true(ms < 1000, ms)
    not_ok(j)
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
      assert.is_true(#facts.targets >= 1)
      for _, t in ipairs(facts.targets) do
        -- t.mx is the DNS presentation form: "dot\\.inside.h.test" is one
        -- label "dot.inside"; "\\027[2j..." an ESC byte: not host names
        if t.mx:find("[^%w%-%.]") then
          assert.is_nil(t.tls and t.tls.servername, t.mx)
        end
      end
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
        assert.equal(math.min(64, max_mx), #facts.mx)
        assert.equal(64 - math.min(64, max_mx), facts.dns.mx_dropped or 0)
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
          -- a hostile zone must not turn one probe into a port scan
          assert.is_true(#facts.targets <= core.limits.dns_rr_max, #facts.targets .. " targets")
        end)
    end)

  it("records SERVFAIL as servfail, at once, and judges it a failure", function()
    local facts, ms, j = probe("servfail")
    local q = facts.dns.mx
    assert.equal("servfail", q.status)
    assert.equal("SERVFAIL", q.rcode)
    assert.is_true(ms < 1000, ms)
    assert.equal("fail", H.codes(j)["dns.servfail"])
  end)

  it("times out on silence at the DNS deadline", function()
    local facts, ms, j = probe("no-answer")
    local q = facts.dns.mx
    assert.equal("timeout", q.status)
    assert.is_true(q.time_ms >= D_MS - 100 and q.time_ms < D_MS + 500, q.time_ms)
    assert.is_true(ms < D_MS + 1000, ms)
    not_ok(j)
  end)
end)
