-- mxprobe.report.html -- one self-contained HTML5 document for people who
-- never open a terminal.
--
--   html.render(facts_list, judgement_list, opts) -> string
--   html.escape(s) -> s safe as HTML text and as a quoted attribute value
--
-- opts: now (epoch seconds: "generated" and the days left of certificates;
-- default the judgement's `now`), title.
--
-- Layout: a header, a summary table (domain, verdict, grade, score,
-- regime, MX hosts / targets, worst findings); for several queries the
-- pictures, drawn here as inline SVG with their numbers as text beside
-- them (verdicts, grades, TLS versions, certificate expiry by week for the
-- next 90 days, most frequent failing codes); then per query the
-- domain-level findings and per target its facts at a glance (TLS version,
-- cipher, certificate, days left, relay result, timings) and its findings
-- with code, state, message, evidence and fix.
--
-- Safety: every string from a server or a facts file (banners, replies,
-- certificate fields, DNS names, messages and evidence built from them)
-- goes through escape() -- one function, used for text and attribute
-- values alike: invalid UTF-8, controls and bidi overrides are made
-- visible first (mxprobe.report.text.escape), then & < > " ' become
-- entities. Markup is only ever built from this file's constants; element
-- ids are numbers. The document fetches nothing: inline CSS, inline SVG,
-- no script, and a Content-Security-Policy that forbids any load.

local view = require "mxprobe.report.view"
local textrep = require "mxprobe.report.text"
local text = require "mxprobe.text"
local judge = require "mxprobe.judge"

local M = {}

local ENTITY = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

function M.escape(s)
  return (textrep.escape(s):gsub("[&<>\"']", ENTITY))
end
local esc = M.escape

-- escaped, at most max bytes of the source (whole characters, "…" when cut)
local function clip(s, max)
  if s == nil then return "" end
  s = tostring(s)
  return esc(text.cut(text.utf8(s), max or 2000, "…"))
end

local num = view.num

local VERDICT = { ok = "OK", warning = "WARNING", critical = "CRITICAL", unknown = "COULD NOT TEST" }
local VCLASS = { ok = "ok", warning = "warning", critical = "critical", unknown = "unknown" }
local LCLASS = { critical = "critical", warning = "warning", ok = "ok", info = "info",
  ["n/a"] = "na", untested = "unknown" }
local LWORD = { critical = "CRITICAL", warning = "WARNING", ok = "OK", info = "INFO",
  ["n/a"] = "N/A", untested = "NOT TESTED" }
local GRADES = { "A", "B", "C", "D", "E", "F" }
local DASH = "—"
-- a target without a TLS session, in words (view's tls_state)
local TLS_STATE = { failed = "TLS handshake failed", refused = "STARTTLS refused",
  ["not offered"] = "STARTTLS not offered", ["not reached"] = "not reached" }

local function date(t)
  if type(t) ~= "number" then return DASH end
  return os.date("!%Y-%m-%d %H:%M UTC", math.floor(t))
end

local function ms(v)
  if type(v) ~= "number" then return DASH end
  if v >= 100 then return string.format("%d ms", math.floor(v + 0.5)) end
  return string.format("%.1f ms", v)
end

local function badge(verdict)
  local c = VCLASS[verdict] or "unknown"
  return string.format('<span class="badge %s">%s</span>', c, esc(VERDICT[verdict] or verdict))
end

local function state_badge(f)
  local l = view.label(f)
  return string.format('<span class="badge %s">%s</span>', LCLASS[l] or "unknown", esc(LWORD[l] or l))
end

local function grade_cell(g, s)
  if not s then return '<span class="grade none">' .. DASH .. "</span>" end
  local cls = (g and g:match("^[A-F]$")) and ("g" .. g) or "gX"
  return string.format('<span class="grade %s">%s</span>', cls, esc(g or "?"))
end

-- CSS: colour is a second channel only; every state is also a word
local CSS = [[
:root{--ok:#1a7f37;--okbg:#dafbe1;--warn:#9a6700;--warnbg:#fff8c5;--crit:#cf222e;--critbg:#ffebe9;
--unk:#8250df;--unkbg:#fbefff;--info:#0969da;--infobg:#ddf4ff;--na:#57606a;--nabg:#f6f8fa;
--line:#d0d7de;--muted:#57606a;--ink:#1f2328}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
header.top{background:#24292f;color:#fff;padding:18px 24px}
header.top h1{margin:0;font-size:22px;font-weight:600}
header.top p{margin:4px 0 0;color:#d0d7de}
h2{font-size:18px;margin:28px 0 10px}
h3{font-size:15px;margin:0}
section.card>h2:first-child{margin-top:0}
section.card,article.domain{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;
margin:16px 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);background:#f6f8fa}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,"DejaVu Sans Mono",Menlo,monospace;font-size:12.5px;
overflow-wrap:anywhere}
.badge{display:inline-block;min-width:5.2em;text-align:center;font-size:11.5px;font-weight:700;letter-spacing:.03em;
padding:2px 7px;border-radius:10px;border:1px solid;white-space:nowrap}
.badge.ok{color:var(--ok);background:var(--okbg);border-color:var(--ok)}
.badge.warning{color:var(--warn);background:var(--warnbg);border-color:var(--warn)}
.badge.critical{color:var(--crit);background:var(--critbg);border-color:var(--crit)}
.badge.unknown{color:var(--unk);background:var(--unkbg);border-color:var(--unk)}
.badge.info{color:var(--info);background:var(--infobg);border-color:var(--info)}
.badge.na{color:var(--na);background:var(--nabg);border-color:var(--line)}
.grade{display:inline-block;width:1.9em;height:1.9em;line-height:1.9em;text-align:center;border-radius:50%;
font-weight:700;color:#fff}
.grade.gA{background:#1a7f37}.grade.gB{background:#4c9a2a}.grade.gC{background:#bf8700}
.grade.gD{background:#d1570f}.grade.gE,.grade.gF{background:#cf222e}.grade.gX{background:#57606a}
.grade.none{color:var(--muted)}
.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:0 0 14px}
.tile{flex:1 1 140px;border:1px solid var(--line);border-left-width:6px;border-radius:6px;padding:8px 12px;
background:#fff}
.tile b{display:block;font-size:24px}
.tile.ok{border-left-color:var(--ok)}.tile.warning{border-left-color:var(--warn)}
.tile.critical{border-left-color:var(--crit)}.tile.unknown{border-left-color:var(--unk)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px;align-items:start}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
figcaption{font-weight:600;margin-bottom:6px}
svg text{font:12px system-ui,"DejaVu Sans",sans-serif;fill:#1f2328}
svg .bar-ok{fill:#1a7f37}svg .bar-warning{fill:#bf8700}svg .bar-critical{fill:#cf222e}
svg .bar-unknown{fill:#8250df}svg .bar-info{fill:#0969da}svg .bar-na{fill:#8c959f}
svg .axis{stroke:#d0d7de}
.domain-head{display:flex;align-items:center;gap:12px;flex-wrap:wrap;border-bottom:1px solid var(--line);
padding-bottom:10px;margin-bottom:10px}
.domain-head h2{margin:0}
.muted{color:var(--muted)}
.target{border:1px solid var(--line);border-radius:6px;margin:14px 0;page-break-inside:avoid;break-inside:avoid}
.target>header{display:flex;gap:10px;align-items:center;flex-wrap:wrap;background:#f6f8fa;padding:8px 12px;
border-bottom:1px solid var(--line);border-radius:6px 6px 0 0}
.target .body{padding:8px 12px}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:4px 14px;margin:4px 0 12px}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}
td.code{white-space:nowrap}
.detail{color:var(--muted);font-size:12.5px;margin-top:3px}
.detail b{color:var(--ink);font-weight:600}
details summary{cursor:pointer;color:var(--muted);margin:6px 0}
tr.row-critical td:first-child{box-shadow:inset 4px 0 var(--crit)}
tr.row-warning td:first-child{box-shadow:inset 4px 0 var(--warn)}
tr.row-unknown td:first-child{box-shadow:inset 4px 0 var(--unk)}
tr.row-ok td:first-child{box-shadow:inset 4px 0 var(--ok)}
.days-crit{color:var(--crit);font-weight:700}.days-warn{color:var(--warn);font-weight:700}
footer{color:var(--muted);font-size:12px;margin:24px 0}
@media print{
body{background:#fff;font-size:11px}main{max-width:none;padding:0}
header.top{background:#fff;color:#000;border-bottom:2px solid #000;padding:0 0 8px}
header.top p{color:#333}
section.card,article.domain,figure{border:none;padding:0;margin:10px 0}
article.domain{page-break-before:always;break-before:page}
.charts{grid-template-columns:1fr 1fr}
details>*{display:block}
a{color:inherit;text-decoration:none}
}
]]

-- a horizontal bar chart: rows = { {label, value, class}, ... }; the
-- numbers are written beside the bars (and in the aria label)
local function hbars(rows, opts)
  opts = opts or {}
  local labelw, barw, rowh = opts.labelw or 170, opts.barw or 300, 22
  local max = 0
  for _, r in ipairs(rows) do if r[2] > max then max = r[2] end end
  local h = #rows * rowh + 8
  local total = 0
  for _, r in ipairs(rows) do total = total + r[2] end
  local out = { string.format(
    '<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d">',
    labelw + barw + 90, h, labelw + barw + 90, h) }
  local alt = {}
  for i, r in ipairs(rows) do
    local y = (i - 1) * rowh + 4
    local w = max > 0 and math.floor(r[2] / max * barw + 0.5) or 0
    if r[2] > 0 and w < 2 then w = 2 end
    local pct = total > 0 and string.format(" (%d%%)", math.floor(r[2] / total * 100 + 0.5)) or ""
    out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="end">%s</text>', labelw - 8, y + 14,
      clip(r[1], 200))
    out[#out + 1] = string.format('<rect class="bar-%s" x="%d" y="%d" width="%d" height="%d" rx="2"/>',
      r[3] or "info", labelw, y + 2, w, rowh - 6)
    out[#out + 1] = string.format('<text x="%d" y="%d">%s%s</text>', labelw + w + 6, y + 14, num(r[2]),
      opts.pct and pct or "")
    alt[#alt + 1] = clip(r[1], 200) .. ": " .. num(r[2])
  end
  out[#out + 1] = string.format('<line class="axis" x1="%d" y1="0" x2="%d" y2="%d"/>', labelw, labelw, h)
  out[#out + 1] = "</svg>"
  local label = table.concat(alt, "; ")
  out[1] = out[1]:gsub('role="img"', function() return 'role="img" aria-label="' .. label .. '"' end, 1)
  return table.concat(out)
end

local function figure(title, svg, note)
  return '<figure><figcaption>' .. esc(title) .. "</figcaption>" .. svg
    .. (note and ('<div class="detail">' .. note .. "</div>") or "") .. "</figure>"
end

local function charts(qs, now)
  local out = {}
  -- verdicts and grades
  local vc = { ok = 0, warning = 0, critical = 0, unknown = 0 }
  local gc, gorder, ungraded = {}, {}, 0
  for _, g in ipairs(GRADES) do gc[g] = 0 end
  for _, q in ipairs(qs) do
    vc[VCLASS[q.verdict] or "unknown"] = vc[VCLASS[q.verdict] or "unknown"] + 1
    if q.grade then
      if gc[q.grade] == nil then gc[q.grade] = 0; gorder[#gorder + 1] = q.grade end
      gc[q.grade] = gc[q.grade] + 1
    else
      ungraded = ungraded + 1
    end
  end
  out[#out + 1] = figure("Verdicts across " .. #qs .. " domains", hbars({
    { "OK", vc.ok, "ok" }, { "WARNING", vc.warning, "warning" },
    { "CRITICAL", vc.critical, "critical" }, { "COULD NOT TEST", vc.unknown, "unknown" },
  }, { pct = true }))
  local GCLS = { A = "ok", B = "ok", C = "warning", D = "warning", E = "critical", F = "critical" }
  local grows = {}
  for _, g in ipairs(GRADES) do
    if g ~= "E" or gc.E > 0 then grows[#grows + 1] = { "grade " .. g, gc[g], GCLS[g] } end
  end
  for _, g in ipairs(gorder) do grows[#grows + 1] = { "grade " .. g, gc[g], "info" } end
  grows[#grows + 1] = { "not scored", ungraded, "na" }
  out[#out + 1] = figure("Domain grades", hbars(grows, { pct = true }))

  -- TLS versions: negotiated per target; accepted when the facts have them
  local neg, negorder, acc, accorder, any_acc = {}, {}, {}, {}, false
  local function bump(t, order, k)
    if not t[k] then t[k] = 0; order[#order + 1] = k end
    t[k] = t[k] + 1
  end
  for _, q in ipairs(qs) do
    for _, t in ipairs(q.targets) do
      bump(neg, negorder, t.tls_version and ("negotiated " .. t.tls_version) or TLS_STATE[t.tls_state] or "no TLS")
      if t.tls_versions then
        any_acc = true
        for _, v in ipairs(t.tls_versions) do bump(acc, accorder, v) end
      end
    end
  end
  -- newest version first, then what had no TLS
  local function newer(a, b)
    local va, vb = a:match("TLSv[%d.]+$"), b:match("TLSv[%d.]+$")
    if (va == nil) ~= (vb == nil) then return va ~= nil end
    return a > b
  end
  table.sort(negorder, newer)
  table.sort(accorder, newer)
  local vrows = {}
  local function vclass(v)
    if v:match("TLSv1%.[23]$") then return "ok" end
    if v:match("TLSv") then return "warning" end
    if v == TLS_STATE["not reached"] then return "na" end
    return "critical"
  end
  for _, v in ipairs(negorder) do vrows[#vrows + 1] = { v, neg[v], vclass(v) } end
  if any_acc then
    for _, v in ipairs(accorder) do vrows[#vrows + 1] = { "accepts " .. v, acc[v], vclass(v) } end
  end
  if #vrows > 0 then
    out[#out + 1] = figure("TLS versions (targets)", hbars(vrows),
      any_acc and nil or "negotiated version per target; accepted versions appear when probed")
  end

  -- certificate expiry by week, next 90 days (leaf certificates, each once)
  local weeks, expired, later, seen = {}, 0, 0, {}
  for w = 1, 13 do weeks[w] = 0 end
  for _, q in ipairs(qs) do
    for _, t in ipairs(q.targets) do
      local c = t.cert
      local key = c and (type(c.sha256) == "string" and c.sha256 or tostring(c))
      if c and t.days_left and not seen[key] then
        seen[key] = true
        local d = t.days_left
        if d < 0 then expired = expired + 1
        elseif d < 91 then local w = math.floor(d / 7) + 1; weeks[w] = weeks[w] + 1
        else later = later + 1 end
      end
    end
  end
  local erows = { { "expired", expired, "critical" } }
  for w = 1, 13 do
    local from = now and date(now + (w - 1) * 7 * 86400):sub(1, 10) or ("day " .. (w - 1) * 7)
    erows[#erows + 1] = { string.format("week %d (%s)", w, from), weeks[w], w <= 2 and "warning" or "info" }
  end
  out[#out + 1] = figure("Certificates expiring, next 90 days", hbars(erows, { labelw = 190 }),
    string.format("%s certificates expire later; %s already expired", num(later), num(expired)))

  -- most frequent failing codes (domains where they fail)
  local cc, corder, csev = {}, {}, {}
  for _, q in ipairs(qs) do
    for _, f in ipairs(q.worst) do
      if view.failing(f) then
        if not cc[f.code] then cc[f.code] = 0; corder[#corder + 1] = f.code end
        cc[f.code] = cc[f.code] + 1
        csev[f.code] = f.severity
      end
    end
  end
  table.sort(corder, function(a, b)
    if cc[a] ~= cc[b] then return cc[a] > cc[b] end
    return a < b
  end)
  local crows = {}
  for i = 1, math.min(10, #corder) do
    crows[i] = { corder[i], cc[corder[i]], csev[corder[i]] == "critical" and "critical" or "warning" }
  end
  if #crows > 0 then
    out[#out + 1] = figure("Most frequent failing codes (domains)", hbars(crows, { labelw = 230 }))
  else
    out[#out + 1] = figure("Most frequent failing codes (domains)", "<p>No failing code.</p>")
  end
  return '<section class="charts" aria-label="overview charts">' .. table.concat(out) .. "</section>"
end

local function regime_text(q)
  local list = view.regime_names(q)
  return list and #list > 0 and esc(table.concat(list, ", ")) or DASH
end

local function worst_codes(q, n)
  local parts = {}
  for i = 1, math.min(n, #q.worst) do
    local f = q.worst[i]
    parts[#parts + 1] = string.format("%s <code>%s</code>", state_badge(f), esc(f.code))
  end
  if #q.worst > n then parts[#parts + 1] = string.format('<span class="muted">+%d more</span>', #q.worst - n) end
  return #parts > 0 and table.concat(parts, "<br>") or '<span class="muted">none</span>'
end

local function summary_table(qs)
  local out = { '<table class="summary"><thead><tr><th>Domain</th><th>Verdict</th><th>Grade</th>',
    '<th class="num">Score</th><th>Regime</th><th class="num">MX</th><th class="num">Targets</th>',
    "<th>Worst findings</th></tr></thead><tbody>" }
  for i, q in ipairs(qs) do
    out[#out + 1] = string.format('<tr class="row-%s"><td><a href="#q%d">%s</a></td><td>%s</td><td>%s</td>'
      .. '<td class="num">%s</td><td>%s</td><td class="num">%d</td><td class="num">%d</td><td>%s</td></tr>',
      VCLASS[q.verdict] or "unknown", i, clip(q.name, 300), badge(q.verdict), grade_cell(q.grade, q.score),
      q.score and num(q.score) or DASH, regime_text(q), q.mx_count, #q.targets, worst_codes(q, 3))
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out)
end

local function finding_row(f, detail)
  local parts = { clip(f.message, 4096) }
  if detail and f.evidence and f.evidence ~= "" then
    parts[#parts + 1] = '<div class="detail"><b>Evidence:</b> <span class="mono">' .. clip(f.evidence, 4096)
      .. "</span></div>"
  end
  if detail and f.remediation and f.remediation ~= "" then
    parts[#parts + 1] = '<div class="detail"><b>Fix:</b> ' .. clip(f.remediation, 4096) .. "</div>"
  end
  return string.format('<tr class="row-%s"><td>%s</td><td class="code"><code>%s</code></td><td>%s</td></tr>',
    LCLASS[view.label(f)] or "unknown", state_badge(f), esc(f.code), table.concat(parts))
end

local FHEAD = "<table class=\"findings\"><thead><tr><th>State</th><th>Code</th><th>Finding</th></tr></thead><tbody>"

-- findings of one block: problems first, in full; passes and information
-- folded; a check's own n/a / not-tested lines grouped by reason
local function findings_html(findings)
  local list = {}
  for i, f in ipairs(findings) do list[#list + 1] = { f = f, i = i } end
  table.sort(list, function(a, b)
    local ra, rb = view.rank(a.f), view.rank(b.f)
    if ra ~= rb then return ra > rb end
    return a.i < b.i
  end)
  local problems, rest, groups, gorder = {}, {}, {}, {}
  for _, e in ipairs(list) do
    local f = e.f
    if view.generic(f) then
      local key = f.state .. "\0" .. view.reason_of(f)
      if not groups[key] then
        groups[key] = { f = f, checks = {} }
        gorder[#gorder + 1] = key
      end
      table.insert(groups[key].checks, f.check or f.code)
    elseif f.state == "fail" and f.severity ~= "info" and f.severity ~= "ok" or f.state == "untested" then
      problems[#problems + 1] = finding_row(f, true)
    else
      rest[#rest + 1] = finding_row(f, f.state == "fail")
    end
  end
  local out = {}
  if #problems > 0 then
    out[#out + 1] = FHEAD .. table.concat(problems) .. "</tbody></table>"
  end
  if #rest > 0 then
    out[#out + 1] = string.format(
      "<details%s><summary>%d passed or informational finding%s</summary>%s%s</tbody></table></details>",
      #problems == 0 and " open" or "", #rest, #rest == 1 and "" or "s", FHEAD, table.concat(rest))
  end
  for _, key in ipairs(gorder) do
    local g = groups[key]
    out[#out + 1] = string.format('<div class="detail">%s %s: %s</div>', state_badge(g.f),
      clip(table.concat(g.checks, ", "), 1000), clip(view.reason_of(g.f), 1000))
  end
  if #out == 0 then out[1] = '<p class="muted">No finding.</p>' end
  return table.concat(out)
end

local function days_html(d)
  if not d then return DASH end
  local n = math.floor(d)
  local cls = n < 0 and "days-crit" or (n < 14 and "days-warn" or nil)
  local txt = n < 0 and string.format("expired %d days ago", -n) or string.format("%d days left", n)
  return cls and string.format('<span class="%s">%s</span>', cls, txt) or txt
end

local function facts_dl(t)
  local rows = {}
  local function add(k, v) rows[#rows + 1] = "<dt>" .. k .. "</dt><dd>" .. v .. "</dd>" end
  local tlsv = t.tls_version and esc(t.tls_version)
    or (t.tls_error and ("failed: " .. clip(t.tls_error, 300)) or esc(TLS_STATE[t.tls_state] or "no TLS"))
  add("TLS", tlsv)
  add("Cipher", t.cipher and (esc(t.cipher) .. (t.cipher_bits and (" (" .. num(t.cipher_bits) .. " bits)") or ""))
    or DASH)
  if t.tls_versions then
    add("Accepts", #t.tls_versions > 0 and esc(table.concat(t.tls_versions, ", ")) or "none")
  end
  local c = t.cert
  if c then
    add("Subject", '<span class="mono">' .. clip(c.subject, 500) .. "</span>")
    add("Issuer", '<span class="mono">' .. clip(c.issuer, 500) .. "</span>")
    local sans = type(c.san_dns) == "table" and c.san_dns or {}
    local shown = {}
    for i = 1, math.min(#sans, 8) do shown[i] = tostring(sans[i]) end
    local more = (type(c.san_count) == "number" and c.san_count or #sans) - #shown
    add("SANs", (#shown > 0 and ('<span class="mono">' .. clip(table.concat(shown, ", "), 1500) .. "</span>") or DASH)
      .. (more > 0 and string.format(' <span class="muted">+%d more</span>', more) or ""))
    add("Expires", esc(date(c.not_after)) .. " · " .. days_html(t.days_left))
    add("Trusted", t.verify_ok == true and "yes" or (t.verify_ok == false and ("no" .. (t.verify_reason
      and (" (" .. esc(t.verify_reason) .. ")") or "")) or DASH))
  end
  add("Relay", esc(t.relay or DASH))
  if t.regime then add("Regime", esc(t.regime)) end
  if t.rdns then add("Reverse DNS", '<span class="mono">' .. clip(t.rdns, 500) .. "</span>") end
  add("Timings", string.format("connect %s · banner %s · TLS handshake %s", ms(t.connect_ms), ms(t.banner_ms),
    ms(t.handshake_ms)))
  if t.banner then add("Banner", '<span class="mono">' .. clip(t.banner, 1000) .. "</span>") end
  return '<dl class="facts">' .. table.concat(rows) .. "</dl>"
end

local function domain_html(q, i)
  local out = {}
  out[#out + 1] = string.format('<article class="domain" id="q%d"><div class="domain-head"><h2>%s</h2>%s %s'
    .. '<span class="muted">%s · %d MX · %d target%s</span></div>',
    i, clip(q.name, 300), badge(q.verdict), grade_cell(q.grade, q.score),
    q.score and ("score " .. num(q.score) .. "/100") or "not scored",
    q.mx_count, #q.targets, #q.targets == 1 and "" or "s")
  if q.summary then out[#out + 1] = '<p class="muted">' .. clip(q.summary, 500) .. "</p>" end
  if q.error then out[#out + 1] = "<p><b>Error:</b> " .. clip(q.error, 1000) .. "</p>" end
  if #q.domain_findings > 0 then
    out[#out + 1] = "<h3>Domain</h3>" .. findings_html(q.domain_findings)
  end
  local order = {}
  for k, t in ipairs(q.targets) do order[k] = { t = t, k = k } end
  table.sort(order, function(a, b)
    if a.t.worst ~= b.t.worst then return a.t.worst > b.t.worst end
    return a.k < b.k
  end)
  for _, e in ipairs(order) do
    local t = e.t
    local head = (t.mx and (clip(t.mx, 300) .. " ") or "") .. "[" .. clip(t.address, 100) .. "]"
    local sc = t.score and string.format("%s %s/100%s", grade_cell(t.grade, t.score), num(t.score),
      t.coverage == "partial" and ' <span class="muted">partly tested</span>' or "")
      or '<span class="badge unknown">COULD NOT TEST</span>'
    out[#out + 1] = string.format('<section class="target" id="q%d-t%d"><header><h3>%s</h3>%s%s</header>'
      .. '<div class="body">%s%s</div></section>',
      i, e.k, head, t.preference and ('<span class="muted">preference ' .. num(t.preference) .. "</span>") or "", sc,
      facts_dl(t), findings_html(t.findings))
  end
  out[#out + 1] = "</article>"
  return table.concat(out)
end

function M.render(facts_list, judgement_list, opts)
  opts = opts or {}
  local qs = view.queries(facts_list, judgement_list, opts)
  local now = type(opts.now) == "number" and opts.now or nil
  if not now then
    for _, q in ipairs(qs) do if q.now then now = q.now break end end
  end
  local status = judge.exit_status(type(judgement_list) == "table" and judgement_list or {})
  local overall = ({ [0] = "ok", [1] = "warning", [2] = "critical", [3] = "unknown" })[status]
  local title = opts.title and clip(opts.title, 200)
    or (#qs == 1 and ("mxprobe report: " .. clip(qs[1].name, 200)) or string.format("mxprobe report: %d domains", #qs))
  local tool = type(facts_list) == "table" and type(facts_list[1]) == "table" and type(facts_list[1].run) == "table"
    and type(facts_list[1].run.tool) == "table" and facts_list[1].run.tool.version

  local out = {
    "<!DOCTYPE html>\n",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="mxprobe">',
    "<title>", title, "</title><style>", CSS, "</style></head><body>",
    '<header class="top"><h1>', title, "</h1><p>", "Generated ", esc(date(now)),
    " · ", tostring(#qs), #qs == 1 and " domain" or " domains", " · overall ", badge(overall),
    tool and (" · mxprobe " .. clip(tool, 40)) or "", "</p></header><main>",
  }
  -- tiles: verdict counts
  local vc = { ok = 0, warning = 0, critical = 0, unknown = 0 }
  for _, q in ipairs(qs) do local c = VCLASS[q.verdict] or "unknown"; vc[c] = vc[c] + 1 end
  out[#out + 1] = '<section class="card" id="summary"><h2>Summary</h2>'
  if #qs > 1 then
    out[#out + 1] = '<div class="tiles">'
    for _, v in ipairs({ "ok", "warning", "critical", "unknown" }) do
      out[#out + 1] = string.format('<div class="tile %s"><b>%d</b>%s</div>', v, vc[v], esc(VERDICT[v]))
    end
    out[#out + 1] = "</div>"
  end
  out[#out + 1] = summary_table(qs) .. "</section>"
  if #qs > 1 then out[#out + 1] = "<h2>Overview</h2>" .. charts(qs, now) end
  for i, q in ipairs(qs) do out[#out + 1] = domain_html(q, i) end
  out[#out + 1] = '<footer>mxprobe tests the mail transport of a domain (MX, SMTP, STARTTLS, certificates, relay). '
    .. "States are written in words; colours only repeat them. Server text is shown as received, escaped.</footer>"
  out[#out + 1] = "</main></body></html>\n"
  return table.concat(out)
end

return M
