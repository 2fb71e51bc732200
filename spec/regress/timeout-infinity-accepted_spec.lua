-- Bug (issue 12): a timeout of 1e309 (infinity) was accepted and hung the
-- probe; NaN and huge counts were not refused either. Every number an
-- option gives is range-checked where it enters (mxprobe.run.options).
local run = require "mxprobe.run"

local function opts(t)
  t.resolver = "127.0.0.1"   -- no /etc/resolv.conf needed; nothing is sent
  return t
end

describe("regress: infinite, NaN and out-of-range option numbers #unit", function()
  it("refuses infinite, NaN, zero, negative and too long timeouts", function()
    for _, k in ipairs { "timeout", "probe_timeout", "dns_timeout" } do
      for _, v in ipairs { 1e309, -1e309, 0 / 0, 0, -1, run.MAX_SECONDS[k] + 1 } do
        local o, err = run.options(opts { [k] = v })
        assert.is_nil(o, k .. " = " .. tostring(v))
        assert.equal(("%s must be a number of seconds above 0 and at most %d"):format(k, run.MAX_SECONDS[k]), err)
      end
      assert.is_table(run.options(opts { [k] = run.MAX_SECONDS[k] }))
      assert.is_table(run.options(opts { [k] = 0.5 }))
    end
  end)

  it("refuses counts below 1, above their bound, or not integers", function()
    for k, max in pairs(run.MAX_COUNT) do
      for _, v in ipairs { 0, -1, max + 1, 1.5, 1e300, math.maxinteger } do
        local o, err = run.options(opts { [k] = v })
        assert.is_nil(o, k .. " = " .. tostring(v))
        assert.equal(("%s must be an integer from 1 to %d"):format(k, max), err)
      end
    end
  end)

  it("refuses a port out of 1-65535", function()
    for _, v in ipairs { 0, 65536, -25, 25.5 } do
      assert.is_nil((run.options(opts { port = v })))
    end
  end)

  it("refuses the same through the CLI, exit status 3, before any probe", function()
    for _, a in ipairs { "--timeout 1e309", "--timeout inf", "--dns-timeout 1e309", "--probe-timeout=-5",
                         "--concurrency 0", "--per-address 100001", "--port 0", "--port 70000" } do
      local p = io.popen(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 bin/mxprobe '
        .. '--resolver 127.0.0.1:9 %s "[127.0.0.1]:9" 2>&1'):format(os.getenv("MXPROBE_CPATH") or "build/?.so", a))
      local out = p:read("a")
      local _, _, status = p:close()
      assert.equal(3, status, a .. ": " .. out)
      -- one line that says what is wrong (after the usage, for what argparse refuses)
      assert.matches("\nmxprobe: [^\n]+\n$", "\n" .. out, nil, a)
      assert.is_nil(out:find("internal error", 1, true), a)
    end
  end)
end)
