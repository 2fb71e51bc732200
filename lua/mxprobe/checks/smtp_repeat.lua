-- Check smtp.repeat -- does a target answer the same way every time?
-- (repeat/greylist, issue 9 item 6)
--
-- What:   with --repeat N the probe held N dialogs with each target, a
--         pause apart (targets[i].smtp is the first, smtp.repeats the
--         others, each summed up). A load balancer with one stale or
--         misconfigured node shows up as "sometimes": STARTTLS offered on
--         some connections, another certificate, another TLS version,
--         another banner, a dialog that fails on some tries. Every field
--         that differs between tries is one part of one finding:
--           a difference                      smtp.repeat.differs (fail)
--           every try the same                smtp.repeat.same (pass)
--         Tries skipped at the probe deadline are left out. Silent without
--         --repeat (no smtp.repeats).
-- Needs:  targets[i].smtp.{status, banner.reply, ehlo.extensions, tls,
--         certificates[1].sha256}, targets[i].smtp.repeats[j].{status,
--         banner, starttls, tls_version, cert_sha256}.
-- Scope:  each target.
-- Example finding:
--   { code = "smtp.repeat.differs", severity = "warning", state = "fail",
--     target = { mx = "mx1.example.org", address = "192.0.2.10" },
--     message = "3 tries differ in STARTTLS offered: a stale node behind a load balancer?",
--     evidence = "STARTTLS offered: yes (tries 1, 3), no (try 2)",
--     remediation = "Compare the nodes behind the address ..." }

local U = require "mxprobe.checks.util"

-- luacheck: push no max line length
local CODES = {
  ["smtp.repeat.same"] = { severity = "ok", weight = 0,
    fix = "Nothing to do." },
  ["smtp.repeat.differs"] = { severity = "warning", weight = 15,
    fix = "Compare the nodes behind this address (load balancer pool, anycast sites, DNS round robin): give every node the same TLS configuration, certificate and software; take a stale node out of the pool." },
}
-- luacheck: pop

-- the compared fields, in report order: key, label, how a value is shown
local FIELDS = {
  { "status", "dialog" },
  { "banner", "banner" },
  { "starttls", "STARTTLS offered", function(v) return v and "yes" or "no" end },
  { "tls_version", "TLS version" },
  { "cert_sha256", "certificate (SHA-256)", function(v) return v:sub(1, 16) .. "…" end },
}

-- the first dialog, summed up like the repeats (pure)
local function summary(s)
  local out = { status = U.str(s.status) }
  local b = U.tbl(U.tbl(s.banner) and s.banner.reply)
  if b and U.code(b) then out.banner = ("%d %s"):format(U.code(b), U.str(U.list(b.lines)[1]) or "") end
  local e = U.tbl(U.tbl(s.ehlo) and s.ehlo.extensions)
  if e then out.starttls = e.STARTTLS ~= nil end
  local tls = U.tbl(s.tls)
  if tls and tls.status == "ok" then out.tls_version = U.str(tls.version) end
  local leaf = U.tbl(U.list(s.certificates)[1])
  if leaf then out.cert_sha256 = U.str(leaf.sha256) end
  return out
end

local function tries_of(nums)
  return (#nums == 1 and "try " or "tries ") .. table.concat(nums, ", ")
end

local function judge(t)
  local s = U.smtp(t)
  local reps = U.tbl(s.repeats)
  if not reps then return {} end
  local tries = { summary(s) }
  local nums = { 1 }
  for j, r in ipairs(reps) do
    if type(r) == "table" and r.status ~= "skipped" then
      local x = {}
      for _, f in ipairs(FIELDS) do
        local v = r[f[1]]
        if type(v) == "string" or type(v) == "boolean" then x[f[1]] = v end
      end
      tries[#tries + 1] = x
      nums[#nums + 1] = j + 1
    end
  end
  if #tries < 2 then return {} end
  local labels, parts = {}, {}
  for _, f in ipairs(FIELDS) do
    local key, label, show = f[1], f[2], f[3] or tostring
    local seen, order = {}, {}
    for i, x in ipairs(tries) do
      local v = x[key]
      -- banners as the repeats keep them: the first line, its start
      if key == "banner" and v then v = v:sub(1, 256) end
      if v ~= nil then
        if not seen[v] then seen[v] = {} order[#order + 1] = v end
        table.insert(seen[v], nums[i])
      end
    end
    if #order > 1 then
      labels[#labels + 1] = label
      local vals = {}
      for _, v in ipairs(order) do vals[#vals + 1] = show(v) .. " (" .. tries_of(seen[v]) .. ")" end
      parts[#parts + 1] = label .. ": " .. table.concat(vals, ", ")
    end
  end
  if #labels == 0 then
    return { U.finding("smtp.repeat.same", "pass", t,
      ("%d tries answered the same (status, banner, STARTTLS, TLS version, certificate)"):format(#tries)) }
  end
  return { U.finding("smtp.repeat.differs", "fail", t,
    ("%d tries differ in %s: a stale node behind a load balancer?"):format(#tries, table.concat(labels, ", ")),
    table.concat(parts, "; ")) }
end

local function run(facts)
  return U.each_target(facts, judge)
end

return {
  id = "smtp.repeat",
  title = "Repeated probes of one target",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
