-- Check mta_sts -- what a sending server that implements MTA-STS (RFC 8461)
-- makes of the domain: is a policy published and does it apply, and would
-- each MX pass it.
--
-- What:   the _mta-sts TXT record (exactly one "v=STSv1" record with a
--         valid id, §3.1), the policy fetch (HTTPS with a certificate valid
--         for mta-sts.<domain>, status 200, no redirect, text/plain, at most
--         64 KiB, §3.3), the policy (§3.2); then, when a policy applies,
--         every MX host against its mx patterns (§4.1) and every MX target's
--         TLS (STARTTLS, PKIX and the name of the MX host, §4.2): in enforce
--         mode a failure is a delivery failure (critical), in testing mode
--         a report (warning), in none mode nothing is enforced (info).
-- Needs:  facts.kind, facts.mta_sts (gatherer mta_sts), facts.mx[i].name,
--         facts.targets[i].{mx, address, smtp.{starttls, tls, verify}}.
-- Scope:  the domain (target nil) and each MX host (target = {mx}; the
--         TLS of all its addresses in one finding).
-- Example finding:
--   { code = "mta_sts.mx-not-listed", severity = "critical", state = "fail",
--     target = { mx = "mx2.example.org" },
--     message = "MX mx2.example.org is not covered by the enforce policy: senders
--                that implement MTA-STS will not deliver to it",
--     evidence = "policy mx: mx1.example.org, *.mail.example.org" }

local U = require "mxprobe.checks.util"
local G = require "mxprobe.gather.mta_sts"

