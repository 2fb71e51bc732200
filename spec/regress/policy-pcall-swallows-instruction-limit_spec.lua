-- Bug (issue 12): the policy sandbox's instruction limit was an ordinary
-- error, which the policy's own pcall swallowed: an endless loop inside
-- pcall never stopped, at load time and at judging time. Once the budget
-- is spent, every pcall/xpcall of the sandbox raises again, so the whole
-- policy run ends, wherever it is (even inside a C function that calls
-- back, like table.sort).
local policy = require "mxprobe.policy"
local judge = require "mxprobe.judge"
local core = require "mxprobe.core"
local fixtures = require "fixtures.facts._load"
-- ends: a generous bound (120 s, for valgrind runs); without the fix these
-- runs never end at all

local function policy_file(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return path
end

local LOOPS = {
  pcall = "while true do pcall(function() while true do end end) end",
  xpcall = "while true do xpcall(function() while true do end end, function(e) while true do end end) end",
  ["pcall in a sort comparator"] = [[
    local t = {} for i = 1, 100 do t[i] = i end
    table.sort(t, function(a, b) while true do pcall(function() while true do end end) end end)]],
  ["pcall in a gsub callback"] = [[
    while true do pcall(string.gsub, "abc", ".", function() while true do pcall(error) end end) end]],
}

describe("regress: a policy's pcall cannot swallow the instruction limit #unit", function()
  for name, loop in pairs(LOOPS) do
    it("stops a policy file that loops inside " .. name .. ", at load time", function()
      local t0 = core.now()
      local path = policy_file(loop .. "\nreturn {}\n")
      local p, err = policy.load(path)
      os.remove(path)
      assert.is_nil(p)
      assert.equal(path .. ": policy file runs too long (endless loop?)", err)
      assert.is_true(core.now() - t0 < 120000)
    end)

    it("stops a policy check that loops inside " .. name .. ", at judging time, as one check-error", function()
      local path = policy_file("return { checks = { { id = \"t.loop\", run = function()\n" .. loop
        .. "\nend } } }\n")
      local p = assert(policy.load(path))
      os.remove(path)
      p.scoring.check_instructions = 0   -- "no budget" does not switch it off for a policy's check
      local t0 = core.now()
      local j = judge.run(fixtures.load("good"), p)
      assert.is_true(core.now() - t0 < 120000)
      local errs = {}
      for _, f in ipairs(j.findings) do
        if f.code == "mxprobe.check-error" then errs[#errs + 1] = f end
      end
      assert.equal(1, #errs)
      assert.equal("check t.loop failed: check t.loop ran past its instruction budget (endless loop?)", errs[1].message)
      assert.equal("untested", errs[1].state)
    end)
  end
end)
