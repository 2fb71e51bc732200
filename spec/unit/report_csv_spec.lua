-- Unit specs of the CSV report (mxprobe.report.csv) on the facts fixtures
-- judged with the default policy, read back by a real RFC 4180 reader
-- (Python's csv module, strict) -- no socket.

local csv = require "mxprobe.report.csv"
local mxprobe = require "mxprobe"
local R = require "support.report"

local MAIN = { "good", "expired", "notls", "openrelay", "timeout", "nxdomain", "tlsmixed",
  "hostile-markup", "hostile-banner" }

-- rows as tables keyed by the header
local function records(out)
  local rows = R.csv_rows(out)
  local head = table.remove(rows, 1)
  local recs = {}
  for i, r in ipairs(rows) do
    assert.equal(#head, #r, "row " .. i .. " has " .. #r .. " fields")
    local t = {}
    for k, name in ipairs(head) do t[name] = r[k] end
    recs[i] = t
  end
  return recs, head
end

describe("report.csv.render #unit", function()
  it("is registered as a report format and reached through mxprobe.report", function()
    local fl, jl = R.judged({ "good" })
    assert.equal(csv.render(fl, jl, {}), mxprobe.report(fl, jl, { format = "csv" }))
  end)

  it("writes a header and one row per target; a domain without target gets one row", function()
    local fl, jl = R.judged(MAIN)
    local out = csv.render(fl, jl)
    local recs, head = records(out)
    assert.same(csv.COLUMNS, head)
    local want = 0
    for _, f in ipairs(fl) do want = want + math.max(1, #f.targets) end
    assert.equal(want, #recs)
    assert.equal(11, #recs) -- good 2, tlsmixed 2, nxdomain 1 (no target), the rest 1 each
    local by = {}
    for _, r in ipairs(recs) do by[r.domain .. " " .. r.address] = r end

    -- an expired certificate under opportunistic delivery is a warning
    -- (docs/codes.md, the certificate rule): senders deliver anyway
    local e = by["expired.example.test 127.0.2.1"]
    assert.equal("warning", e.verdict)
    assert.equal("mx.expired.example.test", e.mx)
    assert.equal("10", e.preference)
    assert.equal("C", e.grade)
    assert.equal("60", e.score)
    assert.equal("55", e.domain_score)
    assert.equal("opportunistic", e.regime)
    assert.equal("TLSv1.3", e.tls_version)
    assert.equal("TLS_AES_256_GCM_SHA384", e.cipher)
    assert.equal("2021-01-01T00:00:00Z", e.cert_not_after)
    assert.equal("O=mxprobe lab,CN=mxprobe lab intermediate CA", e.cert_issuer) -- a comma, quoted
    assert.matches("^%-%d+$", e.days_left)
    assert.equal("no", e.trusted)
    assert.equal("denied", e.relay)
    assert.equal("tls.cert.expired", e.failing_codes)

    assert.equal("open", by["openrelay.example.test 127.0.7.1"].relay)
    assert.equal("relay.open", by["openrelay.example.test 127.0.7.1"].failing_codes)
    local n = by["notls.example.test 127.0.6.1"]
    assert.equal("", n.tls_version)
    assert.equal("tls.starttls.missing", n.failing_codes)
    local t = by["blackhole.example.test 127.0.12.1"]
    assert.equal("unknown", t.verdict)
    assert.equal("", t.score)
    assert.equal("tcp.timeout", t.untested_codes)
    local x = by["nxdomain.example.test "]
    assert.equal("critical", x.verdict)
    assert.equal("", x.mx)
    assert.equal("dns.mx.nxdomain", x.domain_codes)
    assert.equal("consistency.tls-mixed", by["mixed.example.test 127.0.6.1"].domain_codes)
  end)

  it("ends every record with CRLF and quotes CR, LF, commas and quotes (RFC 4180)", function()
    local fl, jl = R.judged({ "hostile-banner", "hostile-markup" })
    local out = csv.render(fl, jl)
    assert.equal("\r\n", out:sub(-2))
    assert.is_nil(out:gsub('"[^"]*"', ""):find("[^\r]\n")) -- outside quotes, LF only after CR
    local recs = records(out)
    -- the CR a server sent survives, inside a quoted field
    assert.matches("cr:\rX$", recs[1].banner)
    assert.matches(' cr:\rX"\r\n', out, 1, true)
    -- other controls and invalid UTF-8 are visible, never raw
    assert.matches("^hostile%.test \\x1B%[2J", recs[1].banner)
    assert.matches("nul:\\x00: bad:\\xFF\\xFE:", recs[1].banner, 1, true)
    assert.is_nil(out:find("[%z\1-\8\11\12\14-\31\127]"))
    -- quotes doubled, commas kept
    local banner = fl[2].targets[1].smtp.banner.reply.text
    assert.equal("'" .. banner, recs[2].banner)
    assert.matches('onerror=""alert(2)""', out, 1, true)
  end)

  it("never writes a cell a spreadsheet would evaluate", function()
    local fl, jl = R.judged(MAIN)
    local recs, head = records(csv.render(fl, jl))
    local numeric = { days_left = true }
    for _, r in ipairs(recs) do
      for _, name in ipairs(head) do
        local v = r[name]
        -- a negative number this report computed is a number, not a formula
        if not (numeric[name] and v:match("^%-%d+$")) then
          assert.is_nil(v:find("^[=+%-@\t\r]"), name .. " begins with a formula character: " .. v)
        end
      end
    end
    -- the hostile banner began with "=": it is kept, behind a quote
    local markup
    for _, r in ipairs(recs) do if r.address == "127.0.66.70" and r.domain:match(":2601$") then markup = r end end
    assert.matches("^'=cmd|' /C calc'!A0 <script>", markup.banner)
  end)

  it("quotes one field at a time: cell()", function()
    assert.equal("plain", csv.cell("plain"))
    assert.equal('"a,b"', csv.cell("a,b"))
    assert.equal('"say ""hi"""', csv.cell('say "hi"'))
    assert.equal('"two\r\nlines"', csv.cell("two\r\nlines"))
    assert.equal("'=1+1", csv.cell("=1+1"))
    assert.equal("'+1", csv.cell("+1"))
    assert.equal("'-1", csv.cell("-1"))
    assert.equal("'@SUM(A1)", csv.cell("@SUM(A1)"))
    assert.equal("'\tx", csv.cell("\tx"))
    assert.equal("\"'\rx\"", csv.cell("\rx"))
    assert.equal('"\'=HYPERLINK(""http://x"",""y"")"', csv.cell('=HYPERLINK("http://x","y")'))
    assert.equal("-5", csv.cell(-5))
    assert.equal("0.125", csv.cell(0.125))
    assert.equal("", csv.cell(nil))
    assert.equal("\\x00\\x1B", csv.cell("\0\27"))
  end)

  it("renders no query as the header alone", function()
    assert.equal(table.concat(csv.COLUMNS, ",") .. "\r\n", csv.render({}, {}, {}))
  end)
end)
