-- Bug (issue 12): DNS query IDs came from math.random, and a policy could
-- call math.randomseed: whoever fixed the seed fixed the IDs an off-path
-- spoofer must guess. IDs come from getrandom(2) in C (core.random_u16,
-- which mxprobe.dns uses), and the policy sandbox has no math.randomseed
-- (its math.random is its own generator).
local core = require "mxprobe.core"
local policy = require "mxprobe.policy"

local function ids(n)
  local out = {}
  for i = 1, n do out[i] = core.random_u16() end
  return out
end

describe("regress: DNS query IDs cannot be fixed by math.randomseed #unit", function()
  it("draws IDs that do not repeat after the same math.randomseed", function()
    math.randomseed(42)
    local a = ids(16)
    math.randomseed(42)
    local b = ids(16)
    assert.are_not.same(a, b)
    for _, id in ipairs(a) do assert.is_true(math.type(id) == "integer" and id >= 0 and id <= 65535) end
  end)

  it("takes the query ID from core.random_u16 in mxprobe.dns, never from math.random", function()
    local f = assert(io.open("lua/mxprobe/dns.lua"))
    local src = f:read("a")
    f:close()
    assert.truthy(src:find("local id = core.random_u16()", 1, true))
    assert.is_nil(src:find("math%.random%s*%("))
  end)

  it("gives a policy no math.randomseed, and a math.random of its own", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[return { thresholds = { probe = tostring(math.randomseed) .. " " .. math.random(1, 6) } }]])
    f:close()
    math.randomseed(7)
    local before = { math.random(1 << 30), math.random(1 << 30) }
    math.randomseed(7)
    local p = assert(policy.load(path))
    os.remove(path)
    assert.matches("^nil [1-6]$", p.thresholds.probe)
    -- the policy's math.random did not advance mxprobe's generator
    assert.same(before, { math.random(1 << 30), math.random(1 << 30) })
  end)
end)
