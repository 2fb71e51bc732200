-- Unit specs of policies (mxprobe.policy): the default data, loading user
-- policy files in a sandbox, errors with file and line, and what a policy
-- changes in a judgement. No sockets.

local fixtures = require "fixtures.facts._load"
local policy = require "mxprobe.policy"
local judge = require "mxprobe.judge"

local tmpfiles = {}
local function policy_file(src)
  local path = os.tmpname()
  local fh = assert(io.open(path, "w"))
  fh:write(src)
  fh:close()
  tmpfiles[#tmpfiles + 1] = path
  return path
end

local function has(j, code)
  for _, f in ipairs(j.findings) do if f.code == code then return f end end
  return nil
end

teardown(function()
  for _, p in ipairs(tmpfiles) do os.remove(p) end
end)

describe("policy.default #unit", function()
  it("holds the documented thresholds", function()
    local p = policy.default()
    assert.equal(14, p.thresholds.expiry_days)
    assert.equal("TLSv1.2", p.thresholds.tls_min_version)
  end)

  it("takes every built-in code's severity and weight from its check's declaration, fresh each time", function()
    local p = policy.default()
    local checks = require "mxprobe.checks"
    local n = 0
    for _, c in ipairs(checks.list()) do
      for code, d in pairs(c.codes) do
        n = n + 1
        assert.equal(d.severity, p.severities[code], code)
        assert.equal(d.weight, p.weights[code], code)
      end
    end
    assert.equal(145, n) -- 34 MTA-STS and TLS-RPT (issue 8), 17 TLS posture (issue 9), 13 dane, 4 issue 12,
    -- 3 repeat/greylist (issue 9 items 6, 7)
    assert.equal("warning", p.severities["tls.cert.expired"])  -- the opportunistic severity
    assert.equal("info", p.regime_severities.dane["tls.cert.expired"])
    assert.equal("critical", p.regime_severities["mta-sts-enforce"]["tls.cert.name-mismatch"])
    assert.equal(40, p.weights["tls.cert.expired"])
    assert.equal("warning", p.severities["mxprobe.check-error"])
    p.thresholds.expiry_days = 99
    assert.equal(14, policy.default().thresholds.expiry_days)
  end)


  it("keeps the 0.1 weight of the could-not-test codes (15, the warning default they had then)", function()
    -- they are only ever untested, so the weight costs nothing, but the
    -- findings and the JSON report carry it: the port must not change it
    local w = policy.default().weights
    for _, code in ipairs({ "dns.mx.error", "mxprobe.check-error", "mxprobe.query-error",
        "smtp.banner.rejected", "smtp.throttle.421", "smtp.timeout",
        "tcp.error", "tcp.timeout", "tcp.unreachable" }) do
      assert.equal(15, w[code], code)
    end
    local f = has(judge.run(fixtures.load("timeout")), "tcp.timeout")
    assert.equal("untested", f.state)
    assert.equal(15, f.weight)
  end)
  it("orders the grades from the best down", function()
    local g = policy.default().grades
    assert.equal("A", g[1].grade)
    for i = 2, #g do assert.is_true(g[i - 1].min > g[i].min) end
  end)
end)

describe("policy.load #unit", function()
  it("loads the strict example: TLS required, 30-day expiry warning", function()
    local p = assert(policy.load("examples/strict-policy.lua"))
    assert.equal(30, p.thresholds.expiry_days)
    assert.equal("critical", p.severities["tls.starttls.missing"])
    assert.equal("critical", p.severities["consistency.tls-mixed"])
    local j = judge.run(fixtures.load("notls"), p)
    assert.equal("critical", j.verdict)
    assert.equal(2, judge.exit_status(j))
    local e = judge.run(fixtures.load("expiring"), p)
    assert.equal("fail", has(e, "tls.cert.expiring").state)
    -- PKIX failures: critical without DANE, information where DANE decides
    assert.equal("critical", has(judge.run(fixtures.load("expired"), p), "tls.cert.expired").severity)
    assert.equal("critical", has(judge.run(fixtures.load("selfsigned"), p), "tls.cert.self-signed").severity)
    local d = judge.run(fixtures.load("dane-expired"), p)
    assert.equal("info", has(d, "tls.cert.expired").severity)
    assert.equal("ok", d.verdict)
  end)

  it("loads the custom-check example, whose checks run beside the built-in ones", function()
    local p = assert(policy.load("examples/custom-check-policy.lua"))
    assert.equal(2, #p.checks)
    local j = judge.run(fixtures.load("good"), p)
    local f = has(j, "local.ipv6.missing")
    assert.equal("fail", f.state)
    assert.equal("warning", f.severity)
    assert.equal(10, f.weight)
    assert.equal("local.ipv6", f.check)
    assert.is_nil(has(j, "smtp.extensions.pipelining"), "smtp.extensions is disabled")
    assert.is_nil(has(j, "local.banner-version"))
    local facts = fixtures.load("good")
    local reply = facts.targets[1].smtp.banner.reply
    reply.lines[1] = "mx1.good.example.test ESMTP Postfix 3.7.11"
    reply.text = reply.lines[1]
    local v = has(judge.run(facts, p), "local.banner-version")
    assert.equal("fail", v.state)
    assert.equal("the greeting advertises a version number (3.7.11)", v.message)
    assert.equal("info", v.severity)
    assert.equal(2, v.weight)
    assert.equal("Give at least one MX host an AAAA record and make it listen on IPv6.", f.remediation)
    assert.equal("pass", has(judge.run(fixtures.load("ipv6"), p), "local.ipv6.ok").state)
  end)

  it("overrides weights, severities and thresholds and keeps the rest", function()
    local p = assert(policy.load(policy_file([[
      return {
        severities = { ["dns.mx.single"] = "warning" },
        weights = { ["tls.cert.expired"] = 70 },
        thresholds = { expiry_days = 45 },
      }]])))
    assert.equal("warning", p.severities["dns.mx.single"])
    assert.equal(70, p.weights["tls.cert.expired"])
    assert.equal(45, p.thresholds.expiry_days)
    assert.equal(2000, p.thresholds.connect_slow_ms)
    assert.equal("critical", p.severities["relay.open"])
  end)

  it("disables checks by id and findings by code", function()
    local p = assert(policy.load(policy_file([[return { disable = { "relay", "dns.mx.single" } }]])))
    local j = judge.run(fixtures.load("openrelay"), p)
    assert.is_nil(has(j, "relay.open"))
    assert.is_nil(has(j, "dns.mx.single"))
    assert.equal("pass", has(j, "tls.cert.ok").state)
    assert.equal("ok", j.verdict)
  end)

  it("lets a policy check replace a built-in check with the same id", function()
    local p = assert(policy.load(policy_file([[
      return { checks = { { id = "relay", codes = { "relay.mine" },
        run = function(facts, ctx) return { { code = "relay.mine", state = "pass", message = "mine" } } end } } }
    ]])))
    local j = judge.run(fixtures.load("openrelay"), p)
    assert.is_nil(has(j, "relay.open"))
    assert.equal("relay", has(j, "relay.mine").check)
  end)

  it("gives the policy the default policy to build on", function()
    local p = assert(policy.load(policy_file([[
      return { weights = { ["tls.starttls.missing"] = default.weights["tls.starttls.missing"] * 2 } }
    ]])))
    assert.equal(policy.default().weights["tls.starttls.missing"] * 2, p.weights["tls.starttls.missing"])
  end)

  it("runs the file in a sandbox without io, require, load or os.execute", function()
    local p = assert(policy.load(policy_file([[
      return { thresholds = { probe = tostring(io) .. tostring(require) .. tostring(load)
        .. tostring(os.execute) .. tostring(debug) .. tostring(dofile) } }
    ]])))
    assert.equal("nilnilnilnilnilnil", p.thresholds.probe)
  end)

  it("reports a syntax error as file:line: message", function()
    local path = policy_file("return {\n  weights = { x = 1 \n  thresholds = {}\n}\n")
    local p, err = policy.load(path)
    assert.is_nil(p)
    assert.matches("^" .. path:gsub("%p", "%%%0") .. ":%d+: ", err)
  end)

  it("reports a runtime error with its file and line", function()
    local path = policy_file("local x = 1\nlocal y = nil + x\nreturn {}\n")
    local p, err = policy.load(path)
    assert.is_nil(p)
    assert.matches(path:gsub("%p", "%%%0") .. ":2: ", err)
  end)

  it("reports an invalid value with the line that sets it", function()
    local path = policy_file("return {\n  severities = {\n    [\"relay.open\"] = \"fatal\",\n  },\n}\n")
    local p, err = policy.load(path)
    assert.is_nil(p)
    assert.matches(path:gsub("%p", "%%%0") .. ":3: ", err)
    assert.matches("fatal", err, 1, true)
  end)

  it("rejects an unknown key, a non-table result and a check without run", function()
    local _, e1 = policy.load(policy_file("return {\n  wieghts = {}\n}\n"))
    assert.matches(":2: unknown key \"wieghts\"", e1, 1, true)
    local _, e2 = policy.load(policy_file("return 42\n"))
    assert.matches("must return a table", e2, 1, true)
    local _, e3 = policy.load(policy_file("return { checks = { { id = \"a.b\" } } }\n"))
    assert.matches("run must be a function", e3, 1, true)
    local _, e4 = policy.load(policy_file("return { thresholds = { expiry_days = \"soon\" } }\n"))
    assert.matches("expiry_days", e4, 1, true)
  end)

  it("stops a policy file that never ends", function()
    local p, err = policy.load(policy_file("while true do end\n"))
    assert.is_nil(p)
    assert.matches("too long", err, 1, true)
  end)

  it("says so when the file cannot be read", function()
    local p, err = policy.load("/nonexistent/mxprobe-policy.lua")
    assert.is_nil(p)
    assert.matches("^/nonexistent/mxprobe%-policy%.lua: cannot read", err)
  end)

  it("reports a policy check's runtime error at judgement time with its file and line", function()
    local path = policy_file("return { checks = { { id = \"t.err\",\n"
      .. " run = function(facts, ctx)\n  return nil .. 1\n end } } }\n")
    local p = assert(policy.load(path))
    local j = judge.run(fixtures.load("good"), p)
    local f = has(j, "mxprobe.check-error")
    assert.matches(path:gsub("%p", "%%%0") .. ":3:", f.evidence)
  end)
end)

describe("policy code aliases #unit", function()
  it("applies an old code's severity, weight and disable to the renamed code, for one release", function()
    local p = assert(policy.load(policy_file([[
      return {
        severities = { ["tls.version.old"] = "critical", ["smtp.ehlo.size"] = "warning" },
        weights = { ["tls.cipher.weak"] = 33 },
        disable = { "smtp.throttled" },
      }]])))
    assert.equal("critical", p.severities["tls.session.old-version"])
    assert.equal("warning", p.severities["smtp.extensions.size"])
    assert.equal(33, p.weights["tls.session.weak-cipher"])
    assert.is_nil(p.severities["tls.version.old"])
    assert.is_true(p.disabled["smtp.throttle.421"])
    -- the real TLS 1.0 facts, with a 3DES cipher put in by hand (no OpenSSL here negotiates one)
    local weaktls = fixtures.load("weaktls")
    weaktls.targets[1].smtp.tls.cipher, weaktls.targets[1].smtp.tls.cipher_bits = "DES-CBC3-SHA", 112
    local j = judge.run(weaktls, p)
    local old = has(j, "tls.session.old-version")
    assert.equal("fail", old.state)
    assert.equal("critical", old.severity)
    assert.equal(33, has(j, "tls.session.weak-cipher").weight)
    assert.equal("critical", j.verdict)
    assert.is_nil(has(judge.run(fixtures.load("throttled-starttls"), p), "smtp.throttle.421"))
  end)

  it("lets the new name win when a policy names both", function()
    local p = policy.resolve({ weights = { ["tls.version.old"] = 1, ["tls.session.old-version"] = 2 } })
    assert.equal(2, p.weights["tls.session.old-version"])
  end)

  it("knows exactly the twelve codes renamed in 0.2", function()
    assert.same({
      ["smtp.ehlo.pipelining"] = "smtp.extensions.pipelining", ["smtp.ehlo.size"] = "smtp.extensions.size",
      ["smtp.ehlo.8bitmime"] = "smtp.extensions.8bitmime", ["smtp.ehlo.smtputf8"] = "smtp.extensions.smtputf8",
      ["tls.handshake.ok"] = "tls.session.ok", ["tls.handshake.failed"] = "tls.session.failed",
      ["tls.version.old"] = "tls.session.old-version", ["tls.cipher.weak"] = "tls.session.weak-cipher",
      ["dns.nxdomain"] = "dns.mx.nxdomain", ["dns.servfail"] = "dns.mx.servfail", ["dns.error"] = "dns.mx.error",
      ["smtp.throttled"] = "smtp.throttle.421",
    }, policy.aliases)
  end)
end)

describe("policy checks with the 0.1 declaration #unit", function()
  it("still take codes as a list with severities, weights and remediation beside it", function()
    local p = assert(policy.load(policy_file([[
      return { checks = { { id = "old.style", codes = { "old.style.bad" },
        severities = { ["old.style.bad"] = "critical" }, weights = { ["old.style.bad"] = 7 },
        remediation = { ["old.style.bad"] = "do it" },
        run = function() return { { code = "old.style.bad", state = "fail", message = "bad" } } end } } }
    ]])))
    local f = has(judge.run(fixtures.load("good"), p), "old.style.bad")
    assert.equal("critical", f.severity)
    assert.equal(7, f.weight)
    assert.equal("do it", f.remediation)
  end)

  it("refuse a code declaration with a bad severity or weight", function()
    local _, e1 = policy.load(policy_file([[return { checks = { { id = "a.b",
      codes = { ["a.b.c"] = { severity = "loud" } },
      run = function() end } } }]]))
    assert.matches('codes["a.b.c"].severity', e1, 1, true)
    local _, e2 = policy.load(policy_file([[return { checks = { { id = "a.b", codes = { ["a.b.c"] = { weight = -1 } },
      run = function() end } } }]]))
    assert.matches('codes["a.b.c"].weight', e2, 1, true)
  end)
end)

describe("policy.resolve #unit", function()
  it("merges a plain overlay table onto the default", function()
    local p = policy.resolve({ thresholds = { expiry_days = 30 } })
    assert.equal(30, p.thresholds.expiry_days)
    assert.equal("critical", p.severities["relay.open"])
    assert.equal(p, policy.resolve(p))
  end)

  it("raises on an invalid overlay (a programming error)", function()
    assert.has_error(function() policy.resolve({ severities = { x = "loud" } }) end)
  end)
end)
