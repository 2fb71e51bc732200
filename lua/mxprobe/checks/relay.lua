-- Check relay -- does the server refuse to relay for a stranger?
--
-- What:   the probe sent MAIL FROM, RCPT TO an address at a domain the
--         server cannot own (rcpt_external), then RCPT TO postmaster@DOMAIN
--         (rcpt_control, which every MX of the domain must take, RFC 5321
--         §4.5.1), then RSET -- never DATA. Decision on the external RCPT:
--           2xx and the control accepted too   relay.open (fail)
--           2xx but the control refused        relay.accepts-any (fail): it
--                 answers RCPT without looking at the recipient (accept-all
--                 trap, broken filter); relaying is likely but not proven
--           530, or 5xx asking for AUTH        relay.auth-required (pass)
--           other 5xx                          relay.denied (pass)
--           4xx (greylisting, 450/451/452)     relay.inconclusive (could not
--                 test: greylisting is not an open relay)
--           421                                could not test (smtp.throttle.421)
--         A refused control recipient (5xx) is its own finding,
--         relay.control-rejected: the host rejects mail for the domain's
--         postmaster. Not applicable with --no-relay-test. When the TLS
--         session failed and the probe reconnected in clear text
--         (targets[i].smtp.fallback, as senders do), the verdict comes from
--         that dialog: an open relay behind broken TLS is still open.
--         With --greylist-retry (targets[i].smtp.relay_retry) a 4xx to the
--         outside RCPT was retried after the delay on a new connection: the
--         verdict comes from the retry (open, denied, or still 4xx =
--         relay.inconclusive), the first try's reply leads the evidence.
-- Needs:  targets[i].smtp.relay.{status, mail_from, rcpt_external, rcpt_control}
--         (each step {command = verb, line, reply}),
--         facts.options.relay_rcpt, facts.domain, and the phases before.
-- Scope:  each target.
-- Example finding:
--   { code = "relay.open", severity = "critical", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "accepted RCPT TO <probe@relay-test.invalid> from an unauthenticated stranger: open relay",
--     evidence = "RCPT TO:<probe@relay-test.invalid> -> 250 2.1.5 Ok; "
--       .. "RCPT TO:<postmaster@example.org> -> 250 2.1.5 Ok",
--     remediation = "Restrict relaying to authenticated users and your own networks ..." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["relay"] = { severity = "info", weight = 0 },
  ["relay.open"] = { severity = "critical", weight = 100,
    fix = "Restrict relaying at once to authenticated clients and your own networks (Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination; Exchange: receive connectors). Check block lists afterwards." },
  ["relay.accepts-any"] = { severity = "warning", weight = 40,
    fix = "Verify by hand with a message to an address you control at another domain; configure the MTA to reject recipients it cannot deliver at RCPT time (reject_unauth_destination, recipient validation)." },
  ["relay.denied"] = { severity = "ok", weight = 0,
    fix = "Nothing to do." },
  ["relay.auth-required"] = { severity = "ok", weight = 0,
    fix = "Nothing to do: relaying needs authentication." },
  ["relay.inconclusive"] = { severity = "info", weight = 0,
    fix = "Nothing to do when this is greylisting; run the test again after the greylisting delay to conclude." },
  ["relay.control-rejected"] = { severity = "warning", weight = 15,
    fix = "Accept mail for postmaster@ of every domain this host is MX for (RFC 5321 §4.5.1); if the refusal is aimed at the prober's address, test from another network." },
}
-- luacheck: pop

local function step_line(s)
  s = U.tbl(s)
  if not s then return nil end
  return string.format("%s -> %s", tostring(s.line or s.command or "?"), U.reply_line(s.reply))
end

local function asks_auth(reply)
  local code = U.code(reply)
  if code == 530 then return true end
  local text = U.reply_text(reply):lower()
  return U.class(code) == 5 and (text:find("5.7.0", 1, true) ~= nil and text:find("auth", 1, true) ~= nil)
end

