-- The checks for timeouts inside the dialog, early replies and chain order,
-- on hand-made facts.
local judge = require "mxprobe.judge"

-- facts v2 with one target; `smtp` overrides fields of targets[1].smtp
local function facts_with(smtp)
  local s = {
    status = "complete",
    connect = { status = "ok", time_ms = 1 },
    banner = { status = "ok", time_ms = 2, first_byte_ms = 2,
               reply = { code = 220, lines = { "mx.example.test ESMTP" } } },
    ehlo = { status = "ok", command = "EHLO", line = "EHLO probe.example.test",
             reply = { code = 250, lines = { "mx.example.test", "STARTTLS" } }, extensions = { STARTTLS = "" } },
    transcript = {},
  }
  for k, v in pairs(smtp) do s[k] = v end
  return {
    schema = "mxprobe.facts/2", query = "example.test", kind = "domain", domain = "example.test",
    started = 1700000000, finished = 1700000001,
    dns = { mx = { status = "ok", records = { { preference = 10, exchange = "mx.example.test" } } },
            null_mx = false, implicit_mx = false },
    mx = { { name = "mx.example.test", preference = 10,
             dns = { status = "ok", addresses = { { address = "192.0.2.1", family = "ipv4" } } } } },
    targets = { { mx = "mx.example.test", preference = 10, address = "192.0.2.1", family = "ipv4", port = 25,
                  smtp = s } },
  }
end

local function find(j, code)
  for _, f in ipairs(j.findings) do if f.code == code then return f end end
  return nil
end

local function states(j)
  local s = {}
  for _, f in ipairs(j.findings) do s[f.code] = f.state end
  return s
end

describe("check smtp.timeout #unit", function()
  it("says a stalled TLS handshake could not be tested, and the verdict is not ok", function()
    local j = judge.run(facts_with {
      status = "timeout", stopped_at = "tls",
      starttls = { status = "ok", command = "STARTTLS", line = "STARTTLS",
                   reply = { code = 220, lines = { "ready" } } },
      tls = { status = "timeout", error = "TLS handshake timed out" },
    })
    local f = find(j, "smtp.timeout")
    assert.equal("untested", f.state)
    assert.equal("warning", f.severity)
    assert.equal("timed out in the TLS handshake: the rest could not be tested", f.message)
    assert.equal("TLS handshake timed out", f.evidence)
    assert.equal("unknown", j.verdict)
  end)
  it("stays silent for a completed dialog and for greeting timeouts (reported elsewhere)", function()
    assert.is_nil(states(judge.run(facts_with { status = "complete" }))["smtp.timeout"])
    assert.is_nil(states(judge.run(facts_with {
      status = "timeout", stopped_at = "banner", banner = { status = "timeout" }, ehlo = nil,
    }))["smtp.timeout"])
  end)
end)

describe("check smtp.unsolicited #unit", function()
  it("fails a server that answered before the command", function()
    local j = judge.run(facts_with { status = "complete",
      ehlo = { status = "ok", command = "EHLO", line = "EHLO probe.example.test",
               reply = { code = 250, lines = { "mx" } },
               extensions = {}, unsolicited = "250 2.1.0 Ok\r\n" } })
    local f = find(j, "smtp.unsolicited")
    assert.equal("fail", f.state)
    assert.equal("the server sent data before the EHLO command", f.message)
    assert.equal("250 2.1.0 Ok\r\n", f.evidence)
  end)
  it("also sees early replies during the relay test", function()
    local j = judge.run(facts_with { status = "complete",
      relay = { status = "tested", mail_from = { status = "ok", command = "MAIL", line = "MAIL FROM:<a@b.test>",
        reply = { code = 250, lines = { "ok" } }, unsolicited = "250 2.1.5 Ok\r\n" } } })
    local f = find(j, "smtp.unsolicited")
    assert.equal("fail", f.state)
    assert.equal("the server sent data before the MAIL FROM command", f.message)
  end)
  it("stays silent when nothing came early", function()
    assert.is_nil(states(judge.run(facts_with { status = "complete" }))["smtp.unsolicited"])
  end)
end)

describe("check tls.chain #unit", function()
  local leaf = { subject = "CN=mx.example.test", issuer = "CN=Int 2" }
  local int1 = { subject = "CN=Int 1", issuer = "CN=Root" }
  local int2 = { subject = "CN=Int 2", issuer = "CN=Int 1" }
  it("fails a chain out of order", function()
    assert.equal("fail", states(judge.run(facts_with { certificates = { leaf, int1, int2 } }))["tls.chain.order"])
  end)
  it("passes over a chain in order", function()
    assert.is_nil(states(judge.run(facts_with { certificates = { leaf, int2, int1 } }))["tls.chain.order"])
  end)
  it("fails a chain longer than what mxprobe keeps", function()
    local j = judge.run(facts_with { certificates = { leaf, int2, int1 },
      tls = { status = "ok", chain_truncated = true, chain_presented = 200 } })
    assert.equal("fail", states(j)["tls.chain.too-long"])
    assert.equal("the server presented 200 certificates; only the first 3 were kept",
      find(j, "tls.chain.too-long").message)
  end)
end)

describe("probe.pem_prefix #unit", function()
  it("keeps the first n certificates of a PEM chain", function()
    local probe = require "mxprobe.probe"
    local one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    local pem = (one .. "\n"):rep(5)
    local cut, total = probe.pem_prefix(pem, 3)
    assert.equal(3, select(2, cut:gsub("BEGIN CERTIFICATE", "")))
    assert.equal(5, total)
  end)
end)

describe("check dns.mx invalid names #unit", function()
  it("fails an MX name with DNS escapes, and passes over a plain one", function()
    local f = facts_with { status = "complete" }
    f.mx[1].name = "\\027[2j.h.test"
    local bad = find(judge.run(f), "dns.mx.invalid-name")
    assert.equal("fail", bad.state)
    assert.same({ mx = "\\027[2j.h.test" }, bad.target)
    assert.is_nil(states(judge.run(facts_with { status = "complete" }))["dns.mx.invalid-name"])
  end)
end)
