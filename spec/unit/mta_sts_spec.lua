-- The pure parts of the MTA-STS gatherer (RFC 8461): the TXT record, the
-- policy parser, the mx pattern match. No sockets.
local G = require "mxprobe.gather.mta_sts"

describe("mta_sts.parse_txt #unit", function()
  it("reads the id of a valid record, with or without spaces and a final semicolon", function()
    for _, t in ipairs { "v=STSv1; id=20160831085700Z", "v=STSv1;id=20160831085700Z;",
                         "v=STSv1 ;  id=20160831085700Z ; " } do
      local r = G.parse_txt(t)
      assert.is_true(r.valid, t)
      assert.equal("20160831085700Z", r.id)
      assert.is_nil(r.error)
    end
  end)

  it("returns nil for a TXT record that is not an STS record", function()
    assert.is_nil(G.parse_txt("v=spf1 -all"))
    assert.is_nil(G.parse_txt("v=STSv2; id=1"))
    assert.is_nil(G.parse_txt("V=STSv1; id=1"))
  end)

  it("keeps extension fields and ignores them", function()
    local r = G.parse_txt("v=STSv1; id=abc; ext=1")
    assert.is_true(r.valid)
    assert.equal("1", r.fields.ext)
  end)

  it("refuses a missing, empty, long or non-alphanumeric id", function()
    assert.equal("no id field", G.parse_txt("v=STSv1;").error)
    assert.equal("no id field", G.parse_txt("v=STSv1").error)
    for _, id in ipairs { "", ("a"):rep(33), "2016-08-31", "a b", "ü" } do
      local r = G.parse_txt("v=STSv1; id=" .. id)
      assert.is_false(r.valid, id)
      assert.matches("is not 1 to 32 letters and digits", r.error)
    end
    assert.is_true(G.parse_txt("v=STSv1; id=" .. ("a"):rep(32)).valid)
  end)

  it("refuses a record whose version is not followed by a semicolon", function()
    local r = G.parse_txt("v=STSv1id=1")
    assert.is_false(r.valid)
    assert.equal('"v=STSv1" is not followed by ";"', r.error)
  end)
end)

describe("mta_sts.match #unit", function()
  it("matches an exact name, case-insensitively, a final dot ignored", function()
    assert.is_true(G.match("mx.example.com", "mx.example.com"))
    assert.is_true(G.match("MX.Example.COM", "mx.example.com."))
    assert.is_true(G.match("mx.example.com.", "MX.EXAMPLE.COM"))
    assert.is_false(G.match("mx.example.com", "mx2.example.com"))
    assert.is_false(G.match("mx.example.com", "x.mx.example.com"))
    assert.is_false(G.match("example.com", "mx.example.com"))
  end)

  it("lets *. stand for exactly one leftmost label (RFC 8461 §4.1)", function()
    assert.is_true(G.match("*.example.com", "mx.example.com"))
    assert.is_true(G.match("*.example.com", "MX1.example.com"))
    assert.is_false(G.match("*.example.com", "a.b.example.com"))   -- two labels deep
    assert.is_false(G.match("*.example.com", "example.com"))       -- no label
    assert.is_false(G.match("*.example.com", ".example.com"))
    assert.is_false(G.match("*.example.com", "mx.example.com.evil.net"))
    assert.is_false(G.match("*.example.com", "mxexample.com"))
  end)

  it("is anchored and takes no pattern language (unlike checkdmarc's)", function()
    assert.is_false(G.match("mx.example.com", "mx.example.com.evil.net"))
    assert.is_false(G.match("mx.example.com", "evilmx.example.com"))
    assert.is_false(G.match("mx%.example.com", "mx.example.com"))
    assert.is_false(G.match("m..example.com", "mx.example.com"))
    assert.is_false(G.match("mx*.example.com", "mx1.example.com"))
    assert.is_false(G.match("*x.example.com", "mx.example.com"))
    assert.is_false(G.match("*", "mx"))
    assert.is_false(G.match("*.", "mx."))
    assert.is_false(G.match("", "mx.example.com"))
  end)

  it("finds the first pattern that covers a host", function()
    assert.equal("*.example.com", G.covered({ "a.example.org", "*.example.com", "mx.example.com" }, "mx.example.com"))
    assert.is_nil(G.covered({ "*.example.com" }, "a.mx.example.com"))
    assert.is_nil(G.covered({}, "mx.example.com"))
  end)
end)

