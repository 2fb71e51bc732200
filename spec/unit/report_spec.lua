-- Unit specs of the reports (mxprobe.report.text, mxprobe.report.json):
-- pure functions of facts + judgements; output safe whatever a server sent
-- (ANSI/CSI/OSC escapes, NUL, CR, C1 controls, bidi overrides, invalid
-- UTF-8 -- the hostile-banner fixture has them all). No sockets.

local fixtures = require "fixtures.facts._load"
local judge = require "mxprobe.judge"
local text = require "mxprobe.report.text"
local json = require "mxprobe.report.json"
local cjson = require "cjson"

local function judged(...)
  local fl, jl = {}, {}
  for i, name in ipairs({ ... }) do
    fl[i] = fixtures.load(name)
    jl[i] = judge.run(fl[i])
  end
  return fl, jl
end

-- everything a terminal could act on, other than "\n"
local function terminal_safe(s)
  if not utf8.len(s) then return false, "invalid UTF-8" end
  if s:find("[%z\1-\9\11-\31\127]") then return false, "C0 control or DEL" end
  if s:find("\194[\128-\159]") then return false, "C1 control" end
  for _, seq in ipairs({ "\226\128\174", "\226\128\173", "\226\128\168", "\226\128\169", "\226\129\166" }) do
    if s:find(seq, 1, true) then return false, "bidi or line separator" end
  end
  return true
end

