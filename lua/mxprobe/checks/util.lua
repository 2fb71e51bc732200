-- mxprobe.checks.util -- small pure helpers shared by the checks.
--
-- Not a check (checks/init.lua does not list it). Every function here reads
-- facts defensively: a facts table loaded from JSON may carry cjson.null
-- (lightuserdata) where a field is missing, or may have been edited by hand,
-- so nothing here assumes a field exists or has the documented type.
-- The judge hands this module to every check as `ctx.util`, so checks that
-- a policy file adds (which cannot `require`) can use it too.

local text = require "mxprobe.text"

local M = {}

-- the value if it is a table, else nil
function M.tbl(v)
  if type(v) == "table" then return v end
  return nil
end

-- the value if it is a string, else nil
function M.str(v)
  if type(v) == "string" then return v end
  return nil
end

-- the value if it is a number, else nil
function M.num(v)
  if type(v) == "number" and v == v then return v end
  return nil
end

-- the SMTP dialog facts of a target (facts v2: targets[i].smtp), or an
-- empty table when the target has none
function M.smtp(t)
  return type(t) == "table" and M.tbl(t.smtp) or {}
end

-- the DNS facts of an MX host (facts v2: mx[i].dns), or an empty table
function M.mx_dns(mx)
  return type(mx) == "table" and M.tbl(mx.dns) or {}
end

-- the list part of v (or an empty table)
function M.list(v)
  if type(v) == "table" then return v end
  return {}
end

-- reply code of a reply table, or nil
function M.code(reply)
  reply = M.tbl(reply)
  if not reply then return nil end
  local c = reply.code
  if type(c) == "string" then c = tonumber(c) end
  if type(c) ~= "number" or c ~= c then return nil end
  return math.tointeger(c) or c
end

-- the reply's text: `text` when given, else its lines joined by a space
function M.reply_text(reply)
  reply = M.tbl(reply)
  if not reply then return "" end
  if type(reply.text) == "string" then return reply.text end
  local out = {}
  for _, l in ipairs(M.list(reply.lines)) do
    if type(l) == "string" then out[#out + 1] = l end
  end
  return table.concat(out, " ")
end

-- "421 mx1.example.test Service not available" (code and text, one line)
function M.reply_line(reply)
  local c = M.code(reply)
  local t = M.reply_text(reply)
  if c and t ~= "" then return string.format("%d %s", c, t) end
  if c then return tostring(c) end
  return t
end

-- the number of lines of a reply
function M.reply_lines(reply)
  reply = M.tbl(reply)
  if not reply then return 0 end
  local n = 0
  for _, l in ipairs(M.list(reply.lines)) do
    if type(l) == "string" then n = n + 1 end
  end
  return n
end

-- the phase table if its status is "ok", else nil
function M.ok(phase)
  phase = M.tbl(phase)
  if phase and phase.status == "ok" then return phase end
  return nil
end

-- class of a reply code: 2, 3, 4, 5 (or nil)
function M.class(code)
  if type(code) ~= "number" then return nil end
  return code // 100
end

-- the finding target of a facts target
function M.target_ref(t)
  return { mx = M.str(t.mx), address = M.str(t.address) }
end

-- "mx1.example.test [127.0.1.1]" or "[192.0.2.1]"
function M.target_name(t)
  local a = M.str(t.address) or "?"
  if M.str(t.mx) then return string.format("%s [%s]", t.mx, a) end
  return "[" .. a .. "]"
end

-- UTC date of an epoch: "2025-10-01 12:00:00 UTC"
function M.date(epoch)
  epoch = M.num(epoch)
  if not epoch then return "?" end
  return os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(epoch))
end

-- a duration in milliseconds as "850 ms" / "3.2 s"
function M.ms(ms)
  ms = M.num(ms)
  if not ms then return "?" end
  if ms < 10 then return string.format("%.1f ms", ms) end
  if ms < 1000 then return string.format("%.0f ms", ms) end
  return string.format("%.1f s", ms / 1000)
end

-- text.cut: s cut to at most n bytes on a character boundary, with a mark
-- ("…") when cut -- the one truncation of mxprobe (mxprobe.text)
M.cut = text.cut

-- human days: "3 days", "1 day"
function M.days(n)
  n = math.floor(n + 0.5)
  return string.format("%d day%s", n, n == 1 and "" or "s")
end

-- The SMTP phases of a target in dialog order, with the reply of each.
-- Yields name, reply, phase-table.
local PHASES = { "banner", "ehlo", "starttls", "ehlo_tls" }
local RELAY_STEPS = { "mail_from", "rcpt_external", "rcpt_control", "rset" }