describe("mta_sts.parse_policy #unit", function()
  local GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    .. "mx: backupmx.example.com\r\nmax_age: 604800\r\n"

  it("parses the example of RFC 8461 §3.2 (CRLF)", function()
    local p = G.parse_policy(GOOD)
    assert.is_true(p.valid)
    assert.same({}, p.errors)
    assert.equal("STSv1", p.version)
    assert.equal("enforce", p.mode)
    assert.equal(604800, p.max_age)
    assert.same({ "mail.example.com", "*.example.net", "backupmx.example.com" }, p.mx)
  end)

  it("takes LF line ends, no final line end, spaces around values, unknown keys", function()
    local p = G.parse_policy("version:STSv1\nmode:   testing  \nfoo: bar\nmx: MX.Example.com.\nmax_age: 0")
    assert.is_true(p.valid)
    assert.equal("testing", p.mode)
    assert.equal(0, p.max_age)
    assert.same({ "mx.example.com" }, p.mx)
    assert.same({ "foo" }, p.unknown)
  end)

  it("accepts mode none without mx", function()
    local p = G.parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n")
    assert.is_true(p.valid)
    assert.same({}, p.mx)
  end)

  local function kinds(p)
    local out = {}
    for _, e in ipairs(p.errors) do out[#out + 1] = e.kind end
    return out
  end

  it("names each missing or bad field", function()
    assert.same({ "version", "mode", "max_age", "mx" }, kinds(G.parse_policy("")))
    assert.same({ "version" }, kinds(G.parse_policy("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n")))
    assert.same({ "mode" }, kinds(G.parse_policy("version: STSv1\nmode: enforced\nmx: a.b\nmax_age: 1\n")))
    assert.same({ "mode" }, kinds(G.parse_policy("version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n")))
    assert.same({ "max_age" }, kinds(G.parse_policy("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n")))
    assert.same({ "max_age" }, kinds(G.parse_policy("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n")))
    assert.same({ "max_age" }, kinds(G.parse_policy("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n")))
    assert.same({ "mx" }, kinds(G.parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n")))
    assert.same({ "mx" }, kinds(G.parse_policy("version: STSv1\nmode: testing\nmx: a..b\nmax_age: 1\n")))
    assert.same({ "mx" }, kinds(G.parse_policy("version: STSv1\nmode: testing\nmx: a.*.b\nmax_age: 1\n")))
    assert.is_true(G.parse_policy("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557600\n").valid)
  end)

  it("counts the first of a repeated version, mode or max_age", function()
    local p = G.parse_policy("version: STSv1\nmode: testing\nmode: enforce\nmx: a.b\nmax_age: 5\nmax_age: x\n")
    assert.is_true(p.valid)
    assert.equal("testing", p.mode)
    assert.equal(5, p.max_age)
  end)

  it("keeps NULs and escapes out of the patterns and bounds what it reports", function()
    local p = G.parse_policy("version: STSv1\nmode: enforce\nmx: mx.example.com\0.evil\nmx: \27[2Jx.example\n"
      .. "max_age: 1\n" .. ("junk\n"):rep(1000) .. ("k: v\n"):rep(10))
    assert.is_false(p.valid)
    assert.same({ "mx", "mx" }, kinds(p))
    assert.same({}, p.mx)
    assert.equal(1000, p.ignored_lines)
    for _, e in ipairs(p.errors) do assert.is_true(#e.message < 400) end
  end)

  it("keeps at most MX_MAX patterns", function()
    local lines = { "version: STSv1", "mode: enforce", "max_age: 1" }
    for i = 1, 200 do lines[#lines + 1] = ("mx: mx%d.example.com"):format(i) end
    local p = G.parse_policy(table.concat(lines, "\n"))
    assert.is_true(p.valid)
    assert.equal(G.MX_MAX, #p.mx)
    assert.is_true(p.mx_truncated)
  end)
end)

describe("mta_sts.parse_policy on random and mutated policies #unit", function()
  -- a seeded fuzz: thousands of random and mutated bodies; the parser never
  -- raises, its output stays bounded and valid UTF-8, and a policy it calls
  -- valid has every field RFC 8461 requires
  it("never raises and keeps its output bounded (20,000 inputs, seed 8461)", function()
    math.randomseed(8461)
    local seeds = {
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
      "version: STSv1\nmode: none\nmax_age: 1\n",
      "version: STSv1\nmode: testing\nmx: a.b\nmax_age: 31557600",
    }
    local alphabet = "version:STSv1modeenforcetestingnonemx*.max_age0123456789 \t\r\n\0\27\255:;-_"
    local function mutate(s)
      local n = math.random(1, 8)
      for _ = 1, n do
        local op, i = math.random(1, 4), math.random(1, #s + 1)
        local c = alphabet:sub(math.random(1, #alphabet)):sub(1, 1)
        if op == 1 then s = s:sub(1, i - 1) .. c .. s:sub(i)
        elseif op == 2 then s = s:sub(1, i - 1) .. s:sub(i + 1)
        elseif op == 3 then s = s:sub(1, i - 1) .. string.char(math.random(0, 255)) .. s:sub(i + 1)
        else s = s .. s:sub(i, i + math.random(0, 40)) end
      end
      return s
    end
    local valid = 0
    for n = 1, 20000 do
      local body
      if n % 4 == 0 then
        local t = {}
        for i = 1, math.random(0, 300) do t[i] = string.char(math.random(0, 255)) end
        body = table.concat(t)
      else
        body = mutate(seeds[n % #seeds + 1])
      end
      local ok, p = pcall(G.parse_policy, body)
      assert.is_true(ok, p)
      assert.is_true(#p.mx <= G.MX_MAX and #p.unknown <= G.UNKNOWN_MAX)
      for _, e in ipairs(p.errors) do
        assert.is_true(utf8.len(e.message) ~= nil and #e.message < 400)
      end
      for _, k in ipairs(p.unknown) do assert.truthy(utf8.len(k)) end
      if p.valid then
        valid = valid + 1
        assert.equal("STSv1", p.version)
        assert.truthy(({ enforce = true, testing = true, none = true })[p.mode])
        assert.is_true(math.type(p.max_age) == "integer" and p.max_age <= G.MAX_AGE_MAX)
        for _, m in ipairs(p.mx) do assert.is_true(G.valid_pattern(m)) end
      end
    end
    assert.is_true(valid > 100, valid)   -- the mutations kept some policies valid
  end)
end)

describe("check mta_sts on saved lab facts #unit", function()
  local fixtures = require "fixtures.facts._load"
  local judge = require "mxprobe.judge"

  local function ours(name)
    local out = {}
    for _, f in ipairs(judge.run(fixtures.load(name)).findings) do
      if f.code:match("^mta_sts") or f.code:match("^tls_rpt") then
        out[#out + 1] = ("%s %s %s %s"):format(f.code, f.state, f.severity, f.target and f.target.mx or "-")
      end
    end
    table.sort(out)
    return out
  end

  it("calls an MX an enforce policy does not list critical", function()
    assert.same({ "mta_sts.mx-not-listed fail critical mx1.good.example.test", "mta_sts.ok pass ok -",
      "tls_rpt.missing fail info -" }, ours("mtasts"))
    assert.equal("critical", judge.run(fixtures.load("mtasts")).verdict)
  end)

  it("calls a wrong-name certificate under a testing policy a warning", function()
    assert.same({ "mta_sts.mx-tls-testing fail warning mx.wrongname.example.test", "mta_sts.ok pass ok -",
      "tls_rpt.missing fail info -" }, ours("mtasts-testing"))
  end)

  it("is not run on facts gathered without it (never 'no MTA-STS'), and says untested when run", function()
    assert.same({ "tls_rpt.ok pass ok -" }, ours("good"))
    local check = require "mxprobe.checks.mta_sts"
    local f = check.run(fixtures.load("good"), {})
    assert.equal(1, #f)
    assert.equal("mta_sts", f[1].code)
    assert.equal("untested", f[1].state)
  end)
end)

describe("check tls_rpt #unit", function()
  local check = require "mxprobe.checks.tls_rpt"
  local rpt = require "mxprobe.gather.tls_rpt"

  -- the findings of one record text (or none) on a domain's facts
  local function run(texts, extra)
    local records = {}
    for _, t in ipairs(texts) do records[#records + 1] = rpt.parse(t) end
    local facts = { kind = "domain", domain = "example.test", mx = {}, targets = {},
      tls_rpt = { query = { name = "_smtp._tls.example.test", type = "TXT",
        status = #texts > 0 and "ok" or "nxdomain", records = {} }, records = records } }
    for k, v in pairs(extra or {}) do facts[k] = v end
    local out = {}
    for _, f in ipairs(check.run(facts, {})) do out[#out + 1] = f.code .. " " .. f.state end
    return out
  end

  it("takes mailto: and https: in any case, and nothing else", function()
    assert.same({ "tls_rpt.ok pass" }, run { "v=TLSRPTv1; rua=MAILTO:a@example.test,HTTPS://r.example.test/x" })
    assert.same({ "tls_rpt.bad-scheme fail" }, run { "v=TLSRPTv1; rua=http://r.example.test/x" })
    assert.same({ "tls_rpt.bad-scheme fail" }, run { "v=TLSRPTv1; rua=a@example.test" })
  end)

  it("wants a rua with at least one URI, and one record", function()
    assert.same({ "tls_rpt.no-rua fail" }, run { "v=TLSRPTv1; rua=" })
    assert.same({ "tls_rpt.no-rua fail" }, run { "v=TLSRPTv1;" })
    assert.same({ "tls_rpt.several fail" },
      run { "v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test" })
  end)

  it("recommends a record only where MTA-STS or DANE is published", function()
    assert.same({ "tls_rpt.none na" }, run {})
    assert.same({ "tls_rpt.missing fail" }, run({}, { mta_sts = { txt_status = "ok" } }))
    assert.same({ "tls_rpt.missing fail" }, run({}, { mx = { { name = "mx.example.test",
      tlsa = { records = { { usage = 3, selector = 1, mtype = 1, data = "00" } } } } } }))
    assert.same({ "tls_rpt.none na" }, run({}, { mta_sts = { txt_status = "several" } }))
  end)
end)

describe("mta_sts.media_type and fetched #unit", function()
  it("takes the media type without parameters, in any case", function()
    assert.equal("text/plain", G.media_type("text/plain"))
    assert.equal("text/plain", G.media_type("Text/Plain; charset=utf-8"))
    assert.equal("text/plain", G.media_type("  text/plain  "))
    assert.equal("text/html", G.media_type("text/html;charset=x"))
    assert.is_nil(G.media_type(nil))
  end)

  it("delivers a policy only with 200 and text/plain", function()
    local function f(status, ct)
      return { status = "ok", http = { status = status, content_type = ct, headers = {} } }
    end
    assert.is_true(G.fetched(f(200, "text/plain; charset=us-ascii")))
    assert.is_false(G.fetched(f(200, "text/plainx")))
    assert.is_false(G.fetched(f(200, nil)))
    assert.is_false(G.fetched(f(301, "text/plain")))
    assert.is_false(G.fetched(f(204, "text/plain")))
    assert.is_false(G.fetched({ status = "timeout" }))
  end)
end)
