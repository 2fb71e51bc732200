-- mxprobe.cli.results: a line rendered here and the same line rendered by
-- a worker (--workers, bulk CPU) are written and counted alike.
local results = require "mxprobe.cli.results"
local output = require "mxprobe.cli.output"
local progress = require "mxprobe.cli.progress"
local fixtures = require "fixtures.facts._load"
local json = require "mxprobe.json"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- R over a temporary output file and a temporary stderr
local function new(fmt)
  local path, errpath = os.tmpname(), os.tmpname()
  local out = assert(output.stream(path))
  local errf = assert(io.open(errpath, "wb"))
  local prog = progress.new { out = errf, tty = false, show = false }
  local R = results.new { fmt = fmt, policy = assert(results.policy()), out = out, prog = prog }
  return R, function()
    assert(out:commit())
    errf:close()
    local s, e = read(path), read(errpath)
    os.remove(path)
    os.remove(errpath)
    return s, e
  end
end

describe("mxprobe.cli.results #unit", function()
  it("writes and counts a worker's jsonl line as it would its own", function()
    local render = assert(results.renderer { fmt = "jsonl" })
    local good, bad = fixtures.load("good"), fixtures.load("expired")
    local R, done = new("jsonl")
    assert.is_true(R.emit(good, 1))
    local line, verdict = render(bad)
    assert.is_true(R.emit(nil, 2, { line = line, verdict = verdict }))
    assert.same({ ok = 1, warning = 1 }, R.prog.verdicts)
    assert.equal(1, R:status())
    local s = done()
    local lines = {}
    for l in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = json.decode(l) end
    assert.equal(2, #lines)
    assert.equal("good.example.test", lines[1].query)
    assert.equal(line, s:match("\n(.*)\n$"))
  end)

  it("tells the error of a worker's facts line on stderr, and counts no verdict", function()
    local R, done = new("facts")
    local render = assert(results.renderer { fmt = "facts" })
    local line, verdict = render({ schema = "mxprobe.facts/2", query = "a.example.test", error = "worker 1 died" })
    assert.equal("-", verdict)
    assert.is_true(R.emit(nil, 1, { line = line, verdict = verdict }))
    assert.is_true(R.emit(nil, 2, { line = render(fixtures.load("good")), verdict = "-" }))
    assert.same({}, R.prog.verdicts)
    assert.equal(0, R:status())
    local s, e = done()
    assert.equal("mxprobe: a.example.test: worker 1 died\n", e)
    assert.equal(2, select(2, s:gsub("\n", "")))
  end)

  it("loads the policy a worker loads: --expiry-days checked", function()
    local p, err = results.policy(nil, -1)
    assert.is_nil(p)
    assert.equal("--expiry-days must not be negative", err)
    assert.equal(30, assert(results.policy(nil, 30)).thresholds.expiry_days)
    assert.is_nil(results.renderer { fmt = "json" })
  end)
end)
