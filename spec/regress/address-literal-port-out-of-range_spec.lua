-- Bug (issue 12): an address literal's port was never range-checked:
-- [a]:99999 and [a]:0 reached connect and came back as "internal error"
-- with exit 0; [::], [0.0.0.0] and multicast literals were connected to.
-- They are query errors now, told before any probe.
local probe = require "mxprobe.probe"

describe("regress: address literals with a port out of range or a non-unicast address #unit", function()
  it("refuses ports 0 and above 65535 with a clear message", function()
    for _, q in ipairs { "[127.0.0.1]:99999", "[127.0.0.1]:0", "[::1]:65536", "[127.0.0.1]:000000000000025",
                         "host.test:0", "host.test:123456789012345678901234567890" } do
      local parsed, err = probe.parse_query(q)
      assert.is_nil(parsed, q)
      assert.matches("out of range (1-65535)", err, 1, true)
    end
    assert.equal(65535, probe.parse_query("[127.0.0.1]:65535").port)
    assert.equal(1, probe.parse_query("[::1]:1").port)
  end)

  it("refuses literals that are not unicast addresses", function()
    for q, class in pairs { ["[0.0.0.0]"] = "unspecified", ["[::]"] = "unspecified", ["[224.0.0.1]:25"] = "multicast",
                            ["[ff02::1]"] = "multicast", ["[255.255.255.255]"] = "broadcast",
                            ["[240.0.0.1]"] = "reserved" } do
      local parsed, err = probe.parse_query(q)
      assert.is_nil(parsed, q)
      local article = class == "unspecified" and "an " or "a "
      assert.matches("is " .. article .. class .. " address: mxprobe connects only to unicast addresses", err, 1, true)
    end
  end)

  it("tells both through the CLI as one line and exit status 3, before any probe", function()
    for q, msg in pairs { ["[127.0.0.1]:99999"] = "port 99999 out of range (1-65535)",
                          ["[::]:25"] = ":: is an unspecified address: mxprobe connects only to unicast addresses" } do
      local p = io.popen(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 bin/mxprobe "%s" 2>&1')
        :format(os.getenv("MXPROBE_CPATH") or "build/?.so", q))
      local out = p:read("a")
      local _, _, status = p:close()
      assert.equal(3, status)
      assert.equal("mxprobe: " .. msg .. "\n", out)
    end
  end)

  it("with public_only, probes no loopback literal: a query error, nothing connected", function()
    local facts = assert(probe.probe("[127.0.0.1]:9", { resolver = "127.0.0.1:9", public_only = true }))
    assert.equal("127.0.0.1 is a loopback address: not probed (--public-only)", facts.error)
    assert.equal(0, #facts.targets)
  end)

  it("normalises an IPv4-mapped literal to its IPv4 address", function()
    local q = probe.parse_query("[::ffff:127.0.0.2]:2525")
    assert.same({ kind = "address", address = "127.0.0.2", family = "ipv4", port = 2525, class = "loopback" }, q)
  end)
end)
