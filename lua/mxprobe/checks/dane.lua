-- Check dane -- DANE for SMTP (RFC 7672, RFC 7671, RFC 6698), as a
-- DANE-aware sender (Postfix's posttls-finger, dane_host_level) meets each
-- MX host.
--
-- What:   per MX host, whether DANE applies: TLSA records whose answer is
--         DNSSEC-secure (AD) at a host whose address answers are secure;
--         a bogus answer (SERVFAIL under validation, answered with CD set)
--         for the TLSA records or the addresses makes the host unusable;
--         a resolver that does not validate (no AD anywhere in the facts,
--         though the TLSA answer carries signatures) means DANE could not
--         be tested -- never "no DANE". Per target, when DANE applies:
--         which usable record matched the served chain (DANE-EE(3): the
--         leaf; DANE-TA(2): a chain certificate, then the chain verified to
--         it and the leaf's name checked), with PKIX-TA/EE(0, 1) and
--         unknown parameters unusable (RFC 7672 §3.1.3) and only the
--         strongest digest per usage and selector counted (RFC 7671 §9, as
--         OpenSSL -- and so Postfix -- does: SHA-512 over SHA-256; exact
--         matches always count); rollover hygiene (RFC 7671 §8): the served
--         key matching only a DANE-TA record while DANE-EE records are
--         published, records that match nothing, one record and no next key.
-- Needs:  mx[i].{name, dns, tlsa}, targets[i].{mx, smtp, dane}, facts.dns.mx.
-- Scope:  each MX host (bogus addresses: the host, target {mx}); the rest
--         per target.
-- Example finding:
--   { code = "dane.mismatch", severity = "critical", state = "fail",
--     target = { mx = "mx.example.org", address = "192.0.2.10" },
--     message = "no usable TLSA record matches the served chain: DANE senders will not deliver",
--     evidence = "published: 3 1 1 4f1a…; served leaf: 3 1 1 9c0e…" }

local tlsa = require "mxprobe.gather.tlsa"
local U = require "mxprobe.checks.util"

-- luacheck: push no max line length
local CODES = {
  ["dane"] = { severity = "info", weight = 0 },
  ["dane.none"] = { severity = "info", weight = 0,
    fix = "To protect mail against downgrade and impersonation, sign the zone of the MX host with DNSSEC and publish TLSA records at _25._tcp.<mx host> (e.g. \"3 1 1\" with the SHA-256 of the server key's SubjectPublicKeyInfo, plus the next key's)." },
  ["dane.insecure"] = { severity = "info", weight = 0,
    fix = "TLSA records only count when their answer and the MX host's address answers are DNSSEC-secure: sign the zone and publish its DS in the parent." },
  ["dane.bogus"] = { severity = "critical", weight = 50,
    fix = "Fix the DNSSEC signatures of the TLSA records (re-sign the zone, check the DS and key rollover): DANE senders treat the MX as unreachable while the answer is bogus." },
  ["dane.bogus-address"] = { severity = "critical", weight = 50,
    fix = "Fix the DNSSEC signatures of the MX host's A/AAAA records (re-sign the zone, check the DS and key rollover): validating senders cannot resolve the host at all." },
  ["dane.no-validation"] = { severity = "warning", weight = 15,
    fix = "Use a validating resolver (--resolver) to test DANE: this one sets no AD bit, though the TLSA answer is signed." },
  ["dane.match"] = { severity = "ok", weight = 0 },
  ["dane.mismatch"] = { severity = "critical", weight = 50,
    fix = "Publish TLSA records that match the certificate the server presents (e.g. \"3 1 1\" + the SHA-256 of its SubjectPublicKeyInfo), or serve the certificate the records describe; keep the old record until the new key is served (RFC 7671 §8)." },
  ["dane.unusable"] = { severity = "warning", weight = 20,
    fix = "Replace PKIX-TA/PKIX-EE (usage 0/1) or malformed records by DANE-EE(3) or DANE-TA(2) records (RFC 7672 §3.1.3): with only unusable records senders encrypt but authenticate nothing." },
  ["dane.no-tls"] = { severity = "critical", weight = 50,
    fix = "Offer STARTTLS with a working handshake on every MX host that publishes TLSA records: DANE senders never deliver in clear text to it." },
  ["dane.rollover.non-primary"] = { severity = "warning", weight = 10,
    fix = "Update the DANE-EE(3) records to the key the server presents (the DANE-TA record saves delivery now, but the stale records suggest a missed rollover)." },
  ["dane.rollover.unmatched"] = { severity = "info", weight = 0,
    fix = "Nothing, when the unmatched records are the next key published ahead of a rollover (RFC 7671 §8.1); remove records of keys that are no longer used." },
  ["dane.rollover.single"] = { severity = "info", weight = 0,
    fix = "Publish the next key's TLSA record ahead of a key change (RFC 7671 §8.1), or a DANE-TA(2) record of the issuing CA beside the DANE-EE(3) one, so a rollover cannot break delivery." },
}
-- luacheck: pop

local USAGE = { [0] = "PKIX-TA", [1] = "PKIX-EE", [2] = "DANE-TA", [3] = "DANE-EE" }
local DIGEST_HEX = { [1] = 64, [2] = 128 }
local RANK = { [1] = 1, [2] = 2 }   -- digest strength (RFC 7671 §9); 0 (exact) always counts

local M = {}

-- a number as written in a record (facts read from JSON hold 3.0 for 3)
local function int(v)
  return tostring(type(v) == "number" and math.tointeger(v) or v)
end

--- "3 1 1 4f1a2b3c…" (data cut to 16 hex digits)
function M.label(r)
  local data = U.str(r.data) or ""
  if #data > 16 then data = data:sub(1, 16) .. "…" end
  return string.format("%s %s %s %s", int(r.usage), int(r.selector), int(r.mtype), data)
end

--- Why record r is unusable for SMTP (RFC 7672 §3.1.3), or nil (pure).
function M.unusable(r)
  if type(r) ~= "table" then return "not a record" end
  if r.usage == 0 or r.usage == 1 then
    return USAGE[r.usage] .. " (usage " .. int(r.usage) .. ") is unusable for SMTP"
  end
  if r.usage ~= 2 and r.usage ~= 3 then return "unknown usage " .. int(r.usage) end
  if r.selector ~= 0 and r.selector ~= 1 then return "unknown selector " .. int(r.selector) end
  if r.mtype ~= 0 and r.mtype ~= 1 and r.mtype ~= 2 then return "unknown matching type " .. int(r.mtype) end
  if r.truncated then return "data cut by the DNS codec" end
  local data = U.str(r.data) or ""
  if not data:match("^%x+$") or #data % 2 == 1 then return "data is not hex" end
  if DIGEST_HEX[r.mtype] and #data ~= DIGEST_HEX[r.mtype] then
    return string.format("%d hex digits for a %s digest", #data, r.mtype == 1 and "SHA-256" or "SHA-512")
  end
  return nil
end

--- The records a DANE client uses (pure): { used = {index...}, ignored =
-- {index -> why} }. Unusable records are ignored; of the usable ones with
-- the same usage and selector only the strongest digest counts (RFC 7671
-- §9); exact (mtype 0) records always count.
function M.select(records)
  local used, ignored, best = {}, {}, {}
  for i, r in ipairs(records) do
    local why = M.unusable(r)
    if why then
      ignored[i] = why
    elseif RANK[r.mtype] then
      local k = r.usage * 256 + r.selector
      if RANK[r.mtype] > (best[k] or 0) then best[k] = RANK[r.mtype] end
    end
  end
  for i, r in ipairs(records) do
    if not ignored[i] then
      local k = r.usage * 256 + r.selector
      if RANK[r.mtype] and RANK[r.mtype] < best[k] then
        ignored[i] = "weaker digest than the SHA-512 record of the same usage and selector (RFC 7671 §9)"
      else
        used[#used + 1] = i
      end
    end
  end
  return { used = used, ignored = ignored }
end

local function any_ad(facts)
  local d = U.tbl(facts.dns)
  if d and U.tbl(d.mx) and d.mx.ad == true then return true end
  for _, mx in ipairs(U.list(facts.mx)) do
    local md = U.mx_dns(mx)
    for _, q in ipairs { md.a, md.aaaa } do
      if U.tbl(q) and q.ad == true then return true end
    end
    for _, q in ipairs(U.list(U.tbl(mx.tlsa) and mx.tlsa.queries)) do
      if U.tbl(q) and q.ad == true then return true end
    end
  end
  return false
end

-- the CD query that proves a SERVFAIL bogus: the one for name/type that
-- came back with an answer
local function cd_proof(tl, name, qtype)
  for _, q in ipairs(U.list(tl.cd_queries)) do
    if U.tbl(q) and q.name == name and q.type == qtype
      and (q.status == "ok" or q.status == "nodata" or q.status == "nxdomain") then
      return q
    end
  end
  return nil
end

local REJECTED = " -- the resolver rejected the signatures"
local BOGUS = " is bogus (DNSSEC validation fails): "

local function answer_text(q)
  if not q then return "?" end
  local n = #U.list(q.records)
  local s = tostring(q.rcode or q.status)
  if q.status == "ok" then s = s .. string.format(", %d record%s", n, n == 1 and "" or "s") end
  if q.ad == true then s = s .. ", AD" end
  return s
end

--- The DANE state of one MX entry (pure): state, details.
-- state: "absent" (no TLSA facts), "skipped", "bogus-address", "bogus",
-- "error", "none", "no-validation", "insecure", "unusable", "usable".
function M.state(mx, facts)
  local tl = U.tbl(mx.tlsa)
  if not tl then return "absent", {} end
  local d = U.mx_dns(mx)
  for _, q in ipairs { d.a, d.aaaa } do
    if U.tbl(q) and q.status == "servfail" then
      local proof = cd_proof(tl, q.name, q.type)
      if proof then
        return "bogus-address", { query = q, proof = proof,
          evidence = string.format("%s %s: SERVFAIL; with checking disabled (CD): %s",
            tostring(q.name), tostring(q.type), answer_text(proof)) .. REJECTED }
      end
    end
  end
  if tl.skipped then return "skipped", { why = tl.skipped } end
  local q = tlsa.answer_query(tl)
  if not q then return "error", { why = "no TLSA query" } end
  if q.status == "servfail" then
    local proof = cd_proof(tl, q.name, "TLSA")
    if proof then
      return "bogus", { query = q, proof = proof,
        evidence = string.format("%s TLSA: SERVFAIL; with checking disabled (CD): %s",
          tostring(q.name), answer_text(proof)) .. REJECTED }
    end
  end
  if q.status ~= "ok" and q.status ~= "nodata" and q.status ~= "nxdomain" then
    return "error", { query = q, why = string.format("the TLSA query %s failed (%s)", tostring(q.name),
      tostring(q.error or q.status)) }
  end
  local records = tlsa.records(tl)
  if #records == 0 then return "none", { query = q, queries = tl.queries } end
  local info = { query = q, records = records, base = tl.base_domain }
  if q.ad ~= true and q.signed == true and not any_ad(facts) then return "no-validation", info end
  if q.ad ~= true then
    info.why = "the TLSA answer is not DNSSEC-secure (no AD)"
    return "insecure", info
  end
  if not tlsa.addresses_secure(d) then
    info.why = "the TLSA answer is secure but the host's address answers are not (no AD)"
    return "insecure", info
  end
  info.selection = M.select(records)
  if #info.selection.used == 0 then return "unusable", info end
  return "usable", info
end

local function published(records, sel)
  local out = {}
  for _, i in ipairs(sel.used) do out[#out + 1] = M.label(records[i]) end
  return table.concat(out, ", ")
end

local function ignored_text(records, sel)
  local out = {}
  for i, why in pairs(sel.ignored) do out[#out + 1] = { i = i, s = M.label(records[i]) .. " (" .. why .. ")" } end
  table.sort(out, function(a, b) return a.i < b.i end)
  local s = {}
  for _, e in ipairs(out) do s[#s + 1] = e.s end
  return table.concat(s, "; ")
end

--- Which used records authenticate the chain of target t (pure): list of
-- { record = i, depth = d }, and the failed DANE-TA attempts as text.
function M.matches(t, records, sel)
  local dane = U.tbl(t.dane) or {}
  local used = {}
  for _, i in ipairs(sel.used) do used[i] = true end
  local ta_by_depth = {}
  for _, v in ipairs(U.list(dane.ta)) do
    if U.tbl(v) and U.num(v.depth) then ta_by_depth[v.depth] = v end
  end
  local ok, failed, seen = {}, {}, {}
  for _, m in ipairs(U.list(dane.matches)) do
    local r = U.tbl(m) and records[m.record]
    if r and used[m.record] then
      if r.usage == 3 and m.depth == 0 then
        ok[#ok + 1] = { record = m.record, depth = 0 }
      elseif r.usage == 2 then
        local v = ta_by_depth[m.depth]
        if v and v.ok == true and v.name_match == true then
          ok[#ok + 1] = { record = m.record, depth = m.depth, name = v.name }
        elseif not seen[m.depth] then
          seen[m.depth] = true
          local why = v and (v.ok ~= true and ("the chain does not verify to it: " .. tostring(v.reason or "?")
            .. (U.str(v.detail) and (" (" .. v.detail .. ")") or ""))
            or ("the leaf does not match the names " .. table.concat(U.list(dane.names), ", "))) or "not verified"
          failed[#failed + 1] = string.format("%s matches the certificate at depth %s but %s",
            M.label(r), int(m.depth), why)
        end
      end
    end
  end
  return ok, failed
end

local function served(t)
  local leaf = U.tbl(U.list(U.smtp(t).certificates)[1])
  if not leaf then return "served: no certificate decoded" end
  local out = "served leaf: 3 1 1 " .. tostring(leaf.spki_sha256 or "?") .. " / 3 0 1 " .. tostring(leaf.sha256 or "?")
  if U.str(leaf.subject_cn) then out = out .. " (CN " .. leaf.subject_cn .. ")" end
  return out
end

local function run_target(t, st, info)
  local F = U.finding
  local owner = info.base and tlsa.owner(info.base) or "_25._tcp." .. tostring(t.mx)
  if st == "absent" or st == "skipped" then
    return { F("dane", "na", t, "no TLSA lookup for this host") }
  elseif st == "error" then
    return { F("dane", "untested", t, "not tested: " .. tostring(info.why)) }
  elseif st == "none" then
    local asked = {}
    for _, q in ipairs(U.list(info.queries)) do asked[#asked + 1] = tostring(q.name) end
    return { F("dane.none", "na", t, string.format("no TLSA records at %s: DANE not published (%s)",
      #asked > 0 and table.concat(asked, " nor ") or tlsa.owner(t.mx),
      info.query and info.query.ad == true and "secure denial" or "insecure answer")) }
  elseif st == "no-validation" then
    return { F("dane.no-validation", "untested", t,
      "not tested: the resolver does not validate (no AD on any answer), though the TLSA records at "
        .. owner .. " are signed", answer_text(info.query)) }
  elseif st == "insecure" then
    return { F("dane.insecure", "na", t, string.format("TLSA records at %s, but DANE does not apply: %s",
      owner, info.why), answer_text(info.query)) }
  elseif st == "bogus" then
    return { F("dane.bogus", "fail", t, "the TLSA answer" .. BOGUS .. "DANE senders defer mail to this MX",
      info.evidence) }
  end
  -- DANE applies: TLS is mandatory
  local tstate, why = U.tls_state(t)
  local out = {}
  if tstate == "untested" then
    return { F("dane", "untested", t, "not tested: " .. tostring(why)) }
  elseif tstate ~= "ok" then
    return { F("dane.no-tls", "fail", t, "DANE applies (TLSA at " .. owner .. ") but no TLS session: " .. tostring(why)
      .. ": DANE senders will not deliver") }
  end
  local records, sel = info.records, info.selection
  if st == "unusable" then
    return { F("dane.unusable", "fail", t, string.format(
      "all %d TLSA records at %s are unusable for SMTP: senders must use TLS but authenticate nothing",
      #records, owner), ignored_text(records, sel)) }
  end
  local dane = U.tbl(t.dane)
  if not dane or dane.status ~= "ok" then
    local e = dane and U.str(dane.error) or "the chain was not matched (no chain captured)"
    return { F("dane", "untested", t, "not tested: " .. e) }
  end
  local ok, failed = M.matches(t, records, sel)
  local ev_extra = {}
  if next(sel.ignored) then ev_extra[#ev_extra + 1] = "ignored: " .. ignored_text(records, sel) end
  for _, s in ipairs(failed) do ev_extra[#ev_extra + 1] = s end
  local extra = #ev_extra > 0 and ("; " .. table.concat(ev_extra, "; ")) or ""
  if #ok == 0 then
    out[1] = F("dane.mismatch", "fail", t,
      "no usable TLSA record at " .. owner .. " matches the served chain: DANE senders will not deliver",
      "published: " .. published(records, sel) .. "; " .. served(t) .. extra)
    return out
  end
  local names, matched = {}, {}
  for _, m in ipairs(ok) do
    if not matched[m.record] then
      matched[m.record] = true
      local r = records[m.record]
      names[#names + 1] = string.format("%s (%s, %s)", M.label(r), USAGE[r.usage],
        m.depth == 0 and "the leaf" or ("chain certificate at depth " .. int(m.depth)
          .. (m.name and (", name " .. m.name) or "")))
    end
  end
  out[1] = F("dane.match", "pass", t, "the served chain matches " .. table.concat(names, "; "),
    "TLSA at " .. owner .. ": " .. published(records, sel) .. extra)
  -- rollover hygiene (RFC 7671 §8)
  local ee_used, ee_matched = false, false
  local unmatched = {}
  for _, i in ipairs(sel.used) do
    if records[i].usage == 3 then
      ee_used = true
      if matched[i] then ee_matched = true end
    end
    if not matched[i] then unmatched[#unmatched + 1] = M.label(records[i]) end
  end
  if ee_used and not ee_matched then
    out[#out + 1] = F("dane.rollover.non-primary", "fail", t,
      "the served key matches only the DANE-TA record; no DANE-EE(3) record matches it (a missed key rollover?)",
      "unmatched: " .. table.concat(unmatched, ", "))
  elseif #unmatched > 0 then
    out[#out + 1] = F("dane.rollover.unmatched", "fail", t, string.format(
      "%d of %d TLSA records match nothing (a next key published ahead, or stale records)", #unmatched, #sel.used),
      "unmatched: " .. table.concat(unmatched, ", "))
  end
  if #sel.used == 1 then
    out[#out + 1] = F("dane.rollover.single", "fail", t,
      "one TLSA record and no next key published: a key change breaks delivery until DNS catches up",
      published(records, sel))
  end
  return out
end

local function run(facts)
  local out = {}
  for _, mx in ipairs(U.list(facts.mx)) do
    if type(mx) == "table" and U.str(mx.name) then
      local st, info = M.state(mx, facts)
      local targets = {}
      for _, t in ipairs(U.list(facts.targets)) do
        if type(t) == "table" and t.mx == mx.name then targets[#targets + 1] = t end
      end
      if st == "bogus-address" then
        out[#out + 1] = { code = "dane.bogus-address", state = "fail", target = { mx = mx.name },
          message = "the address records of " .. mx.name .. " are bogus (DNSSEC validation fails): "
            .. "validating senders cannot reach it",
          evidence = info.evidence }
      elseif #targets == 0 and st == "bogus" then
        out[#out + 1] = { code = "dane.bogus", state = "fail", target = { mx = mx.name },
          message = "the TLSA answer of " .. mx.name .. BOGUS .. "DANE senders defer mail to it",
          evidence = info.evidence }
      else
        for _, t in ipairs(targets) do
          for _, f in ipairs(run_target(t, st, info)) do out[#out + 1] = f end
        end
      end
    end
  end
  return out
end

return {
  id = "dane",
  title = "DANE for SMTP (RFC 7672)",
  scope = "target",
  requires = { "targets", "mx" },
  codes = CODES,
  run = run,
  -- pure helpers, shared with mxprobe.regime
  state = M.state, select = M.select, unusable = M.unusable, matches = M.matches, label = M.label,
}
