-- Check tls.starttls -- is STARTTLS offered, and does the server accept it?
--
-- What:   STARTTLS (RFC 3207) in the EHLO extensions; the server's answer
--         to the STARTTLS command: 220 (go ahead), 454 (TLS not available --
--         in practice a missing key or certificate file), another refusal,
--         or the connection dropped. A 421 at STARTTLS is throttling: "could
--         not test", never "no STARTTLS". HELO-only servers cannot offer it:
--         that is reported once, as smtp.ehlo.helo-only (this check: n/a).
-- Needs:  targets[i].ehlo.{command, extensions}, targets[i].starttls.{status,
--         reply, error}, and the phases before.
-- Scope:  each target.
-- Example finding:
--   { code = "tls.starttls.refused", severity = "critical", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "STARTTLS offered but refused (454)",
--     evidence = "454 4.7.0 TLS not available due to local problem",
--     remediation = "Check the MTA's TLS key and certificate files ..." }

local U = require "mxprobe.checks.util"

local R = {
  ["tls.starttls.missing"] = "Enable STARTTLS in the MTA (Postfix: smtpd_tls_security_level = may, with smtpd_tls_chain_files); without it mail to this host travels in clear text.",
  ["tls.starttls.refused"] = "The MTA announces STARTTLS but cannot start it: check that its key and certificate files exist and are readable by the MTA (the MTA's log says which), then reload it.",
}

local function run(facts)
  return U.each_target(facts, function(t)
    local blocked, why = U.session_blocked(t)
    if blocked then
      return { U.finding("tls.starttls", "untested", t, "not tested: " .. why) }
    end
    local e = t.ehlo
    if e.command == "HELO" then
      -- smtp.ehlo.helo-only already says it (and costs what no STARTTLS costs)
      return { U.finding("tls.starttls", "na", t, "no ESMTP (HELO only), so no STARTTLS: see smtp.ehlo.helo-only") }
    end
    local ext = U.tbl(e.extensions) or {}
    if ext.STARTTLS == nil then
      local kw = {}
      for k in pairs(ext) do if type(k) == "string" then kw[#kw + 1] = k end end
      table.sort(kw)
      return { U.finding("tls.starttls.missing", "fail", t,
        "STARTTLS not offered: mail to this host travels in clear text",
        "EHLO extensions: " .. (#kw > 0 and table.concat(kw, " ") or "(none)")) }
    end
    local s = U.tbl(t.starttls)
    if not s then
      return { U.finding("tls.starttls", "untested", t, "not tested: the dialog ended before STARTTLS") }
    end
    local line = U.reply_line(s.reply)
    if s.status == "timeout" then
      return { U.finding("tls.starttls", "untested", t, "not tested: no answer to STARTTLS in time",
        U.str(s.error) or line) }
    elseif s.status ~= "ok" then
      return { U.finding("tls.starttls.refused", "fail", t,
        "STARTTLS offered but the connection failed in answer (" .. tostring(s.status) .. ")",
        U.str(s.error) or line) }
    end
    local code = U.code(s.reply)
    if code == 220 then
      return { U.finding("tls.starttls.ok", "pass", t, "STARTTLS offered and accepted", line) }
    elseif code == 421 then
      return { U.finding("tls.starttls", "untested", t,
        "not tested: throttled (421) at STARTTLS (this is not \"no STARTTLS\")", line) }
    end
    return { U.finding("tls.starttls.refused", "fail", t,
      "STARTTLS offered but refused (" .. tostring(code or "no code") .. ")", line) }
  end)
end

return {
  id = "tls.starttls",
  title = "STARTTLS",
  scope = "target",
  requires = { "targets" },
  codes = { "tls.starttls", "tls.starttls.ok", "tls.starttls.missing", "tls.starttls.refused" },
  remediation = R,
  run = run,
}
