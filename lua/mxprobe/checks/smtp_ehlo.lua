-- Check smtp.ehlo -- does the server take EHLO (RFC 5321 §4.1.1.1)?
--
-- What:   EHLO answered 250 (ESMTP, extensions listed); EHLO refused but
--         HELO accepted (plain SMTP only: no STARTTLS possible); both
--         refused, or the connection dropped in answer. A 421 or another
--         4xx is "could not test" (smtp.throttle.421 tells about the 421).
-- Needs:  targets[i].smtp.ehlo.{status, command, reply, ehlo_reply, error},
--         and the connect/banner phases before it.
-- Scope:  each target.
-- Example finding:
--   { code = "smtp.ehlo.helo-only", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "EHLO refused (500), HELO accepted: no ESMTP, no STARTTLS",
--     evidence = "EHLO: 500 5.5.1 Command unrecognized / HELO: 250 mx1.example.org",
--     remediation = "Enable ESMTP in the MTA or the firewall's SMTP fixup." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["smtp.ehlo"] = { severity = "info", weight = 0 },
  ["smtp.ehlo.ok"] = { severity = "ok", weight = 0 },
  ["smtp.ehlo.rejected"] = { severity = "critical", weight = 60,
    fix = "Check the MTA's HELO/EHLO restrictions (Postfix: smtpd_helo_restrictions) and the --ehlo-name the probe used; a server that refuses EHLO and HELO accepts no mail." },
  ["smtp.ehlo.helo-only"] = { severity = "warning", weight = 50,
    fix = "Enable ESMTP: without EHLO there is no STARTTLS, SIZE or 8BITMIME. Old firewalls' \"SMTP fixup\"/\"mailguard\" features often cause this; turn them off." },
}
-- luacheck: pop

local function run(facts)
  return U.each_target(facts, function(t)
    local s = U.smtp(t)
    local c, b = U.tbl(s.connect), U.tbl(s.banner)
    if not (c and c.status == "ok" and b and b.status == "ok" and U.code(b.reply) == 220) then
      local _, why = U.session_blocked(t)
      return { U.finding("smtp.ehlo", "untested", t, "not tested: " .. (why or "no usable greeting")) }
    end
    local e = U.tbl(s.ehlo)
    if not e then
      return { U.finding("smtp.ehlo", "untested", t, "not tested: the dialog ended before EHLO") }
    end
    local cmd = e.command == "HELO" and "HELO" or "EHLO"
    local line = U.reply_line(e.reply)
    local ev = line
    if U.tbl(e.ehlo_reply) then
      ev = "EHLO: " .. U.reply_line(e.ehlo_reply) .. (line ~= "" and (" / HELO: " .. line) or "")
    end
    if e.status == "timeout" then
      return { U.finding("smtp.ehlo", "untested", t, "not tested: no answer to " .. cmd .. " in time", ev) }
    elseif e.status ~= "ok" then
      return { U.finding("smtp.ehlo.rejected", "fail", t,
        cmd .. " failed: " .. tostring(e.status) .. (U.str(e.error) and (" (" .. e.error .. ")") or ""), ev) }
    end
    local code = U.code(e.reply)
    local ecode = U.code(e.ehlo_reply)
    if code == 421 or ecode == 421 then
      return { U.finding("smtp.ehlo", "untested", t, "not tested: throttled (421) at " .. cmd, ev) }
    elseif U.class(code) == 4 then
      return { U.finding("smtp.ehlo", "untested", t,
        "not tested: " .. cmd .. " temporarily refused (" .. code .. ")", ev) }
    elseif U.class(code) ~= 2 then
      return { U.finding("smtp.ehlo.rejected", "fail", t,
        cmd .. " refused (" .. tostring(code or "no code") .. ")" ..
        (cmd == "HELO" and ", after EHLO was refused too" or ""), ev) }
    end
    if cmd == "HELO" then
      return { U.finding("smtp.ehlo.helo-only", "fail", t,
        "EHLO refused (" .. tostring(ecode or "?") .. "), HELO accepted: no ESMTP, so no STARTTLS", ev) }
    end
    local n = 0
    for _ in pairs(U.tbl(e.extensions) or {}) do n = n + 1 end
    return { U.finding("smtp.ehlo.ok", "pass", t,
      string.format("EHLO accepted, %d extension%s", n, n == 1 and "" or "s"), U.reply_line(e.reply)) }
  end)
end

return {
  id = "smtp.ehlo",
  title = "EHLO",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
