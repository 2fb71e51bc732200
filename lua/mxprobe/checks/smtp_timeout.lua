-- Check smtp.timeout -- did a deadline cut the dialog after the greeting?
--
-- What:   a reply, the STARTTLS answer or the TLS handshake that did not
--         come in time (per-phase --timeout or the whole --probe-timeout).
--         The steps after it could not be tested: a server whose handshake
--         stalls is not "OK" just because nothing failed. Connect and
--         greeting timeouts have their own codes (tcp.timeout,
--         smtp.banner.missing) and are not repeated here.
-- Needs:  targets[i].status, stopped_at, and the phase named there
--         ({status, error}).
-- Scope:  each target; silent when no phase timed out after the greeting.
-- Example finding:
--   { code = "smtp.timeout", severity = "warning", state = "untested",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "timed out in the TLS handshake: the rest could not be tested",
--     evidence = "TLS handshake timed out" }

local U = require "mxprobe.checks.util"

local R = {
  ["smtp.timeout"] = "Test again with a longer --timeout. If it persists, the server stalls at that step for every sender: check its load, its TLS library and anything between it and the network (a middlebox that drops STARTTLS traffic).",
}

local BEFORE_DIALOG = { connect = true, banner = true }

local function run(facts)
  return U.each_target(facts, function(t)
    if t.status ~= "timeout" or BEFORE_DIALOG[t.stopped_at] then return nil end
    local phase = U.tbl(t[t.stopped_at]) or (t.stopped_at and U.tbl(t.relay) and U.tbl(t.relay[t.stopped_at]))
    return { U.finding("smtp.timeout", "untested", t,
      "timed out " .. (t.stopped_at == "tls" and "in the TLS handshake" or ("at " .. U.phase_name(t.stopped_at or "?")))
        .. ": the rest could not be tested",
      phase and U.str(phase.error) or nil) }
  end)
end

return {
  id = "smtp.timeout",
  title = "Timeouts inside the dialog",
  scope = "target",
  requires = { "targets" },
  codes = { "smtp.timeout" },
  remediation = R,
  run = run,
}
