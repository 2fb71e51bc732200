-- The HTML report of the lab's main scenarios (probed through the Lua API
-- from the real servers of the lab) and of the hostile peer's banners
-- (the hostile-markup and hostile-banner facts, probed from the peer),
-- rendered by Debian's chromium headless: the DOM it builds holds the
-- summary rows and the codes, and no element or attribute that came from
-- server bytes. The screenshot is kept for people to look at:
-- build/report/lab.png (build/ is not committed).
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

describe("the HTML report in chromium #integration #report", function()
  local fl, jl, file, dom, parsed, names = {}, {}, nil, nil, nil, {}
  local cwd = os.getenv("PWD") or "."

  setup(function()
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
    assert.matches('#q2">expired.example.test</a></td><td><span class="badge critical">CRITICAL</span>', dom, 1, true)
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