describe("report.text.render #unit", function()
  it("escapes every byte that came from a hostile server", function()
    local fl, jl = judged("hostile-banner")
    for _, opts in ipairs({ {}, { verbose = true } }) do
      local out = text.render(fl, jl, opts)
      local ok, why = terminal_safe(out)
      assert.is_true(ok, why)
      assert.matches("\\x1B[2J", out, 1, true)
    end
    local out = text.render(fl, jl, { verbose = true })
    assert.matches("\\x00", out, 1, true)
    assert.matches("\\xFF", out, 1, true)
    assert.matches("\\u{009B}", out, 1, true)
    assert.matches("\\u{202E}", out, 1, true)
    assert.matches("\\x0D", out, 1, true)
  end)

  it("uses colour only when asked, and then only its own SGR sequences", function()
    local fl, jl = judged("hostile-banner", "openrelay")
    local plain = text.render(fl, jl, { color = false, verbose = true })
    assert.is_nil(plain:find("\27", 1, true))
    local colored = text.render(fl, jl, { color = true, verbose = true })
    assert.truthy(colored:find("\27[1;31m", 1, true))
    local stripped = colored:gsub("\27%[[%d;]*m", "")
    assert.is_true((terminal_safe(stripped)))
    assert.equal(plain, stripped)
  end)

  it("puts the worst target first", function()
    local out = text.render(judged("tlsmixed"))
    local bad = out:find("\n  mx2.mixed.example.test [127.0.6.1]  pref 20  opportunistic  grade", 1, true)
    local good = out:find("\n  mx1.mixed.example.test [127.0.1.1]  pref 10  opportunistic  grade", 1, true)
    assert.truthy(bad)
    assert.truthy(good)
    assert.is_true(bad < good)
  end)

  it("shows one block per target with its grade, and the domain verdict first", function()
    local out = text.render(judged("expired"))
    assert.matches("^expired%.example%.test  WARNING  grade D %(55/100%)", out)
    assert.matches("mx.expired.example.test [127.0.2.1]  pref 10  opportunistic  grade C (60/100)", out, 1, true)
    assert.matches("    warning   tls.cert.expired ", out, 1, true)
    assert.matches("fix: Renew", out, 1, true)
  end)

  it("clips a long field to the width in characters, never inside a character", function()
    local fl, jl = judged("good")
    jl[1].findings[1].message = ("ü"):rep(300)
    local out = text.render(fl, jl, { width = 40 })
    assert.truthy(utf8.len(out))
    assert.truthy(out:find(" " .. ("ü"):rep(39) .. "…\n", 1, true))
    assert.is_nil(out:find(("ü"):rep(40), 1, true))
  end)

  it("aligns the code column within a report", function()
    local out = text.render(judged("tlsmixed"))
    local cols = {}
    for line in out:gmatch("[^\n]+") do
      local lab, rest = line:match("^    (%S+)%s+(%S.*)$")
      if (lab == "ok" or lab == "warning" or lab == "info") and rest then
        cols[#cols + 1] = line:find(rest, 1, true)
      end
    end
    assert.equal(16, #cols) -- ok, warning and info lines of the two targets and the domain
    for i = 2, #cols do assert.equal(cols[1], cols[i]) end
  end)

  it("says could-not-test for a target it could not test, never a grade", function()
    local out = text.render(judged("timeout"))
    assert.matches("COULD NOT TEST", out, 1, true)
    assert.matches("[127.0.12.1]  pref 10  opportunistic  could not test", out, 1, true)
    assert.matches("tcp.timeout", out, 1, true)
  end)

  it("groups the checks that were not applicable for one reason on one line", function()
    local out = text.render(judged("notls"))
    assert.matches("n/a       tls.session, tls.cert: STARTTLS not offered", out, 1, true)
    local n = select(2, out:gsub("STARTTLS not offered: mail", ""))
    assert.equal(1, n) -- "no TLS" once for its one target, not again by the dependent checks
  end)

  it("renders several queries, and empty input, without failing", function()
    local out = text.render(judged("good", "nullmx", "nxdomain"))
    assert.matches("good.example.test  OK", out, 1, true)
    assert.matches("nullmx.example.test  OK", out, 1, true)
    assert.matches("nxdomain.example.test  CRITICAL", out, 1, true)
    assert.equal("\n", text.render({}, {}, {}))
  end)

  it("is a pure function: same input, same output, input untouched", function()
    local fl, jl = judged("wrongname")
    local copy_f, copy_j = fixtures.copy(fl), fixtures.copy(jl)
    local a = text.render(fl, jl, { color = true })
    assert.equal(a, text.render(fl, jl, { color = true }))
    assert.same(copy_f, fl)
    assert.same(copy_j, jl)
  end)
end)

describe("report.text.escape #unit", function()
  it("leaves printable UTF-8 alone and escapes controls", function()
    assert.equal("Grüße über 25 mx.example", text.escape("Grüße über 25 mx.example"))
    assert.equal("a\\x1B[31mb\\x07", text.escape("a\27[31mb\7"))
    assert.equal("\\xC0\\xAF", text.escape("\192\175"))
    assert.equal("x\\x00y", text.escape("x\0y"))
  end)
end)

describe("report.json.render #unit", function()
  it("writes one valid JSON document with the schema version, facts, findings, scores and verdict", function()
    local fl, jl = judged("expired", "good")
    local s = json.render(fl, jl)
    assert.equal("\n", s:sub(-1))
    assert.is_nil(s:sub(1, -2):find("\n", 1, true))
    local doc = cjson.decode(s)
    assert.equal("mxprobe.report/1", doc.schema)
    assert.equal("warning", doc.verdict)
    assert.equal(1, doc.exit_status)
    assert.equal(2, #doc.results)
    local r = doc.results[1]
    assert.equal("expired.example.test", r.query)
    assert.equal("mxprobe.facts/2", r.facts.schema)
    assert.equal(jl[1].scores.domain.score, r.scores.domain.score)
    local expired = {}
    for _, f in ipairs(r.findings) do
      if f.code == "tls.cert.expired" then expired[#expired + 1] = f end
    end
    assert.equal(1, #expired)
    assert.equal("warning", expired[1].severity)
    -- the regime of each MX, which decided it (no TLSA facts in this fixture)
    assert.same({ { mx = "mx.expired.example.test", regime = "opportunistic",
      reason = "no TLSA lookup; no MTA-STS policy" } }, r.regimes)
    assert.equal("fail", expired[1].state)
    assert.same({ mx = "mx.expired.example.test", address = "127.0.2.1" }, expired[1].target)
    assert.equal("ok", doc.results[2].verdict)
  end)

  it("stays valid JSON and valid UTF-8 whatever the server sent", function()
    local fl, jl = judged("hostile-banner")
    local s = json.render(fl, jl)
    assert.truthy(utf8.len(s))
    assert.is_nil(s:sub(1, -2):find("[%z\1-\31]"))
    local doc = cjson.decode(s)
    local line = doc.results[1].facts.targets[1].smtp.banner.reply.lines[1]
    assert.truthy(line:find("\27[2J", 1, true)) -- data kept, as data
    assert.truthy(line:find("\\xFF\\xFE", 1, true)) -- invalid bytes made visible
    assert.truthy(utf8.len(line))
  end)

  it("writes empty lists as [] and keeps empty objects {}", function()
    local fl, jl = judged("nullmx")
    local s = json.render(fl, jl)
    assert.matches('"targets":[]', s, 1, true)
    assert.matches('"mx":[]', s, 1, true)
    assert.matches('"deductions":[]', s, 1, true)
  end)

  it("writes the empty lists of facts v2 as [] (an implicit MX host without addresses, no transcript)", function()
    local fl, jl = judged("nomx")
    fl[1].mx[1].dns.cname = {}
    local s = json.render(fl, jl)
    assert.matches('"addresses":[]', s, 1, true)
    assert.matches('"cname":[]', s, 1, true)
    assert.matches('"records":[]', s, 1, true)
    assert.matches('"targets":[]', s, 1, true)
    assert.is_nil(s:find('"queries"', 1, true))
    local doc = cjson.decode(s)
    assert.same({}, doc.results[1].facts.mx[1].dns.addresses)
    assert.is_true(doc.results[1].facts.mx[1].implicit)
  end)

  it("takes the tool from the facts' run identity", function()
    local fl, jl = judged("good")
    local doc = cjson.decode(json.render(fl, jl))
    assert.same({ name = "mxprobe", version = fl[1].run.tool.version }, doc.tool)
    -- the version the facts were gathered with, not the running module's
    fl[1].run.tool.version = "0.0.1-saved"
    doc = cjson.decode(json.render(fl, jl))
    assert.same({ name = "mxprobe", version = "0.0.1-saved" }, doc.tool)
  end)

  it("survives NaN, infinities, functions, cycles and odd keys", function()
    local fl, jl = judged("good")
    local f = fl[1]
    f.targets[1].smtp.time_ms = 0 / 0
    f.targets[2].smtp.time_ms = math.huge
    f.extra = { fn = print, [true] = "x", [2.5] = "y", co = coroutine.create(print) }
    f.extra.self = f.extra
    jl[1].findings[1].evidence = "ok \255"
    local doc = cjson.decode(json.render(fl, jl))
    local t = doc.results[1].facts.targets
    assert.equal(cjson.null, t[1].smtp.time_ms)
    assert.equal(cjson.null, t[2].smtp.time_ms)
    assert.is_nil(doc.results[1].facts.extra.fn)
    assert.equal("y", doc.results[1].facts.extra["2.5"])
    assert.equal("ok \\xFF", doc.results[1].findings[1].evidence)
  end)

  it("leaves the facts out when asked", function()
    local fl, jl = judged("good")
    local doc = cjson.decode(json.render(fl, jl, { facts = false, now = 1764324100 }))
    assert.is_nil(doc.results[1].facts)
    assert.equal(1764324100, doc.generated)
  end)

  it("round-trips a JSON fixture's facts unchanged", function()
    local fl, jl = judged("greylist")
    local doc = cjson.decode(json.render(fl, jl))
    assert.same(fl[1], doc.results[1].facts)
  end)
end)
