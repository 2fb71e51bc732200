-- net_spec.lua -- the parts of the core's system interface that need no
-- socket: clocks, address parsing, getrandom(2). Socket methods
-- (sock:local_address, TLS over a socket) are in
-- spec/integration/tls_socket_spec.lua.
local core = require "mxprobe.core"

describe("core.random_bytes #unit", function()
  it("returns exactly n bytes, for every n up to the limit", function()
    assert.equal(256, core.limits.random_max)
    for _, n in ipairs({ 0, 1, 2, 16, 255, 256 }) do
      assert.equal(n, #core.random_bytes(n))
    end
  end)

  it("raises outside 0..random_max", function()
    assert.has_error(function() core.random_bytes(-1) end)
    assert.has_error(function() core.random_bytes(257) end)
    assert.has_error(function() core.random_bytes("x") end)
    assert.has_error(function() core.random_bytes() end)
  end)

  it("does not repeat itself", function()
    local a, b = core.random_bytes(32), core.random_bytes(32)
    assert.are_not.equal(a, b)
    -- 32 random bytes are all equal with probability 2^-248
    assert.is_nil(a:match("^(.)%1*$"))
  end)
end)

describe("core.random_u16 #unit", function()
  it("returns integers in 0..65535 that spread over the range", function()
    local seen, high, low = {}, 0, 0
    for _ = 1, 2000 do
      local v = core.random_u16()
      assert.equal("integer", math.type(v))
      assert.is_true(v >= 0 and v <= 65535, v)
      seen[v] = true
      if v >= 32768 then high = high + 1 else low = low + 1 end
    end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    -- 2000 draws from 65536 values: ~30 collisions expected
    assert.is_true(distinct > 1900, distinct)
    assert.is_true(high > 800 and low > 800, high .. "/" .. low)
  end)
end)

describe("core.parse_address #unit", function()
  it("gives the family and the canonical text", function()
    assert.same({ "ipv4", "192.0.2.7" }, { core.parse_address("192.0.2.7") })
    assert.same({ "ipv6", "2001:db8::1" }, { core.parse_address("2001:DB8:0::1") })
    assert.is_nil(core.parse_address("mx.example.test"))
  end)
end)

describe("core.now and core.time #unit", function()
  it("a monotonic clock in ms and the wall clock in s", function()
    local a = core.now()
    local b = core.now()
    assert.is_true(b >= a)
    assert.is_true(math.abs(core.time() - os.time()) < 2)
  end)
end)
