-- mxprobe.report.text -- the human report.
--
--   text.render(facts_list, judgement_list, opts) -> string
--   text.escape(s) -> s safe for a terminal
--
-- facts_list[i] and judgement_list[i] belong together (one per query).
-- opts: color (bool: ANSI colour; the CLI decides from the TTY and
-- NO_COLOR), verbose (bool: evidence for every finding, one line per
-- not-applicable/not-tested check), width (max characters of one field,
-- default 240).
--
-- Layout: per query a header (verdict, grade), domain-level findings, then
-- one block per MX target (host + address), worst first; inside a block
-- failures first, then could-not-test, info and passes; the checks that
-- were not applicable or not tested for one shared reason on one line.
--
-- Everything that can come from a server or from a facts file (reply text,
-- names, certificate fields, messages built from them) goes through
-- escape(): invalid UTF-8 bytes, C0 controls (ESC, NUL, CR, BEL ...), DEL,
-- C1 controls (U+0080-U+009F, which include the 8-bit CSI), bidirectional
-- overrides and line/paragraph separators are written as visible escapes,
-- so nothing a server sends can move the cursor, change colours, set the
-- window title or hide text.

local M = {}

local BIDI = {
  [0x061C] = true, [0x200E] = true, [0x200F] = true, [0x2028] = true, [0x2029] = true,
  [0x202A] = true, [0x202B] = true, [0x202C] = true, [0x202D] = true, [0x202E] = true,
  [0x2066] = true, [0x2067] = true, [0x2068] = true, [0x2069] = true, [0xFEFF] = true,
}

local text = require "mxprobe.text"
local score = require "mxprobe.score"
local view = require "mxprobe.report.view"

-- invalid UTF-8 bytes -> "\xNN", the same rule as the facts (mxprobe.text)
local utf8_clean = text.utf8

local function escape_char(ch)
  local cp = utf8.codepoint(ch)
  if cp < 0x20 or cp == 0x7F then return string.format("\\x%02X", cp) end
  if (cp >= 0x80 and cp < 0xA0) or BIDI[cp] then return string.format("\\u{%04X}", cp) end
  return nil
end

function M.escape(s)
  if s == nil then return "" end
  if type(s) ~= "string" then s = tostring(s) end
  s = utf8_clean(s)
  return (s:gsub(utf8.charpattern, escape_char))
end

-- escaped and clipped to `width` characters
local function field(s, width)
  s = M.escape(s)
  if utf8.len(s) > width then
    -- width - 1 characters and the mark: the byte count of those, cut by
    -- the one truncation (text.cut)
    s = text.cut(s, utf8.offset(s, width) - 1, "…")
  end
  return s
end

-- the shared reading of findings (mxprobe.report.view)
local num, label, rank, generic = view.num, view.label, view.rank, view.generic
local tkey, worst_of = view.tkey, view.worst_of

local COLORS = {
  critical = "1;31", warning = "33", ok = "32", pass = "32", untested = "35",
  info = "36", na = "2", dim = "2", bold = "1",
}

local function painter(on)
  return function(what, s)
    if not on or not COLORS[what] then return s end
    return "\27[" .. COLORS[what] .. "m" .. s .. "\27[0m"
  end
end

local function color_of(f)
  if f.state == "fail" then return f.severity end
  if f.state == "pass" then return f.severity == "info" and "info" or "ok" end
  if f.state == "na" then return "na" end
  return "untested"
end

local reason_of = view.reason_of

