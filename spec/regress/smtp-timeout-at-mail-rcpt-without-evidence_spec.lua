-- Bug (issue 7): a timeout at MAIL FROM or RCPT TO gave an smtp.timeout
-- finding without evidence, because v1 recorded the stop as
-- stopped_at = "mail" / "rcpt" while the phases were stored under
-- relay.mail_from / relay.rcpt_external: the check looked the phase up by a
-- name that did not exist. Facts v2 have one phase vocabulary (stopped_at is
-- the key of the phase), and smtp.timeout finds the phase in the dialog or
-- in the relay test. Every post-greeting stop of the vocabulary is checked.
local judge = require "mxprobe.judge"

local function facts_stopped_at(at, phase, where)
  local s = {
    status = "timeout", stopped_at = at,
    connect = { status = "ok", time_ms = 1 },
    banner = { status = "ok", time_ms = 2, reply = { code = 220, lines = { "mx.example.test ESMTP" } } },
    ehlo = { status = "ok", command = "EHLO", line = "EHLO probe.example.test",
             reply = { code = 250, lines = { "mx.example.test" } }, extensions = {} },
    transcript = {},
  }
  if where == "relay" then
    s.relay = { status = "timeout", [at] = phase }
    if at ~= "mail_from" then
      s.relay.mail_from = { status = "ok", command = "MAIL", line = "MAIL FROM:<probe@example.test>",
                            reply = { code = 250, lines = { "2.1.0 Ok" } } }
    end
  else
    s[at] = phase
  end
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

local function timeout_finding(facts)
  local found
  for _, f in ipairs(judge.run(facts).findings) do
    if f.code == "smtp.timeout" then
      assert.is_nil(found, "smtp.timeout twice")
      found = f
    end
  end
  return found
end

describe("regress: smtp.timeout keeps the evidence of a stop in the relay test #unit", function()
  local cases = {
    { at = "mail_from", where = "relay", verb = "MAIL", line = "MAIL FROM:<probe@example.test>", name = "MAIL FROM" },
    { at = "rcpt_external", where = "relay", verb = "RCPT", line = "RCPT TO:<relay-test@relay.invalid>",
      name = "RCPT TO" },
    { at = "rcpt_control", where = "relay", verb = "RCPT", line = "RCPT TO:<postmaster@example.test>",
      name = "RCPT TO (control)" },
    { at = "rset", where = "relay", verb = "RSET", line = "RSET", name = "RSET" },
    { at = "ehlo_tls", where = "dialog", verb = "EHLO", line = "EHLO probe.example.test", name = "EHLO inside TLS" },
    { at = "quit", where = "dialog", verb = "QUIT", line = "QUIT", name = "QUIT" },
  }
  for _, c in ipairs(cases) do
    it("names " .. c.name .. " and gives its error when the dialog stopped at " .. c.at, function()
      local err = c.verb .. " 192.0.2.1:25: timed out after 10 s"
      local f = timeout_finding(facts_stopped_at(c.at,
        { status = "timeout", command = c.verb, line = c.line, error = err, time_ms = 10000 }, c.where))
      assert.equal("untested", f.state)
      assert.equal("warning", f.severity)
      assert.same({ mx = "mx.example.test", address = "192.0.2.1" }, f.target)
      assert.equal("timed out at " .. c.name .. ": the rest could not be tested", f.message)
      assert.equal(err, f.evidence)
    end)
  end

  it("does not turn a finished relay test into a timeout", function()
    local facts = facts_stopped_at("mail_from", { status = "ok", command = "MAIL",
      reply = { code = 250, lines = { "ok" } } }, "relay")
    facts.targets[1].smtp.status, facts.targets[1].smtp.stopped_at = "complete", nil
    assert.is_nil(timeout_finding(facts))
  end)
end)
