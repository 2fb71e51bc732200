-- mxprobe.report.view -- what every report reads the same way from facts
-- and a judgement: the one place for a finding's state word and rank, the
-- worst of a list, and a query as rows (the domain, then one row per
-- target with the facts worth seeing at a glance). Pure: the clock is
-- opts.now, else the judgement's `now`.
--
--   view.label(f)        -> "critical" | "warning" | "ok" | "info" | "n/a" | "untested"
--   view.rank(f)         -> order inside a block (higher first)
--   view.generic(f)      -> a check's own n/a or not-tested line
--   view.reason_of(f)    -> the reason of a generic line, for grouping
--   view.worst_of(list)  -> 4 critical, 3 warning, 2 could not test, else 0/1
--   view.tkey(mx, addr)  -> key of a target
--   view.num(n)          -> a number as text ("?" when not a number)
--   view.failing(f)      -> f failed with severity critical or warning
--   view.query(facts, judgement, opts) -> q (below)
--   view.queries(facts_list, judgements, opts) -> { q, ... }
--
-- q = { name, verdict, grade, score, summary, now, error,
--       regimes (the judgement's list, or nil), regime_of = { [mx] = regime },
--       mx_count, domain_findings, worst = { finding, ... } (failing, worst
--       first, one per code), failing_codes = { code, ... },
--       targets = { row, ... } (facts order) }
-- row = { mx, address, port, preference, family, score, grade, coverage,
--         status (smtp.status), findings, failing_codes, untested_codes,
--         worst (worst_of), regime, tls_version, cipher, cipher_bits,
--         tls_state ("ok", "failed", "refused", "not offered", "not reached"),
--         cert = leaf certificate facts or nil, days_left (float or nil),
--         verify_ok, verify_reason, relay (a word), banner (first reply
--         text), connect_ms, banner_ms, handshake_ms,
--         tls_versions = { "TLSv1.2", ... } or nil (accepted versions, when
--         the facts have them), rdns = "name, ..." or nil }
--
-- Everything in q is raw: strings from a server are NOT escaped here; each
-- report escapes them for its own output.

local score = require "mxprobe.score"

local M = {}

M.SEV_RANK = { critical = 4, warning = 3, info = 1, ok = 0 }

function M.num(n)
  if type(n) ~= "number" then return "?" end
  local i = math.tointeger(n)
  if i then return tostring(i) end
  if n == math.floor(n) and n > -2^53 and n < 2^53 then return string.format("%d", n) end
  return string.format("%g", n)
end

-- label of a finding: its severity when it failed, else its state
function M.label(f)
  if f.state == "fail" then return f.severity end
  if f.state == "pass" then return f.severity == "info" and "info" or "ok" end
  if f.state == "na" then return "n/a" end
  return "untested"
end

-- order inside a block
function M.rank(f)
  if f.state == "fail" then return 10 + (M.SEV_RANK[f.severity] or 0) end
  if f.state == "untested" then return 9 end
  if f.state == "pass" and f.severity == "info" then return 5 end
  if f.state == "pass" then return 4 end
  return 0
end

-- a "generic" finding: a check's own n/a or not-tested line (code == check id)
function M.generic(f)
  return (f.state == "na" or f.state == "untested") and f.code == f.check
end

-- the shared reason of a generic finding ("STARTTLS not offered")
function M.reason_of(f)
  local m = tostring(f.message or "")
  return (m:gsub("^not tested: ", ""):gsub("^no TLS session: ", ""):gsub("^no certificate to judge: ", ""))
end

function M.tkey(mx, address)
  return tostring(mx or "") .. "\0" .. tostring(address or "")
end

-- order: critical 4, warning 3, could-not-test 2, the rest 1/0
function M.worst_of(findings)
  local w, untested = -1, false
  for _, f in ipairs(findings) do
    if f.state == "fail" and (M.SEV_RANK[f.severity] or 0) > w then w = M.SEV_RANK[f.severity] or 0 end
    if score.blocks_verdict(f) then untested = true end
  end
  if w >= 4 then return 4 elseif w >= 3 then return 3 elseif untested then return 2 end
  return math.max(w, 0)
end

function M.failing(f)
  return f.state == "fail" and (f.severity == "critical" or f.severity == "warning")
end

local function tab(v) return type(v) == "table" and v or nil end
local function str(v) return type(v) == "string" and v or nil end
local function number(v) return type(v) == "number" and v == v and v or nil end

-- the versions the version dialogs saw accepted (targets[i].tls_versions,
-- docs/facts.md), in the order tried; nil when they did not run
local function accepted_versions(tv)
  tv = tab(tv)
  if not tv or tv.status ~= "tested" or not tab(tv.versions) then return nil end
  local out = {}
  for _, v in ipairs(tv.versions) do
    if tab(v) and v.status == "accepted" and str(v.version) then out[#out + 1] = v.version end
  end
  return out
end
M.accepted_versions = accepted_versions

-- the PTR names of the target's address (targets[i].rdns), "a, b", with
-- "(not forward-confirmed)" when none resolves back; "none" when the
-- address has no PTR; nil when the gatherer did not run
local function rdns_names(r)
  r = tab(r)
  if not r or not tab(r.names) then return nil end
  local out = {}
  for _, n in ipairs(r.names) do
    if str(n) then out[#out + 1] = n end
  end
  if #out == 0 then return "none" end
  local names = table.concat(out, ", ")
  if r.confirmed ~= true then names = names .. " (not forward-confirmed)" end
  return names
end

-- what the relay test concluded, in one word: the relay check's code
-- (open, denied, accepts-any, auth-required ...), else the facts' status
local function relay_word(findings, smtp)
  for _, f in ipairs(findings) do
    if f.check == "relay" and f.code ~= "relay" and f.code:match("^relay%.") then
      return (f.code:gsub("^relay%.", ""))
    end
  end
  local r = tab(smtp and smtp.relay)
  if r and str(r.status) then return r.status == "tested" and "tested" or r.status end
  return "not reached"
end

-- how far TLS got: "ok", "failed" (the handshake), "refused" (STARTTLS
-- answered with an error), "not offered" (EHLO without STARTTLS), "not
-- reached" (the dialog stopped before EHLO)
local function tls_state(smtp)
  local tls, st, ehlo = tab(smtp.tls), tab(smtp.starttls), tab(smtp.ehlo)
  if tls then return tls.status == "ok" and "ok" or "failed" end
  if st then return "refused" end
  if ehlo and ehlo.status == "ok" then return "not offered" end
  return "not reached"
end

local function codes(list, pred)
  local out, seen = {}, {}
  for _, f in ipairs(list) do
    if pred(f) and not seen[f.code] then seen[f.code] = true; out[#out + 1] = f.code end
  end
  return out
end

local function by_worst(a, b)
  local ra, rb = M.rank(a), M.rank(b)
  if ra ~= rb then return ra > rb end
  return tostring(a.code) < tostring(b.code)
end

--- The regimes of a query's MX hosts, each once, in MX order (a list of
-- names); nil when its judgement has no regimes (saved by an older
-- version).
function M.regime_names(q)
  if type(q.regimes) ~= "table" then return nil end
  local seen, list = {}, {}
  for _, r in ipairs(q.regimes) do
    if type(r) == "table" and type(r.regime) == "string" and not seen[r.regime] then
      seen[r.regime] = true
      list[#list + 1] = r.regime
    end
  end
  return list
end

function M.query(facts, j, opts)
  opts = opts or {}
  facts = tab(facts) or {}
  j = tab(j) or { findings = {}, scores = {} }
  local findings = tab(j.findings) or {}
  local scores = tab(j.scores) or {}
  local now = number(opts.now) or number(j.now) or number(facts.finished)
  local dscore = tab(scores.domain) or {}
  local q = {
    name = str(facts.domain) or str(facts.query) or str(j.query) or "?",
    verdict = str(j.verdict) or "unknown",
    summary = str(j.summary),
    score = number(dscore.score), grade = str(dscore.grade),
    now = now, error = str(facts.error),
    regimes = tab(j.regimes), regime_of = {},
    mx_count = #(tab(facts.mx) or {}),
    domain_findings = {}, targets = {},
  }
  for _, r in ipairs(q.regimes or {}) do
    if tab(r) and str(r.mx) and str(r.regime) then q.regime_of[r.mx] = r.regime end
  end

  local per = {}
  for _, f in ipairs(findings) do
    local t = tab(f.target)
    if t and t.address then
      local k = M.tkey(t.mx, t.address)
      per[k] = per[k] or {}
      table.insert(per[k], f)
    else
      q.domain_findings[#q.domain_findings + 1] = f
    end
  end
  local score_by = {}
  for _, s in ipairs(tab(scores.targets) or {}) do
    if tab(s) then score_by[M.tkey(s.mx, s.address)] = s end
  end

  for _, t in ipairs(tab(facts.targets) or {}) do
    if tab(t) then
      local k = M.tkey(t.mx, t.address)
      local fl = per[k] or {}
      per[k] = nil
      local s = score_by[k] or {}
      local smtp = tab(t.smtp) or {}
      local tls = tab(smtp.tls) or {}
      local certs = tab(smtp.certificates) or {}
      local leaf = tab(certs[1])
      local verify = tab(smtp.verify) or {}
      local banner = tab(smtp.banner) or {}
      local na = leaf and number(leaf.not_after)
      q.targets[#q.targets + 1] = {
        mx = str(t.mx), address = str(t.address), port = number(t.port),
        preference = number(t.preference), family = str(t.family),
        score = number(s.score), grade = str(s.grade), coverage = str(s.coverage),
        status = str(smtp.status), findings = fl,
        failing_codes = codes(fl, M.failing),
        untested_codes = codes(fl, score.blocks_verdict),
        worst = M.worst_of(fl),
        regime = t.mx and q.regime_of[t.mx] or nil,
        tls_version = tls.status == "ok" and str(tls.version) or nil,
        cipher = tls.status == "ok" and str(tls.cipher) or nil,
        cipher_bits = number(tls.cipher_bits),
        tls_error = tls.status ~= nil and tls.status ~= "ok" and (str(tls.error) or str(tls.status)) or nil,
        tls_state = tls_state(smtp),
        cert = leaf,
        days_left = na and now and (na - now) / 86400 or nil,
        verify_ok = verify.ok, verify_reason = str(verify.reason),
        relay = relay_word(fl, smtp),
        banner = tab(banner.reply) and str(banner.reply.text) or nil,
        connect_ms = number(tab(smtp.connect) and smtp.connect.time_ms),
        banner_ms = number(banner.time_ms),
        handshake_ms = number(tls.handshake_ms),
        tls_versions = accepted_versions(t.tls_versions),
        rdns = rdns_names(t.rdns),
      }
    end
  end
  -- findings about targets the facts do not list stay with the domain
  for _, fl in pairs(per) do
    for _, f in ipairs(fl) do q.domain_findings[#q.domain_findings + 1] = f end
  end

  local worst, seen = {}, {}
  local all = {}
  for _, f in ipairs(findings) do all[#all + 1] = f end
  table.sort(all, by_worst)
  for _, f in ipairs(all) do
    if (M.failing(f) or score.blocks_verdict(f)) and not seen[f.code] then
      seen[f.code] = true
      worst[#worst + 1] = f
    end
  end
  q.worst = worst
  q.failing_codes = codes(all, M.failing)
  return q
end

function M.queries(facts_list, judgements, opts)
  facts_list = tab(facts_list) or {}
  judgements = tab(judgements) or {}
  local out = {}
  for i = 1, math.max(#facts_list, #judgements) do
    out[i] = M.query(facts_list[i], judgements[i], opts)
  end
  return out
end

return M
