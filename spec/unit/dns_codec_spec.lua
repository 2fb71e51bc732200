-- Unit specs of the DNS wire codec in csrc/dns.c: core.dns_query,
-- core.dns_parse, core.dns_reverse_name. No sockets: the answers are built
-- here byte by byte (string.pack, independent of ldns) or read from the hex
-- fixtures in spec/fixtures/dns/.
local core = require "mxprobe.core"

-- the default limits of csrc/mxprobe.h
local DNS_RR_MAX = 256
local DNS_MSG_MAX = 65535
local TEXT_MAX = 1024

-- types and classes on the wire
local T = { A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16,
            AAAA = 28, SRV = 33, OPT = 41, TLSA = 52 }
local IN = 1

local function fromhex(h)
  h = h:gsub("#[^\n]*", ""):gsub("%s+", "")
  assert(#h % 2 == 0, "odd number of hex digits")
  return (h:gsub("..", function(b) return string.char(tonumber(b, 16)) end))
end

local function tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function fixture(name)
  local f = assert(io.open("spec/fixtures/dns/" .. name .. ".hex", "rb"))
  local text = f:read("a")
  f:close()
  return fromhex(text)
end

-- a name in uncompressed wire form ("." is the root)
local function wname(n)
  local out = {}
  for label in n:gmatch("[^.]+") do
    out[#out + 1] = string.char(#label) .. label
  end
  return table.concat(out) .. "\0"
end

local function header(id, flags, qd, an, ns, ar)
  return string.pack(">I2I2I2I2I2I2", id, flags, qd, an, ns, ar)
end

local function question(n, qtype)
  return wname(n) .. string.pack(">I2I2", qtype, IN)
end

local function rr(n, rtype, rdata, ttl, class)
  return wname(n) .. string.pack(">I2I2I4s2", rtype, class or IN, ttl or 300, rdata)
end

local function opt(udp, ext_rcode, flags)
  return "\0" .. string.pack(">I2I2BBI2I2", T.OPT, udp or 1232, ext_rcode or 0, 0,
                             flags or 0x8000, 0)
end

-- a response: m = {id, flags, q = {name, type}, an = {...}, ns = {...}, ar = {...}}
local function response(m)
  local an, ns, ar = m.an or {}, m.ns or {}, m.ar or {}
  return header(m.id or 0x4242, m.flags or 0x8180, m.q and 1 or 0, #an, #ns, #ar)
    .. (m.q and question(m.q[1], m.q[2]) or "")
    .. table.concat(an) .. table.concat(ns) .. table.concat(ar)
end

-- parse an answer holding the one record r; return that record's table
local function parse_one(r)
  local t, msg, code = core.dns_parse(response{ q = { "example.test", T.MX }, an = { r } })
  assert(t, msg, code)
  assert.equal(1, #t.answer)
  return t.answer[1]
end

-- a name of wire length exactly 255 (3 labels of 63, one of 61)
local LONG_NAME = ("a"):rep(63) .. "." .. ("b"):rep(63) .. "." .. ("c"):rep(63) .. "."
                  .. ("d"):rep(61)

describe("core.dns_query #unit", function()
  it("builds the exact bytes of an MX query with RD, AD and an EDNS0 OPT with DO", function()
    local wire = core.dns_query("example.test", "MX", 0x1234)
    assert.equal("1234" .. "0120" .. "0001" .. "0000" .. "0000" .. "0001"
      .. "076578616d706c650474657374" .. "00" .. "000f" .. "0001"
      .. "00" .. "0029" .. "04d0" .. "00" .. "00" .. "8000" .. "0000", tohex(wire))
  end)

  it("treats a trailing dot as the same name", function()
    assert.equal(core.dns_query("example.test", "A", 7), core.dns_query("example.test.", "A", 7))
  end)

  it("leaves out RD, AD and the OPT record when asked to", function()
    local wire = core.dns_query("example.test", "A", 0, { rd = false, ad = false, edns = false })
    assert.equal(header(0, 0, 1, 0, 0, 0) .. question("example.test", T.A), wire)
  end)

  it("puts the requested EDNS buffer size in the OPT class", function()
    local t = assert(core.dns_parse(core.dns_query("example.test", "TLSA", 1, { edns = 4096 })))
    assert.equal(4096, t.edns.udp_size)
    assert.is_true(t.edns["do"])
  end)

  it("accepts ids at both ends of 0..65535", function()
    assert.equal(0, core.dns_parse(core.dns_query("a.test", "A", 0)).id)
    assert.equal(65535, core.dns_parse(core.dns_query("a.test", "A", 65535)).id)
  end)

  it("encodes every supported type with its wire code", function()
    for name, code in pairs{ MX = 15, A = 1, AAAA = 28, CNAME = 5, TXT = 16, TLSA = 52,
                              PTR = 12, SOA = 6, NS = 2 } do
      local wire = core.dns_query("x.test", name, 1, { edns = false })
      assert.equal(code, (string.unpack(">I2", wire, 12 + #wname("x.test") + 1)))
    end
  end)

  it("accepts the root and a name of 255 wire bytes", function()
    assert.equal(".", core.dns_parse(core.dns_query(".", "NS", 1)).question.name)
    assert.equal(LONG_NAME, core.dns_parse(core.dns_query(LONG_NAME, "A", 1)).question.name)
  end)

  it("raises on an unknown query type", function()
    assert.has_error(function() core.dns_query("example.test", "ANY", 1) end)
    assert.has_error(function() core.dns_query("example.test", "mx", 1) end)
    assert.has_error(function() core.dns_query("example.test", 15, 1) end)
  end)

  it("raises on an invalid name", function()
    for _, bad in ipairs{ "", "a..b", ("x"):rep(64) .. ".test", LONG_NAME .. "e",
                          "a\0b.test" } do
      assert.has_error(function() core.dns_query(bad, "A", 1) end, nil, bad)
    end
  end)

  it("raises on an id outside 0..65535", function()
    assert.has_error(function() core.dns_query("example.test", "A", -1) end)
    assert.has_error(function() core.dns_query("example.test", "A", 65536) end)
    assert.has_error(function() core.dns_query("example.test", "A", 1.5) end)
    assert.has_error(function() core.dns_query("example.test", "A") end)
  end)

  it("raises on options of the wrong type", function()
    assert.has_error(function() core.dns_query("example.test", "A", 1, "rd") end)
    assert.has_error(function() core.dns_query("example.test", "A", 1, { rd = 1 }) end)
    assert.has_error(function() core.dns_query("example.test", "A", 1, { ad = "yes" }) end)
    assert.has_error(function() core.dns_query("example.test", "A", 1, { edns = true }) end)
    assert.has_error(function() core.dns_query("example.test", "A", 1, { edns = 511 }) end)
    assert.has_error(function() core.dns_query("example.test", "A", 1, { edns = 65536 }) end)
  end)
end)

describe("core.dns_parse #unit", function()
  it("reads back a query it built: id, question, flags and EDNS DO", function()
    local t = assert(core.dns_parse(core.dns_query("Mail.Example.TEST.", "MX", 4321)))
    assert.equal(4321, t.id)
    assert.same({ name = "mail.example.test", type = "MX", class = "IN" }, t.question)
    assert.is_false(t.qr)
    assert.is_true(t.rd)
    assert.is_true(t.ad)
    assert.is_false(t.aa or t.tc or t.ra or t.cd)
    assert.equal("QUERY", t.opcode)
    assert.equal("NOERROR", t.rcode)
    assert.same({}, t.answer)
    assert.same({}, t.authority)
    assert.same({}, t.additional)
    assert.same({ udp_size = 1232, version = 0, ext_rcode = 0, ["do"] = true }, t.edns)
  end)

  it("reports no edns table for a message without OPT", function()
    local t = assert(core.dns_parse(core.dns_query("example.test", "A", 1, { edns = false })))
    assert.is_nil(t.edns)
  end)

  it("decodes a resolver answer with compressed names from a fixture", function()
    local t = assert(core.dns_parse(fixture("mx-compressed")))
    assert.equal(0xbeef, t.id)
    assert.is_true(t.qr and t.rd and t.ra and t.ad)
    assert.is_false(t.aa or t.tc or t.cd)
    assert.same({ name = "example.test", type = "MX", class = "IN" }, t.question)
    assert.same({
      { name = "example.test", type = "MX", class = "IN", ttl = 300,
        preference = 10, exchange = "mx1.example.test" },
      { name = "example.test", type = "MX", class = "IN", ttl = 300,
        preference = 20, exchange = "mx2.example.test" },
    }, t.answer)
    assert.same({}, t.additional)    -- the OPT record is reported as t.edns
    assert.is_true(t.edns["do"])
  end)

  it("decodes an MX record, and the null MX whose exchange is the root", function()
    assert.same({ name = "example.test", type = "MX", class = "IN", ttl = 300,
                  preference = 5, exchange = "mx.example.test" },
                parse_one(rr("example.test", T.MX, "\0\5" .. wname("MX.Example.Test"))))
    local null = parse_one(rr("example.test", T.MX, "\0\0" .. wname(".")))
    assert.equal(0, null.preference)
    assert.equal(".", null.exchange)
  end)

  it("decodes A and AAAA records into canonical text addresses", function()
    assert.equal("127.0.1.1", parse_one(rr("mx1.example.test", T.A, "\127\0\1\1")).address)
    local v6 = parse_one(rr("mx1.example.test", T.AAAA,
                            fromhex("20010db8 00000000 00000000 00000001")))
    assert.equal("AAAA", v6.type)
    assert.equal("2001:db8::1", v6.address)
    assert.equal("::ffff:192.0.2.1", parse_one(rr("x.test", T.AAAA,
      fromhex("00000000 00000000 0000ffff c0000201"))).address)
  end)

  it("decodes CNAME, PTR and NS records into a target name", function()
    local c = parse_one(rr("alias.example.test", T.CNAME, wname("Real.Example.Test")))
    assert.same({ name = "alias.example.test", type = "CNAME", class = "IN", ttl = 300,
                  target = "real.example.test" }, c)
    assert.equal("mx1.example.test",
                 parse_one(rr("1.1.0.127.in-addr.arpa", T.PTR, wname("mx1.example.test"))).target)
    local ns = parse_one(rr("example.test", T.NS, wname("ns1.example.test"), 86400))
    assert.equal("NS", ns.type)
    assert.equal(86400, ns.ttl)
    assert.equal("ns1.example.test", ns.target)
  end)

  it("decodes a TXT record into its strings and their concatenation", function()
    local t = parse_one(rr("example.test", T.TXT, "\6v=spf1\0\11 -all ~x\0yz"))
    assert.same({ "v=spf1", "", " -all ~x\0yz" }, t.strings)
    assert.equal("v=spf1 -all ~x\0yz", t.text)
    assert.is_nil(t.truncated)
  end)

  it("bounds a long TXT text and marks it truncated", function()
    local s = ("k"):rep(255)
    local t = parse_one(rr("example.test", T.TXT, (("\255" .. s):rep(6))))
    assert.equal(6, #t.strings)
    assert.equal(s, t.strings[6])
    assert.equal(TEXT_MAX, #t.text)
    assert.is_true(t.truncated)
  end)

  it("decodes a TLSA record into usage, selector, mtype and lower-case hex data", function()
    local digest = fromhex("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")
    local t = parse_one(rr("_25._tcp.mx1.example.test", T.TLSA, "\3\1\1" .. digest))
    assert.same({ name = "_25._tcp.mx1.example.test", type = "TLSA", class = "IN", ttl = 300,
                  usage = 3, selector = 1, mtype = 1,
                  data = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }, t)
  end)

  it("decodes a SOA record", function()
    local rdata = wname("ns1.example.test") .. wname("hostmaster.example.test")
                  .. string.pack(">I4I4I4I4I4", 2024010101, 7200, 3600, 1209600, 300)
    local t = parse_one(rr("example.test", T.SOA, rdata, 3600))
    assert.equal("ns1.example.test", t.mname)
    assert.equal("hostmaster.example.test", t.rname)
    assert.equal(2024010101, t.serial)
    assert.equal(300, t.minimum)
    assert.equal(3600, t.ttl)
  end)

  it("gives other types as lower-case hex of their rdata", function()
    local srv = string.pack(">I2I2I2", 0, 5, 25) .. wname("mx1.example.test")
    local t = parse_one(rr("_smtp._tcp.example.test", T.SRV, srv))
    assert.equal("SRV", t.type)
    assert.equal(tohex(srv), t.rdata)
    local u = parse_one(rr("example.test", 65534, "\222\173\190\239"))
    assert.equal("TYPE65534", u.type)
    assert.equal("deadbeef", u.rdata)
    assert.equal("", parse_one(rr("example.test", 65280, "")).rdata)
  end)

  it("names an unknown class CLASSnnnn", function()
    assert.equal("CLASS1234", parse_one(rr("example.test", T.A, "\1\2\3\4", 1, 1234)).class)
  end)

  it("lower-cases names and escapes odd bytes in presentation form", function()
    local owner = "\3A.b\3C\0d\4TEST\0"
    local t = parse_one(owner .. string.pack(">I2I2I4s2", T.A, IN, 1, "\1\2\3\4"))
    assert.equal("a\\.b.c\\000d.test", t.name)
  end)

  it("reports NXDOMAIN with the SOA of the authority section", function()
    local soa = rr("example.test", T.SOA, wname("ns1.example.test") .. wname("h.example.test")
                   .. string.pack(">I4I4I4I4I4", 1, 2, 3, 4, 60))
    local t = assert(core.dns_parse(response{ flags = 0x8183, q = { "nope.example.test", T.A },
                                              ns = { soa } }))
    assert.equal("NXDOMAIN", t.rcode)
    assert.same({}, t.answer)
    assert.equal(1, #t.authority)
    assert.equal("SOA", t.authority[1].type)
    assert.equal(60, t.authority[1].minimum)
  end)

  it("names the other rcodes and opcodes", function()
    assert.equal("SERVFAIL", core.dns_parse(header(1, 0x8182, 0, 0, 0, 0)).rcode)
    assert.equal("REFUSED", core.dns_parse(header(1, 0x8185, 0, 0, 0, 0)).rcode)
    assert.equal("FORMERR", core.dns_parse(header(1, 0x8181, 0, 0, 0, 0)).rcode)
    assert.equal("RCODE15", core.dns_parse(header(1, 0x818f, 0, 0, 0, 0)).rcode)
    assert.equal("NOTIFY", core.dns_parse(header(1, 0xa000, 0, 0, 0, 0)).opcode)
    assert.equal("OPCODE15", core.dns_parse(header(1, 0xf800, 0, 0, 0, 0)).opcode)
  end)

  it("folds the EDNS extended rcode into rcode", function()
    local t = assert(core.dns_parse(response{ ar = { opt(1232, 1, 0) } }))
    assert.equal("BADVERS", t.rcode)
    assert.equal(1, t.edns.ext_rcode)
    assert.is_false(t.edns["do"])
  end)

  it("reports the truncated flag", function()
    local t = assert(core.dns_parse(response{ flags = 0x8380, q = { "example.test", T.TXT } }))
    assert.is_true(t.tc)
    assert.equal("TXT", t.question.type)
  end)

  it("has no question table when the question section is empty", function()
    local t = assert(core.dns_parse(header(9, 0x8180, 0, 0, 0, 0)))
    assert.is_nil(t.question)
    assert.equal(9, t.id)
  end)

  it("keeps records of every section apart", function()
    local t = assert(core.dns_parse(response{
      q = { "example.test", T.MX },
      an = { rr("example.test", T.MX, "\0\10" .. wname("mx1.example.test")) },
      ns = { rr("example.test", T.NS, wname("ns1.example.test")) },
      ar = { rr("mx1.example.test", T.A, "\127\0\1\1"), opt() },
    }))
    assert.equal("MX", t.answer[1].type)
    assert.equal("NS", t.authority[1].type)
    assert.equal(1, #t.additional)
    assert.equal("127.0.1.1", t.additional[1].address)
    assert.is_true(t.edns["do"])
  end)

  it("rejects a compression loop", function()
    for _, name in ipairs{ "compression-loop", "pointer-loop" } do
      local t, msg, code = core.dns_parse(fixture(name))
      assert.is_nil(t)
      assert.equal("protocol", code)
      assert.matches("question record 1", msg)
    end
  end)

  it("rejects a compression pointer past the end of the message", function()
    local t, msg, code = core.dns_parse(fixture("pointer-past-end"))
    assert.is_nil(t)
    assert.equal("protocol", code)
    assert.matches("answer record 1", msg)
  end)

  it("rejects a message cut short at any byte", function()
    local wire = fixture("mx-compressed")
    for n = 0, #wire - 1 do
      local t, msg, code = core.dns_parse(wire:sub(1, n))
      assert.is_nil(t, tostring(n))
      assert.equal("protocol", code, tostring(n))
      assert.is_string(msg)
    end
  end)

  it("rejects rdata that does not end where RDLENGTH says", function()
    local cases = {
      rr("x.test", T.A, "\1\2\3\4\5"),                           -- 4 bytes used of 5
      rr("x.test", T.A, "\1\2\3"),                               -- too short for an A
      rr("x.test", T.MX, "\0\10"),                               -- no exchange
      rr("x.test", T.MX, "\0\10\3mx1\0\0"),                      -- a byte after the name
      rr("x.test", T.TXT, "\5abc"),                              -- string past RDLENGTH
      rr("x.test", T.TLSA, "\3\1"),                              -- no matching type
      rr("x.test", T.SOA, wname("a.test") .. wname("b.test")),   -- no numbers
    }
    for i, r in ipairs(cases) do
      local t, msg, code = core.dns_parse(response{ an = { r } })
      assert.is_nil(t, tostring(i))
      assert.equal("protocol", code, tostring(i))
      assert.matches("answer record 1", msg)
    end
  end)

  it("rejects a second OPT record", function()
    local t, msg, code = core.dns_parse(response{ ar = { opt(), opt() } })
    assert.is_nil(t)
    assert.equal("protocol", code)
    assert.matches("OPT", msg)
  end)

  it("returns too-long for a section of MXP_DNS_RR_MAX + 1 records", function()
    local a = rr("x.test", T.A, "\127\0\0\1")
    local full = assert(core.dns_parse(header(1, 0x8180, 0, DNS_RR_MAX, 0, 0) .. a:rep(DNS_RR_MAX)))
    assert.equal(DNS_RR_MAX, #full.answer)
    for _, sect in ipairs{ 0, 1, 2, 3 } do
      local counts = { 0, 0, 0, 0 }
      counts[sect + 1] = DNS_RR_MAX + 1
      local wire = header(1, 0x8180, table.unpack(counts)) .. a:rep(DNS_RR_MAX + 1)
      local t, msg, code = core.dns_parse(wire)
      assert.is_nil(t)
      assert.equal("too-long", code)
      assert.matches(tostring(DNS_RR_MAX), msg)
    end
  end)

  it("returns too-long for a message longer than MXP_DNS_MSG_MAX", function()
    local t, _, code = core.dns_parse(header(1, 0x8180, 0, 0, 0, 0) .. ("\0"):rep(DNS_MSG_MAX))
    assert.is_nil(t)
    assert.equal("too-long", code)
  end)

  it("never raises on random bytes or mutated answers", function()
    math.randomseed(20240601)
    local base = fixture("mx-compressed")
    local seen = { table = 0, protocol = 0, ["too-long"] = 0 }
    for i = 1, 2000 do
      local wire
      if i % 2 == 0 then
        local b = {}
        for j = 1, math.random(0, 600) do b[j] = string.char(math.random(0, 255)) end
        wire = table.concat(b)
      else
        local b = { base:byte(1, -1) }
        for _ = 1, math.random(1, 6) do b[math.random(#b)] = math.random(0, 255) end
        wire = string.char(table.unpack(b))
      end
      local ok, t, msg, code = pcall(core.dns_parse, wire)
      assert.is_true(ok, t)
      if type(t) == "table" then
        seen.table = seen.table + 1
        assert.is_number(t.id)
        assert.is_string(t.rcode)
      else
        assert.is_nil(t)
        assert.is_string(msg)
        assert.is_truthy(code == "protocol" or code == "too-long", code)
        seen[code] = seen[code] + 1
      end
    end
    -- the mutations reach both outcomes, so the loop exercised the decoder
    assert.is_true(seen.table > 0)
    assert.is_true(seen.protocol > 0)
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() core.dns_parse() end)
    assert.has_error(function() core.dns_parse({}) end)
  end)
end)

describe("core.dns_reverse_name #unit", function()
  it("reverses an IPv4 address under in-addr.arpa", function()
    assert.equal("1.1.0.127.in-addr.arpa", core.dns_reverse_name("127.0.1.1"))
    assert.equal("4.3.2.192.in-addr.arpa", core.dns_reverse_name("192.2.3.4"))
  end)

  it("reverses an IPv6 address nibble by nibble under ip6.arpa", function()
    assert.equal("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                 core.dns_reverse_name("2001:DB8::1"))
    assert.equal(("0."):rep(32) .. "ip6.arpa", core.dns_reverse_name("::"))
  end)

  it("gives a name that dns_query accepts as a PTR question", function()
    local name = core.dns_reverse_name("::ffff:192.0.2.1")
    assert.equal(name, core.dns_parse(core.dns_query(name, "PTR", 1)).question.name)
  end)

  it("raises on anything that is not an address", function()
    for _, bad in ipairs{ "", "example.test", "256.1.1.1", "1.2.3", "1.2.3.4\0",
                          "fe80::1%eth0", "[::1]", "::1::2" } do
      assert.has_error(function() core.dns_reverse_name(bad) end, nil, bad)
    end
    assert.has_error(function() core.dns_reverse_name() end)
  end)
end)

describe("core.dns_tcp_frame #unit", function()
  local frame = core.dns_tcp_frame
  local q = assert(core.dns_query("example.test", "MX", 0x1234))

  local function tcp(m) return string.pack(">s2", m) end

  it("returns the message without its length, and the index after it", function()
    local m, nxt = frame(tcp(q), 1)
    assert.equal(q, m)
    assert.equal(#q + 3, nxt)
    local two = tcp(q) .. tcp(q .. "")
    local _, n1 = frame(two, 1)
    local m2, n2 = frame(two, n1)
    assert.equal(q, m2)
    assert.equal(#two + 1, n2)
  end)

  it("returns false for every proper prefix, eof or not", function()
    local whole = tcp(q)
    for i = 0, #whole - 1 do
      assert.is_false(frame(whole:sub(1, i), 1))
      assert.is_false(frame(whole:sub(1, i), 1, true))
    end
  end)

  it("refuses a zero length, and leaves short messages to dns_parse", function()
    local r, msg, code = frame("\0\0" .. q, 1)
    assert.is_nil(r)
    assert.equal("protocol", code)
    assert.equal("DNS over TCP: a zero-length message", msg)
    assert.equal("x", frame("\0\1x", 1))
    assert.same({ nil, "dns: message of 1 bytes is shorter than a header", "protocol" },
      { core.dns_parse("x") })
  end)

  it("frames the largest message", function()
    local big = ("x"):rep(65535)
    local m, nxt = frame(string.pack(">I2", 65535) .. big, 1)
    assert.equal(big, m)
    assert.equal(65538, nxt)
  end)

  it("raises on misuse", function()
    assert.has_error(function() frame() end)
    assert.has_error(function() frame("ab", 0) end)
    assert.has_error(function() frame("ab", 4) end)
  end)
end)
