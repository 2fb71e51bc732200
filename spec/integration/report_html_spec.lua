-- The HTML report of the lab's main scenarios (probed through the Lua API
-- from the real servers of the lab) and of the hostile peer's banners
-- (the hostile-markup and hostile-banner facts, probed from the peer),
-- rendered by Debian's chromium headless: the DOM it builds holds the
-- summary rows and the codes, and no element or attribute that came from
-- server bytes. The screenshot is kept for people to look at:
-- build/report/lab.png (build/ is not committed). The same facts as CSV
-- (read back by Python's csv module) and as monitoring-plugin output.
--
-- Run under the lab lock: /work/bin/labspec spec/integration/report_html_spec.lua
local mxprobe = require "mxprobe"
local lab = require "support.lab"
local R = require "support.report"
local fixtures = require "fixtures.facts._load"

local DOMAINS = { "good", "expired", "expiring", "notls", "openrelay", "selfsigned", "wrongname",
  "mixed", "tls12", "greylist", "closed", "blackhole", "nullmx", "nxdomain" }
local HOSTILE = { "hostile-markup", "hostile-banner" }

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- the lab's scenarios probed once (then the hostile facts), judged with
-- the default policy: facts, judgements, query names
local run
local function lab_run()
  if run then return run.fl, run.jl, run.names end
  local fl, jl, names = {}, {}, {}
  local queries = {}
  for i, d in ipairs(DOMAINS) do queries[i] = d .. ".example.test" end
  local list = assert(mxprobe.probe_list(queries, lab.options()))
  for i, f in ipairs(list) do
    fl[#fl + 1] = f
    jl[#jl + 1] = assert(mxprobe.judge(f))
    names[#names + 1] = DOMAINS[i] .. ".example.test"
  end
  for _, h in ipairs(HOSTILE) do
    local f = fixtures.load(h)
    fl[#fl + 1] = f
    jl[#jl + 1] = assert(mxprobe.judge(f))
    names[#names + 1] = f.query
  end
  run = { fl = fl, jl = jl, names = names }
  return fl, jl, names
end

describe("the HTML report in chromium #integration #report", function()
  local fl, jl, file, dom, parsed, names
  local cwd = os.getenv("PWD") or "."

  setup(function()
    fl, jl, names = lab_run()
    assert(os.execute("mkdir -p build/report"))
    file = cwd .. "/build/report/lab.html"
    local fh = assert(io.open(file, "wb"))
    fh:write(mxprobe.report(fl, jl, { format = "html" }))
    fh:close()
    local status
    dom, status = R.chromium("--dump-dom", file)
    assert.equal(0, status)
    parsed = R.html_parse(dom)
  end)

  it("is read by chromium into a whole document", function()
    assert.matches('^<!DOCTYPE html>%s*<html lang="en"><head><meta charset="utf%-8">', dom)
    assert.matches("</footer></main>%s*</body></html>%s*$", dom)
  end)

  it("holds one summary row per query, linked to its section, with the verdict in words", function()
    for i, name in ipairs(names) do
      local esc = require("mxprobe.report.html").escape(name)
      assert.matches('<a href="#q' .. i .. '">' .. esc .. "</a>", dom, 1, true)
      assert.matches('<article class="domain" id="q' .. i .. '">', dom, 1, true)
    end
    local rows = select(2, dom:gsub('<tr class="row%-%a+"><td><a href="#q', ""))
    assert.equal(#names, rows)
    -- an expired certificate under opportunistic delivery is a warning (the certificate rule)
    assert.matches('#q2">expired.example.test</a></td><td><span class="badge warning">WARNING</span>', dom, 1, true)
    assert.matches('#q5">openrelay.example.test</a></td><td><span class="badge critical">CRITICAL</span>', dom, 1, true)
    assert.matches('#q1">good.example.test</a></td><td><span class="badge ok">OK</span>', dom, 1, true)
    assert.matches('#q12">blackhole.example.test</a></td><td><span class="badge unknown">COULD NOT TEST</span>',
      dom, 1, true)
  end)

  it("shows the codes of the scenarios", function()
    for _, code in ipairs({ "tls.cert.expired", "tls.cert.expiring", "tls.starttls.missing", "relay.open",
      "tls.cert.self-signed", "tls.cert.name-mismatch", "consistency.tls-mixed", "tcp.refused", "tcp.timeout",
      "dns.mx.nxdomain", "smtp.banner.no-hostname" }) do
      assert.matches("<code>" .. code .. "</code>", dom, 1, true)
    end
  end)

  it("builds no element and no attribute from server bytes", function()
    local scripts, bad = 0, {}
    for _, e in ipairs(parsed.elements) do
      if e.tag == "script" then scripts = scripts + 1 end
      if not R.ELEMENTS[e.tag] then bad[#bad + 1] = "element " .. e.tag end
      for _, a in ipairs(e.attrs) do
        if not R.ATTRIBUTES[a[1]] then bad[#bad + 1] = "attribute " .. a[1] .. " on " .. e.tag end
      end
    end
    assert.equal(0, scripts)
    assert.same({}, bad)
    -- the hostile banner is text in the document, as sent
    local banner = fixtures.load("hostile-markup").targets[1].smtp.banner.reply.text
    assert.truthy(parsed.text:find(banner, 1, true))
    assert.matches("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=\"alert(2)\"&gt;", dom, 1, true)
    assert.matches("\\x1B[2J\\x1B[31;1mRED", dom, 1, true)
  end)

  it("draws the overview as inline SVG with its numbers", function()
    assert.equal(5, select(2, dom:gsub("<svg ", "")))
    assert.matches("<figcaption>Verdicts across " .. #names .. " domains</figcaption>", dom, 1, true)
  end)

  it("leaves a screenshot for people to look at", function()
    local png = cwd .. "/build/report/lab.png"
    os.remove(png)
    local _, status = R.chromium("--screenshot=" .. png .. " --window-size=1280,2000", file)
    assert.equal(0, status)
    local s = read(png)
    assert.equal("\137PNG\r\n\26\n", s:sub(1, 8))
    assert.is_true(#s > 50000)
  end)
end)

describe("the CSV and monitoring-plugin reports of the lab #integration #report", function()
  local judge = require "mxprobe.judge"

  it("gives one CSV row per target, read back by Python's csv module, no formula cell", function()
    local fl, jl = lab_run()
    local out = mxprobe.report(fl, jl, { format = "csv" })
    local rows = R.csv_rows(out)
    local head = table.remove(rows, 1)
    local want = 0
    for _, f in ipairs(fl) do want = want + math.max(1, #f.targets) end
    assert.equal(want, #rows)
    local col = {}
    for i, n in ipairs(head) do col[n] = i end
    local seen = {}
    for _, r in ipairs(rows) do
      assert.equal(#head, #r)
      for i, v in ipairs(r) do
        if not (head[i] == "days_left" and v:match("^%-%d+$")) then
          assert.is_nil(v:find("^[=+%-@\t\r]"), head[i] .. ": " .. v)
        end
      end
      seen[r[col.domain] .. " " .. r[col.relay]] = true
    end
    assert.is_true(seen["openrelay.example.test open"])
    assert.is_true(seen["good.example.test denied"])
  end)

  it("says the status word of the exit status, with well-formed perfdata", function()
    local fl, jl = lab_run()
    for _, set in ipairs({ { 1 }, { 2 }, { 3 }, { 12 }, { 1, 12 }, { 1, 3, 12 } }) do
      local f, j = {}, {}
      for i, k in ipairs(set) do f[i], j[i] = fl[k], jl[k] end
      local out = mxprobe.report(f, j, { format = "nagios" })
      local first = out:match("^[^\n]*")
      local word = ({ [0] = "OK", [1] = "WARNING", [2] = "CRITICAL", [3] = "UNKNOWN" })[judge.exit_status(j)]
      assert.matches("^MXPROBE " .. word .. " %- [^|]+ | '", first)
      local perf = first:match(" | (.*)$")
      local n = 0
      for item in (perf .. " '"):gmatch("('[^']+'=[^ ]+) ") do
        n = n + 1
        assert.matches("^'[^'=|]+'=%-?%d+%.?%d*[a-z]*;[%d:]*;[%d:]*;%-?%d*;%-?%d*$", item)
      end
      assert.is_true(n > 0)
    end
    assert.matches("^MXPROBE OK ", mxprobe.report({ fl[1] }, { jl[1] }, { format = "nagios" }))
    assert.matches("^MXPROBE WARNING ", mxprobe.report({ fl[2] }, { jl[2] }, { format = "nagios" }))  -- expired
    assert.matches("^MXPROBE CRITICAL ", mxprobe.report({ fl[5] }, { jl[5] }, { format = "nagios" }))  -- openrelay
    assert.matches("^MXPROBE WARNING ", mxprobe.report({ fl[3] }, { jl[3] }, { format = "nagios" }))
    assert.matches("^MXPROBE UNKNOWN ", mxprobe.report({ fl[12] }, { jl[12] }, { format = "nagios" }))
  end)
end)
