-- Unit specs of the pure parts of --repeat and --greylist-retry (issue 9
-- items 6 and 7): the option checks, the gatherer's summary and 4xx test,
-- the checks smtp.repeat, relay (from the retry) and consistency.mx-differs
-- on saved facts. No sockets.

local fixtures = require "fixtures.facts._load"
local policy = require "mxprobe.policy"
local util = require "mxprobe.checks.util"
local checks = require "mxprobe.checks"
local run_mod = require "mxprobe.run"
local smtp = require "mxprobe.gather.smtp"
local facts_io = require "mxprobe.facts"

local by_id = {}
for _, c in ipairs(checks.list()) do by_id[c.id] = c end

local function run(id, facts)
  local ctx = { now = facts.finished, policy = policy.resolve(nil), util = util }
  return by_id[id].run(facts, ctx) or {}
end

local function only(findings, code, address)
  local found
  for _, f in ipairs(findings) do
    if f.code == code and (address == nil or (f.target and f.target.address == address)) then
      assert.is_nil(found, "two findings " .. code)
      found = f
    end
  end
  return found
end

local BASE = { resolver = "127.0.0.1:53", ehlo_name = "client.mxprobe.test" }
local function options(extra)
  local o = {}
  for k, v in pairs(BASE) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return run_mod.options(o)
end

describe("--repeat and --greylist-retry options #unit", function()
  it("default to one try and no retry", function()
    local o = assert(options {})
    assert.equal(1, o["repeat"])
    assert.is_nil(o.greylist_retry)
  end)

  it("take 1 to 10 tries and 1 to 3600 seconds", function()
    assert.equal(10, assert(options { ["repeat"] = 10 })["repeat"])
    assert.equal(2.5, assert(options { greylist_retry = 2.5 }).greylist_retry)
    assert.equal(3600, assert(options { greylist_retry = 3600 }).greylist_retry)
  end)

  it("refuse anything else, saying the range", function()
    for _, v in ipairs { 0, 11, 1.5, -1, "3" } do
      local o, err = options { ["repeat"] = v }
      assert.is_nil(o, tostring(v))
      assert.equal("repeat must be an integer from 1 to 10", err)
    end
    for _, v in ipairs { 0, 0.5, 3601, math.huge, 0 / 0, "60" } do
      local o, err = options { greylist_retry = v }
      assert.is_nil(o, tostring(v))
      assert.equal("greylist_retry must be a number of seconds from 1 to 3600", err)
    end
  end)
end)

describe("gatherer smtp, repeat/greylist helpers #unit", function()
  it("retries on a 4xx to the outside RCPT, not on 421, 2xx or 5xx", function()
    local s = fixtures.load("greylist").targets[1].smtp
    assert.equal(451, smtp.greylisted(s))
    for _, code in ipairs { 421, 250, 554 } do
      s.relay.rcpt_external.reply.code = code
      assert.is_nil(smtp.greylisted(s), code)
    end
    assert.is_nil(smtp.greylisted(fixtures.load("norelaytest").targets[1].smtp))
    assert.is_nil(smtp.greylisted({}))
  end)

  it("sums a dialog up for --repeat", function()
    local s = fixtures.load("good").targets[1].smtp
    local sum = smtp.summary(s)
    assert.same({
      status = "complete", time_ms = s.time_ms,
      banner = "220 " .. s.banner.reply.lines[1],
      starttls = true, tls_status = "ok", tls_version = s.tls.version, cipher = s.tls.cipher,
      cert_sha256 = s.certificates[1].sha256, verify_ok = true,
    }, sum)
    assert.same({ status = "complete", time_ms = 1, banner = "220 x", starttls = false },
      smtp.summary { status = "complete", time_ms = 1, banner = { reply = { code = 220, lines = { "x" } } },
                     ehlo = { extensions = {} } })
  end)
end)

