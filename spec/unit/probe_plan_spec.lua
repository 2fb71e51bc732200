-- Query parsing and option checking of the probe plan: no sockets.
local probe = require "mxprobe.probe"

describe("probe.parse_query #unit", function()
  it("treats a plain name as a domain, normalised", function()
    assert.same({ kind = "domain", name = "example.test" }, probe.parse_query("Example.TEST."))
  end)
  it("treats host:port, or any name with as_host, as a host", function()
    assert.same({ kind = "host", name = "mx1.example.test", port = 2525 }, probe.parse_query("mx1.example.test:2525"))
    assert.same({ kind = "host", name = "mx1.example.test" }, probe.parse_query("mx1.example.test", true))
  end)
  it("parses address literals with and without a port", function()
    -- with the class of the address (issue 12: --public-only decides on it)
    assert.same({ kind = "address", address = "192.0.2.1", family = "ipv4", class = "documentation" },
      probe.parse_query("[192.0.2.1]"))
    assert.same({ kind = "address", address = "2001:db8::1", family = "ipv6", port = 25, class = "documentation" },
      probe.parse_query("[2001:DB8:0::1]:25"))
  end)
  it("refuses malformed input with a message, never raising", function()
    for _, bad in ipairs { "", "exa mple.test", "a..b", "-a.test", ("x"):rep(64) .. ".test",
                           "[999.1.1.1]", "bücher.test", "a.test:99999", "192.0.2.1" } do
      local q, err = probe.parse_query(bad)
      assert.is_nil(q, bad)
      assert.is_string(err, bad)
    end
  end)
  it("tells an IDN to use its punycode form", function()
    local _, err = probe.parse_query("bücher.test")
    assert.matches("punycode", err)
  end)
end)

describe("probe.options #unit", function()
  it("fills defaults and keeps what was given", function()
    local o = assert(probe.options { resolver = "127.0.53.53", timeout = 3 })
    assert.equal(3, o.timeout)
    assert.equal(25, o.port)
    assert.equal("127.0.53.53", o.resolver_addr.address)
    assert.equal(53, o.resolver_addr.port)
  end)
  it("refuses bad values with a message", function()
    assert.is_nil((probe.options { resolver = "127.0.0.1", timeout = -1 }))
    assert.is_nil((probe.options { resolver = "127.0.0.1", port = 70000 }))
    assert.is_nil((probe.options { resolver = "not-an-ip" }))
    assert.is_nil((probe.options { resolver = "127.0.0.1", mail_from = "no at sign" }))
    local o, err = probe.options { resolver = "127.0.0.1", ca_file = "/nonexistent/ca.pem" }
    assert.is_nil(o)
    assert.matches("CA file", err)
  end)
end)

describe("dns.parse_resolver #unit", function()
  local dns = require "mxprobe.dns"
  it("accepts ADDR, ADDR:PORT and [V6]:PORT", function()
    assert.same({ address = "127.0.0.1", port = 53, family = "ipv4" }, dns.parse_resolver("127.0.0.1"))
    assert.same({ address = "127.0.0.1", port = 5353, family = "ipv4" }, dns.parse_resolver("127.0.0.1:5353"))
    assert.same({ address = "::1", port = 5353, family = "ipv6" }, dns.parse_resolver("[::1]:5353"))
    assert.same({ address = "::1", port = 53, family = "ipv6" }, dns.parse_resolver("::1"))
  end)
  it("reads the first nameserver of a resolv.conf", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("# comment\nsearch example.test\nnameserver 127.0.53.53\nnameserver 127.0.0.2\n")
    f:close()
    local r = dns.system_resolver(path)
    os.remove(path)
    assert.equal("127.0.53.53", r.address)
  end)
end)

describe("probe.mx_plan #unit", function()
  local function q(status, recs) return { status = status, records = recs or {} } end

  it("orders MX hosts by preference, then name", function()
    local plan = probe.mx_plan(q("ok", {
      { preference = 20, exchange = "mx2.example.test" },
      { preference = 10, exchange = "mxb.example.test" },
      { preference = 10, exchange = "mxa.example.test" },
    }))
    assert.same({ { name = "mxa.example.test", preference = 10 }, { name = "mxb.example.test", preference = 10 },
                  { name = "mx2.example.test", preference = 20 } }, plan.hosts)
    assert.is_false(plan.null_mx)
    assert.is_false(plan.implicit)
  end)

  it("recognises a null MX (one record, exchange '.')", function()
    local plan = probe.mx_plan(q("ok", { { preference = 0, exchange = "." } }))
    assert.is_true(plan.null_mx)
    assert.same({}, plan.hosts)
  end)

  it("ignores '.' beside real MX hosts and probes a repeated host once", function()
    local plan = probe.mx_plan(q("ok", {
      { preference = 0, exchange = "." }, { preference = 10, exchange = "mx.example.test" },
      { preference = 30, exchange = "mx.example.test" },
    }))
    assert.is_false(plan.null_mx)
    assert.same({ { name = "mx.example.test", preference = 10 } }, plan.hosts)
  end)

  it("falls back to the implicit MX only when the domain has no MX (NODATA)", function()
    assert.is_true(probe.mx_plan(q("nodata")).implicit)
    for _, st in ipairs { "nxdomain", "servfail", "timeout", "protocol" } do
      local plan = probe.mx_plan(q(st))
      assert.is_false(plan.implicit, st)
      assert.same({}, plan.hosts, st)
    end
  end)
end)
