-- Bugs (issue 12), the policy sandbox: a returned table whose __index
-- loops hung the merge (which ran outside the limit); allocations were
-- unbounded; a pathological pattern inside one string.match never yielded
-- to the hook; string.dump was reachable through the string metatable;
-- math.randomseed was there. Each is closed now: the result is copied with
-- raw access inside the limits, the Lua state may grow by at most
-- policy.MEMORY_MAX while policy code runs, costly patterns are refused,
-- and the string methods are the sandbox's while policy code runs.
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

local function load_src(src)
  local path = policy_file(src)
  local p, err = policy.load(path)
  os.remove(path)
  return p, err, path
end

local function timed(fn)
  local t0 = core.now()
  local a, b, c = fn()
  assert.is_true(core.now() - t0 < 120000, "took " .. (core.now() - t0) .. " ms")
  return a, b, c
end

describe("regress: escapes from the policy sandbox #unit", function()
  it("never runs a returned table's __index or __pairs outside the limit", function()
    local p = timed(function() return load_src([[
      local loop = function() while true do end end
      local sev = setmetatable({}, { __index = loop, __pairs = loop })
      return setmetatable({ severities = sev }, { __index = loop, __pairs = loop, __len = loop })
    ]]) end)
    assert.is_table(p)   -- the raw contents: an empty severities table
    assert.equal(policy.default().severities["relay.open"], p.severities["relay.open"])
  end)

  it("copies a finding list a policy check returns with raw access too", function()
    local p = assert(load_src([[
      local loop = function() while true do end end
      return { checks = { { id = "t.meta", run = function()
        return setmetatable({ setmetatable({}, { __index = loop }) }, { __index = loop, __len = loop })
      end } } }
    ]]))
    local j = timed(function() return judge.run(fixtures.load("good"), p) end)
    local found
    for _, f in ipairs(j.findings) do if f.code == "mxprobe.check-error" then found = f end end
    assert.equal("check t.meta failed: returned an invalid finding: finding 1: a finding has no valid code",
      found.message)
  end)

  it("stops a policy that allocates without bound, even inside pcall", function()
    for _, src in ipairs {
      "local t = {} for i = 1, 1e9 do t[i] = {} end",
      "local s = 'x' for i = 1, 64 do s = s .. s end",
      "pcall(string.rep, 'x', 1 << 40) local t = {} while true do pcall(function() t[#t + 1] = {} end) end",
    } do
      -- the limit counts the state's net growth while the policy runs:
      -- garbage of earlier specs freed meanwhile would let the policy
      -- allocate that much more first (and meet the instruction limit
      -- before the memory one), so start from a collected heap, as a
      -- policy loaded at the CLI's start, before any probing, does
      collectgarbage()
      local p, err, path = timed(function() return load_src(src .. "\nreturn {}\n") end)
      assert.is_nil(p, src)
      assert.equal(("%s: policy file ran past its memory limit (%d MiB)"):format(path, policy.MEMORY_MAX >> 20), err)
    end
    collectgarbage()
  end)

  it("refuses a pattern whose backtracking has no practical end", function()
    for _, src in ipairs {
      [[return { thresholds = { probe = string.match(("a"):rep(40), ("a?"):rep(40) .. ("a"):rep(40)) } }]],
      [[return { thresholds = { probe = (("x"):rep(100000)):match(".-.-.-.-y") } }]],
      [[for w in (("ab"):rep(5000)):gmatch("(.-)(.-)(.-)c") do end return {}]],
      [[return { thresholds = { probe = (("ab"):rep(5000)):gsub("%w*%w*%w*%w*c", "") } }]],
    } do
      local p, err = timed(function() return load_src(src) end)
      assert.is_nil(p, src)
      assert.matches("pattern too costly for a subject of %d+ bytes %(policy sandbox%)", err)
    end
    local p0, err0 = timed(function() return load_src(
      [[return { thresholds = { probe = (("a"):rep(1 << 24)):find(("a"):rep(1 << 22) .. "b", 1, true) } }]]) end)
    assert.is_nil(p0)
    assert.matches("plain search too costly for a subject of 16777216 bytes (policy sandbox)", err0, 1, true)
    -- ordinary patterns on ordinary subjects still work
    local p = assert(load_src(
      [[return { thresholds = { probe = ("Postfix 3.7.11 ESMTP"):match("%f[%w]%d+%.%d+[%.%d]*") } }]]))
    assert.equal("3.7.11", p.thresholds.probe)
  end)

  it("gives no path to string.dump, debug, io, load, require or math.randomseed", function()
    local p = assert(load_src([[
      local seen = {}
      local all = table.pack(("").dump, string.dump, ("x").dump, debug, io, load, loadstring, dofile, require,
                             collectgarbage, coroutine, math.randomseed, os.execute, os.getenv, os.remove,
                             os.exit, getmetatable, package)
      for i = 1, all.n do seen[i] = tostring(all[i]) end
      return { thresholds = { probe = table.concat(seen, ",") } }
    ]]))
    assert.equal(("nil,"):rep(17) .. "nil", p.thresholds.probe)
    -- and after the policy ran, mxprobe's own strings have their methods back
    assert.is_function(("").dump)
  end)

  it("refuses a finalizer (__gc would run later, outside every limit)", function()
    local p, err = load_src("setmetatable({}, { __gc = function() while true do end end })\nreturn {}\n")
    assert.is_nil(p)
    assert.matches("__gc is not allowed in a policy", err, 1, true)
  end)
end)