describe("check smtp.repeat #unit", function()
  local function with_repeats(reps)
    local facts = fixtures.load("good")
    local s = facts.targets[1].smtp
    local same = smtp.summary(s)
    same.pause_ms = 1000
    local list = {}
    for i, change in ipairs(reps) do
      local r = {}
      for k, v in pairs(same) do r[k] = v end
      for k, v in pairs(change) do r[k] = v end
      if change.starttls == false then r.tls_version, r.tls_status, r.cipher, r.cert_sha256 = nil, nil, nil, nil end
      list[i] = r
    end
    s.repeats = list
    return facts
  end

  it("is silent without --repeat", function()
    assert.same({}, run("smtp.repeat", fixtures.load("good")))
  end)

  it("passes when every try answered the same, and the facts validate", function()
    local facts = with_repeats { {}, {} }
    assert.is_true((facts_io.validate(facts)))
    local f = run("smtp.repeat", facts)
    assert.equal(1, #f)
    assert.equal("smtp.repeat.same", f[1].code)
    assert.equal("pass", f[1].state)
    assert.equal("127.0.1.1", f[1].target.address)
    assert.equal("3 tries answered the same (status, banner, STARTTLS, TLS version, certificate)", f[1].message)
  end)

  it("reports every field that differs, with the tries that saw each value", function()
    local facts = with_repeats { { cert_sha256 = ("ab"):rep(32), tls_version = "TLSv1.2" }, { starttls = false },
                                 { status = "skipped", error = "probe deadline reached" } }
    assert.is_true((facts_io.validate(facts)))
    local sha = facts.targets[1].smtp.certificates[1].sha256
    local f = only(run("smtp.repeat", facts), "smtp.repeat.differs")
    assert.equal("fail", f.state)
    assert.equal("3 tries differ in STARTTLS offered, TLS version, certificate (SHA-256): "
      .. "a stale node behind a load balancer?", f.message)
    assert.equal("STARTTLS offered: yes (tries 1, 2), no (try 3); "
      .. "TLS version: TLSv1.3 (try 1), TLSv1.2 (try 2); "
      .. "certificate (SHA-256): " .. sha:sub(1, 16) .. "… (try 1), abababababababab… (try 2)", f.evidence)
  end)

  it("sees a banner and a dialog that changed", function()
    local facts = with_repeats { { banner = "220 other.example.test ESMTP", status = "timeout", stopped_at = "ehlo" } }
    local f = only(run("smtp.repeat", facts), "smtp.repeat.differs")
    assert.equal("2 tries differ in dialog, banner: a stale node behind a load balancer?", f.message)
    assert.matches("^dialog: complete %(try 1%), timeout %(try 2%); banner: 220 ", f.evidence)
  end)

  it("has nothing to compare when every extra try was skipped", function()
    assert.same({}, run("smtp.repeat", with_repeats { { status = "skipped" } }))
  end)
end)

describe("check relay with a greylisting retry #unit", function()
  local function greylisted(retry)
    local facts = fixtures.load("greylist")
    facts.targets[1].smtp.relay_retry = retry
    assert.is_true((facts_io.validate(facts)))
    return facts
  end

  it("concludes an open relay from the retry, the first 451 leading the evidence", function()
    local retry = fixtures.load("openrelay").targets[1].smtp
    retry.after_ms = 60000
    local f = only(run("relay", greylisted(retry)), "relay.open")
    assert.equal("fail", f.state)
    assert.matches(" open relay %(on the retry after 60 s; the first try was refused for now%)$", f.message)
    assert.matches("^first try: RCPT TO:<mxprobe%-relay%-test@example%.net> %-> 451 4%.7%.1 .-; "
      .. "retry after 60 s: MAIL FROM:", f.evidence)
  end)

  it("concludes denied from the retry", function()
    local retry = fixtures.load("good").targets[1].smtp
    retry.after_ms = 5000
    local out = run("relay", greylisted(retry))
    assert.equal("pass", only(out, "relay.denied").state)
    assert.is_nil(only(out, "relay.inconclusive"))
  end)

  it("says why it did not retry", function()
    local out = run("relay", greylisted { status = "skipped", after_ms = 600000,
      skipped = "the retry after 600 s would pass the probe deadline (--probe-timeout)" })
    local f = only(out, "relay.inconclusive")
    assert.equal("untested", f.state)
    assert.matches("; not retried: the retry after 600 s would pass the probe deadline %(%-%-probe%-timeout%)$",
      f.message)
  end)
end)

describe("check consistency, addresses of one MX #unit", function()
  it("notes the addresses of one MX host that present different certificates or versions", function()
    -- good has two MX hosts of one address each: make them one host, the
    -- second address with the wrongname server's certificate and TLS 1.2
    local facts = fixtures.load("good")
    local wrong = fixtures.load("wrongname").targets[1].smtp
    local t2 = facts.targets[2]
    t2.mx = facts.targets[1].mx
    t2.smtp.certificates = wrong.certificates
    t2.smtp.tls.version = "TLSv1.2"
    local out = run("consistency", facts)
    local f = only(out, "consistency.mx-differs")
    assert.equal("fail", f.state)
    assert.equal("the 2 addresses of mx1.good.example.test differ in certificate and TLS version", f.message)
    assert.equal(("127.0.1.1: TLSv1.3, %s…; 127.0.1.2: TLSv1.2, %s…"):format(
      facts.targets[1].smtp.certificates[1].sha256:sub(1, 16), wrong.certificates[1].sha256:sub(1, 16)), f.evidence)
    assert.same({}, run("consistency", fixtures.load("good")))  -- one address per MX: nothing
  end)
end)
