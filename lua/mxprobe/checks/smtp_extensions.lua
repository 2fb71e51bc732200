-- Check smtp.extensions -- which ESMTP extensions the server announces.
--
-- What:   PIPELINING (RFC 2920), SIZE (RFC 1870, with the limit), 8BITMIME
--         (RFC 6152) and SMTPUTF8 (RFC 6531), from the EHLO inside TLS when
--         there was one (that is the list a TLS sender uses), else from the
--         first EHLO. Information only: present is "pass", absent "fail",
--         both with severity info and no weight by default.
-- Needs:  targets[i].smtp.ehlo.{status, command, reply, extensions},
--         targets[i].smtp.ehlo_tls.{status, reply, extensions}.
-- Scope:  each target.
-- Example finding:
--   { code = "smtp.extensions.size", severity = "info", state = "pass",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "SIZE 52428800 (50 MiB)", evidence = "SIZE 52428800" }

local U = require "mxprobe.checks.util"

local EXT = {
  { key = "PIPELINING", code = "smtp.extensions.pipelining", what = "command pipelining" },
  { key = "SIZE", code = "smtp.extensions.size", what = "message size declaration" },
  { key = "8BITMIME", code = "smtp.extensions.8bitmime", what = "8-bit MIME transport" },
  { key = "SMTPUTF8", code = "smtp.extensions.smtputf8", what = "internationalised addresses" },
}

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["smtp.extensions"] = { severity = "info", weight = 0 },
  ["smtp.extensions.pipelining"] = { severity = "info", weight = 0, alias = "smtp.ehlo.pipelining",
    fix = "Optional. Postfix, Exim and most MTAs announce PIPELINING by default; it saves round trips." },
  ["smtp.extensions.size"] = { severity = "info", weight = 0, alias = "smtp.ehlo.size",
    fix = "Optional. Announcing SIZE lets senders refuse too-large mail before sending it." },
  ["smtp.extensions.8bitmime"] = { severity = "info", weight = 0, alias = "smtp.ehlo.8bitmime",
    fix = "Optional. Without 8BITMIME senders must convert 8-bit mail to 7-bit." },
  ["smtp.extensions.smtputf8"] = { severity = "info", weight = 0, alias = "smtp.ehlo.smtputf8",
    fix = "Optional. Needed to receive mail for internationalised (UTF-8) addresses." },
}
-- luacheck: pop

local function size_text(v)
  local n = tonumber(v)
  if not n or n <= 0 then return "SIZE (no limit given)" end
  return string.format("SIZE %s (%.0f MiB)", v, n / 1048576)
end

local function run(facts)
  return U.each_target(facts, function(t)
    local blocked, why = U.session_blocked(t)
    if blocked then
      return { U.finding("smtp.extensions", "untested", t, "not tested: " .. why) }
    end
    if U.smtp(t).ehlo.command == "HELO" then
      return { U.finding("smtp.extensions", "na", t, "no ESMTP (HELO only): no extensions") }
    end
    local ext, in_tls = U.extensions(t)
    local out = {}
    for _, e in ipairs(EXT) do
      local v = ext[e.key]
      local where = in_tls and "EHLO inside TLS" or "EHLO"
      if v ~= nil then
        local msg = e.key == "SIZE" and size_text(v) or (e.key .. " offered")
        out[#out + 1] = U.finding(e.code, "pass", t, msg,
          where .. ": " .. e.key .. ((type(v) == "string" and v ~= "") and (" " .. v) or ""))
      else
        out[#out + 1] = U.finding(e.code, "fail", t, e.key .. " not offered (" .. e.what .. ")",
          where .. ": no " .. e.key)
      end
    end
    return out
  end)
end

return {
  id = "smtp.extensions",
  title = "ESMTP extensions",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
