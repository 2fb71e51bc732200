-- Check tls.starttls -- is STARTTLS offered, and does the server accept it?
--
-- What:   STARTTLS (RFC 3207) in the EHLO extensions; the server's answer
--         to the STARTTLS command: 220 (go ahead), 454 (TLS not available --
--         in practice a missing key or certificate file), another refusal,
--         a 2xx other than 220 (tls.starttls.bad-reply: no TLS starts),
--         or the connection dropped. A 421 at STARTTLS is throttling: "could
--         not test", never "no STARTTLS". HELO-only servers cannot offer it:
--         that is reported once, as smtp.ehlo.helo-only (this check: n/a).
-- Needs:  targets[i].smtp.ehlo.{command, extensions},
--         targets[i].smtp.starttls.{status, reply, error}, and the phases
--         before -- as util.tls_state reads them (the one TLS-state helper).
-- Scope:  each target.
-- Example finding:
--   { code = "tls.starttls.refused", severity = "critical", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "STARTTLS offered but refused (454)",
--     evidence = "454 4.7.0 TLS not available due to local problem",
--     remediation = "Check the MTA's TLS key and certificate files ..." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["tls.starttls"] = { severity = "info", weight = 0 },
  ["tls.starttls.ok"] = { severity = "ok", weight = 0 },
  ["tls.starttls.missing"] = { severity = "warning", weight = 50,
    fix = "Enable STARTTLS in the MTA (Postfix: smtpd_tls_security_level = may, with smtpd_tls_chain_files); without it mail to this host travels in clear text." },
  -- TLS posture: a 2xx other than 220 to STARTTLS
  ["tls.starttls.bad-reply"] = { severity = "critical", weight = 50,
    fix = "The server answers STARTTLS with a success code other than 220 (RFC 3207 §4): senders do not start TLS on it and deliver in clear text, or fail. Fix the MTA or the proxy in front of it that answers STARTTLS." },
  ["tls.starttls.refused"] = { severity = "critical", weight = 50,
    fix = "The MTA announces STARTTLS but cannot start it: check that its key and certificate files exist and are readable by the MTA (the MTA's log says which), then reload it." },
}
-- luacheck: pop

-- the finding for each step where util.tls_state decided (one source for
-- the TLS state; this check reports the STARTTLS steps of it)
local function run(facts)
  return U.each_target(facts, function(t)
    local _, why, step = U.tls_state(t)
    if step == "session" then
      return { U.finding("tls.starttls", "untested", t, "not tested: " .. why) }
    elseif step == "helo" then
      -- smtp.ehlo.helo-only already says it (and costs what no STARTTLS costs)
      return { U.finding("tls.starttls", "na", t, "no ESMTP (HELO only), so no STARTTLS: see smtp.ehlo.helo-only") }
    elseif step == "missing" then
      local kw = {}
      for k in pairs(U.tbl(U.smtp(t).ehlo.extensions) or {}) do
        if type(k) == "string" then kw[#kw + 1] = k end
      end
      table.sort(kw)
      return { U.finding("tls.starttls.missing", "fail", t,
        "STARTTLS not offered: mail to this host travels in clear text",
        "EHLO extensions: " .. (#kw > 0 and table.concat(kw, " ") or "(none)")) }
    elseif step == "starttls-ended" then
      return { U.finding("tls.starttls", "untested", t, "not tested: the dialog ended before STARTTLS") }
    end
    local s = U.smtp(t).starttls
    local line = U.reply_line(s.reply)
    if step == "starttls-timeout" then
      return { U.finding("tls.starttls", "untested", t, "not tested: no answer to STARTTLS in time",
        U.str(s.error) or line) }
    elseif step == "starttls-failed" then
      return { U.finding("tls.starttls.refused", "fail", t,
        "STARTTLS offered but the connection failed in answer (" .. tostring(s.status) .. ")",
        U.str(s.error) or line) }
    elseif step == "starttls-421" then
      return { U.finding("tls.starttls", "untested", t,
        "not tested: throttled (421) at STARTTLS (this is not \"no STARTTLS\")", line) }
    elseif step == "starttls-refused" and U.class(U.code(s.reply)) == 2 then
      return { U.finding("tls.starttls.bad-reply", "fail", t,
        "STARTTLS answered " .. tostring(U.code(s.reply)) .. ", not 220: no TLS session starts", line) }
    elseif step == "starttls-refused" then
      return { U.finding("tls.starttls.refused", "fail", t,
        "STARTTLS offered but refused (" .. tostring(U.code(s.reply) or "no code") .. ")", line) }
    end
    -- 220: what the handshake did is tls.session's to say
    return { U.finding("tls.starttls.ok", "pass", t, "STARTTLS offered and accepted", line) }
  end)
end

return {
  id = "tls.starttls",
  title = "STARTTLS",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
