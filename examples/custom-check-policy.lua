-- custom-check-policy.lua -- a policy that adds a check of its own.
--
--   mxprobe --policy examples/custom-check-policy.lua example.org
--
-- A check is a table { id, title, codes, run } -- the same shape as the
-- built-in ones in lua/mxprobe/checks/. `run(facts, ctx)` gets the facts
-- table (schema mxprobe.facts/2, docs/facts.md: a target's SMTP dialog is
-- under targets[i].smtp, ctx.util.smtp(t) returns it) and a context: ctx.now (epoch seconds),
-- ctx.policy (thresholds, severities ...) and ctx.util (the helpers the
-- built-in checks use: ctx.util.finding, ctx.util.tls_state ...). It
-- returns a list of findings { code, state, target, message, evidence }.
-- The file runs in a sandbox: no require, io or os.execute.
--
-- This one wants every domain reachable over IPv6 (one MX address at
-- least), and complains about greetings that advertise the MTA's version.

local ipv6 = {
  id = "local.ipv6",
  title = "At least one MX reachable over IPv6",
  scope = "domain",
  -- each code with its severity, weight and fix, as the built-in checks
  -- declare theirs (the policy's severities/weights still override them)
  codes = {
    ["local.ipv6.ok"] = { severity = "ok", weight = 0 },
    ["local.ipv6.missing"] = { severity = "warning", weight = 10,
      fix = "Give at least one MX host an AAAA record and make it listen on IPv6." },
  },
  run = function(facts, ctx)
    local U = ctx.util
    if facts.kind ~= "domain" or #U.list(facts.targets) == 0 then return {} end
    local v6 = {}
    for _, t in ipairs(U.list(facts.targets)) do
      if t.family == "ipv6" then v6[#v6 + 1] = U.target_name(t) end
    end
    if #v6 == 0 then
      return { { code = "local.ipv6.missing", state = "fail",
        message = "no MX address is IPv6: IPv6-only senders cannot deliver" } }
    end
    return { { code = "local.ipv6.ok", state = "pass",
      message = #v6 .. " IPv6 MX target(s)", evidence = table.concat(v6, ", ") } }
  end,
}

local banner_version = {
  id = "local.banner-version",
  title = "The greeting does not advertise software versions",
  codes = { ["local.banner-version"] = { severity = "info", weight = 2 } },
  run = function(facts, ctx)
    local U = ctx.util
    return U.each_target(facts, function(t)
      local b = U.ok(U.smtp(t).banner)
      if not b then return nil end
      local text = U.reply_text(b.reply)
      local version = text:match("%f[%w]%d+%.%d+[%.%d]*")
      if version then
        return { U.finding("local.banner-version", "fail", t,
          "the greeting advertises a version number (" .. version .. ")", U.reply_line(b.reply)) }
      end
      return nil
    end)
  end,
}

return {
  checks = { ipv6, banner_version },
  -- and, while we are at it: extensions are noise for this user
  disable = { "smtp.extensions" },
}
