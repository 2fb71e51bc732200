-- Check tls.session -- the TLS handshake after STARTTLS: done, and how strong.
--
-- What:   the handshake succeeds; the protocol version is at least the
--         policy minimum (TLS 1.2 by default: TLS 1.0/1.1 are deprecated by
--         RFC 8996); the cipher has at least the policy's minimum strength
--         (128 bits) and is not a broken family (RC4, DES/3DES, NULL, EXPORT,
--         anonymous). Not applicable when there is no TLS session to judge
--         (STARTTLS missing or refused, reported by tls.starttls); could not
--         test when the handshake timed out or the dialog was throttled.
--         The session after the handshake (TLS posture): EHLO inside TLS
--         must get a 2xx. A close, an answer that is not TLS (plaintext
--         inside TLS), no answer in time, or EHLO and HELO both refused
--         there each fail (tls.session.closed, .broken, .timeout,
--         .ehlo-refused) instead of tls.session.ok: mail to this host fails
--         or falls back to clear text. A 421 there is throttling (could not
--         test, smtp.throttle).
-- Needs:  targets[i].smtp.tls.{status, error, version, cipher, cipher_bits,
--         handshake_ms}, targets[i].smtp.ehlo_tls.{status, error, reply,
--         ehlo_reply, partial}, and the phases before it;
--         ctx.policy.thresholds.{tls_min_version, cipher_bits_min}.
-- Scope:  each target.
-- Example finding:
--   { code = "tls.session.old-version", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "TLSv1 negotiated; TLSv1.2 is the minimum",
--     evidence = "TLSv1 ECDHE-RSA-AES256-SHA (256 bits)" }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["tls.session"] = { severity = "info", weight = 0 },
  ["tls.session.ok"] = { severity = "ok", weight = 0, alias = "tls.handshake.ok" },
  ["tls.session.failed"] = { severity = "critical", weight = 50, alias = "tls.handshake.failed",
    fix = "Check the MTA's TLS configuration: key and certificate pair, protocol and cipher settings. Senders that fail the handshake may fall back to clear text or defer the mail." },
  ["tls.session.old-version"] = { severity = "warning", weight = 15, alias = "tls.version.old",
    fix = "Enable TLS 1.2 and 1.3 in the MTA (Postfix: smtpd_tls_protocols = >=TLSv1.2 or at least keep them enabled) and update the TLS library." },
  -- TLS posture: the session after the handshake
  ["tls.session.closed"] = { severity = "critical", weight = 50,
    fix = "The server closes the connection right after the TLS handshake: check the MTA's log for the TLS session (a crash, a proxy or load balancer that ends TLS badly, a policy that drops clients after STARTTLS). Senders defer the mail or retry in clear text." },
  ["tls.session.broken"] = { severity = "critical", weight = 50,
    fix = "The answer to EHLO inside TLS was not a valid TLS record or SMTP reply (often plaintext sent after the handshake: a proxy or firewall that terminates STARTTLS wrongly). Fix the component between the network and the MTA, or the MTA's TLS layer." },
  ["tls.session.timeout"] = { severity = "critical", weight = 50,
    fix = "The server does not answer EHLO inside TLS: check the MTA's TLS session handling and anything in the path that inspects STARTTLS traffic. Senders time out and defer or retry in clear text." },
  ["tls.session.ehlo-refused"] = { severity = "critical", weight = 50,
    fix = "The server refuses EHLO and HELO inside TLS: check the MTA's HELO/EHLO restrictions for TLS sessions (Postfix: smtpd_helo_restrictions, smtpd_tls_* restrictions). No mail can be delivered over TLS." },
  ["tls.session.weak-cipher"] = { severity = "warning", weight = 15, alias = "tls.cipher.weak",
    fix = "Disable weak ciphers (RC4, DES/3DES, NULL, EXPORT, anonymous) and prefer AEAD ciphers (Postfix: smtpd_tls_ciphers = medium or high)." },
}
-- luacheck: pop

local BROKEN = { "RC4", "NULL", "EXP", "ANON", "^ADH", "^AECDH", "DES%-CBC", "3DES", "MD5" }

local function weak_cipher(name, bits, min_bits)
  if bits and bits < min_bits then return string.format("%d-bit", bits) end
  local up = tostring(name or ""):upper()
  for _, p in ipairs(BROKEN) do
    if up:find(p) then return "broken family" end
  end
  return nil
