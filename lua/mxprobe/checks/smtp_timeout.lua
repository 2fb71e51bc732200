-- Check smtp.timeout -- did a deadline cut the dialog after the greeting?
--
-- What:   a reply, the STARTTLS answer or the TLS handshake that did not
--         come in time (per-phase --timeout or the whole --probe-timeout).
--         The steps after it could not be tested: a server whose handshake
--         stalls is not "OK" just because nothing failed. Connect and
--         greeting timeouts have their own codes (tcp.timeout,
--         smtp.banner.missing) and are not repeated here.
-- Needs:  targets[i].smtp.{status, stopped_at}, and the phase named there
--         ({status, error}): smtp[stopped_at] or smtp.relay[stopped_at].
-- Scope:  each target; silent when no phase timed out after the greeting.
-- Example finding:
--   { code = "smtp.timeout", severity = "warning", state = "untested",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "timed out in the TLS handshake: the rest could not be tested",
--     evidence = "TLS handshake timed out" }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["smtp.timeout"] = { severity = "warning", weight = 15,
    fix = "Test again with a longer --timeout. If it persists, the server stalls at that step for every sender: check its load, its TLS library and anything between it and the network (a middlebox that drops STARTTLS traffic)." },
}
-- luacheck: pop

local BEFORE_DIALOG = { connect = true, banner = true }

local function run(facts)
  return U.each_target(facts, function(t)
    local s = U.smtp(t)
    local at = U.str(s.stopped_at)
    if s.status ~= "timeout" or BEFORE_DIALOG[at] then return nil end
    -- one phase vocabulary: stopped_at is the key of the phase that stopped,
    -- in the dialog (tls, ehlo_tls, quit ...) or in the relay test
    -- (mail_from, rcpt_external, rcpt_control, rset)
    local phase = at and (U.tbl(s[at]) or (U.tbl(s.relay) and U.tbl(s.relay[at])))
    return { U.finding("smtp.timeout", "untested", t,
      "timed out " .. (at == "tls" and "in the TLS handshake" or ("at " .. U.phase_name(at or "?")))
        .. ": the rest could not be tested",
      phase and U.str(phase.error) or nil) }
  end)
end

return {
  id = "smtp.timeout",
  title = "Timeouts inside the dialog",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