local function block_lines(out, findings, opts, paint, codew, indent)
  local width = opts.width
  local list = {}
  for i, f in ipairs(findings) do list[#list + 1] = { f = f, i = i } end
  table.sort(list, function(a, b)
    local ra, rb = rank(a.f), rank(b.f)
    if ra ~= rb then return ra > rb end
    return a.i < b.i
  end)
  -- a check's information-only lines (the ESMTP extensions ...) on one line
  if not opts.verbose then
    local infos = {}
    for _, e in ipairs(list) do
      local f = e.f
      if f.severity == "info" and (f.state == "pass" or f.state == "fail") and f.check then
        infos[f.check] = infos[f.check] or {}
        table.insert(infos[f.check], e)
      end
    end
    for check, es in pairs(infos) do
      if #es > 2 then
        table.sort(es, function(a, b) return a.i < b.i end)
        local msgs = {}
        for _, e in ipairs(es) do msgs[#msgs + 1] = tostring(e.f.message); e.drop = true end
        es[1].drop = nil
        es[1].f = { code = check, check = check, state = "pass", severity = "info",
          message = table.concat(msgs, "; ") }
      end
    end
    local kept = {}
    for _, e in ipairs(list) do if not e.drop then kept[#kept + 1] = e end end
    list = kept
  end
  local groups, gorder = {}, {}
  for _, e in ipairs(list) do
    local f = e.f
    if generic(f) and not opts.verbose then
      local key = f.state .. "\0" .. reason_of(f)
      if not groups[key] then
        groups[key] = { state = f.state, reason = reason_of(f), checks = {} }
        gorder[#gorder + 1] = key
      end
      table.insert(groups[key].checks, f.check or f.code)
    else
      local lab = label(f)
      out[#out + 1] = string.format("%s%s %s %s", indent,
        paint(color_of(f), string.format("%-9s", lab)),
        string.format("%-" .. codew .. "s", field(f.code, 60)),
        field(f.message, width))
      local detail = f.state == "fail" and f.severity ~= "info" and f.severity ~= "ok"
        or score.blocks_verdict(f)
      if (detail or opts.verbose) and f.evidence and f.evidence ~= "" then
        out[#out + 1] = string.format("%s%s %s", indent, string.rep(" ", 9 + codew + 1),
          paint("dim", "evidence: " .. field(f.evidence, width)))
      end
      if detail and f.remediation and f.remediation ~= "" then
        out[#out + 1] = string.format("%s%s %s", indent, string.rep(" ", 9 + codew + 1),
          paint("dim", "fix: " .. field(f.remediation, width)))
      end
    end
  end
  for _, key in ipairs(gorder) do
    local g = groups[key]
    local lab = g.state == "na" and "n/a" or "untested"
    out[#out + 1] = string.format("%s%s %s", indent, paint(g.state == "na" and "na" or "untested",
      string.format("%-9s", lab)),
      paint("dim", field(table.concat(g.checks, ", ") .. ": " .. g.reason, width)))
  end
end

local VERDICT = { ok = "OK", warning = "WARNING", critical = "CRITICAL", unknown = "COULD NOT TEST" }
local VERDICT_COLOR = { ok = "ok", warning = "warning", critical = "critical", unknown = "untested" }

local function score_text(s)
  if type(s) ~= "table" or s.score == nil then return "not scored" end
  return string.format("grade %s (%s/100)", M.escape(s.grade or "?"), num(s.score))
end

-- TLS posture: one line of what a target showed of its TLS versions, its
-- reverse DNS and the plaintext fallback (from the facts; the findings
-- judge them), or nil
local function posture_line(t, width)
  local parts = {}
  local tv = type(t.tls_versions) == "table" and t.tls_versions or nil
  if tv and tv.status == "tested" and type(tv.versions) == "table" then
    local acc, ref = {}, {}
    for _, v in ipairs(tv.versions) do
      if type(v) == "table" and v.status == "accepted" then acc[#acc + 1] = tostring(v.version)
      elseif type(v) == "table" and v.status == "refused" then ref[#ref + 1] = tostring(v.version) end
    end
    parts[#parts + 1] = "TLS versions accepted: " .. (#acc > 0 and table.concat(acc, " ") or "none")
      .. (#ref > 0 and ("; refused: " .. table.concat(ref, " ")) or "")
  end
  local r = type(t.rdns) == "table" and t.rdns or nil
  if r and type(r.names) == "table" then
    local ptr = type(r.ptr) == "table" and r.ptr or {}
    if #r.names > 0 then
      parts[#parts + 1] = "reverse DNS: " .. table.concat(r.names, " ")
        .. (r.confirmed == true and " (forward-confirmed)" or " (not forward-confirmed)")
    elseif ptr.status == "nxdomain" or ptr.status == "nodata" then
      parts[#parts + 1] = "reverse DNS: no PTR"
    elseif ptr.status then
      parts[#parts + 1] = "reverse DNS: " .. tostring(ptr.status)
    end
  end
  local fb = type(t.smtp) == "table" and type(t.smtp.fallback) == "table" and t.smtp.fallback or nil
  if fb then
    parts[#parts + 1] = ("reconnected in clear text after the TLS failure (%s): %s")
      :format(tostring(fb.after), tostring(fb.status))
  end
  if #parts == 0 then return nil end
  return field(table.concat(parts, " · "), width)
end

local function render_one(out, facts, j, opts, paint)
  facts = type(facts) == "table" and facts or {}
  j = type(j) == "table" and j or { findings = {}, scores = {} }
  local findings = type(j.findings) == "table" and j.findings or {}
  local scores = type(j.scores) == "table" and j.scores or {}
  local name = facts.domain or facts.query or j.query or "?"
  local codew = 8
  for _, f in ipairs(findings) do
    if not generic(f) or opts.verbose then codew = math.max(codew, math.min(#M.escape(f.code), 28)) end
  end

  local verdict = j.verdict or "unknown"
  out[#out + 1] = string.format("%s  %s  %s", paint("bold", field(name, 120)),
    paint(VERDICT_COLOR[verdict] or "untested", VERDICT[verdict] or M.escape(verdict)),
    score_text(scores.domain))
  local ntargets = type(facts.targets) == "table" and #facts.targets or 0
  local counts = type(j.summary) == "string" and j.summary:match("^%w+: (.+)$")
  out[#out + 1] = string.format("  %d MX target%s%s", ntargets, ntargets == 1 and "" or "s",
    counts and (": " .. field(counts, opts.width)) or "")
  if type(facts.error) == "string" then
    out[#out + 1] = "  " .. paint("critical", "error: ") .. field(facts.error, opts.width)
  end

  -- findings per target
  local per, domain_f = {}, {}
  for _, f in ipairs(findings) do
    local t = type(f.target) == "table" and f.target or nil
    if t and t.address then
      local k = tkey(t.mx, t.address)
      per[k] = per[k] or {}
      table.insert(per[k], f)
    else
      domain_f[#domain_f + 1] = f
    end
  end

  if #domain_f > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "  " .. paint("bold", "domain")
    block_lines(out, domain_f, opts, paint, codew, "    ")
  end

  -- the sending regime of each MX (judge.run's regimes), named on its lines
  local regime_of = {}
  for _, r in ipairs(type(j.regimes) == "table" and j.regimes or {}) do
    if type(r) == "table" and type(r.mx) == "string" then regime_of[r.mx] = r.regime end
  end
  local score_by = {}
  for _, s in ipairs(type(scores.targets) == "table" and scores.targets or {}) do
    score_by[tkey(s.mx, s.address)] = s
  end
  local blocks = {}
  for i, t in ipairs(type(facts.targets) == "table" and facts.targets or {}) do
    if type(t) == "table" then
      local k = tkey(t.mx, t.address)
      local fl = per[k] or {}
      per[k] = nil
      blocks[#blocks + 1] = { t = t, findings = fl, score = score_by[k], worst = worst_of(fl), i = i }
    end
  end
  -- findings about targets the facts do not list (a policy check's mistake)
  for k, fl in pairs(per) do
    local mx, address = k:match("^(.-)\0(.*)$")
    blocks[#blocks + 1] = { t = { mx = mx ~= "" and mx or nil, address = address }, findings = fl,
      worst = worst_of(fl), i = math.huge }
  end
  table.sort(blocks, function(a, b)
    if a.worst ~= b.worst then return a.worst > b.worst end
    local sa = a.score and a.score.score or 101
    local sb = b.score and b.score.score or 101
    if sa ~= sb then return sa < sb end
    if a.i ~= b.i then return a.i < b.i end
    return tostring(a.t.address) < tostring(b.t.address)
  end)
  for _, b in ipairs(blocks) do
    local t = b.t
    local head = t.mx and string.format("%s [%s]", field(t.mx, 120), field(t.address, 60))
      or string.format("[%s]", field(t.address, 60))
    if type(t.preference) == "number" then head = head .. "  pref " .. num(t.preference) end
    if t.mx and regime_of[t.mx] then head = head .. "  " .. field(regime_of[t.mx], 40) end
    local s = b.score
    local sc
    if s and s.score then
      sc = string.format("grade %s (%s/100)%s", M.escape(s.grade or "?"), num(s.score),
        s.coverage == "partial" and ", partly tested" or "")
    else
      sc = "could not test"
    end
    out[#out + 1] = ""
    out[#out + 1] = "  " .. paint("bold", head) .. "  " .. sc
    local posture = posture_line(t, opts.width)
    if posture then out[#out + 1] = "    " .. paint("dim", posture) end
    block_lines(out, b.findings, opts, paint, codew, "    ")
  end
end

function M.render(facts_list, judgement_list, opts)
  opts = opts or {}
  local o = { color = opts.color == true, verbose = opts.verbose == true,
    width = type(opts.width) == "number" and opts.width >= 20 and math.floor(opts.width) or 240 }
  local paint = painter(o.color)
  local out = {}
  facts_list = type(facts_list) == "table" and facts_list or {}
  judgement_list = type(judgement_list) == "table" and judgement_list or {}
  local n = math.max(#facts_list, #judgement_list)
  for i = 1, n do
    if i > 1 then out[#out + 1] = "" end
    render_one(out, facts_list[i], judgement_list[i], o, paint)
  end
  return table.concat(out, "\n") .. "\n"
end

return M