end

-- The session after the handshake: a failing finding when EHLO inside TLS
-- got no 2xx, false when it was throttled (421: smtp.throttle says it),
-- nil when it worked (or was not recorded: facts cut by a gatherer bug).
local function after_handshake(t)
  local s = U.smtp(t)
  local e = U.tbl(s.ehlo_tls)
  if not e then return nil end
  local cmd = e.command == "HELO" and "HELO" or "EHLO"
  local ev = {}
  if U.tbl(e.ehlo_reply) then ev[#ev + 1] = "EHLO: " .. U.reply_line(e.ehlo_reply) end
  if U.tbl(e.reply) then ev[#ev + 1] = cmd .. ": " .. U.reply_line(e.reply) end
  if U.str(e.error) then ev[#ev + 1] = e.error end
  if U.str(e.partial) then ev[#ev + 1] = "received: " .. U.cut(e.partial, 200) end
  local evidence = table.concat(ev, "; ")
  local fb = U.tbl(s.fallback) and " (the probe reconnected in clear text, as senders do: smtp.fallback)" or ""
  if e.status == "timeout" then
    return U.finding("tls.session.timeout", "fail", t,
      "TLS handshake done, then no answer to " .. cmd .. " inside TLS in time" .. fb, evidence)
  elseif e.status == "closed" or e.status == "reset" then
    return U.finding("tls.session.closed", "fail", t,
      "TLS handshake done, then the connection was " .. e.status .. " in answer to " .. cmd
        .. " inside TLS" .. fb, evidence)
  elseif e.status ~= "ok" then
    return U.finding("tls.session.broken", "fail", t,
      "TLS handshake done, then the answer to " .. cmd .. " inside TLS was not "
        .. (e.status == "tls" and "TLS (plaintext inside TLS?)" or "an SMTP reply")
        .. " (" .. tostring(e.status) .. ")" .. fb, evidence)
  end
  local code = U.code(e.reply)
  if code == 421 or U.code(e.ehlo_reply) == 421 then return false end
  if U.class(code) ~= 2 then
    return U.finding("tls.session.ehlo-refused", "fail", t,
      string.format("TLS handshake done, then %s refused inside TLS (%s)%s",
        U.tbl(e.ehlo_reply) and "EHLO and HELO" or cmd, tostring(code or "?"), fb), evidence)
  end
  return nil
end

local function run(facts, ctx)
  local th = ctx.policy.thresholds
  local min_version = U.str(th.tls_min_version) or "TLSv1.2"
  local min_rank = U.tls_rank(min_version) or U.tls_rank("TLSv1.2")
  local min_bits = U.num(th.cipher_bits_min) or 128
  return U.each_target(facts, function(t)
    local state, why = U.tls_state(t)
    if state == "untested" then
      return { U.finding("tls.session", "untested", t, "not tested: " .. why) }
    elseif state == "na" then
      return { U.finding("tls.session", "na", t, "no TLS session: " .. why) }
    end
    local tls = U.smtp(t).tls
    if state == "failed" then
      return { U.finding("tls.session.failed", "fail", t,
        "STARTTLS accepted but the TLS handshake failed", U.str(tls.error) or tostring(tls.status)) }
    end
    local version, cipher = U.str(tls.version) or "?", U.str(tls.cipher) or "?"
    local bits = U.num(tls.cipher_bits)
    local desc = string.format("%s %s (%s bits)", version, cipher,
      bits and tostring(math.tointeger(bits) or bits) or "?")
    local out = {}
    local rank = U.tls_rank(version)
    if rank and rank < min_rank then
      out[#out + 1] = U.finding("tls.session.old-version", "fail", t,
        string.format("%s negotiated; %s is the minimum", version, min_version), desc)
    end
    local weak = weak_cipher(cipher, bits, min_bits)
    if weak then
      out[#out + 1] = U.finding("tls.session.weak-cipher", "fail", t,
        string.format("weak cipher %s (%s)", cipher, weak), desc)
    end
    local dead = after_handshake(t)
    if dead then
      out[#out + 1] = dead
    elseif dead == nil then
      out[#out + 1] = U.finding("tls.session.ok", "pass", t,
        string.format("%s in %s", desc, U.ms(tls.handshake_ms)), desc)
    end
    return out
  end)
end

return {
  id = "tls.session",
  title = "TLS handshake, version and cipher",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
