-- The documented renames from facts schema mxprobe.facts/1 to /2
-- (docs/facts.md, "Changes from v1"), as one pure function. Used by
-- scripts/compare-v1-v2.lua to show that the v2 gatherers see what v1 saw,
-- and nowhere else: mxprobe itself refuses v1 files.
--
--   lua5.4 scripts/facts-v1-to-v2.lua < v1.jsonl > v2.jsonl
--   local convert = dofile("scripts/facts-v1-to-v2.lua")   -- as a function

local M = {}

local PHASES = { "connect", "banner", "ehlo", "starttls", "tls", "certificates", "verify",
                 "ehlo_tls", "relay", "quit", "transcript", "transcript_truncated",
                 "status", "stopped_at", "time_ms", "error" }
local RELAY_VERBS = { mail_from = "MAIL", rcpt_external = "RCPT", rcpt_control = "RCPT", rset = "RSET" }

local function verb_phase(p, verb)
  if type(p) ~= "table" then return end
  if type(p.command) == "string" then p.line = p.command end
  p.command = verb
end

local function address_status(a, aaaa, addresses)
  if #addresses > 0 then return "ok" end
  if a.status == "nxdomain" or aaaa.status == "nxdomain" then return "nxdomain" end
  if (a.status == "ok" or a.status == "nodata") and (aaaa.status == "ok" or aaaa.status == "nodata") then
    return "no-address"
  end
  return "dns-error"
end

function M.convert(v1)
  if v1.schema ~= "mxprobe.facts/1" then return v1 end
  local o = v1.options or {}
  local f = {
    schema = "mxprobe.facts/2",
    run = { tool = v1.tool, prober = { ehlo_name = o.ehlo_name, mail_from = o.mail_from, relay_rcpt = o.relay_rcpt } },
    options = o, query = v1.query, kind = v1.kind, domain = v1.domain, error = v1.error,
    started = v1.started, finished = v1.finished, mx = {}, targets = {},
  }
  local d = v1.dns or {}
  f.dns = { resolver = d.resolver, mx = d.mx, null_mx = d.null_mx, implicit_mx = d.implicit_mx,
            mx_dropped = d.mx_dropped }
  if v1.kind == "host" or v1.kind == "address" then f.dns.null_mx, f.dns.implicit_mx = nil, nil end
  for i, m in ipairs(v1.mx or {}) do
    f.mx[i] = { name = m.name, preference = m.preference, implicit = m.implicit,
                dns = { status = m.status, cname = m.cname, a = m.a, aaaa = m.aaaa,
                        addresses = m.addresses, addresses_dropped = m.addresses_dropped } }
  end
  -- v1 dropped an implicit MX host that had no address; v2 lists it
  if d.mx and d.mx.status == "nodata" and #f.mx == 0 then
    f.dns.implicit_mx = true
    local a, aaaa
    for _, q in ipairs(d.queries or {}) do
      if q.name == v1.domain and q.type == "A" then a = q end
      if q.name == v1.domain and q.type == "AAAA" then aaaa = q end
    end
    if a and aaaa then
      f.mx[1] = { name = v1.domain, preference = 0, implicit = true,
                  dns = { status = address_status(a, aaaa, {}), cname = a.cname or aaaa.cname,
                          a = a, aaaa = aaaa, addresses = {} } }
    end
  end
  for i, t in ipairs(v1.targets or {}) do
    local s = {}
    for _, k in ipairs(PHASES) do s[k] = t[k] end
    local nt = { mx = t.mx, preference = t.preference, address = t.address, family = t.family,
                 port = t.port, smtp = s }
    if s.ehlo then
      s.ehlo.line = ("%s %s"):format(s.ehlo.command or "EHLO", o.ehlo_name)
    end
    if s.ehlo_tls then
      s.ehlo_tls.line = ("%s %s"):format(s.ehlo_tls.command or "EHLO", o.ehlo_name)
    end
    verb_phase(s.starttls, "STARTTLS")
    verb_phase(s.quit, "QUIT")
    local relay = type(s.relay) == "table" and s.relay or {}
    for key, verb in pairs(RELAY_VERBS) do verb_phase(relay[key], verb) end
    if s.stopped_at == "mail" then
      s.stopped_at = "mail_from"
    elseif s.stopped_at == "rcpt" then
      s.stopped_at = relay.rcpt_control and "rcpt_control" or "rcpt_external"
    end
    f.targets[i] = nt
  end
  return f
end

if arg and arg[0] and arg[0]:match("facts%-v1%-to%-v2%.lua$") then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
  local facts = require "mxprobe.facts"
  local cjson = require "cjson"
  for line in io.lines() do
    if line:find("%S") then
      local doc = cjson.decode(line)
      io.write(facts.encode(M.convert(doc)), "\n")
    end
  end
end

return M
