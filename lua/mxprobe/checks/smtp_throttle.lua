-- Check smtp.throttle -- did the server answer 421 anywhere in the dialog?
--
-- What:   421 ("service not available, closing channel") at the greeting,
--         EHLO, STARTTLS, MAIL, RCPT or RSET. It means the server is busy or
--         rate-limits this client: the steps after it could not be tested.
--         It is reported once per target, as "could not test" -- never as a
--         failure, and a 421 at STARTTLS is never reported as "no STARTTLS"
--         (the STARTTLS and TLS checks report themselves untested).
-- Needs:  the replies of targets[i].banner, ehlo (reply and ehlo_reply),
--         starttls, ehlo_tls, relay.{mail_from, rcpt_external, rcpt_control,
--         rset}.
-- Scope:  each target; silent when there was no 421.
-- Example finding:
--   { code = "smtp.throttle.421", severity = "warning", state = "untested",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "throttled (421) at STARTTLS: the rest could not be tested",
--     evidence = "421 4.7.0 mx1.example.org Error: too many connections from 198.51.100.7" }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["smtp.throttle.421"] = { severity = "warning", weight = 15, alias = "smtp.throttled",
    fix = "Test again later or from another address. If it persists, check the MTA's connection and rate limits (Postfix: smtpd_client_connection_rate_limit, anvil) and its load." },
}
-- luacheck: pop

local function run(facts)
  return U.each_target(facts, function(t)
    local phase, reply = U.throttled(t)
    if not phase then return nil end
    return { U.finding("smtp.throttle.421", "untested", t,
      "throttled (421) at " .. U.phase_name(phase) .. ": the rest could not be tested",
      U.reply_line(reply)) }
  end)
end

return {
  id = "smtp.throttle",
  title = "Throttling (421)",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
