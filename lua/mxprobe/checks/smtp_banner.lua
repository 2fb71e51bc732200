-- Check smtp.banner -- the server's greeting (RFC 5321 §3.1, §4.3.1).
--
-- What:   a complete 220 greeting arrives, soon, and names the host; 554
--         (service refused to this client) and anything that is not an SMTP
--         greeting are told apart. A multi-line greeting ("220-" lines then
--         "220 ") is how Postfix postscreen and others catch clients that
--         talk too early: it is recognised and reported as info, not as an
--         error, and its deliberate delay is not counted as slowness (the
--         time to the first byte is).
-- Needs:  targets[i].smtp.connect.status, targets[i].smtp.banner.{status, reply,
--         time_ms, first_byte_ms}, targets[i].mx;
--         ctx.policy.thresholds.banner_slow_ms.
-- Scope:  each target.
-- Example finding:
--   { code = "smtp.banner.no-hostname", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "the greeting does not start with a host name",
--     evidence = "220 ESMTP ready",
--     remediation = "Set the MTA's host name (Postfix: myhostname, smtpd_banner)." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["smtp.banner"] = { severity = "info", weight = 0 },
  ["smtp.banner.ok"] = { severity = "ok", weight = 0 },
  ["smtp.banner.missing"] = { severity = "critical", weight = 60,
    fix = "Check that the MTA (not a proxy or a stuck filter) answers on port 25 and greets at once; a server that accepts connections but never greets makes every sender wait for its timeout." },
  ["smtp.banner.invalid"] = { severity = "critical", weight = 60,
    fix = "Make sure an SMTP server, not another service, listens on port 25 and that its greeting is a proper \"220 host.name ...\" reply." },
  ["smtp.banner.rejected"] = { severity = "warning", weight = 15,
    fix = "The server refuses service to the prober's address (554): check the prober is not on a block list, or test from another network. If it refuses everyone, fix the MTA's client restrictions." },
  ["smtp.banner.slow"] = { severity = "warning", weight = 10,
    fix = "Look for slow reverse DNS lookups, an overloaded host, or a tarpit delay in the MTA configuration." },
  ["smtp.banner.multiline"] = { severity = "info", weight = 0 },
  ["smtp.banner.no-hostname"] = { severity = "warning", weight = 5,
    fix = "Configure the greeting to start with the host's fully qualified name (Postfix: myhostname / smtpd_banner = $myhostname ESMTP)." },
  ["smtp.banner.name-mismatch"] = { severity = "info", weight = 0,
    fix = "Usually harmless; for clarity make the MX name, the greeting name and the certificate name agree." },
}
-- luacheck: pop

-- first word of the first line is a FQDN or an address literal
local function banner_host(reply)
  local lines = U.list(U.tbl(reply) and reply.lines)
  local first = type(lines[1]) == "string" and lines[1] or ""
  local word = first:match("^(%S+)") or ""
  if word:match("^%[.+%]$") then return word, "literal" end
  local name = word:gsub("%.$", "")
  if #name > 0 and #name <= 253 and name:find(".", 1, true) then
    local good = true
    for label in (name .. "."):gmatch("([^.]*)%.") do
      if #label == 0 or #label > 63 or not label:match("^[%w][%w%-]*$") or label:match("%-$") then
        good = false
        break
      end
    end
    if good and not name:match("%.%d+$") then return name:lower(), "name" end
  end
  return nil, word
end

local function run(facts, ctx)
  local slow = U.num(ctx.policy.thresholds.banner_slow_ms) or 5000
  return U.each_target(facts, function(t)
    local s = U.smtp(t)
    local c = U.tbl(s.connect)
    if not (c and c.status == "ok") then
      return { U.finding("smtp.banner", "untested", t,
        "not tested: the TCP connection failed (" .. tostring(c and c.status or "none") .. ")") }
    end
    local b = U.tbl(s.banner)
    if not b then
      return { U.finding("smtp.banner", "untested", t, "not tested: the dialog ended before the greeting") }
    end
    local reply = U.tbl(b.reply)
    local line = U.reply_line(reply)
    if b.status == "timeout" or b.status == "closed" or b.status == "reset" then
      local got = reply and U.reply_lines(reply) > 0
      local msg
      if b.status == "timeout" then
        msg = got and string.format("the greeting was still incomplete after %s", U.ms(b.time_ms))
          or string.format("connected, but no greeting within %s", U.ms(b.time_ms))
      else
        msg = got and "the connection was closed in the middle of the greeting"
          or "the connection was closed before any greeting"
      end
      local ev = {}
      if got then ev[#ev + 1] = line end
      ev[#ev + 1] = U.str(b.error) or tostring(b.status)
      return { U.finding("smtp.banner.missing", "fail", t, msg, table.concat(ev, " / ")) }
    elseif b.status ~= "ok" then
      return { U.finding("smtp.banner.invalid", "fail", t,
        "the greeting is not a valid SMTP reply (" .. tostring(b.status) .. ")",
        U.str(b.error) or line) }
    end
    local code = U.code(reply)
    if code == 421 then
      return { U.finding("smtp.banner", "untested", t, "not tested: throttled (421) at the greeting", line) }
    elseif U.class(code) == 5 then
      return { U.finding("smtp.banner.rejected", "untested", t,
        "the server refuses service to this client (" .. code .. "): nothing further could be tested", line) }
    elseif U.class(code) == 4 then
      return { U.finding("smtp.banner", "untested", t,
        "not tested: the greeting was a temporary refusal (" .. code .. ")", line) }
    elseif code ~= 220 then
      return { U.finding("smtp.banner.invalid", "fail", t,
        "the greeting is not 220 (" .. tostring(code or "no code") .. ")", line) }
    end

    local out = {}
    local first = U.num(b.first_byte_ms) or U.num(b.time_ms)
    local nlines = U.reply_lines(reply)
    if first and first > slow then
      out[#out + 1] = U.finding("smtp.banner.slow", "fail", t,
        string.format("the greeting took %s to start (threshold %s)", U.ms(first), U.ms(slow)),
        string.format("first byte after %s, complete after %s", U.ms(first), U.ms(b.time_ms)))
    end
    if nlines > 1 then
      out[#out + 1] = U.finding("smtp.banner.multiline", "pass", t,
        string.format("multi-line greeting (%d lines, postscreen-style), complete after %s", nlines, U.ms(b.time_ms)),
        line)
    end
    local host, what = banner_host(reply)
    if not host then
      out[#out + 1] = U.finding("smtp.banner.no-hostname", "fail", t,
        "the greeting does not start with a fully qualified host name", line)
    elseif what == "name" and U.str(t.mx) and host ~= t.mx:lower() then
      out[#out + 1] = U.finding("smtp.banner.name-mismatch", "fail", t,
        string.format("the greeting names %s, not the MX name %s", host, t.mx), line)
    end
    local fails = 0
    for _, f in ipairs(out) do if f.state == "fail" then fails = fails + 1 end end
    if fails == 0 then
      local l1 = U.list(reply.lines)[1]
      l1 = type(l1) == "string" and l1 or ""
      l1 = U.cut(l1, 160, "…")
      out[#out + 1] = U.finding("smtp.banner.ok", "pass", t,
        string.format("greeting after %s: %d %s", U.ms(first), code, l1), line)
    end
    return out
  end)
end

return {
  id = "smtp.banner",
  title = "SMTP greeting",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
