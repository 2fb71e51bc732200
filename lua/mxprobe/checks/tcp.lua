-- Check tcp -- can a sender open a TCP connection to each MX address?
--
-- What:   the TCP connect to port 25 (or --port) of every target: refused,
--         timed out, unreachable, or connected -- and how long it took.
--         A refused connection is a fact about the server (fail); a timeout
--         or an unreachable network may be the prober's own network (port 25
--         is often blocked outbound), so it is "could not test", never a fail.
-- Needs:  targets[i].smtp.connect.{status, error, time_ms}, targets[i].port;
--         ctx.policy.thresholds.connect_slow_ms.
-- Scope:  each target.
-- Example finding:
--   { code = "tcp.refused", severity = "critical", state = "fail",
--     target = { mx = "mx2.example.org", address = "192.0.2.25" },
--     message = "connection to port 25 refused",
--     evidence = "connect 192.0.2.25:25: connection refused",
--     remediation = "Start the MTA or open port 25 in the firewall." }

local U = require "mxprobe.checks.util"

-- every code this check emits: default severity and weight (a policy
-- overrides them), the fix, and the old name kept for one release
-- luacheck: push no max line length
local CODES = {
  ["tcp"] = { severity = "info", weight = 0 },
  ["tcp.ok"] = { severity = "ok", weight = 0 },
  ["tcp.refused"] = { severity = "critical", weight = 60,
    fix = "Start the MTA on port 25, or open port 25 in the host and network firewalls, or remove the MX record of a host that does not receive mail." },
  ["tcp.timeout"] = { severity = "warning", weight = 15,
    fix = "Test again from another network: port 25 is often blocked outbound by ISPs and clouds. If it times out from everywhere, a firewall drops the packets or the host is down." },
  ["tcp.unreachable"] = { severity = "warning", weight = 15,
    fix = "The prober has no route to this address (often IPv6 missing on the prober). Test from a network that has one." },
  ["tcp.error"] = { severity = "warning", weight = 15,
    fix = "Look at the evidence; test again." },
  ["tcp.slow"] = { severity = "warning", weight = 10,
    fix = "Check the network path and the load of the host; a slow connect delays every delivery." },
}
-- luacheck: pop

local function run(facts, ctx)
  local slow = U.num(ctx.policy.thresholds.connect_slow_ms) or 2000
  return U.each_target(facts, function(t)
    local c = U.tbl(U.smtp(t).connect)
    local port = U.num(t.port) or 25
    local where = string.format("%s:%s", tostring(t.address), tostring(math.tointeger(port) or port))
    if not c then
      return { U.finding("tcp", "untested", t, "no connection was attempted") }
    end
    local ev = U.str(c.error) or ("connect " .. where .. ": " .. tostring(c.status))
    if c.status == "ok" then
      local out = {}
      local ms = U.num(c.time_ms)
      if ms and ms > slow then
        out[#out + 1] = U.finding("tcp.slow", "fail", t,
          string.format("TCP connect took %s (threshold %s)", U.ms(ms), U.ms(slow)),
          "connect " .. where .. ": " .. U.ms(ms))
      end
      out[#out + 1] = U.finding("tcp.ok", "pass", t,
        string.format("connected to port %s in %s", tostring(math.tointeger(port) or port), U.ms(ms)))
      return out
    elseif c.status == "refused" or c.status == "reset" then
      return { U.finding("tcp.refused", "fail", t,
        string.format("connection to port %s refused", tostring(math.tointeger(port) or port)), ev) }
    elseif c.status == "timeout" then
      return { U.finding("tcp.timeout", "untested", t,
        string.format("connection to port %s timed out: could not test", tostring(math.tointeger(port) or port)), ev) }
    elseif c.status == "unreachable" then
      return { U.finding("tcp.unreachable", "untested", t,
        "network unreachable from the prober: could not test", ev) }
    end
    return { U.finding("tcp.error", "untested", t,
      "connect failed (" .. tostring(c.status) .. "): could not test", ev) }
  end)
end

return {
  id = "tcp",
  title = "TCP connection to port 25",
  scope = "target",
  requires = { "targets" },
  codes = CODES,
  run = run,
}