-- luacheck: push no max line length
local FETCH_FIX = "Serve the policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt: a certificate valid for mta-sts.DOMAIN from a public CA, status 200 without redirects, Content-Type text/plain, at most 64 KiB (RFC 8461 §3.3)."
local CODES = {
  ["mta_sts"] = { severity = "info", weight = 0 },
  ["mta_sts.ok"] = { severity = "ok", weight = 0 },
  ["mta_sts.none"] = { severity = "info", weight = 0,
    fix = "Consider publishing an MTA-STS policy (RFC 8461) so that senders refuse to deliver over unauthenticated TLS." },
  ["mta_sts.txt-dns-error"] = { severity = "warning", weight = 5,
    fix = "Check the domain's name servers: the _mta-sts TXT query failed, so senders cannot learn whether a policy exists." },
  ["mta_sts.txt-several"] = { severity = "warning", weight = 15,
    fix = "Publish exactly one TXT record starting with v=STSv1 at _mta-sts.DOMAIN: with several, senders act as if there were no policy (RFC 8461 §3.1)." },
  ["mta_sts.txt-invalid"] = { severity = "warning", weight = 15,
    fix = "Fix the _mta-sts TXT record: \"v=STSv1; id=ID\" with an id of 1 to 32 letters and digits (RFC 8461 §3.1)." },
  ["mta_sts.policy-without-txt"] = { severity = "warning", weight = 10,
    fix = "Publish the TXT record \"v=STSv1; id=ID\" at _mta-sts.DOMAIN: without it senders never fetch the policy (RFC 8461 §3.1)." },
  ["mta_sts.fetch-no-address"] = { severity = "warning", weight = 15,
    fix = "Give mta-sts.DOMAIN an address and serve the policy there, or remove the _mta-sts TXT record." },
  ["mta_sts.fetch-failed"] = { severity = "warning", weight = 15, fix = FETCH_FIX },
  ["mta_sts.fetch-timeout"] = { severity = "warning", weight = 15, fix = FETCH_FIX },
  ["mta_sts.fetch-tls"] = { severity = "warning", weight = 15, fix = FETCH_FIX },
  ["mta_sts.fetch-untrusted"] = { severity = "warning", weight = 15,
    fix = "Serve mta-sts.DOMAIN with a certificate from a public CA that names mta-sts.DOMAIN and is in date; senders validate it (RFC 8461 §3.3)." },
  ["mta_sts.fetch-status"] = { severity = "warning", weight = 15, fix = FETCH_FIX },
  ["mta_sts.fetch-redirect"] = { severity = "warning", weight = 15,
    fix = "Serve the policy itself at https://mta-sts.DOMAIN/.well-known/mta-sts.txt: senders do not follow redirects (RFC 8461 §3.3)." },
  ["mta_sts.fetch-content-type"] = { severity = "warning", weight = 15,
    fix = "Serve the policy with Content-Type: text/plain (RFC 8461 §3.2)." },
  ["mta_sts.fetch-too-large"] = { severity = "warning", weight = 15,
    fix = "Keep the policy under 64 KiB (RFC 8461 §3.3)." },
  ["mta_sts.policy-version"] = { severity = "warning", weight = 15,
    fix = "Start the policy with the line \"version: STSv1\" (RFC 8461 §3.2)." },
  ["mta_sts.policy-mode"] = { severity = "warning", weight = 15,
    fix = "Give the policy one \"mode:\" line of enforce, testing or none (RFC 8461 §3.2)." },
  ["mta_sts.policy-max-age"] = { severity = "warning", weight = 15,
    fix = "Give the policy a \"max_age:\" line of a number of seconds, at most 31557600 (RFC 8461 §3.2)." },
  ["mta_sts.policy-mx"] = { severity = "warning", weight = 15,
    fix = "List every MX host in the policy, one \"mx:\" line each, as a host name or \"*.\" and a host name (RFC 8461 §3.2)." },
  ["mta_sts.mx-ok"] = { severity = "ok", weight = 0 },
  ["mta_sts.mx-not-listed"] = { severity = "critical", weight = 60,
    fix = "Add the MX host to the policy's mx lines (or publish the policy in testing mode until it does): in enforce mode senders refuse to deliver to an MX the policy does not list (RFC 8461 §4.1)." },
  ["mta_sts.mx-not-listed-testing"] = { severity = "warning", weight = 15,
    fix = "Add the MX host to the policy's mx lines before switching to enforce mode: senders report the mismatch now and will refuse to deliver then (RFC 8461 §4.1)." },
  ["mta_sts.mx-not-listed-none"] = { severity = "info", weight = 0,
    fix = "Nothing is enforced in mode none; list the MX host before publishing testing or enforce." },
  ["mta_sts.mx-tls"] = { severity = "critical", weight = 60,
    fix = "Give the MX host STARTTLS with a certificate from a public CA that names the MX host and is in date: in enforce mode senders refuse to deliver otherwise (RFC 8461 §4.2)." },
  ["mta_sts.mx-tls-testing"] = { severity = "warning", weight = 15,
    fix = "Give the MX host STARTTLS with a certificate from a public CA that names the MX host and is in date before switching to enforce mode (RFC 8461 §4.2)." },
}
-- luacheck: pop

local FETCH_CODE = {
  timeout = "mta_sts.fetch-timeout", tls = "mta_sts.fetch-tls", untrusted = "mta_sts.fetch-untrusted",
  ["no-address"] = "mta_sts.fetch-no-address", ["too-long"] = "mta_sts.fetch-too-large",
}

local function header(http, name)
  for _, h in ipairs(U.list(http.headers)) do
    if type(h) == "table" and h.name == name then return U.str(h.value) end
  end
  return nil
end

-- the finding of a fetch that did not deliver a policy, or nil
local function fetch_problem(fetch, host)
  local url = U.str(fetch.url) or ("https://" .. host .. G.PATH)
  if fetch.status ~= "ok" then
    local code = FETCH_CODE[fetch.status] or "mta_sts.fetch-failed"
    return { code = code, state = "fail",
      message = string.format("the MTA-STS policy could not be fetched from %s: %s", url,
        U.cut(U.str(fetch.error) or tostring(fetch.status), 200, "…")),
      evidence = U.str(fetch.error) or tostring(fetch.status) }
  end
  local http = U.tbl(fetch.http) or {}
  local status = U.num(http.status)
  local line = string.format("HTTP %s %s", tostring(status), U.str(http.reason) or "")
  if status and status >= 300 and status < 400 then
    local loc = header(http, "location")
    return { code = "mta_sts.fetch-redirect", state = "fail",
      message = string.format("%s answers with a redirect (%d), which senders do not follow", url, status),
      evidence = line .. (loc and ("; Location: " .. loc) or "") }
  end
  if status ~= 200 then
    return { code = "mta_sts.fetch-status", state = "fail",
      message = string.format("%s answers %s, not 200", url, tostring(status)), evidence = line }
  end
  local mt = G.media_type(http.content_type)
  if mt ~= "text/plain" then
    return { code = "mta_sts.fetch-content-type", state = "fail",
      message = string.format("%s is served as %s, not text/plain", url,
        U.str(http.content_type) or "(no Content-Type)"),
      evidence = "Content-Type: " .. (U.str(http.content_type) or "(none)") }
  end
  return nil
