-- What facts schema v2 adds, checked live against the hostile peer in its
-- well-behaved mode (spec/hostile/peer.py, fault "normal"), which logs the
-- client end of each connection and every command line it reads: our end
-- of the connection (smtp.source), each phase's verb and whole line, the
-- presented chain as PEM, and the run's identity (run.id, run.prober).
-- A DNS peer answers h.test MX -> mx.h.test, A -> 127.0.66.4.
local core = require "mxprobe.core"
local mxprobe = require "mxprobe"
local facts_mod = require "mxprobe.facts"
local H = require "hostile.peer"

local ADDR = "127.0.66.4"
local DNS = "127.0.66.55:5300"

describe("facts schema v2, live #hostile #integration", function()
  local dns

  setup(function()
    dns = H.start("dns", DNS, "normal", "--a " .. ADDR, true)
  end)
  after_each(H.stop_all)
  teardown(function()
    H.stop_all()
    H.stop(dns)
  end)

  describe("one domain probe of h.test", function()
    local facts, s, peer

    setup(function()
      peer = H.start("smtp", ADDR .. ":2525", "normal", nil, true)
      local ms
      -- the main dialog only: the version dialogs (more connections and
      -- lines at the peer) are asserted in hostile_posture_spec.lua
      facts, ms = H.probe("h.test", { resolver = DNS, port = 2525, tls_versions = false })
      H.check_common(facts, ms)
      -- the peer logs from its own thread: wait for the last line it reads
      assert(H.wait_output(peer, "line: 'QUIT'"), H.output(peer))
      H.stop(peer)
      assert.equal(1, #facts.targets)
      s = facts.targets[1].smtp
      assert.equal("complete", s.status)
    end)

    it("records our end of the connection as the server saw it (smtp.source)", function()
      assert.matches("^127%.0%.0%.1:%d+$", s.source)
      assert.same({ s.source }, H.clients(peer))
    end)

    it("records each phase's verb as command and the whole line sent as line", function()
      assert.is_nil(s.banner.command)
      assert.is_nil(s.banner.line)
      local expect = {
        { s.ehlo, "EHLO", "EHLO client.mxprobe.test" },
        { s.starttls, "STARTTLS", "STARTTLS" },
        { s.ehlo_tls, "EHLO", "EHLO client.mxprobe.test" },
        { s.relay.mail_from, "MAIL", "MAIL FROM:<mxprobe@example.net>" },
        { s.relay.rcpt_external, "RCPT", "RCPT TO:<mxprobe-relay-test@example.net>" },
        { s.relay.rcpt_control, "RCPT", "RCPT TO:<postmaster@h.test>" },
        { s.relay.rset, "RSET", "RSET" },
        { s.quit, "QUIT", "QUIT" },
      }
      local lines = {}
      for i, e in ipairs(expect) do
        assert.equal(e[2], e[1].command, e[3])
        assert.equal(e[3], e[1].line)
        lines[i] = e[3]
      end
      -- exactly the lines the server read, in order, and the transcript's C lines
      assert.same(lines, H.lines(peer))
      local sent = {}
      for _, e in ipairs(s.transcript) do
        if e.dir == "C" then sent[#sent + 1] = e.line end
      end
      assert.same(lines, sent)
    end)

    it("keeps the presented chain as PEM: the certificates decoded from it are those in the facts", function()
      local pem = s.tls.chain_pem
      assert.is_string(pem)
      assert.equal("all", s.tls.protocols)
      local certs = assert(core.x509_parse(pem))
      assert.equal(#s.certificates, #certs)
      assert.equal(s.certificates[1].sha256, certs[1].sha256)
      assert.equal(s.certificates[1].spki_sha256, certs[1].spki_sha256)
      -- and the leaf is the peer's certificate file
      local f = assert(io.open("spec/hostile/certs/normal.pem", "rb"))
      local file = assert(core.x509_parse(f:read("a")))
      f:close()
      assert.equal(file[1].sha256, certs[1].sha256)
    end)

    it("records the prober's identity: run id, tool, versions, EHLO name and addresses", function()
      local r = facts.run
      assert.matches("^%x+$", r.id)
      assert.equal(32, #r.id)
      assert.same({ name = "mxprobe", version = mxprobe.VERSION }, r.tool)
      assert.equal(mxprobe.VERSION, r.versions.mxprobe)
      assert.equal(_VERSION, r.versions.lua)
      assert.same({ ehlo_name = "client.mxprobe.test", mail_from = "mxprobe@example.net",
        relay_rcpt = "mxprobe-relay-test@example.net" }, r.prober)
    end)

    it("keeps each DNS answer once, where it was used (no dns.queries)", function()
      assert.is_nil(facts.dns.queries)
      assert.equal("h.test", facts.dns.mx.name)
      assert.equal("mx.h.test", facts.dns.mx.records[1].exchange)
      assert.equal(ADDR, facts.mx[1].dns.a.records[1].address)
      assert.is_true(facts.dns.mx ~= facts.mx[1].dns.a)
    end)
  end)

  it("gives every facts table of one probe_list call the same run id, and another call another", function()
    H.start("smtp", ADDR .. ":2526", "normal")
    local queries = { "h.test", "[" .. ADDR .. "]:2526", "mx.h.test:2526" }
    local opts = H.options { resolver = DNS, port = 2526, relay_test = false }
    local list = assert(mxprobe.probe_list(queries, opts))
    assert.equal(3, #list)
    local id = list[1].run.id
    assert.matches("^%x+$", id)
    assert.equal(32, #id)
    for i, f in ipairs(list) do
      assert.equal(queries[i], f.query)
      assert.equal(id, f.run.id, f.query)
      assert.is_true((facts_mod.validate(f)), f.query)
      assert.equal("complete", f.targets[1].smtp.status, f.query)
    end
    -- the three connections came from three different ports
    local seen = {}
    for _, f in ipairs(list) do seen[f.targets[1].smtp.source] = true end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(3, n)
    local again = assert(mxprobe.probe_list({ queries[2] }, opts))
    assert.equal(32, #again[1].run.id)
    assert.is_true(again[1].run.id ~= id)
  end)
end)
