-- Check consistency -- do all MX targets of the domain offer the same security?
--
-- What:   a sender uses whichever MX it reaches, and an attacker who can
--         block the strong ones forces the weakest. So one MX with TLS and
--         another without is a finding of its own (consistency.tls-mixed),
--         as is a trusted certificate on some targets and not on others
--         (consistency.cert-mixed: MTA-STS in enforce mode would fail on
--         those), and so are different sets of accepted TLS versions
--         (consistency.versions-mixed, TLS posture: an attacker who blocks
--         the others gets the oldest). Targets that could not be tested are
--         left out. The addresses of one MX host that present different
--         certificates or negotiate different TLS versions are
--         consistency.mx-differs (repeat/greylist, issue 9 item 6).
-- Needs:  for every target: the STARTTLS/TLS phases (see checks/util.lua
--         tls_state), targets[i].smtp.verify.{ok, name_match},
--         targets[i].tls_versions.{status, versions[j].{version, status}}.
-- Scope:  the domain (target nil); silent with fewer than two tested targets
--         or when they agree.
-- Example finding:
--   { code = "consistency.tls-mixed", severity = "warning", state = "fail",
--     message = "1 of 3 MX targets has no TLS: senders fall back to the weakest",
--     evidence = "TLS: mx1.example.org [192.0.2.10], mx1.example.org [2001:db8::10]; "
--       .. "no TLS: mx2.example.org [192.0.2.20] (STARTTLS not offered)",
--     remediation = "Configure STARTTLS identically on every MX host." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["consistency.tls-mixed"] = { severity = "warning", weight = 15,
    fix = "Configure STARTTLS on every MX host and address, backups included: senders (and attackers who block the primary) use the weakest." },
  ["consistency.cert-mixed"] = { severity = "info", weight = 5,
    fix = "Give every MX host a certificate that verifies for its name; MTA-STS and verifying senders fail on the others." },
  -- TLS posture
  ["consistency.versions-mixed"] = { severity = "info", weight = 5,
    fix = "Configure the same TLS protocol versions on every MX host and address (TLS 1.2 and 1.3): a stale node or backup MX that still accepts old versions is where a downgrade goes." },
  -- repeat/greylist (issue 9 item 6)
  ["consistency.mx-differs"] = { severity = "info", weight = 5,
    fix = "Give every address of one MX host the same certificate and TLS configuration: the addresses are one host to a sender, and a stale one is where failures hide." },
}
-- luacheck: pop

-- the accepted versions of a target whose versions were all tried to an
-- answer ("TLSv1.2 TLSv1.3"), or nil
local function accepted_versions(t)
  local tv = U.tbl(t.tls_versions)
  if not (tv and tv.status == "tested") then return nil end
  local acc = {}
  for _, v in ipairs(U.list(tv.versions)) do
    if type(v) ~= "table" or (v.status ~= "accepted" and v.status ~= "refused") then return nil end
    if v.status == "accepted" then acc[#acc + 1] = tostring(v.version) end
  end
  return #acc > 0 and table.concat(acc, " ") or "none"
end



-- repeat/greylist (issue 9 item 6): the addresses of one MX host that
-- completed a TLS handshake, compared on the leaf certificate and the
-- negotiated version: one finding per MX host where they differ
local function mx_differs(facts)
  local hosts, order = {}, {}
  for _, t in ipairs(U.list(facts.targets)) do
    local s = type(t) == "table" and U.smtp(t)
    local tls = s and U.tbl(s.tls)
    local mx = type(t) == "table" and U.str(t.mx)
    if mx and tls and tls.status == "ok" then
      if not hosts[mx] then hosts[mx] = {} order[#order + 1] = mx end
      local leaf = U.tbl(U.list(s.certificates)[1])
      table.insert(hosts[mx], { address = tostring(t.address), version = U.str(tls.version),
        cert = leaf and U.str(leaf.sha256) })
    end
  end
  local out = {}
  for _, mx in ipairs(order) do
    local list = hosts[mx]
    local what = {}
    for _, key in ipairs { "cert", "version" } do
      local seen, n = {}, 0
      for _, a in ipairs(list) do
        local v = a[key] or "-"
        if not seen[v] then seen[v] = true n = n + 1 end
      end
      if n > 1 then what[#what + 1] = key == "cert" and "certificate" or "TLS version" end
    end
    if #list > 1 and #what > 0 then
      local ev = {}
      for _, a in ipairs(list) do
        ev[#ev + 1] = ("%s: %s, %s"):format(a.address, tostring(a.version or "-"),
          a.cert and (a.cert:sub(1, 16) .. "…") or "no certificate")
      end
      out[#out + 1] = {
        code = "consistency.mx-differs", state = "fail",
        message = ("the %d addresses of %s differ in %s"):format(#list, mx, table.concat(what, " and ")),
        evidence = table.concat(ev, "; "),
      }
    end
  end
  return out
end

local function run(facts)
  local with, without, trusted, untrusted = {}, {}, {}, {}
  local by_versions, vorder = {}, {}
  for _, t in ipairs(U.list(facts.targets)) do
    if type(t) == "table" then
      local state, why = U.tls_state(t)
      local name = U.target_name(t)
      if state == "ok" then
        with[#with + 1] = name
        local acc = accepted_versions(t)
        if acc then
          if not by_versions[acc] then by_versions[acc] = {} vorder[#vorder + 1] = acc end
          table.insert(by_versions[acc], name)
        end
        local v = U.tbl(U.smtp(t).verify)
        if v then
          if v.ok == true and v.name_match ~= false then
            trusted[#trusted + 1] = name
          else
            local why_not = v.reason or (v.name_match == false and "name mismatch") or "not verified"
            untrusted[#untrusted + 1] = name .. " (" .. tostring(why_not) .. ")"
          end
        end
      elseif state == "na" or state == "failed" then
        without[#without + 1] = name .. " (" .. why .. ")"
      end
    end
  end
  local out = {}
  -- repeat/greylist: the addresses of one MX host, certificate and version
  for _, f in ipairs(mx_differs(facts)) do out[#out + 1] = f end
  local n = #with + #without
  if #with > 0 and #without > 0 then
    out[#out + 1] = {
      code = "consistency.tls-mixed", state = "fail",
      message = string.format("%d of %d MX targets %s no TLS: senders fall back to the weakest",
        #without, n, #without == 1 and "has" or "have"),
      evidence = "TLS: " .. table.concat(with, ", ") .. "; no TLS: " .. table.concat(without, ", "),
    }
  end
  if #trusted > 0 and #untrusted > 0 then
    out[#out + 1] = {
      code = "consistency.cert-mixed", state = "fail",
      message = string.format("%d of %d TLS targets present a certificate that does not verify",
        #untrusted, #trusted + #untrusted),
      evidence = "verified: " .. table.concat(trusted, ", ") .. "; not verified: " .. table.concat(untrusted, ", "),
    }
  end
  if #vorder > 1 then
    local parts, nv = {}, 0
    for _, acc in ipairs(vorder) do
      parts[#parts + 1] = acc .. ": " .. table.concat(by_versions[acc], ", ")
      nv = nv + #by_versions[acc]
    end
    out[#out + 1] = {
      code = "consistency.versions-mixed", state = "fail",
      message = string.format("the %d TLS targets accept %d different sets of TLS versions", nv, #vorder),
      evidence = table.concat(parts, "; "),
    }
  end
  return out
end

return {
  id = "consistency",
  title = "Consistency across MX hosts",
  scope = "domain",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
