-- Unit specs of the HTML report (mxprobe.report.html) on the facts
-- fixtures (real lab and hostile-peer probes) judged with the default
-- policy. The document is tokenized by Python's html.parser (a real HTML
-- tokenizer, no socket): every element and attribute must be the report's
-- own, whatever the server sent (hostile-markup: <script>, onerror=,
-- quotes, a closing </table>; hostile-banner: every control byte).

local html = require "mxprobe.report.html"
local mxprobe = require "mxprobe"
local R = require "support.report"

local MAIN = { "good", "expired", "notls", "openrelay", "timeout", "nxdomain", "hostile-markup" }

local function attrs_of(doc)
  local names, values = {}, {}
  for _, e in ipairs(doc.elements) do
    for _, a in ipairs(e.attrs) do
      names[a[1]] = true
      values[#values + 1] = { e.tag, a[1], a[2] }
    end
  end
  return names, values
end

-- the report's own markup only: every element and attribute in the allow
-- lists, no script, nothing that loads anything
local function assert_only_own_markup(out)
  local doc = R.html_parse(out)
  for _, e in ipairs(doc.elements) do
    assert.is_true(R.ELEMENTS[e.tag] == true, "element not in the allow-list: " .. e.tag)
  end
  local names, values = attrs_of(doc)
  for n in pairs(names) do
    assert.is_true(R.ATTRIBUTES[n] == true, "attribute not in the allow-list: " .. n)
  end
  for _, v in ipairs(values) do
    if v[2] == "href" then assert.matches("^#q%d+$", v[3]) end
    if v[2] == "xmlns" then assert.equal("http://www.w3.org/2000/svg", v[3]) end
    assert.is_nil(v[3]:find("javascript:", 1, true))
  end
  assert.same({ "DOCTYPE html" }, doc.decls) -- no comment survived as one
  return doc
end

describe("report.html.render #unit", function()
  it("is registered as a report format and reached through mxprobe.report", function()
    local fl, jl = R.judged({ "good" })
    local out = mxprobe.report(fl, jl, { format = "html" })
    assert.equal(html.render(fl, jl, {}), out)
    assert.equal("<!DOCTYPE html>\n<html lang=\"en\">", out:sub(1, 32))
    assert.equal("</body></html>\n", out:sub(-15))
  end)

  it("holds one summary row per query: domain, verdict in words, grade, score, regime, counts, worst", function()
    local out = html.render(R.judged(MAIN))
    local rows = {}
    for row in out:gmatch('<tr class="row%-%a+"><td><a href="#q%d+">.-</tr>') do rows[#rows + 1] = row end
    assert.equal(#MAIN, #rows)
    -- expired under opportunistic delivery: a warning (the certificate rule)
    assert.equal('<tr class="row-warning"><td><a href="#q2">expired.example.test</a></td>'
      .. '<td><span class="badge warning">WARNING</span></td><td><span class="grade gD">D</span></td>'
      .. '<td class="num">55</td><td>opportunistic</td><td class="num">1</td><td class="num">1</td>'
      .. '<td><span class="badge warning">WARNING</span> <code>tls.cert.expired</code></td></tr>', rows[2])
    assert.matches('^<tr class="row%-ok"><td><a href="#q1">good%.example%.test</a></td>'
      .. '<td><span class="badge ok">OK</span>'
      .. '</td><td><span class="grade gA">A</span></td><td class="num">100</td><td>opportunistic</td>'
      .. '<td class="num">2</td><td class="num">2</td><td><span class="muted">none</span></td></tr>$', rows[1])
    assert.matches('>relay%.open</code>', rows[4])
    -- could not test: no grade, no score, the word
    assert.matches('<span class="badge unknown">COULD NOT TEST</span></td><td><span class="grade none">—</span></td>'
      .. '<td class="num">—</td>', rows[5], 1, true)
    assert.matches('<code>dns.mx.nxdomain</code>', rows[6], 1, true)
  end)

  it("shows every finding of a failing server with code, state in words, message, evidence and fix", function()
    local fl, jl = R.judged({ "expired" })
    local out = html.render(fl, jl)
    local f
    for _, x in ipairs(jl[1].findings) do if x.code == "tls.cert.expired" then f = x end end
    assert.matches('<tr class="row-warning"><td><span class="badge warning">WARNING</span></td>'
      .. '<td class="code"><code>tls.cert.expired</code></td><td>' .. html.escape(f.message)
      .. '<div class="detail"><b>Evidence:</b> <span class="mono">' .. html.escape(f.evidence)
      .. '</span></div><div class="detail"><b>Fix:</b> ' .. html.escape(f.remediation) .. "</div></td></tr>",
      out, 1, true)
    -- the passes are there too, folded
    assert.matches('<code>tls.session.ok</code>', out, 1, true)
    assert.matches('<summary>%d+ passed or informational findings</summary>', out)
  end)

  it("shows the facts at a glance, days left counted from opts.now", function()
    local fl, jl = R.judged({ "expiring" })
    local na = fl[1].targets[1].smtp.certificates[1].not_after
    local out = html.render(fl, jl, { now = na - 10 * 86400 - 60 })
    assert.matches("<dt>TLS</dt><dd>TLSv1.3</dd><dt>Cipher</dt><dd>TLS_AES_256_GCM_SHA384 (256 bits)</dd>",
      out, 1, true)
    assert.matches('<dt>Subject</dt><dd><span class="mono">CN=mx.expiring.example.test</span></dd>', out, 1, true)
    assert.matches('<dt>Issuer</dt><dd><span class="mono">O=mxprobe lab,CN=mxprobe lab intermediate CA</span></dd>',
      out, 1, true)
    assert.matches('<dt>Expires</dt><dd>' .. os.date("!%Y-%m-%d %H:%M UTC", na)
      .. ' · <span class="days-warn">10 days left</span></dd>', out, 1, true)
    assert.matches("<dt>Relay</dt><dd>denied</dd>", out, 1, true)
    assert.matches("<dt>Timings</dt><dd>connect [%d.]+ ms · banner [%d.]+ ms · TLS handshake [%d.]+ ms</dd>", out)
    -- the same facts a year earlier; and as judged (the facts' own clock)
    assert.matches("days left</", html.render(fl, jl, { now = na - 400 * 86400 }), 1, true)
    local expired = html.render(R.judged({ "expired" }))
    assert.matches('<span class="days%-crit">expired %d+ days ago</span>', expired)
    assert.matches("<dt>Trusted</dt><dd>no (expired)</dd>", expired, 1, true)
  end)

  it("escapes markup a server sent: text only, never an element or attribute", function()
    local fl, jl = R.judged({ "hostile-markup" })
    local out = html.render(fl, jl)
    local doc = assert_only_own_markup(out)
    local banner = fl[1].targets[1].smtp.banner.reply.text
    assert.truthy(banner:find("<script>", 1, true)) -- the fixture has what the spec is about
    -- the parser's text holds the banner exactly as sent (as the browser shows it)
    assert.truthy(doc.text:find(banner, 1, true))
    assert.matches("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;", out, 1, true)
    assert.matches("&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;!-- a,b;c &#39;q&#39; | x=y --&gt;&amp; &amp;amp;",
      out, 1, true)
    local n = 0
    for _, e in ipairs(doc.elements) do if e.tag == "script" or e.tag == "img" then n = n + 1 end end
    assert.equal(0, n)
  end)

  it("makes control bytes, bidi overrides and invalid UTF-8 visible", function()
    local fl, jl = R.judged({ "hostile-banner" })
    local out = html.render(fl, jl)
    assert_only_own_markup(out)
    assert.truthy(utf8.len(out))
    assert.is_nil(out:find("[%z\1-\9\11-\31\127]"))
    assert.is_nil(out:find("\226\128\174", 1, true)) -- U+202E
    assert.is_nil(out:find("\194[\128-\159]"))
    assert.matches("hostile.test \\x1B[2J\\x1B[31;1mRED\\x1B[0m \\x1B]0;title\\x07 \\u{009B}31m8bit-CSI "
      .. "\\u{202E}esrever\\u{202C} nul:\\x00: bad:\\xFF\\xFE: cr:\\x0DX", out, 1, true)
  end)

  it("loads nothing: no script, no external reference, a policy that forbids loads", function()
    local out = html.render(R.judged(MAIN))
    local doc = assert_only_own_markup(out)
    assert.matches('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
      .. 'style-src \'unsafe-inline\'">', out, 1, true)
    for _, e in ipairs(doc.elements) do
      for _, a in ipairs(e.attrs) do assert.is_not.equal("src", a[1]) end
    end
    assert.is_nil(out:find("@import", 1, true))
    assert.is_nil(out:find("url(", 1, true))
    assert.matches("@media print{", out, 1, true)
  end)

  it("draws the overview only for several queries, each chart with its numbers as text", function()
    local one = html.render(R.judged({ "good" }))
    assert.is_nil(one:find("<svg", 1, true))
    local out = html.render(R.judged(MAIN))
    local n = select(2, out:gsub("<svg ", ""))
    assert.equal(5, n)
    -- verdicts: 1 ok, 3 warning (expired, notls, hostile-markup), 2 critical, 1 could not test
    assert.matches('aria-label="OK: 1; WARNING: 3; CRITICAL: 2; COULD NOT TEST: 1"', out, 1, true)
    assert.matches('>1 %(14%%%)</text>', out)
    assert.matches('>3 %(43%%%)</text>', out)
    assert.matches('aria-label="grade A: 2; grade B: 0; grade C: 0; grade D: 1; grade F: 3; not scored: 1"',
      out, 1, true)
    -- targets: good x2, expired, openrelay, hostile-markup negotiated 1.3; notls without STARTTLS;
    -- the timeout never got to EHLO
    assert.matches('aria-label="negotiated TLSv1.3: 5; not reached: 1; STARTTLS not offered: 1"', out, 1, true)
    assert.matches("<dt>TLS</dt><dd>STARTTLS not offered</dd>", out, 1, true)
    assert.matches("<dt>TLS</dt><dd>not reached</dd>", out, 1, true)
    -- expiry by week: the expired certificate counted once
    assert.matches('aria-label="expired: 1; week 1 ', out, 1, true)
    assert.matches('aria-label="dns.mx.nxdomain: 1; relay.open: 1; smtp.banner.no-hostname: 1; '
      .. 'tls.cert.expired: 1; tls.starttls.missing: 1"', out, 1, true)
  end)

  it("shows the regime when the judgement has one, a dash otherwise", function()
    local fl, jl = R.judged({ "good" })
    assert.matches('<td class="num">100</td><td>opportunistic</td>', html.render(fl, jl), 1, true)
    jl[1].regimes = nil   -- a judgement saved by a version without regimes
    assert.matches('<td class="num">100</td><td>—</td>', html.render(fl, jl), 1, true)
    jl[1].regimes = {
      { mx = "mx1.good.example.test", regime = "dane", reason = "TLSA under DNSSEC" },
      { mx = "mx2.good.example.test", regime = "<b>opportunistic</b>" },
    }
    local out = html.render(fl, jl)
    assert.matches('<td class="num">100</td><td>dane, &lt;b&gt;opportunistic&lt;/b&gt;</td>', out, 1, true)
    assert.matches("<dt>Regime</dt><dd>dane</dd>", out, 1, true)
    assert_only_own_markup(out)
  end)

  it("shows accepted TLS versions and reverse DNS when the facts have them", function()
    local fl, jl = R.judged({ "good", "expired" })
    assert.is_nil(html.render(fl, jl):find("Accepts", 1, true))
    -- tlsold: a lab server that accepts TLS 1.0 to 1.3; rdnsbad: a PTR
    -- whose name does not resolve back (fixtures from real probes)
    fl, jl = R.judged({ "tlsold", "rdnsbad" })
    local out = html.render(fl, jl)
    assert.matches("<dt>Accepts</dt><dd>TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3</dd>", out, 1, true)
    assert.matches('<dt>Reverse DNS</dt><dd><span class="mono">mx.tlsold.example.test</span></dd>', out, 1, true)
    assert.matches('<dt>Reverse DNS</dt><dd><span class="mono">ptr.rdnsbad.example.test (not forward-confirmed)'
      .. '</span></dd>', out, 1, true)
    -- rdnsbad's server offers no STARTTLS: no versions there
    assert.matches('aria-label="negotiated TLSv1.3: 1; STARTTLS not offered: 1; accepts TLSv1.3: 1; '
      .. 'accepts TLSv1.2: 1; accepts TLSv1.1: 1; accepts TLSv1.0: 1"', out, 1, true)
  end)

  it("is a pure function of its input", function()
    local fl, jl = R.judged(MAIN)
    assert.equal(html.render(fl, jl, { now = 1800000000 }), html.render(fl, jl, { now = 1800000000 }))
    assert.matches("Generated 2027-01-15 08:00 UTC", html.render(fl, jl, { now = 1800000000 }), 1, true)
    assert.matches("<title>mxprobe report: 0 domains</title>", html.render({}, {}, {}), 1, true)
  end)
end)

describe("report.html.escape #unit", function()
  it("writes the five markup characters as entities, for text and quoted attributes", function()
    assert.equal("&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;",
      html.escape("<a href=\"x\" onclick='y'>&amp;"))
    assert.equal("", html.escape(nil))
    assert.equal("42", html.escape(42))
    assert.equal("\\x1B[0m\\x00\\xFF", html.escape("\27[0m\0\255"))
  end)
end)

describe("the html, csv and nagios reports on broken input #unit", function()
  it("render whatever a facts file or a caller hands them, without raising", function()
    local fl, jl = R.judged({ "good" })
    local odd = {
      { nil, nil },
      { {}, {} },
      { { {} }, { {} } },
      { { { targets = { { mx = 5, address = {}, smtp = { tls = "x", certificates = { { not_after = "soon" } } } } } } },
        { { verdict = "bogus", findings = { { code = "x", state = "fail" } }, scores = "none" } } },
      { fl, {} },
      { {}, jl },
    }
    for _, name in ipairs({ "html", "csv", "nagios" }) do
      local r = require("mxprobe.report." .. name)
      for i, case in ipairs(odd) do
        local ok, out = pcall(r.render, case[1], case[2], {})
        assert.is_true(ok, name .. " case " .. i .. ": " .. tostring(out))
        assert.is_string(out)
      end
    end
  end)
end)
