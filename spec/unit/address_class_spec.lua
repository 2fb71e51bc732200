-- core.address_class (csrc/net.c, issue 12): which addresses from DNS may
-- be probed is decided in Lua on this pure classification.
local core = require "mxprobe.core"

describe("core.address_class #unit", function()
  local cases = {
    { "0.0.0.0", "unspecified" }, { "::", "unspecified" },
    { "127.0.0.1", "loopback" }, { "127.255.1.2", "loopback" }, { "::1", "loopback" },
    { "10.1.2.3", "private" }, { "172.16.0.1", "private" }, { "172.31.255.255", "private" },
    { "192.168.0.1", "private" }, { "100.64.0.1", "private" }, { "fc00::1", "private" }, { "fd00::1", "private" },
    { "169.254.1.1", "link-local" }, { "fe80::1", "link-local" }, { "febf::1", "link-local" },
    { "224.0.0.1", "multicast" }, { "239.255.255.255", "multicast" }, { "ff02::1", "multicast" },
    { "255.255.255.255", "broadcast" },
    { "240.0.0.1", "reserved" }, { "0.1.2.3", "reserved" }, { "192.0.0.8", "reserved" }, { "198.18.0.1", "reserved" },
    { "100::1", "reserved" }, { "fec0::1", "reserved" }, { "::1.2.3.4", "reserved" },
    { "192.0.2.1", "documentation" }, { "198.51.100.7", "documentation" }, { "203.0.113.9", "documentation" },
    { "2001:db8::1", "documentation" }, { "3fff::1", "documentation" },
    { "8.8.8.8", "global" }, { "172.32.0.1", "global" }, { "100.128.0.1", "global" }, { "2a00:1450::1", "global" },
    { "64:ff9b::808:808", "global" },
  }
  for _, c in ipairs(cases) do
    it(("classifies %s as %s"):format(c[1], c[2]), function()
      local class, family = core.address_class(c[1])
      assert.equal(c[2], class)
      assert.equal(c[1]:find(":") and "ipv6" or "ipv4", family)
    end)
  end

  it("classifies an IPv4-mapped IPv6 address as its IPv4 address, in canonical form", function()
    assert.same({ "loopback", "ipv4", "127.0.66.3" }, { core.address_class("::ffff:127.0.66.3") })
    assert.same({ "global", "ipv4", "8.8.8.8" }, { core.address_class("::FFFF:8.8.8.8") })
    assert.same({ "unspecified", "ipv4", "0.0.0.0" }, { core.address_class("::ffff:0.0.0.0") })
    assert.same({ "global", "ipv6", "2a00:1450::1" }, { core.address_class("2A00:1450:0:0::1") })
  end)

  it("returns nil for what is not an address, a NUL inside included", function()
    for _, s in ipairs { "", "x", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4\0junk", "::1\0", "[::1]", "1.2.3.4 " } do
      assert.is_nil(core.address_class(s), s)
    end
  end)
end)