function M.replies(t)
  local out = {}
  local s = M.smtp(t)
  for _, name in ipairs(PHASES) do
    local p = M.tbl(s[name])
    if p then
      if name == "ehlo" and M.tbl(p.ehlo_reply) then
        out[#out + 1] = { phase = "ehlo", reply = p.ehlo_reply }
      end
      if M.tbl(p.reply) then
        out[#out + 1] = { phase = name, reply = p.reply }
      end
    end
  end
  local relay = M.tbl(s.relay)
  if relay then
    for _, step in ipairs(RELAY_STEPS) do
      local st = M.tbl(relay[step])
      if st and M.tbl(st.reply) then
        out[#out + 1] = { phase = step, reply = st.reply }
      end
    end
  end
  return out
end

local PHASE_NAMES = {
  connect = "connect", banner = "the greeting", ehlo = "EHLO",
  starttls = "STARTTLS", tls = "the TLS handshake", ehlo_tls = "EHLO inside TLS",
  mail_from = "MAIL FROM", rcpt_external = "RCPT TO", rcpt_control = "RCPT TO (control)",
  rset = "RSET", quit = "QUIT", deadline = "the probe deadline",
}

function M.phase_name(p)
  return PHASE_NAMES[p] or tostring(p)
end

-- The first 421 reply of the dialog: phase, reply (or nil)
function M.throttled(t)
  for _, r in ipairs(M.replies(t)) do
    if M.code(r.reply) == 421 then return r.phase, r.reply end
  end
  return nil
end

-- Why the SMTP session of target t is not usable up to (and including) EHLO.
-- Returns nil when connect, banner and EHLO all worked (EHLO or HELO 2xx);
-- else state ("untested" or "na"), a short reason.
function M.session_blocked(t)
  local s = M.smtp(t)
  local c = M.tbl(s.connect)
  if not c then return "untested", "no connection was attempted" end
  if c.status ~= "ok" then
    return "untested", "the TCP connection failed (" .. tostring(c.status) .. ")"
  end
  local b = M.tbl(s.banner)
  if not b then return "untested", "the dialog ended before the greeting" end
  if b.status ~= "ok" then
    return "untested", "no usable greeting (" .. tostring(b.status) .. ")"
  end
  local bc = M.code(b.reply)
  if bc == 421 then return "untested", "throttled (421) at the greeting" end
  if bc ~= 220 then
    return "untested", "the greeting was not 220 (" .. tostring(bc or "?") .. ")"
  end
  local e = M.tbl(s.ehlo)
  if not e then return "untested", "the dialog ended before EHLO" end
  if e.status ~= "ok" then
    return "untested", "EHLO failed (" .. tostring(e.status) .. ")"
  end
  local ec = M.code(e.reply)
  if ec == 421 then return "untested", "throttled (421) at " .. (e.command == "HELO" and "HELO" or "EHLO") end
  if M.class(ec) ~= 2 then
    return "untested", string.format("%s was refused (%s)", M.str(e.command) or "EHLO", tostring(ec or "?"))
  end
  return nil
end

-- The TLS state of a target -- the one place that decides it (tls.starttls,
-- tls.session, tls.cert and consistency all read it):
--   state, reason, step
-- state:
--   "ok"        a TLS session was established
--   "failed"    STARTTLS 220 but the handshake failed
--   "na"        no TLS session is possible: STARTTLS not offered or refused
--               (reported by tls.starttls)
--   "untested"  could not tell (timeout, throttled, dialog ended)
-- step: where it was decided, for the check that reports that step:
--   "session" (before STARTTLS: see session_blocked), "helo" (HELO only),
--   "missing" (not offered), "starttls-ended" (no STARTTLS phase),
--   "starttls-timeout", "starttls-failed" (the connection failed in answer),
--   "starttls-421", "starttls-refused" (another code), "tls-ended",
--   "tls-timeout", "tls-failed", "ok"
function M.tls_state(t)
  local state, why = M.session_blocked(t)
  if state then return state, why, "session" end
  local s = M.smtp(t)
  local e = s.ehlo
  if e.command == "HELO" then return "na", "no ESMTP (HELO only), so no STARTTLS", "helo" end
  local ext = M.tbl(e.extensions) or {}
  if ext.STARTTLS == nil then return "na", "STARTTLS not offered", "missing" end
  local st = M.tbl(s.starttls)
  if not st then return "untested", "the dialog ended before STARTTLS", "starttls-ended" end
  if st.status == "timeout" then return "untested", "STARTTLS timed out", "starttls-timeout" end
  if st.status ~= "ok" then
    return "na", "STARTTLS failed (" .. tostring(st.status) .. ")", "starttls-failed"
  end
  local sc = M.code(st.reply)
  if sc == 421 then return "untested", "throttled (421) at STARTTLS", "starttls-421" end
  if sc ~= 220 then return "na", "STARTTLS refused (" .. tostring(sc or "?") .. ")", "starttls-refused" end
  local tls = M.tbl(s.tls)
  if not tls then return "untested", "the dialog ended before the TLS handshake", "tls-ended" end
  if tls.status == "ok" then return "ok", nil, "ok" end
  if tls.status == "timeout" then return "untested", "the TLS handshake timed out", "tls-timeout" end
  return "failed", "the TLS handshake failed (" .. tostring(tls.status) .. ")", "tls-failed"
end

-- the EHLO extensions in force: inside TLS when EHLO was repeated there
function M.extensions(t)
  local s = M.smtp(t)
  local et = M.ok(s.ehlo_tls)
  if et and M.class(M.code(et.reply)) == 2 and M.tbl(et.extensions) then
    return et.extensions, true
  end
  local e = M.tbl(s.ehlo)
  return (e and M.tbl(e.extensions)) or {}, false
end

-- TLS protocol versions in order
local TLS_RANK = {
  ["SSLv2"] = 1, ["SSLv3"] = 2, ["TLSv1"] = 3, ["TLSv1.0"] = 3,
  ["TLSv1.1"] = 4, ["TLSv1.2"] = 5, ["TLSv1.3"] = 6,
}
function M.tls_rank(v)
  return TLS_RANK[v]
end

-- one finding for every target of facts, built by fn(target) -> list
function M.each_target(facts, fn)
  local out = {}
  for _, t in ipairs(M.list(facts.targets)) do
    if type(t) == "table" then
      for _, f in ipairs(fn(t) or {}) do out[#out + 1] = f end
    end
  end
  return out
end

-- a finding {code, state, target, message, evidence, remediation}
function M.finding(code, state, t, message, evidence, remediation)
  return {
    code = code, state = state,
    target = t and M.target_ref(t) or nil,
    message = message, evidence = evidence, remediation = remediation,
  }
end

return M
