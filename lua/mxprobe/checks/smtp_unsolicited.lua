-- Check smtp.unsolicited -- did the server send replies before it was asked?
--
-- What:   bytes that arrived before mxprobe sent the command they would
--         answer (the facts keep them as `unsolicited` on that phase). A
--         server that answers ahead of its client desynchronises every
--         pipelining sender; plaintext right after "220" to STARTTLS is
--         the STARTTLS command-injection pattern (CVE-2011-0411 and kin).
-- Needs:  targets[i].smtp.<phase>.unsolicited for ehlo, starttls, ehlo_tls,
--         quit and the relay steps.
-- Scope:  each target; silent when nothing came early.
-- Example finding:
--   { code = "smtp.unsolicited", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "the server sent data before the EHLO command",
--     evidence = "250-early.example.org" }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["smtp.unsolicited"] = { severity = "warning", weight = 15,
    fix = "The server (or something in front of it: a proxy, a load balancer, an SMTP 'fixup' firewall) writes replies before the client's command. Fix or remove that component; a server must answer each command only after reading it." },
}
-- luacheck: pop

local PHASES = { "ehlo", "starttls", "ehlo_tls", "quit" }
local RELAY = { "mail_from", "rcpt_external", "rcpt_control", "rset" }

local function run(facts)
  return U.each_target(facts, function(t)
    local s = U.smtp(t)
    local where, what
    for _, k in ipairs(PHASES) do
      local p = U.tbl(s[k])
      if p and U.str(p.unsolicited) then where, what = k, p.unsolicited break end
    end
    if not where and U.tbl(s.relay) then
      for _, k in ipairs(RELAY) do
        local p = U.tbl(s.relay[k])
        if p and U.str(p.unsolicited) then where, what = k, p.unsolicited break end
      end
    end
    if not where then return nil end
    local msg = where == "starttls"
      and "the server sent data around STARTTLS before it was asked (plaintext injection risk)"
      or ("the server sent data before the " .. U.phase_name(where) .. " command")
    return { U.finding("smtp.unsolicited", "fail", t, msg, what) }
  end)
end

return {
  id = "smtp.unsolicited",
  title = "Replies before the command",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
