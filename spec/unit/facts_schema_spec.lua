-- The facts schema v2 (docs/facts.md): the validator, the gatherers'
-- declarations it is made of, and the JSON encoder's knowledge of lists.
local S = require "mxprobe.schema"
local facts = require "mxprobe.facts"
local json = require "mxprobe.json"
local gather = require "mxprobe.gather"

local function minimal()
  return {
    schema = "mxprobe.facts/2",
    run = { id = ("ab"):rep(16), tool = { name = "mxprobe", version = "0.2.0" },
            versions = { mxprobe = "0.2.0" }, prober = { ehlo_name = "a.test" } },
    query = "[192.0.2.1]", kind = "address", started = 1, finished = 2, mx = {},
    targets = { { address = "192.0.2.1", family = "ipv4", port = 25,
                  smtp = { status = "refused", stopped_at = "connect", time_ms = 1.5, transcript = {},
                           connect = { status = "refused", error = "connect 192.0.2.1:25: refused" } } } },
  }
end

describe("facts.validate #unit", function()
  it("accepts a well-formed v2 facts table", function()
    assert.is_true(facts.validate(minimal()))
  end)
  it("names an unknown field, a wrong type and a missing field by their path", function()
    local f = minimal()
    f.targets[1].smtp.bogus = 1
    f.targets[1].port = "25"
    f.run.id = nil
    local ok, errs = facts.validate(f)
    assert.is_nil(ok)
    table.sort(errs)
    assert.same({
      "facts.run: field id missing",
      "facts.targets[1].port: integer expected, got string",
      "facts.targets[1].smtp: unknown field bogus",
    }, errs)
  end)
  it("refuses a stop outside the one phase vocabulary", function()
    local f = minimal()
    f.targets[1].smtp.stopped_at = "mail"   -- v1's name for mail_from
    local ok, errs = facts.validate(f)
    assert.is_nil(ok)
    assert.matches('^facts%.targets%[1%]%.smtp%.stopped_at: "mail" is not one of connect banner ehlo', errs[1])
  end)
  it("refuses a table that appears twice", function()
    local f = minimal()
    local shared = { "alias.example.test" }
    f.kind, f.domain = "host", "mx.example.test"
    local q = function()
      return { name = "mx.example.test", type = "A", status = "ok", records = {}, cname = shared }
    end
    f.mx[1] = { name = "mx.example.test", preference = 0,
                dns = { status = "no-address", a = q(), aaaa = q(), addresses = {} } }
    local ok, errs = facts.validate(f)
    assert.is_nil(ok)
    assert.equal(1, #errs)
    -- whichever of the two the walk meets first is "the first place"
    local a, b = "facts.mx[1].dns.a.cname", "facts.mx[1].dns.aaaa.cname"
    assert.truthy(errs[1] == ("%s: the same table as %s (each fact has one place)"):format(b, a)
      or errs[1] == ("%s: the same table as %s (each fact has one place)"):format(a, b), errs[1])
  end)
  it("refuses NaN, infinity and a list with a hole", function()
    local f = minimal()
    f.targets[1].smtp.time_ms = 0 / 0
    f.started = math.huge
    f.targets[1].smtp.transcript = { [2] = { t_ms = 1, dir = "C", line = "x" } }
    local ok, errs = facts.validate(f)
    assert.is_nil(ok)
    table.sort(errs)
    assert.same({
      "facts.started: number expected, got infinity",
      "facts.targets[1].smtp.time_ms: number expected, got NaN",
      "facts.targets[1].smtp.transcript: list expected (keys 1..n)",
    }, errs)
  end)
end)

describe("mxprobe.json #unit", function()
  it("writes an empty list as [] and an empty map as {}", function()
    local s = facts.encode({ targets = {}, mx = {}, options = {}, extensions = {} })
    assert.equal("[]", s:match('"targets":(%b[])'))
    assert.equal("[]", s:match('"mx":(%b[])'))
    assert.equal("{}", s:match('"options":(%b{})'))
    assert.equal("{}", s:match('"extensions":(%b{})'))
  end)
  it("writes every empty list of the facts schema as [], those of gatherers too", function()
    local wrong = {}
    for k in pairs(S.list_fields(facts.schema())) do
      if facts.encode({ [k] = {} }) ~= ('{"%s":[]}'):format(k) then wrong[#wrong + 1] = k end
    end
    assert.same({}, wrong)
    assert.truthy(S.list_fields(facts.schema()).rua, "the tls_rpt gatherer's list is in the schema")
  end)
  it("keeps a server's bytes valid JSON and cannot be fooled by the placeholder", function()
    local s = json.encode({ lines = { "\255\254[]", "a\0b\27[2J" } })
    assert.equal('{"lines":["\\\\xFF\\\\xFE[]","a\\u0000b\\u001b[2J"]}', s)
  end)
  it("round-trips facts through JSON into what the validator accepts", function()
    local back = assert(facts.decode(facts.encode(minimal())))
    assert.is_true(facts.validate(back[1]))
    assert.same(minimal().targets, back[1].targets)
  end)
end)

describe("facts.decode #unit", function()
  it("refuses v1 facts with one line that says what to do", function()
    local l, err = facts.decode('{"schema":"mxprobe.facts/1","query":"x"}', "old.jsonl")
    assert.is_nil(l)
    assert.equal("old.jsonl: facts schema mxprobe.facts/1 (mxprobe 0.1); this mxprobe reads mxprobe.facts/2"
      .. " -- probe again", err)
  end)
  it("says a directory is not a facts file", function()
    local l, err = facts.load("spec")
    assert.is_nil(l)
    assert.equal("spec: is a directory, not a facts file", err)
  end)
end)

describe("the gatherer registry #unit", function()
  local list = gather.list()
  it("lists gatherers that declare what they are", function()
    assert.same({ "mx", "tls_rpt", "mta_sts", "addresses", "tlsa", "smtp", "dane", "tls_versions", "rdns" }, (function()
      local ids = {}
      for i, g in ipairs(list) do ids[i] = g.id end
      return ids
    end)())
    for _, g in ipairs(list) do
      assert.is_string(g.title)
      assert.truthy(({ domain = true, mx = true, target = true })[g.scope], g.id)
      assert.is_string(g.key)
      assert.is_table(g.needs)
      assert.is_function(g.run)
      assert.is_table(g.schema, g.id .. " declares the facts it writes")
      assert.truthy(g.intrusive == false or type(g.intrusive) == "string", g.id)
    end
  end)
  it("gives each facts key of a scope to one gatherer, and needs only registered ones", function()
    local by_id, keys = {}, {}
    for _, g in ipairs(list) do by_id[g.id] = g end
    for _, g in ipairs(list) do
      local k = g.scope .. "." .. g.key
      assert.is_nil(keys[k], k .. " written twice")
      keys[k] = g.id
      for _, n in ipairs(g.needs) do assert.is_table(by_id[n], g.id .. " needs " .. n) end
    end
  end)
  it("marks the relay test as intrusive and nothing else", function()
    for _, g in ipairs(list) do
      if g.id == "smtp" then assert.matches("never DATA", g.intrusive) else assert.is_false(g.intrusive) end
    end
  end)
  it("has a section in docs/facts.md for each gatherer", function()
    local doc = assert(io.open("docs/facts.md")):read("a")
    for _, g in ipairs(list) do
      assert.truthy(doc:find("(gatherer `" .. g.id .. "`)", 1, true), g.id)
    end
  end)
end)

describe("gatherer tls_rpt: parse #unit", function()
  local parse = require("mxprobe.gather.tls_rpt").parse
  it("reads the version, the rua URIs in order and every field", function()
    local r = parse("v=TLSRPTv1; rua=mailto:a@example.org, https://r.example.org/x ;ext=1;")
    assert.same({ "mailto:a@example.org", "https://r.example.org/x" }, r.rua)
    assert.same({ rua = "mailto:a@example.org, https://r.example.org/x", ext = "1" }, r.fields)
    assert.equal("TLSRPTv1", r.version)
  end)
  it("is not a TLS-RPT record unless it starts with v=TLSRPTv1", function()
    assert.is_nil(parse("v=spf1 -all"))
    assert.is_nil(parse(" v=TLSRPTv1; rua=mailto:a@example.org"))
    assert.same({}, parse("v=TLSRPTv1").rua)
  end)
end)

-- The facts fixtures are made by scripts/make-fixtures.lua from real probes
-- (the lab or the hostile peer), never by hand.
describe("the facts fixtures #unit", function()
  local DIR = "spec/fixtures/facts/"

  local function files()
    local out = {}
    local p = assert(io.popen('ls -A "' .. DIR .. '"'))
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    table.sort(out)
    return out
  end

  -- the names of the SOURCES table of scripts/make-fixtures.lua, by pattern
  local function source_names()
    local fh = assert(io.open("scripts/make-fixtures.lua", "r"))
    local text = fh:read("a")
    fh:close()
    local body = assert(text:match("\nlocal SOURCES = (%b{})"), "no SOURCES table in make-fixtures.lua")
    local names = {}
    for line in body:gmatch("[^\n]+") do
      local name = line:match("^  ([%a_][%w_]*) = {") or line:match('^  %["([^"]+)"%] = {')
      if name then names[#names + 1] = name end
    end
    table.sort(names)
    return names
  end

  it("are JSON files only, each one valid facts v2 as --from-facts reads it", function()
    local n = 0
    for _, file in ipairs(files()) do
      if file ~= "_load.lua" then
        local name = file:match("^(.+)%.json$")
        assert.is_string(name, DIR .. file .. ": not a .json fixture (a hand-made file?)")
        local list, err = facts.load(DIR .. file)
        assert.is_table(list, err)
        assert.equal(1, #list, file)
        local ok, errs = facts.validate(list[1])
        assert.is_true(ok, file .. ": " .. table.concat(errs or {}, "; "))
        assert.equal("mxprobe.facts/2", list[1].schema, file)
        assert.is_number(list[1].finished, file)
        n = n + 1
      end
    end
    assert.equal(#source_names(), n)
  end)

  it("each have a source in scripts/make-fixtures.lua, and each source a fixture", function()
    local sources = source_names()
    assert.is_true(#sources >= 39, "SOURCES read by pattern: " .. #sources .. " names")
    local fixtures = {}
    for _, file in ipairs(files()) do
      local name = file:match("^(.+)%.json$")
      if name then fixtures[#fixtures + 1] = name end
    end
    table.sort(fixtures)
    assert.same(sources, fixtures)
  end)
end)
