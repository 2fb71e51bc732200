-- regress: `--format nagios` drew its certificate thresholds from the
-- default policy whatever --expiry-days or --policy said, because the CLI
-- did not hand its policy to the report: the perfdata said warn at 14 days
-- while the findings above it used the user's threshold. No network:
-- saved facts.
local ENV = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;"')
  :format(os.getenv("MXPROBE_CPATH") or "build/?.so")

local function nagios(args)
  local p = assert(io.popen(('%s lua5.4 bin/mxprobe --from-facts spec/fixtures/facts/good.json --format nagios %s'
    .. ' 2>&1; echo "status $?"'):format(ENV, args)))
  local out = p:read("a")
  p:close()
  return out
end

describe("regress: nagios perfdata thresholds follow the CLI's policy #unit", function()
  it("warns at the --expiry-days given, in the perfdata as in the findings", function()
    local out = nagios("--expiry-days 400")
    local first = out:match("^[^\n]*")
    -- both targets of good.example.test, warn range "400:", critical "0:"
    local n = select(2, first:gsub("cert_days'=%d+;400:;0:;;", ""))
    assert.equal(2, n, first)
    assert.truthy(out:find("warning threshold 400 days", 1, true))
    assert.equal("status 1", out:match("status %d+"))
  end)

  it("keeps the default 14 days without the option", function()
    local first = nagios(""):match("^[^\n]*")
    assert.equal(2, select(2, first:gsub("cert_days'=%d+;14:;0:;;", "")), first)
  end)
end)
