-- Bug (issue 12, "False OK"; issue 9 item 2): a TLS session that dies right
-- after the handshake -- the server closes, answers EHLO in plaintext
-- inside TLS, never answers, or refuses EHLO and HELO inside TLS -- was
-- graded A with exit status 0: tls.session.ok passed on the handshake alone
-- and nothing judged EHLO inside TLS (the relay test's "not tested" line is
-- info). A 250 to STARTTLS was called "refused". Now each is a failing
-- finding of its own, and the verdict is critical. The same faults on a
-- real connection: spec/integration/hostile_posture_spec.lua.
local judge = require "mxprobe.judge"

local REPLY250 = { code = 250, lines = { "mx.example.test", "STARTTLS" } }

-- the facts of one target whose dialog reached EHLO inside TLS with ehlo_tls
local function facts_with(ehlo_tls, status, starttls, tls)
  local s = {
    status = status, stopped_at = status ~= "complete" and "ehlo_tls" or nil,
    time_ms = 10,
    connect = { status = "ok", time_ms = 1 },
    banner = { status = "ok", time_ms = 2, reply = { code = 220, lines = { "mx.example.test ESMTP" } } },
    ehlo = { status = "ok", command = "EHLO", line = "EHLO probe.example.test", reply = REPLY250,
             extensions = { STARTTLS = "" } },
    starttls = starttls or { status = "ok", command = "STARTTLS", line = "STARTTLS",
                             reply = { code = 220, lines = { "2.0.0 Ready to start TLS" } } },
    tls = tls or { status = "ok", version = "TLSv1.3", cipher = "TLS_AES_256_GCM_SHA384", cipher_bits = 256,
                   handshake_ms = 5 },
    ehlo_tls = ehlo_tls,
    transcript = {},
  }
  return {
    schema = "mxprobe.facts/2", query = "[192.0.2.1]", kind = "address",
    started = 1700000000, finished = 1700000001, mx = {},
    targets = { { address = "192.0.2.1", family = "ipv4", port = 25, smtp = s } },
  }
end

-- the failing findings that count (info lines such as the missing ESMTP
-- extensions of these hand-made facts left out)
local function failures(j)
  local out = {}
  for _, f in ipairs(j.findings) do
    if f.state == "fail" and f.severity ~= "info" then out[#out + 1] = f.code end
  end
  table.sort(out)
  return out
end

local function has(j, code)
  for _, f in ipairs(j.findings) do if f.code == code then return f end end
end

describe("a TLS session that dies after the handshake (issue 12) #unit", function()
  local CASES = {
    { "a close", { status = "closed", command = "EHLO", line = "EHLO probe.example.test",
                   error = "tls recv: connection closed without close_notify" }, "closed", "tls.session.closed" },
    { "a reset", { status = "reset", command = "EHLO", line = "EHLO probe.example.test",
                   error = "tls recv: connection reset by peer" }, "reset", "tls.session.closed" },
    { "a plaintext reply inside TLS", { status = "tls", command = "EHLO", line = "EHLO probe.example.test",
        error = "tls recv: wrong version number" }, "tls", "tls.session.broken" },
    { "a timeout", { status = "timeout", command = "EHLO", line = "EHLO probe.example.test",
        error = "timed out waiting for the server" }, "timeout", "tls.session.timeout" },
    { "5xx to EHLO and to HELO", { status = "ok", command = "HELO", line = "HELO probe.example.test",
        ehlo_reply = { code = 554, lines = { "no" } }, reply = { code = 554, lines = { "no" } } },
      "rejected", "tls.session.ehlo-refused" },
    { "4xx to EHLO and to HELO", { status = "ok", command = "HELO", line = "HELO probe.example.test",
        ehlo_reply = { code = 450, lines = { "later" } }, reply = { code = 450, lines = { "later" } } },
      "rejected", "tls.session.ehlo-refused" },
  }
  for _, c in ipairs(CASES) do
    it("is critical, never ok, after " .. c[1], function()
      local j = judge.run(facts_with(c[2], c[3]))
      assert.equal("critical", j.verdict)
      assert.same({ c[4] }, failures(j))
      assert.is_nil(has(j, "tls.session.ok"))
      assert.equal("critical", has(j, c[4]).severity)
      assert.is_truthy(has(j, c[4]).evidence ~= "")
    end)
  end

  it("still passes a session whose EHLO inside TLS got 250", function()
    local j = judge.run(facts_with({ status = "ok", command = "EHLO", line = "EHLO probe.example.test",
      reply = REPLY250, extensions = {} }, "complete"))
    assert.equal("pass", has(j, "tls.session.ok").state)
    assert.same({}, failures(j))
  end)

  it("calls a 250 to STARTTLS a bad reply, not a refusal, and critical", function()
    local f = facts_with(nil, "complete", { status = "ok", command = "STARTTLS", line = "STARTTLS",
      reply = { code = 250, lines = { "go ahead" } } })
    f.targets[1].smtp.tls = nil
    local j = judge.run(f)
    assert.equal("critical", j.verdict)
    assert.same({ "tls.starttls.bad-reply" }, failures(j))
    assert.equal("250 go ahead", has(j, "tls.starttls.bad-reply").evidence)
  end)
end)
