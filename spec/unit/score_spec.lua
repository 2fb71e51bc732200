-- Unit specs of scoring (mxprobe.score) and of the judge that feeds it
-- (mxprobe.judge): scores, grades, the domain aggregate, the verdict, the
-- exit status, and a check that misbehaves. No sockets.

local fixtures = require "fixtures.facts._load"
local judge = require "mxprobe.judge"
local score = require "mxprobe.score"
local policy = require "mxprobe.policy"

local function judged(name, overlay)
  local facts = type(name) == "string" and fixtures.load(name) or name
  return judge.run(facts, overlay and policy.resolve(overlay) or nil)
end

local function target(j, address)
  for _, t in ipairs(j.scores.targets) do
    if t.address == address then return t end
  end
end

local function has(j, code)
  for _, f in ipairs(j.findings) do if f.code == code then return f end end
  return nil
end

describe("score.grade #unit", function()
  local p = policy.default()
  it("maps scores to the policy's grades", function()
    assert.equal("A", score.grade(100, p))
    assert.equal("A", score.grade(90, p))
    assert.equal("B", score.grade(89, p))
    assert.equal("C", score.grade(60, p))
    assert.equal("D", score.grade(50, p))
    assert.equal("F", score.grade(49, p))
    assert.equal("F", score.grade(0, p))
  end)

  it("has no grade without a score", function()
    assert.is_nil(score.grade(nil, p))
  end)
end)