-- the relay verdict of one dialog (the target t, or a view of it whose
-- smtp is the fallback dialog)
local function judge_dialog(facts, t)
  local relay = U.tbl(U.smtp(t).relay)
  if relay and relay.status == "skipped" then
    return { U.finding("relay", "na", t, "the relay test was not run (--no-relay-test)") }
  end
  local blocked, why = U.session_blocked(t)
  if blocked then
    return { U.finding("relay", "untested", t, "not tested: " .. why) }
  end
  if not relay then
    local stop = U.str(U.smtp(t).stopped_at)
    return { U.finding("relay", "untested", t, "not tested: the dialog ended" ..
      (stop and (" at " .. U.phase_name(stop)) or " before the relay test")) }
  end
  local ev = {}
  for _, k in ipairs({ "mail_from", "rcpt_external", "rcpt_control" }) do
    local l = step_line(relay[k])
    if l then ev[#ev + 1] = l end
  end
  local evidence = table.concat(ev, "; ")
  local mail = U.tbl(relay.mail_from)
  local mcode = U.code(mail and mail.reply)
  if not mcode then
    return { U.finding("relay.inconclusive", "untested", t,
      "the relay test stopped at MAIL FROM (" .. tostring(relay.status) .. "): could not conclude", evidence) }
  elseif mcode == 421 then
    return { U.finding("relay.inconclusive", "untested", t,
      "throttled (421) at MAIL FROM: could not conclude", evidence) }
  elseif asks_auth(mail.reply) then
    return {
      U.finding("relay.auth-required", "pass", t,
        "the server requires authentication before MAIL FROM (" .. mcode .. ")", evidence),
      U.finding("relay.control-rejected", "fail", t,
        "requires authentication for any mail (" .. mcode
          .. "): no stranger can deliver here, not even to postmaster",
        evidence),
    }
  elseif U.class(mcode) ~= 2 then
    return { U.finding("relay.inconclusive", "untested", t,
      "MAIL FROM was refused (" .. mcode .. "): could not conclude", evidence) }
  end
  local ext = U.tbl(relay.rcpt_external)
  local ecode = U.code(ext and ext.reply)
  local ctl = U.tbl(relay.rcpt_control)
  local ccode = U.code(ctl and ctl.reply)
  local out = {}
  local rcpt = U.str(ext and ext.line) and ext.line:match("<(.-)>") or
    (U.str(U.tbl(facts.options) and facts.options.relay_rcpt) or "an external recipient")
  if not ecode then
    out[#out + 1] = U.finding("relay.inconclusive", "untested", t,
      "the relay test stopped at RCPT TO (" .. tostring(relay.status) .. "): could not conclude", evidence)
  elseif ecode == 421 then
    out[#out + 1] = U.finding("relay.inconclusive", "untested", t,
      "throttled (421) at RCPT TO: could not conclude", evidence)
  elseif U.class(ecode) == 2 then
    if ccode and U.class(ccode) ~= 2 then
      out[#out + 1] = U.finding("relay.accepts-any", "fail", t,
        string.format("accepted RCPT TO <%s> yet refused postmaster (%d): accepts any recipient, relaying likely",
          rcpt, ccode), evidence)
    else
      out[#out + 1] = U.finding("relay.open", "fail", t,
        string.format("accepted RCPT TO <%s> (%d) from an unauthenticated stranger: open relay", rcpt, ecode),
        evidence)
    end
  elseif asks_auth(ext.reply) then
    out[#out + 1] = U.finding("relay.auth-required", "pass", t,
      string.format("relaying to <%s> requires authentication (%d)", rcpt, ecode), evidence)
  elseif U.class(ecode) == 5 then
    out[#out + 1] = U.finding("relay.denied", "pass", t,
      string.format("relaying to <%s> denied (%d)", rcpt, ecode), evidence)
  elseif U.class(ecode) == 4 then
    out[#out + 1] = U.finding("relay.inconclusive", "untested", t,
      string.format("RCPT TO <%s> temporarily refused (%d, greylisting?): not an open relay, but not concluded",
        rcpt, ecode), evidence)
  else
    out[#out + 1] = U.finding("relay.inconclusive", "untested", t,
      string.format("unexpected answer to RCPT TO (%d): could not conclude", ecode), evidence)
  end
  local counted = out[#out] and out[#out].code == "relay.accepts-any"
  if counted then -- the refused control is part of that finding already
    return out
  elseif ccode and U.class(ccode) == 5 and not asks_auth(ctl.reply) then
    out[#out + 1] = U.finding("relay.control-rejected", "fail", t,
      string.format("refused mail for the domain's postmaster (%d)", ccode), step_line(ctl))
  elseif ccode and asks_auth(ctl.reply) then
    out[#out + 1] = U.finding("relay.control-rejected", "fail", t,
      string.format("requires authentication even for the domain's postmaster (%d): not a working MX", ccode),
      step_line(ctl))
  end
  return out
end

-- repeat/greylist (issue 9 item 7): "first try: RCPT ... -> 451 ..." of
-- the dialog d whose outside RCPT was retried
local function first_try(d)
  local relay = U.tbl(U.tbl(d) and d.relay)
  return relay and step_line(relay.rcpt_external) or "?"
end

-- the findings of one dialog d of target t (the main one or the fallback)
local function judge_first(facts, t, d, note)
  local out = judge_dialog(facts, { mx = t.mx, address = t.address, smtp = d })
  if note then
    for _, f in ipairs(out) do f.message = tostring(f.message) .. note end
  end
  return out
end

local function run(facts)
  return U.each_target(facts, function(t)
    -- TLS posture: when the TLS session failed and the probe reconnected
    -- in clear text as senders do, the relay verdict is that dialog's
    local fb = U.tbl(U.smtp(t).fallback)
    local d, note = U.smtp(t), nil
    if fb then d, note = fb, " (in the plaintext fallback dialog, after the TLS session failed)" end
    -- repeat/greylist (issue 9 item 7): the relay test retried after a 4xx
    -- (--greylist-retry) concludes; the first try's 4xx stays in the evidence
    local retry = U.tbl(U.smtp(t).relay_retry)
    if not retry then return judge_first(facts, t, d, note) end
    local secs = type(retry.after_ms) == "number" and ("%g s"):format(retry.after_ms / 1000) or "a delay"
    if retry.status == "skipped" then
      return judge_first(facts, t, d, (note or "") .. "; not retried: " .. tostring(retry.skipped))
    end
    local out = judge_first(facts, t, retry, (note or "") ..
      (" (on the retry after %s; the first try was refused for now)"):format(secs))
    for _, f in ipairs(out) do
      local ev = "first try: " .. first_try(d)
      f.evidence = f.evidence and (ev .. "; retry after " .. secs .. ": " .. tostring(f.evidence)) or ev
    end
    return out
  end)
end

return {
  id = "relay",
  title = "Open relay test",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