end

local PARSE_CODE = { version = "mta_sts.policy-version", mode = "mta_sts.policy-mode",
  max_age = "mta_sts.policy-max-age", mx = "mta_sts.policy-mx" }

local function parse_findings(parsed, out)
  local by_code, order = {}, {}
  for _, e in ipairs(U.list(parsed.errors)) do
    local code = type(e) == "table" and PARSE_CODE[e.kind]
    if code then
      if not by_code[code] then by_code[code] = {}; order[#order + 1] = code end
      table.insert(by_code[code], U.str(e.message) or "?")
    end
  end
  for _, code in ipairs(order) do
    local msgs = by_code[code]
    out[#out + 1] = { code = code, state = "fail",
      message = "the MTA-STS policy is invalid: " .. U.cut(table.concat(msgs, "; "), 300, "…"),
      evidence = table.concat(msgs, "; ") }
  end
end

local SUFFIX = { enforce = "", testing = "-testing", none = "-none" }

-- the TLS state of a target as a sender under MTA-STS sees it: ok, or
-- false and why, or nil (untested: the dialog never got that far)
local function tls_verdict(t)
  local s = U.smtp(t)
  local state, why = U.tls_state(t)
  if state == "na" or state == "failed" then return false, tostring(why) end
  if state ~= "ok" then return nil end
  local v = U.tbl(s.verify)
  if not v then return false, "no certificate could be verified" end
  if v.ok ~= true then
    return false, "certificate does not verify: " .. tostring(v.detail or v.reason or "?")
  end
  if v.name_match == false then
    return false, "certificate does not name " .. tostring(v.name or t.mx)
  end
  return true
end

-- per MX host: covered by a pattern? and the TLS of each of its targets
local function mx_findings(facts, policy, out)
  local mode = policy.mode
  local patterns = U.list(policy.mx)
  local listed = {}
  for _, p in ipairs(patterns) do listed[#listed + 1] = tostring(p) end
  local evidence = "policy mode " .. tostring(mode) .. ", mx: " .. U.cut(table.concat(listed, ", "), 400, "…")
  local targets = {}
  for _, t in ipairs(U.list(facts.targets)) do
    if type(t) == "table" and U.str(t.mx) then
      targets[t.mx] = targets[t.mx] or {}
      table.insert(targets[t.mx], t)
    end
  end
  for _, mx in ipairs(U.list(facts.mx)) do
    local name = U.str(type(mx) == "table" and mx.name)
    if name then
      local ref = { mx = name }
      if not G.covered(patterns, name) then
        out[#out + 1] = { code = "mta_sts.mx-not-listed" .. SUFFIX[mode], state = "fail", target = ref,
          message = string.format("MX %s is not covered by the %s policy%s", name, mode,
            mode == "enforce" and ": senders that implement MTA-STS will not deliver to it"
            or mode == "testing" and ": senders report it (and would refuse it in enforce mode)"
            or " (mode none: nothing is enforced)"),
          evidence = evidence }
      else
        local bad, good = {}, 0
        for _, t in ipairs(targets[name] or {}) do
          local ok, why = tls_verdict(t)
          if ok == false then
            bad[#bad + 1] = string.format("%s: %s", tostring(t.address), why)
          elseif ok == true then
            good = good + 1
          end
        end
        if #bad > 0 and mode ~= "none" then
          out[#out + 1] = { code = "mta_sts.mx-tls" .. SUFFIX[mode], state = "fail", target = ref,
            message = string.format("MX %s fails the %s policy's TLS requirement: %s", name, mode,
              U.cut(table.concat(bad, "; "), 300, "…")),
            evidence = table.concat(bad, "; ") }
        elseif #bad == 0 and good > 0 then
          out[#out + 1] = { code = "mta_sts.mx-ok", state = "pass", target = ref,
            message = string.format("MX %s is covered by the %s policy and its certificate verifies", name, mode) }
        end
      end
    end
  end
end

local function run(facts)
  if facts.kind ~= "domain" then
    return { { code = "mta_sts", state = "na",
      message = "MTA-STS is a property of a domain; a host or address was probed" } }
  end
  local m = U.tbl(facts.mta_sts)
  if not m then
    return { { code = "mta_sts", state = "untested", message = "MTA-STS was not gathered (facts without mta_sts)" } }
  end
  local out = {}
  local domain = U.str(facts.domain) or "?"
  local host = U.str(m.host) or ("mta-sts." .. domain)
  local ts = m.txt_status
  local records = U.list(m.records)
  local fetch = U.tbl(m.fetch)
  local policy = U.tbl(m.policy)
  local parsed = U.tbl(m.parsed)
  local delivered = fetch and G.fetched(fetch)

  if ts == "dns-error" then
    local q = U.tbl(m.txt) or {}
    out[#out + 1] = { code = "mta_sts.txt-dns-error", state = "untested",
      message = string.format("the _mta-sts.%s TXT query failed (%s)", domain, tostring(q.status)),
      evidence = U.str(q.error) or tostring(q.status) }
    -- whether a policy is published is unknown: the fetch proves nothing
    return out
  elseif ts == "several" then
    local texts = {}
    for _, r in ipairs(records) do texts[#texts + 1] = tostring(type(r) == "table" and r.text) end
    out[#out + 1] = { code = "mta_sts.txt-several", state = "fail",
      message = string.format("_mta-sts.%s has %d v=STSv1 records: senders act as if there were no policy",
        domain, #records),
      evidence = U.cut(table.concat(texts, " | "), 600, "…") }
  elseif ts == "invalid" then
    local r = U.tbl(records[1]) or {}
    out[#out + 1] = { code = "mta_sts.txt-invalid", state = "fail",
      message = string.format("the _mta-sts.%s record is invalid: %s", domain, tostring(r.error)),
      evidence = U.str(r.text) }
  elseif ts == "none" then
    if delivered and parsed and parsed.valid then
      out[#out + 1] = { code = "mta_sts.policy-without-txt", state = "fail",
        message = string.format("%s serves an MTA-STS policy, but _mta-sts.%s has no v=STSv1 record: "
          .. "senders never fetch it", host, domain),
        evidence = "policy mode " .. tostring(parsed.mode) }
    else
      out[#out + 1] = { code = "mta_sts.none", state = "na",
        message = "no MTA-STS policy is published (no _mta-sts TXT record)" }
    end
    return out
  end

  -- a record was published (or could not be read): the policy itself
  if fetch then
    local problem = fetch_problem(fetch, host)
    if problem then out[#out + 1] = problem end
  end
  if delivered and parsed then parse_findings(parsed, out) end

  if policy then
    local n = #U.list(policy.mx)
    out[#out + 1] = { code = "mta_sts.ok", state = "pass",
      message = string.format("MTA-STS policy in %s mode, id %s, max_age %s, %d mx pattern%s",
        tostring(policy.mode), tostring(policy.id), tostring(policy.max_age), n, n == 1 and "" or "s") }
    if SUFFIX[policy.mode] then mx_findings(facts, policy, out) end
  end
  return out
end

return {
  id = "mta_sts",
  title = "MTA-STS (RFC 8461)",
  scope = "domain",
  requires = { "mta_sts", "mx", "targets" },
  codes = CODES,
  run = run,
}