describe("score.compute #unit", function()
  it("gives a healthy domain 100 and an A everywhere", function()
    local j = judged("good")
    for _, t in ipairs(j.scores.targets) do
      assert.equal(100, t.score)
      assert.equal("A", t.grade)
      assert.equal("complete", t.coverage)
    end
    assert.equal(100, j.scores.domain.score)
    assert.equal("A", j.scores.domain.grade)
  end)

  it("takes the weight of each failed code off a target", function()
    local p = policy.default()
    local key = target(judged("weakkey"), "127.0.15.1")
    assert.equal(100 - p.weights["tls.cert.weak-key"] - p.weights["tls.cert.sha1"], key.score)
    assert.equal(2, #key.deductions)
    local old = target(judged("weaktls"), "127.0.66.70")
    assert.equal(100 - p.weights["tls.session.old-version"], old.score)
    assert.equal(1, #old.deductions)
    -- no OpenSSL here negotiates 3DES: the real TLS 1.0 facts get its cipher by hand
    local facts = fixtures.load("weaktls")
    facts.targets[1].smtp.tls.cipher, facts.targets[1].smtp.tls.cipher_bits = "DES-CBC3-SHA", 112
    local t = target(judged(facts), "127.0.66.70")
    assert.equal(100 - p.weights["tls.session.old-version"] - p.weights["tls.session.weak-cipher"], t.score)
    assert.equal(2, #t.deductions)
  end)

  it("caps a target with a critical failure at F", function()
    -- the expired certificate is critical where senders enforce PKIX: a
    -- policy says so for opportunistic delivery (the certificate rule)
    local strict = { regime_severities = { opportunistic = { ["tls.cert.expired"] = "critical" } } }
    local t = target(judged("expired", strict),
      "127.0.2.1")
    assert.equal(49, t.score)
    assert.equal("F", t.grade)
    assert.equal("critical", t.worst)
  end)

  it("does not cap an expired certificate under opportunistic delivery: a warning, 40 points", function()
    local t = target(judged("expired"), "127.0.2.1")
    assert.equal(60, t.score)
    assert.equal("C", t.grade)
    assert.equal("warning", t.worst)
  end)

  it("never scores could-not-test as a failure", function()
    local j = judged("timeout")
    local t = target(j, "127.0.12.1")
    assert.is_nil(t.score)
    assert.is_nil(t.grade)
    assert.equal("none", t.coverage)
    assert.is_nil(j.scores.domain.score)
    assert.equal(1, j.scores.domain.untested_count)
  end)

  it("gives no score to a throttled target where nothing failed (100 would claim what was not seen)", function()
    for _, name in ipairs({ "throttled-starttls", "throttled-banner", "banner554" }) do
      local j = judged(name)
      local t = j.scores.targets[1]
      assert.is_nil(t.score, name)
      assert.equal("partial", t.coverage, name)
    end
  end)

  it("keeps a greylisted target's score: inconclusive relay is not a failure", function()
    local t = judged("greylist").scores.targets[1]
    assert.equal(100, t.score)
    assert.equal("partial", t.coverage)
  end)

  it("scores an MX host as its weakest address", function()
    local facts = fixtures.load("good")
    local second = fixtures.copy(facts.targets[1])
    second.address = "127.0.1.99"
    second.smtp.tls.version = "TLSv1"
    table.insert(facts.targets, 2, second)
    table.insert(facts.mx[1].dns.addresses, { address = "127.0.1.99", family = "ipv4" })
    local j = judge.run(facts)
    local host = j.scores.hosts[1]
    assert.equal("mx1.good.example.test", host.mx)
    assert.equal(100 - policy.default().weights["tls.session.old-version"], target(j, "127.0.1.99").score)
    assert.equal(85, host.score)
    assert.equal(100, target(j, "127.0.1.1").score)
  end)

  it("holds the domain near its weakest reachable MX", function()
    local j = judged("tlsmixed")
    local p = policy.default()
    local weak = target(j, "127.0.6.1")
    assert.equal(50, weak.score)
    assert.equal(weak.score, j.scores.domain.weakest.score)
    assert.equal(83, j.scores.domain.mean) -- (100 + 0.5 * 50) / 1.5
    -- held at weakest + margin (65), then the domain's consistency.tls-mixed (15) off
    assert.equal(weak.score + p.scoring.weakest_margin - p.weights["consistency.tls-mixed"], j.scores.domain.score)
  end)

  it("does not hold the domain to an MX that refuses connections (senders skip it)", function()
    -- no lab domain has a closed MX next to a working one: good's primary
    -- gets the real dialog of the refused fixture (closed.example.test)
    local facts = fixtures.load("good")
    facts.targets[1].smtp = fixtures.load("refused").targets[1].smtp
    local j = judged(facts)
    local refused = target(j, "127.0.1.1")
    assert.is_false(refused.reachable)
    assert.equal(40, refused.score)
    assert.equal("127.0.1.2", j.scores.domain.weakest.address)
    assert.equal(100, j.scores.domain.weakest.score)
    assert.equal(60, j.scores.domain.score)
  end)

  it("weighs MX preference: a broken primary costs more than a broken backup", function()
    local loose = { scoring = { weakest_margin = 100 } }
    local primary_bad = fixtures.load("tlsmixed") -- mx2 (pref 20) has no TLS
    local backup = judged(primary_bad, loose).scores.domain.score
    local swapped = fixtures.load("tlsmixed")
    swapped.targets[1].preference, swapped.targets[2].preference = 20, 10
    swapped.mx[1].preference, swapped.mx[2].preference = 20, 10
    local primary = judged(swapped, loose).scores.domain.score
    -- (100 + 0.5 * 50) / 1.5 - 15 = 68 against (50 + 0.5 * 100) / 1.5 - 15 = 52
    assert.equal(68, backup)
    assert.equal(52, primary)
  end)

  it("takes domain-level failures off the domain score", function()
    local j = judged("sameaddr")
    local p = policy.default()
    assert.equal(100 - p.weights["dns.mx.same-address"], j.scores.domain.score)
  end)

  it("scores a domain that cannot receive mail at all as F", function()
    for _, name in ipairs({ "nxdomain", "nomx", "servfail" }) do
      local d = judged(name).scores.domain
      assert.equal(0, d.score, name)
      assert.equal("F", d.grade, name)
    end
  end)

  it("does not score a null MX domain (nothing to score), and does not fail it", function()
    local j = judged("nullmx")
    assert.is_nil(j.scores.domain.score)
    assert.equal("ok", j.verdict)
  end)

  it("reads weights from the policy", function()
    local a = target(judged("notls"), "127.0.6.1").score
    local b = target(judged("notls", { weights = { ["tls.starttls.missing"] = 5 } }), "127.0.6.1").score
    assert.equal(50, a)
    assert.equal(95, b)
  end)
end)

describe("judge.run verdict #unit", function()
  local cases = {
    good = "ok", expired = "warning", notls = "warning", openrelay = "critical",
    greylist = "ok", postscreen = "ok", timeout = "unknown", ["throttled-starttls"] = "unknown",
    nullmx = "ok", nxdomain = "critical", dnstimeout = "unknown", refused = "critical",
    heloonly = "warning", starttls454 = "critical", banner554 = "unknown",
  }
  for name, verdict in pairs(cases) do
    it("is " .. verdict .. " for the " .. name .. " facts", function()
      assert.equal(verdict, judged(name).verdict)
    end)
  end

  it("does not call the greylisting domain an open relay, nor the postscreen domain broken", function()
    local g = judged("greylist")
    assert.is_nil(has(g, "relay.open"))
    local p = judged("postscreen")
    for _, f in ipairs(p.findings) do
      assert.is_false(f.state == "fail" and (f.severity == "critical" or f.severity == "warning"), f.code)
    end
  end)

  it("calls a 421 at STARTTLS throttled, never \"no STARTTLS\"", function()
    local j = judged("throttled-starttls")
    local f = has(j, "smtp.throttle.421")
    assert.equal("untested", f.state)
    assert.equal("warning", f.severity)
    assert.is_nil(has(j, "tls.starttls.missing"))
    assert.is_nil(has(j, "consistency.tls-mixed"))
  end)

  it("attaches severity, weight, check and remediation to every finding", function()
    local j = judged("expired")
    local f = has(j, "tls.cert.expired")
    assert.equal("warning", f.severity)   -- opportunistic: senders deliver anyway
    assert.equal(policy.default().weights["tls.cert.expired"], f.weight)
    assert.equal("tls.cert", f.check)
    assert.is_string(f.remediation)
  end)

  it("judges as of the facts' capture time unless ctx.now says otherwise", function()
    local facts = fixtures.load("good")
    assert.equal(facts.finished, judge.run(facts).now)
    local later = judge.run(facts, nil, { now = facts.finished + 400 * 86400 })
    assert.equal("warning", later.verdict)
    assert.equal("fail", has(later, "tls.cert.expired").state)
  end)

  it("writes a one-line summary", function()
    local j = judged("tlsmixed")
    assert.equal("warning: 2 warnings", j.summary)
  end)

  it("refuses a facts table of another schema, v1 included", function()
    assert.has_error(function() judge.run({ schema = "mxprobe.facts/9" }) end)
    assert.has_error(function() judge.run({ schema = "mxprobe.facts/1" }) end,
      "judge.run: unsupported facts schema mxprobe.facts/1 (expected mxprobe.facts/2)")
    assert.has_error(function() judge.run("good") end)
  end)

  it("reports a query that could not be probed", function()
    local j = judge.run({ schema = "mxprobe.facts/2", query = "bad..name", kind = "domain",
      error = "invalid domain name: empty label", targets = {}, mx = {}, dns = {} })
    local f = has(j, "mxprobe.query-error")
    assert.equal("untested", f.state)
    assert.equal("the query could not be probed: invalid domain name: empty label", f.message)
    assert.equal(1, #j.findings)
    assert.equal("unknown", j.verdict)
    assert.equal(3, judge.exit_status(j))
  end)
end)

describe("judge.run with a misbehaving check #unit", function()
  local function with_check(c)
    return policy.merge(nil, { checks = { c } }, "test")
  end

  it("turns a check that raises into mxprobe.check-error, and the others still run", function()
    local p = with_check({ id = "t.raise", run = function() error("boom") end })
    local j = judge.run(fixtures.load("good"), p)
    local f = has(j, "mxprobe.check-error")
    assert.equal("untested", f.state)
    assert.matches("t.raise", f.message, 1, true)
    assert.matches("boom", f.evidence, 1, true)
    assert.equal("pass", has(j, "tls.cert.ok").state)
    assert.equal("unknown", j.verdict)
  end)

  it("turns a bad return value or a bad finding into mxprobe.check-error", function()
    for _, run in ipairs({
      function() return 42 end,
      function() return { { code = "x.y" } } end,              -- no state
      function() return { { code = 7, state = "pass" } } end,  -- code not a string
      function() return { "nope" } end,
    }) do
      local j = judge.run(fixtures.load("good"), with_check({ id = "t.bad", run = run }))
      local f = has(j, "mxprobe.check-error")
      assert.equal("untested", f.state)
      assert.matches("^check t%.bad failed: ", f.message)
    end
  end)

  it("does not run a check whose required facts are missing", function()
    local p = with_check({ id = "t.req", requires = { "nothing_here" }, run = function() error("ran") end })
    local j = judge.run(fixtures.load("good"), p)
    assert.is_nil(has(j, "mxprobe.check-error"))
    local facts = fixtures.load("good")
    facts.dns = nil
    local without = judge.run(facts)
    assert.is_nil(has(without, "dns.mx.ok"))
    assert.equal("pass", has(without, "tcp.ok").state)
  end)

  it("cuts a check that never ends", function()
    local p = with_check({ id = "t.loop", run = function() while true do end end })
    p.scoring.check_instructions = 100000
    local j = judge.run(fixtures.load("good"), p)
    assert.matches("budget", has(j, "mxprobe.check-error").message, 1, true)
  end)
end)

describe("judge.exit_status #unit", function()
  it("maps ok, warning, critical and could-not-test to 0, 1, 2, 3", function()
    assert.equal(0, judge.exit_status({ verdict = "ok" }))
    assert.equal(1, judge.exit_status({ verdict = "warning" }))
    assert.equal(2, judge.exit_status({ verdict = "critical" }))
    assert.equal(3, judge.exit_status({ verdict = "unknown" }))
  end)

  it("takes the worst of several: critical > warning > could not test > ok", function()
    assert.equal(2, judge.exit_status({ { verdict = "unknown" }, { verdict = "critical" }, { verdict = "ok" } }))
    assert.equal(1, judge.exit_status({ { verdict = "unknown" }, { verdict = "warning" } }))
    assert.equal(3, judge.exit_status({ { verdict = "ok" }, { verdict = "unknown" } }))
    assert.equal(0, judge.exit_status({ { verdict = "ok" }, { verdict = "ok" } }))
  end)

  it("is 3 when nothing was judged", function()
    assert.equal(3, judge.exit_status({}))
  end)

  it("gives the lab scenarios their status: expired exits 1 (opportunistic), open relay 2", function()
    assert.equal(1, judge.exit_status({ judged("expired") }))
    assert.equal(2, judge.exit_status({ judged("openrelay") }))
    assert.equal(0, judge.exit_status({ judged("good"), judged("greylist") }))
  end)
end)
