-- x509_spec.lua -- core.x509_parse and core.x509_verify on the PEM fixtures
-- of spec/fixtures/certs (made by make-fixtures.sh). No sockets.
local core = require "mxprobe.core"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local dir = here .. "/../fixtures/certs/"
local expected = dofile(dir .. "expected.lua")

local function read(name)
  local f = assert(io.open(dir .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local ROOT = dir .. "root.pem"
local SELF = dir .. "selfsigned.pem"

-- epoch seconds of the fixture dates
local T2020_01_01 = 1577836800
local T2020_06_01 = 1590969600
local T2021_01_01 = 1609459200
local T2021_06_01 = 1622505600
local T2023_01_01 = 1672531200
local T2024_01_01 = 1704067200
local T2124_01_01 = 4859740800
local T2125_01_01 = 4891363200

local function parse1(name)
  local certs, msg, code = core.x509_parse(read(name))
  assert(certs, msg, code)
  return certs[1], certs
end

local function reasons(result)
  local out = {}
  for i, e in ipairs(result.errors) do
    out[i] = e.depth .. ":" .. e.reason
  end
  return out
end

describe("core.x509_parse #unit", function()
  it("reads every field of the RSA leaf", function()
    local c = parse1("leaf.pem")
    assert.equal("CN=mx1.example.test,O=Bücher & Söhne,C=ZZ", c.subject)
    assert.equal("CN=mxprobe Test Intermediate,O=mxprobe test,C=ZZ", c.issuer)
    assert.equal("mx1.example.test", c.subject_cn)
    assert.same({ "mx1.example.test", "*.wild.example.test" }, c.san_dns)
    assert.same({ "127.0.0.1", "::1" }, c.san_ip)
    assert.equal(4, c.san_count)
    assert.equal(T2024_01_01, c.not_before)
    assert.equal(T2124_01_01, c.not_after)
    assert.equal("1001", c.serial)
    assert.equal("RSA", c.key_type)
    assert.equal(2048, c.key_bits)
    assert.is_nil(c.curve)
    assert.equal("ecdsa-with-SHA256", c.sig_alg)   -- the intermediate is EC
    assert.equal(expected.leaf.sha256, c.sha256)
    assert.equal(expected.leaf.spki_sha256, c.spki_sha256)
    assert.is_false(c.is_ca)
    assert.is_false(c.self_issued)
    assert.equal(3, c.version)
    assert.same({}, c.unknown_critical)
  end)

  it("keeps UTF-8 in names as UTF-8", function()
    local c = parse1("leaf.pem")
    assert.truthy(c.subject:find("O=Bücher & Söhne", 1, true))
    assert.truthy(utf8.len(c.subject))
  end)

  it("reads the root CA", function()
    local c = parse1("root.pem")
    assert.equal("CN=mxprobe Test Root,O=mxprobe test,C=ZZ", c.subject)
    assert.equal(c.subject, c.issuer)
    assert.equal("mxprobe Test Root", c.subject_cn)
    assert.same({}, c.san_dns)
    assert.same({}, c.san_ip)
    assert.equal(0, c.san_count)
    assert.equal(T2020_01_01, c.not_before)
    assert.equal(T2125_01_01, c.not_after)
    assert.equal("01", c.serial)
    assert.equal("sha256WithRSAEncryption", c.sig_alg)
    assert.is_true(c.is_ca)
    assert.is_true(c.self_issued)
    assert.equal(expected.root.sha256, c.sha256)
    assert.equal(expected.root.spki_sha256, c.spki_sha256)
  end)

  it("reads an EC P-384 intermediate", function()
    local c = parse1("intermediate.pem")
    assert.equal("EC", c.key_type)
    assert.equal(384, c.key_bits)
    assert.equal("secp384r1", c.curve)
    assert.equal("sha256WithRSAEncryption", c.sig_alg)
    assert.is_true(c.is_ca)
    assert.is_false(c.self_issued)
    assert.equal(expected.intermediate.spki_sha256, c.spki_sha256)
  end)

  it("reads an EC P-256 leaf", function()
    local c = parse1("leaf-ec.pem")
    assert.equal("EC", c.key_type)
    assert.equal(256, c.key_bits)
    assert.equal("prime256v1", c.curve)
    assert.same({ "ec.example.test", "w*.partial.example.test" }, c.san_dns)
    assert.equal(expected["leaf-ec"].sha256, c.sha256)
    assert.equal(expected["leaf-ec"].spki_sha256, c.spki_sha256)
  end)

  it("reads an Ed25519 leaf", function()
    local c = parse1("leaf-ed25519.pem")
    assert.equal("ED25519", c.key_type)
    assert.equal(256, c.key_bits)
    assert.is_nil(c.curve)
    assert.equal(expected["leaf-ed25519"].spki_sha256, c.spki_sha256)
  end)

  it("reads an RSA 1024 key and a SHA-1 signature", function()
    assert.equal(1024, parse1("leaf-rsa1024.pem").key_bits)
    assert.equal("sha1WithRSAEncryption", parse1("leaf-sha1.pem").sig_alg)
  end)

  it("reads the dates of an expired certificate", function()
    local c = parse1("leaf-expired.pem")
    assert.equal(T2020_06_01, c.not_before)
    assert.equal(T2021_06_01, c.not_after)
    assert.same({}, c.san_dns)
    assert.equal(0, c.san_count)
  end)

  it("marks a self-signed certificate self-issued but not a CA", function()
    local c = parse1("selfsigned.pem")
    assert.is_true(c.self_issued)
    assert.is_false(c.is_ca)
    assert.equal("2001", c.serial)
  end)

  it("lists critical extensions OpenSSL does not support", function()
    assert.same({ "1.3.6.1.4.1.55555.1" }, parse1("leaf-critical.pem").unknown_critical)
  end)

  it("keeps a NUL byte in the CN and in a DNS name", function()
    local c = parse1("leaf-nul.pem")
    assert.equal("bank.example.test\0evil.example.test", c.subject_cn)
    assert.same({ "good.example.test", "bank.example.test\0evil.example.test" }, c.san_dns)
    assert.equal(2, c.san_count)
  end)

  it("agrees with openssl on digests and serials of every fixture", function()
    for name, want in pairs(expected) do
      local c = parse1(name .. ".pem")
      assert.equal(want.sha256, c.sha256, name)
      assert.equal(want.spki_sha256, c.spki_sha256, name)
      assert.equal(want.serial, c.serial, name)
    end
  end)

  it("returns a chain leaf first", function()
    local certs = assert(core.x509_parse(read("fullchain.pem")))
    assert.equal(3, #certs)
    assert.equal("mx1.example.test", certs[1].subject_cn)
    assert.equal("mxprobe Test Intermediate", certs[2].subject_cn)
    assert.equal("mxprobe Test Root", certs[3].subject_cn)
  end)

  it("ignores text around the PEM blocks", function()
    local certs = assert(core.x509_parse("subject=...\n" .. read("leaf.pem") .. "trailer\n"))
    assert.equal(1, #certs)
  end)

  it("returns nil, msg, 'protocol' for text without a certificate", function()
    for _, bad in ipairs({ "", "garbage", read("leaf.key") }) do
      local certs, msg, code = core.x509_parse(bad)
      assert.is_nil(certs)
      assert.equal("protocol", code)
      assert.matches("^x509 parse: ", msg)
    end
  end)

  it("returns nil, msg, 'protocol' for a broken certificate", function()
    local pem = read("leaf.pem")
    local broken = pem:gsub("\n(%w)", "\n!%1", 1)   -- bad base64
    local certs, _, code = core.x509_parse(broken)
    assert.is_nil(certs)
    assert.equal("protocol", code)
    local truncated = "-----BEGIN CERTIFICATE-----\nMIIBCgKCAQEA\n-----END CERTIFICATE-----\n"
    certs, _, code = core.x509_parse(truncated)
    assert.is_nil(certs)
    assert.equal("protocol", code)
  end)

  it("returns nil, msg, 'too-long' for more than MXP_X509_CHAIN_MAX certificates", function()
    local pem = read("leaf.pem")
    assert.equal(32, #assert(core.x509_parse(pem:rep(32))))
    local certs, msg, code = core.x509_parse(pem:rep(33))
    assert.is_nil(certs)
    assert.equal("too-long", code)
    assert.matches("more than 32", msg)
  end)

  it("returns nil, msg, 'too-long' for PEM longer than MXP_X509_PEM_MAX", function()
    local certs, _, code = core.x509_parse(read("leaf.pem") .. ("x"):rep(1024 * 1024))
    assert.is_nil(certs)
    assert.equal("too-long", code)
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() core.x509_parse(nil) end)
    assert.has_error(function() core.x509_parse({}) end)
  end)
end)

describe("core.x509_verify #unit", function()
  local chain = read("chain.pem")
  local inter = read("intermediate.pem")

  it("trusts a complete chain to its root", function()
    local r = assert(core.x509_verify(chain, { ca_file = ROOT, name = "mx1.example.test" }))
    assert.is_true(r.ok)
    assert.is_nil(r.reason)
    assert.is_nil(r.detail)
    assert.is_nil(r.depth)
    assert.same({}, r.errors)
    assert.equal("mx1.example.test", r.name)
    assert.is_true(r.name_match)
    assert.equal(ROOT, r.ca)
    assert.equal(2, r.chain_length)
  end)

  it("reports the system store as ca = 'system'", function()
    local r = assert(core.x509_verify(chain))
    assert.equal("system", r.ca)
    assert.is_false(r.ok)   -- the test root is in no system store
    assert.is_false(r.name_match)
    assert.is_nil(r.name)
  end)

  it("finds an expired leaf, and accepts it at a time inside its validity", function()
    local pem = read("leaf-expired.pem") .. inter
    local r = assert(core.x509_verify(pem, { ca_file = ROOT }))
    assert.is_false(r.ok)
    assert.equal("expired", r.reason)
    assert.equal(0, r.depth)
    assert.equal("certificate has expired", r.detail)
    assert.same({ "0:expired" }, reasons(r))
    r = assert(core.x509_verify(pem, { ca_file = ROOT, time = T2021_01_01 }))
    assert.is_true(r.ok)
  end)

  it("finds a leaf that is not yet valid at opts.time", function()
    local r = assert(core.x509_verify(chain, { ca_file = ROOT, time = T2023_01_01 }))
    assert.is_false(r.ok)
    assert.equal("not-yet-valid", r.reason)
    assert.equal(0, r.depth)
  end)

  it("finds a self-signed leaf", function()
    local r = assert(core.x509_verify(read("selfsigned.pem"), { ca_file = ROOT }))
    assert.equal("self-signed", r.reason)
    assert.equal(0, r.depth)
    assert.equal(1, r.chain_length)
  end)

  it("finds a leaf sent without its intermediate (incomplete-chain)", function()
    local r = assert(core.x509_verify(read("leaf.pem"), { ca_file = ROOT }))
    assert.is_false(r.ok)
    assert.equal("incomplete-chain", r.reason)
    assert.equal(0, r.depth)
    assert.same({ "0:incomplete-chain" }, reasons(r))
  end)

  it("calls a missing issuer behind a wrong extra certificate unknown-issuer", function()
    local r = assert(core.x509_verify(read("leaf.pem") .. read("selfsigned.pem"), { ca_file = ROOT }))
    assert.equal("unknown-issuer", r.reason)
    assert.equal(0, r.depth)
  end)

  it("finds a chain that ends in a root the store does not trust", function()
    local r = assert(core.x509_verify(read("fullchain.pem"), { ca_file = SELF }))
    assert.equal("untrusted-root", r.reason)
    assert.equal(2, r.depth)
    assert.equal(3, r.chain_length)
  end)

  it("finds an RSA 1024 key (weak-key, auth level 2)", function()
    local r = assert(core.x509_verify(read("leaf-rsa1024.pem") .. inter, { ca_file = ROOT }))
    assert.equal("weak-key", r.reason)
    assert.equal(0, r.depth)
  end)

  it("finds a SHA-1 signature (weak-signature)", function()
    local r = assert(core.x509_verify(read("leaf-sha1.pem"), { ca_file = ROOT }))
    assert.equal("weak-signature", r.reason)
    assert.equal(0, r.depth)
  end)

  it("finds a signature that does not match (bad-signature)", function()
    local r = assert(core.x509_verify(read("leaf-nul.pem") .. inter, { ca_file = ROOT }))
    assert.equal("bad-signature", r.reason)
    assert.equal(0, r.depth)
  end)

  it("finds an issuer that is not a CA (invalid-ca)", function()
    local r = assert(core.x509_verify(read("leaf-invalid-ca.pem") .. chain, { ca_file = ROOT }))
    assert.equal("invalid-ca", r.reason)
    assert.equal(1, r.depth)
  end)

  it("maps anything else to 'other' with OpenSSL's text", function()
    local r = assert(core.x509_verify(read("leaf-critical.pem") .. inter, { ca_file = ROOT }))
    assert.equal("other", r.reason)
    assert.equal("unhandled critical extension", r.detail)
  end)

  it("collects every error, not only the first", function()
    local r = assert(core.x509_verify(read("leaf-expired.pem"), { ca_file = ROOT }))
    assert.same({ "0:incomplete-chain", "0:expired" }, reasons(r))
    assert.equal("incomplete-chain", r.reason)
    for _, e in ipairs(r.errors) do
      assert.equal("number", type(e.depth))
      assert.equal("string", type(e.detail))
    end
  end)

  it("matches names against the SAN, wildcards one label deep only", function()
    local function match(pem, name)
      return assert(core.x509_verify(pem, { ca_file = ROOT, name = name })).name_match
    end
    assert.is_true(match(chain, "mx1.example.test"))
    assert.is_true(match(chain, "MX1.Example.TEST"))
    assert.is_true(match(chain, "a.wild.example.test"))
    assert.is_false(match(chain, "wild.example.test"))
    assert.is_false(match(chain, "a.b.wild.example.test"))
    assert.is_false(match(chain, "mx2.example.test"))
    assert.is_false(match(chain, "mx1.example.test\0.evil"))
  end)

  it("refuses partial wildcards", function()
    local pem = read("leaf-ec.pem") .. inter
    local r = assert(core.x509_verify(pem, { ca_file = ROOT, name = "www.partial.example.test" }))
    assert.is_false(r.name_match)
    r = assert(core.x509_verify(pem, { ca_file = ROOT, name = "ec.example.test" }))
    assert.is_true(r.name_match)
  end)

  it("falls back to the CN when there is no DNS SAN", function()
    local r = assert(core.x509_verify(read("leaf-expired.pem") .. inter,
      { ca_file = ROOT, name = "expired.example.test" }))
    assert.is_true(r.name_match)
  end)

  it("does not match a name through a NUL byte", function()
    local r = assert(core.x509_verify(read("leaf-nul.pem") .. inter,
      { ca_file = ROOT, name = "bank.example.test" }))
    assert.is_false(r.name_match)
  end)

  it("does not count a name mismatch as a verification error", function()
    local r = assert(core.x509_verify(chain, { ca_file = ROOT, name = "other.example.test" }))
    assert.is_true(r.ok)
    assert.is_false(r.name_match)
  end)

  it("loads a CA file once and reuses it", function()
    local path = os.tmpname()
    local function write(s)
      local f = assert(io.open(path, "wb"))
      f:write(s)
      f:close()
    end
    write(read("root.pem"))
    for _ = 1, 200 do
      assert.is_true(assert(core.x509_verify(chain, { ca_file = path })).ok)
    end
    -- the file now holds another CA, but the store loaded first is kept
    write(read("selfsigned.pem"))
    local r = assert(core.x509_verify(chain, { ca_file = path }))
    os.remove(path)
    assert.is_true(r.ok)
  end)

  it("keeps one store per CA file in the registry, the system one under true", function()
    assert(core.x509_verify(chain, { ca_file = ROOT }))
    assert(core.x509_verify(chain))
    local stores = debug.getregistry()["mxprobe.x509.stores"]
    local root, system = stores[ROOT], stores[true]
    assert.equal("userdata", type(root))
    assert.equal("userdata", type(system))
    assert(core.x509_verify(chain, { ca_file = ROOT }))
    assert(core.x509_verify(chain))
    assert.equal(root, stores[ROOT])
    assert.equal(system, stores[true])
    assert.is_nil(stores.system)
  end)

  it("returns nil, msg, code for a CA file it cannot load", function()
    local r, msg, code = core.x509_verify(chain, { ca_file = dir .. "no-such-file.pem" })
    assert.is_nil(r)
    assert.equal("error", code)
    assert.matches("no%-such%-file%.pem", msg)
    r, msg, code = core.x509_verify(chain, { ca_file = dir .. "leaf.key" })
    assert.is_nil(r)
    assert.equal("error", code)
    assert.matches("^x509 verify: CA file .*leaf%.key: ", msg)
    assert.is_nil(debug.getregistry()["mxprobe.x509.stores"][dir .. "leaf.key"])
  end)

  it("returns nil, msg, code for PEM it cannot parse", function()
    local r, _, code = core.x509_verify("garbage", { ca_file = ROOT })
    assert.is_nil(r)
    assert.equal("protocol", code)
    r, _, code = core.x509_verify(read("leaf.pem"):rep(33), { ca_file = ROOT })
    assert.is_nil(r)
    assert.equal("too-long", code)
  end)

  it("raises on bad options", function()
    assert.has_error(function() core.x509_verify(chain, "x") end)
    assert.has_error(function() core.x509_verify(chain, { name = 1 }) end)
    assert.has_error(function() core.x509_verify(chain, { ca_file = true }) end)
    assert.has_error(function() core.x509_verify(chain, { time = "now" }) end)
  end)
end)

describe("core.x509_chain #unit", function()
  local HOSTILE = here .. "/../hostile/certs/"
  local HOSTILE_CA = HOSTILE .. "ca.pem"

  local function file(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end

  -- the PEM blocks of a text, in order
  local function blocks(pem)
    local out = {}
    for b in pem:gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-\n?") do
      out[#out + 1] = b
    end
    return out
  end

  -- x509_chain(pem, opts) against x509_parse(pem) and x509_verify(pem, opts)
  local function same_as_two_calls(pem, opts)
    local r = assert(core.x509_chain(pem, opts))
    local certs = assert(core.x509_parse(pem))
    local v = assert(core.x509_verify(pem, opts))
    assert.equal(#certs, #r.certificates)
    for i = 1, #certs do
      assert.same(certs[i], r.certificates[i])
    end
    assert.same(v, r.verify)
    assert.equal(#certs, r.presented)
    assert.is_nil(r.truncated)
    assert.is_nil(r.verify_error)
    return r
  end

  local fixtures = {}
  for _, name in ipairs({ "chain.pem", "fullchain.pem", "intermediate.pem", "leaf-critical.pem",
    "leaf-ec.pem", "leaf-ed25519.pem", "leaf-expired.pem", "leaf-invalid-ca.pem", "leaf-nul.pem",
    "leaf-rsa1024.pem", "leaf-sha1.pem", "leaf.pem", "root.pem", "selfsigned.pem" }) do
    fixtures[#fixtures + 1] = { name, read(name), ROOT }
  end
  fixtures[#fixtures + 1] = { "leaf-expired + intermediate",
    read("leaf-expired.pem") .. read("intermediate.pem"), ROOT }
  for _, name in ipairs({ "cert-many-sans.pem", "cert-nul-cn.pem", "chain-wrong-order.pem",
    "normal.pem", "rsa-16384.pem", "unknown-critical-ext.pem", "ca.pem" }) do
    fixtures[#fixtures + 1] = { "hostile/" .. name, file(HOSTILE .. name), HOSTILE_CA }
  end

  it("gives, field by field, what x509_parse and x509_verify give, on every fixture", function()
    for _, f in ipairs(fixtures) do
      local name, pem, ca = f[1], f[2], f[3]
      for _, opts in ipairs({
        { ca_file = ca },
        { ca_file = ca, name = "mx1.example.test" },
        { ca_file = ca, name = "mx1.example.test", time = T2021_06_01 },
        { ca_file = ca, time = T2125_01_01 },
      }) do
        local ok, err = pcall(same_as_two_calls, pem, opts)
        assert(ok, name .. ": " .. tostring(err))
      end
    end
  end)

  it("verifies against the system store when no CA file is given", function()
    local r = same_as_two_calls(read("chain.pem"))
    assert.equal("system", r.verify.ca)
    assert.is_false(r.verify.ok)
    same_as_two_calls(read("chain.pem"), { name = "mx1.example.test" })
  end)

  it("keeps and judges the first certificates of a chain over the limit, and counts them all", function()
    local pem = file(HOSTILE .. "chain-200.pem")
    local all = blocks(pem)
    assert.equal(200, #all)
    assert.same({ nil, "x509 parse: more than 32 certificates", "too-long" }, { core.x509_parse(pem) })
    local r = assert(core.x509_chain(pem, { ca_file = HOSTILE_CA, name = "mx1.example.test" }))
    assert.is_true(r.truncated)
    assert.equal(200, r.presented)
    assert.equal(32, core.limits.x509_chain_max)
    assert.equal(32, #r.certificates)
    local first = table.concat(all, "", 1, 32)
    assert.same(assert(core.x509_parse(first)), r.certificates)
    assert.same(assert(core.x509_verify(first, { ca_file = HOSTILE_CA, name = "mx1.example.test" })),
      r.verify)
    assert.equal(32, r.verify.chain_length)
  end)

  it("is not truncated at exactly the limit, and counts PEM blocks it does not decode", function()
    local all = blocks(file(HOSTILE .. "chain-200.pem"))
    local r = assert(core.x509_chain(table.concat(all, "", 1, 32)))
    assert.is_nil(r.truncated)
    assert.equal(32, r.presented)
    -- what follows the 32nd is counted, not decoded: a broken block is a block
    local broken = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    r = assert(core.x509_chain(table.concat(all, "", 1, 32) .. broken .. all[33]))
    assert.is_true(r.truncated)
    assert.equal(34, r.presented)
    assert.equal(32, #r.certificates)
  end)

  it("returns the certificates and verify_error when the CA file cannot be loaded", function()
    local pem = read("chain.pem")
    local missing = dir .. "no-such-ca.pem"
    local r = assert(core.x509_chain(pem, { ca_file = missing, name = "mx1.example.test" }))
    assert.same(assert(core.x509_parse(pem)), r.certificates)
    assert.is_nil(r.verify)
    local _, vmsg, vcode = core.x509_verify(pem, { ca_file = missing })
    assert.equal("error", vcode)
    assert.equal((vmsg:gsub("^x509 verify: ", "x509 chain: ")), r.verify_error)
    assert.matches("^x509 chain: CA file .*no%-such%-ca%.pem: ", r.verify_error)
    assert.equal(2, r.presented)
  end)

  it("fails as x509_parse does on input that holds no certificate", function()
    assert.same({ nil, "x509 chain: no PEM certificate found", "protocol" },
      { core.x509_chain("hello") })
    local r, msg, code = core.x509_chain("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert.is_nil(r)
    assert.matches("^x509 chain: certificate 1: ", msg)
    assert.equal("protocol", code)
    r, msg, code = core.x509_chain(("x"):rep(core.limits.x509_pem_max + 1))
    assert.is_nil(r)
    assert.equal("too-long", code)
    assert.matches("PEM longer than", msg)
  end)

  it("raises on misuse", function()
    local pem = read("leaf.pem")
    assert.has_error(function() core.x509_chain() end)
    assert.has_error(function() core.x509_chain({}) end)
    assert.has_error(function() core.x509_chain(pem, "opts") end)
    assert.has_error(function() core.x509_chain(pem, { name = 1 }) end)
    assert.has_error(function() core.x509_chain(pem, { ca_file = {} }) end)
    assert.has_error(function() core.x509_chain(pem, { time = 1.5 }) end)
  end)
end)
