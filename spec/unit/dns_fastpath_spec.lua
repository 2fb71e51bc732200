-- Unit specs of the fast paths of csrc/dns.c (issue 7, client CPU per
-- probe): core.dns_query writes the query of a plain name (letters,
-- digits, '-', '_') itself and core.dns_parse prints plain names, types
-- and class IN without ldns's printf; every other input still goes
-- through ldns. Each spec sets a plain input (fast path) against one that
-- means the same but takes the ldns path (an escape, a '*' label), so the
-- two paths must agree byte for byte.
local core = require "mxprobe.core"

local function wname(n)
  local out = {}
  for label in n:gmatch("[^.]+") do out[#out + 1] = string.char(#label) .. label end
  return table.concat(out) .. "\0"
end

describe("dns fast paths #unit", function()
  it("dns_query: a plain name gives the bytes of the same name written with escapes (ldns)", function()
    for _, qtype in ipairs { "MX", "A", "AAAA", "CNAME", "TXT", "TLSA", "PTR", "SOA", "NS" } do
      for _, o in ipairs { {}, { edns = false }, { rd = false, ad = false, cd = true }, { edns = 4096 } } do
        -- "\101" is 'e' in ldns's presentation format: that name is not plain
        assert.equal(core.dns_query("exampl\\101.Test", qtype, 0xbeef, o),
                     core.dns_query("example.Test", qtype, 0xbeef, o))
        assert.equal(core.dns_query("mx-1_a.exampl\\101.test.", qtype, 7, o),
                     core.dns_query("mx-1_a.example.test.", qtype, 7, o))
      end
    end
  end)

  it("dns_query: the exact bytes of a plain query with EDNS", function()
    local wire = core.dns_query("a.test", "TLSA", 0x1234)
    assert.equal(string.pack(">I2I2I2I2I2I2", 0x1234, 0x0120, 1, 0, 0, 1)
      .. "\1a\4test\0" .. string.pack(">I2I2", 52, 1)
      .. "\0" .. string.pack(">I2I2I4I2", 41, 1232, 0x8000, 0), wire)
  end)

  it("dns_query: names the fast path leaves to ldns are still refused or accepted as before", function()
    assert.has_error(function() core.dns_query("a..test", "A", 1) end)
    assert.has_error(function() core.dns_query(("a"):rep(64) .. ".test", "A", 1) end)
    assert.is_string(core.dns_query(".", "NS", 1))
    assert.is_string(core.dns_query("*.test", "A", 1))
  end)

  it("dns_parse: plain names are lowered and lose the final dot, as ldns prints them", function()
    local msg = string.pack(">I2I2I2I2I2I2", 9, 0x8180, 1, 3, 0, 0)
      .. wname("Mx1.Example.TEST") .. string.pack(">I2I2", 15, 1)
      .. wname("Mx1.Example.TEST")
      .. string.pack(">I2I2I4s2", 15, 1, 60, string.pack(">I2", 10) .. wname("Mail_1.EXAMPLE.test"))
      .. wname("*.Example.TEST") .. string.pack(">I2I2I4s2", 1, 1, 60, "\127\0\0\1")
      .. wname("x.y") .. string.pack(">I2I2I4s2", 99, 3, 60, "\1x")
    local t = assert(core.dns_parse(msg))
    assert.same({ name = "mx1.example.test", type = "MX", class = "IN" }, t.question)
    assert.equal("mx1.example.test", t.answer[1].name)
    assert.equal("mail_1.example.test", t.answer[1].exchange)
    assert.equal("MX", t.answer[1].type)
    assert.equal("IN", t.answer[1].class)
    assert.equal("*.example.test", t.answer[2].name)     -- the ldns path
    assert.equal("A", t.answer[2].type)
    assert.equal("SPF", t.answer[3].type)                -- a descriptor name
    assert.equal("CH", t.answer[3].class)                -- through ldns
  end)
end)
