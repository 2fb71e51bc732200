-- Unit specs of the monitoring-plugin report (mxprobe.report.nagios) on
-- the facts fixtures judged with the default policy: the line grammar,
-- the status word against judge.exit_status, perfdata thresholds from the
-- policy, and server bytes that can never break the syntax. No socket.

local nagios = require "mxprobe.report.nagios"
local judge = require "mxprobe.judge"
local mxprobe = require "mxprobe"
local R = require "support.report"

local WORD = { [0] = "OK", [1] = "WARNING", [2] = "CRITICAL", [3] = "UNKNOWN" }

-- 'label'=value[UOM];warn;crit;min;max -- the label quoted, without ' = |
local PERF = "^'([^'=|\r\n]+)'=(%-?%d+%.?%d*)([a-z]*);([%d.:~@-]*);([%d.:~@-]*);(%-?[%d.]*);(%-?[%d.]*)$"

-- the first line split by the plugin grammar: status, summary, perfdata items
local function parse(out)
  assert.equal("\n", out:sub(-1))
  local first = out:match("^([^\n]*)\n")
  local status, summary, perf = first:match("^MXPROBE (%u+) %- ([^|]+) | (.+)$")
  if not status then
    status, summary = first:match("^MXPROBE (%u+) %- ([^|]+)$")
  end
  assert.truthy(status, "first line: " .. first)
  local items = {}
  for item in (perf or ""):gmatch("%S+") do
    -- labels hold spaces: join until the item is complete
    if #items > 0 and not items[#items]:match(";[^;]*;[^;]*;[^;]*;[^;]*$") then
      items[#items] = items[#items] .. " " .. item
    else
      items[#items + 1] = item
    end
  end
  local perfs = {}
  for _, it in ipairs(items) do
    local label, value, uom, warn, crit, min, max = it:match(PERF)
    assert.truthy(label, "perfdata item: " .. it)
    perfs[label] = { value = tonumber(value), uom = uom, warn = warn, crit = crit, min = min, max = max }
  end
  local rest = {}
  for line in out:sub(#first + 2):gmatch("([^\n]*)\n") do rest[#rest + 1] = line end
  return status, summary, perfs, rest
end

describe("report.nagios.render #unit", function()
  it("is registered as a report format and reached through mxprobe.report", function()
    local fl, jl = R.judged({ "good" })
    assert.equal(nagios.render(fl, jl, {}), mxprobe.report(fl, jl, { format = "nagios" }))
  end)

  it("says the status word of judge.exit_status, one query or several", function()
    for _, set in ipairs({ { "good" }, { "expired" }, { "expiring" }, { "timeout" }, { "nxdomain" },
      { "good", "timeout" }, { "good", "expiring", "timeout" }, { "timeout", "openrelay", "expiring" } }) do
      local fl, jl = R.judged(set)
      local status = parse(nagios.render(fl, jl))
      assert.equal(WORD[judge.exit_status(jl)], status, table.concat(set, ","))
    end
    assert.equal("OK", (parse(nagios.render(R.judged({ "good" })))))
    assert.equal("CRITICAL", (parse(nagios.render(R.judged({ "openrelay" })))))
    assert.equal("WARNING", (parse(nagios.render(R.judged({ "expired" })))))  -- opportunistic: the certificate rule
    assert.equal("WARNING", (parse(nagios.render(R.judged({ "expiring" })))))
    assert.equal("UNKNOWN", (parse(nagios.render(R.judged({ "timeout" })))))
    assert.equal("UNKNOWN", (parse(nagios.render({}, {}))))
  end)

  it("sums up one domain with its verdict, grade and worst codes", function()
    local _, summary = parse(nagios.render(R.judged({ "expired" })))
    assert.equal("expired.example.test: warning: 1 warning; grade D (55/100); tls.cert.expired", summary)
    local _, many = parse(nagios.render(R.judged({ "good", "openrelay", "expiring", "timeout" })))
    assert.equal("4 domains: 1 critical, 1 warning, 1 could not test, 1 ok", many)
  end)

  it("gives perfdata per target: score, certificate days with the policy's thresholds, timings", function()
    local fl, jl = R.judged({ "good" })
    local _, _, perf = parse(nagios.render(fl, jl))
    local n = 0
    for _ in pairs(perf) do n = n + 1 end
    assert.equal(10, n) -- 2 targets x score, cert_days, connect, banner, handshake
    local s = perf["mx1.good.example.test[127.0.1.1] score"]
    assert.same({ value = 100, uom = "", warn = "", crit = "", min = "0", max = "100" }, s)
    local c = perf["mx1.good.example.test[127.0.1.1] cert_days"]
    local na = fl[1].targets[1].smtp.certificates[1].not_after
    assert.equal(math.floor((na - jl[1].now) / 86400), c.value)
    assert.equal("14:", c.warn)
    assert.equal("0:", c.crit)
    local t = perf["mx2.good.example.test[127.0.1.2] connect"]
    assert.equal("ms", t.uom)
    assert.equal("2000", t.warn)
    assert.near(fl[1].targets[2].smtp.connect.time_ms, t.value, 0.001)
    assert.equal("5000", perf["mx1.good.example.test[127.0.1.1] banner"].warn)
    assert.equal("ms", perf["mx1.good.example.test[127.0.1.1] handshake"].uom)
    -- another policy, other thresholds
    local strict = { thresholds = { expiry_days = 30, connect_slow_ms = 500 } }
    local _, _, p2 = parse(nagios.render(fl, jl, { policy = strict }))
    assert.equal("30:", p2["mx1.good.example.test[127.0.1.1] cert_days"].warn)
    assert.equal("500", p2["mx1.good.example.test[127.0.1.1] connect"].warn)
    -- an expired certificate is below the critical threshold
    local _, _, pe = parse(nagios.render(R.judged({ "expired" })))
    assert.is_true(pe["mx.expired.example.test[127.0.2.1] cert_days"].value < 0)
    -- a target that could not be tested has no score, only what was measured
    local _, _, pt = parse(nagios.render(R.judged({ "timeout" })))
    assert.is_nil(pt["mx.blackhole.example.test[127.0.12.1] score"])
    assert.is_number(pt["mx.blackhole.example.test[127.0.12.1] connect"].value)
  end)

  it("prefixes the labels with the domain when there are several", function()
    local _, _, perf = parse(nagios.render(R.judged({ "good", "expired" })))
    assert.is_table(perf["good.example.test mx1.good.example.test[127.0.1.1] score"])
    assert.is_table(perf["expired.example.test mx.expired.example.test[127.0.2.1] score"])
  end)

  it("lists the findings that matter after the first line, worst first", function()
    local fl, jl = R.judged({ "expiring", "openrelay", "timeout" })
    local _, _, _, rest = parse(nagios.render(fl, jl))
    assert.equal(3, #rest)
    assert.matches("^CRITICAL: openrelay%.example%.test mx%.openrelay%.example%.test%[127%.0%.7%.1%]: "
      .. "relay%.open ", rest[1])
    assert.matches("^WARNING: expiring%.example%.test mx%.expiring%.example%.test%[127%.0%.14%.1%]: "
      .. "tls%.cert%.expiring the certificate expires in", rest[2])
    assert.matches("^NOT TESTED: blackhole%.example%.test .*: tcp%.timeout ", rest[3])
    local _, _, _, cut = parse(nagios.render(fl, jl, { max_lines = 1 }))
    assert.same({ rest[1], "... and 2 more" }, cut)
  end)

  it("keeps server bytes from breaking the syntax: hostile banners and names", function()
    local fl, jl = R.judged({ "hostile-markup", "hostile-banner" })
    local out = nagios.render(fl, jl)
    assert.equal(1, select(2, out:gsub("|", "")))   -- the one separator
    assert.truthy(utf8.len(out))
    assert.is_nil(out:find("[%z\1-\9\11-\31\127]"))
    local _, _, perf = parse(out)
    assert.is_table(perf["[127.0.66.70]:2601 [127.0.66.70] score"])
    -- a label and a line made of what the servers sent
    local banner = fl[1].targets[1].smtp.banner.reply.text
    local label = nagios.label(banner)
    assert.is_nil(label:find("[|'= \r\n]"))
    assert.matches(PERF, "'" .. label .. "'=1;;;;")
    local line = nagios.line(fl[2].targets[1].smtp.banner.reply.text .. "\n" .. banner)
    assert.is_nil(line:find("[|\r\n]"))
    assert.matches("\\x0A=cmd\\x7C' /C calc", line, 1, true)
    assert.matches("\\x1B[2J", line, 1, true)
  end)
end)
