-- The command-line tool against the lab: codes and exit status per scenario.
local cjson = require "cjson"
local lab = require "support.lab"

local function codes_of(result, state)
  local set = {}
  for _, f in ipairs(result.findings) do
    if state == nil or f.state == state then set[f.code] = true end
  end
  return set
end

-- {code = state} of a result's findings (a code found twice, on two
-- targets, must have one state: "mixed" otherwise)
local function states(result)
  local set = {}
  for _, f in ipairs(result.findings) do
    set[f.code] = (set[f.code] == nil or set[f.code] == f.state) and f.state or "mixed"
  end
  return set
end

-- one CLI run over many lab domains; each result found by its query
local function run_json(domains, extra)
  local args = { lab.lab_args(), "--json", extra or "" }
  for _, d in ipairs(domains) do args[#args + 1] = d .. ".example.test" end
  local out, err, status = lab.cli(table.concat(args, " "))
  local doc = cjson.decode(out)
  local by = {}
  for _, r in ipairs(doc.results) do by[r.query:match("^([^.]+)")] = r end
  return by, doc, status, err
end

describe("mxprobe CLI on the lab #integration", function()
  local R, doc, status

  setup(function()
    R, doc, status = run_json { "good", "expired", "greylist", "postscreen", "openrelay", "notls",
      "closed", "nullmx", "nxdomain", "selfsigned", "incomplete", "wrongname", "mixed", "implicit" }
  end)

  it("gives one valid, versioned JSON document whose exit status is the worst", function()
    assert.equal("mxprobe.report/1", doc.schema)
    assert.equal(2, doc.exit_status)
    assert.equal(2, status)
  end)

  it("calls the healthy domain ok", function()
    assert.equal("ok", R.good.verdict)
    assert.equal(0, R.good.exit_status)
    local c = states(R.good)
    assert.equal("pass", c["relay.denied"])
    assert.equal("pass", c["tls.session.ok"])
    assert.equal("pass", c["tls.cert.ok"])
    assert.equal("pass", c["smtp.extensions.pipelining"])
    -- the one failure is information: one TLSA record per MX, no next key
    assert.same({ ["dane.rollover.single"] = true }, codes_of(R.good, "fail"))
    assert.equal("pass", c["dane.match"])
  end)

  it("calls the expired certificate a warning under opportunistic delivery (the certificate rule)", function()
    assert.equal(1, R.expired.exit_status)
    assert.equal("warning", R.expired.verdict)
    assert.equal("fail", states(R.expired)["tls.cert.expired"])
    for _, f in ipairs(R.expired.findings) do
      if f.code == "tls.cert.expired" then assert.equal("warning", f.severity) end
    end
    assert.same({ { mx = "mx.expired.example.test", regime = "opportunistic",
      reason = "no TLSA records; no MTA-STS policy" } }, R.expired.regimes)
  end)

  it("does not call the greylisting domain an open relay", function()
    local c = states(R.greylist)
    assert.is_nil(c["relay.open"])
    assert.is_nil(c["relay.denied"])
    -- 451 to every RCPT: the relay test could not conclude (information)
    assert.equal("untested", c["relay.inconclusive"])
    assert.equal(0, R.greylist.exit_status)
  end)

  it("does not call the postscreen domain broken", function()
    local c = states(R.postscreen)
    assert.equal("pass", c["smtp.banner.multiline"])
    assert.equal("pass", c["smtp.banner.ok"])
    assert.is_nil(c["smtp.banner.slow"])
    assert.equal(0, R.postscreen.exit_status)
  end)

  it("calls an open relay critical", function()
    assert.equal("fail", states(R.openrelay)["relay.open"])
    assert.equal(2, R.openrelay.exit_status)
  end)

  it("reports the missing STARTTLS, and no certificate finding for it", function()
    local c = states(R.notls)
    assert.equal("fail", c["tls.starttls.missing"])
    -- said once: the TLS checks that depend on it are not applicable
    assert.equal("na", c["tls.session"])
    assert.equal("na", c["tls.cert"])
    assert.is_nil(c["tls.cert.expired"])
    assert.equal(1, R.notls.exit_status)
  end)

  it("names each certificate failure precisely", function()
    assert.equal("fail", states(R.selfsigned)["tls.cert.self-signed"])
    assert.equal("fail", states(R.incomplete)["tls.cert.incomplete-chain"])
    assert.equal("fail", states(R.wrongname)["tls.cert.name-mismatch"])
    for _, d in ipairs { "selfsigned", "incomplete", "wrongname" } do
      assert.is_nil(states(R[d])["tls.cert.ok"], d)
      assert.equal(1, R[d].exit_status, d)
    end
  end)

  it("reports refused connections, null MX, NXDOMAIN, implicit MX and mixed TLS", function()
    assert.equal("fail", states(R.closed)["tcp.refused"])
    assert.equal(2, R.closed.exit_status)
    assert.equal("na", states(R.nullmx)["dns.mx.null"])
    assert.equal(0, R.nullmx.exit_status)
    assert.equal("fail", states(R.nxdomain)["dns.mx.nxdomain"])
    assert.equal(2, R.nxdomain.exit_status)
    assert.equal("fail", states(R.implicit)["dns.mx.implicit"])
    assert.equal(1, R.implicit.exit_status)
    assert.equal("fail", states(R.mixed)["consistency.tls-mixed"])
    assert.equal(1, R.mixed.exit_status)
  end)

  it("judges saved facts again without network, to the same codes", function()
    local path = os.tmpname()
    local out, _, st = lab.cli(lab.lab_args() .. " --facts expired.example.test greylist.example.test > " .. path)
    assert.equal(0, st)
    assert.equal("", out)
    -- two v2 facts documents, one a line, the schema validates, one run id
    local facts_mod = require "mxprobe.facts"
    local saved = assert(facts_mod.load(path))
    assert.equal(2, #saved)
    for _, f in ipairs(saved) do
      assert.equal("mxprobe.facts/2", f.schema)
      local ok, errs = facts_mod.validate(f)
      assert.is_true(ok, table.concat(errs or {}, "; "))
      assert.matches("^127%.0%.0%.1:%d+$", f.targets[1].smtp.source)
    end
    assert.matches("^%x+$", saved[1].run.id)
    assert.equal(32, #saved[1].run.id)
    assert.equal(saved[1].run.id, saved[2].run.id)
    local out2, _, st2 = lab.cli("--json --from-facts " .. path)
    os.remove(path)
    assert.equal(1, st2)
    local d = cjson.decode(out2)
    assert.equal(2, #d.results)
    -- --facts streams each domain as it finishes: find it by its query
    local expired
    for _, r in ipairs(d.results) do
      if r.query == "expired.example.test" then expired = r end
    end
    assert.equal("fail", states(expired)["tls.cert.expired"])
  end)

  it("refuses a v1 facts file with one line, and judges nothing", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('{"schema":"mxprobe.facts/1","query":"good.example.test","targets":[]}\n')
    f:close()
    local out, err, st = lab.cli("--json --from-facts " .. path)
    os.remove(path)
    assert.equal(3, st)
    assert.equal("", out)
    assert.equal(("mxprobe: %s: facts schema mxprobe.facts/1 (mxprobe 0.1); "
      .. "this mxprobe reads mxprobe.facts/2 -- probe again\n"):format(path), err)
  end)

  it("prints a text report without colour when not on a terminal", function()
    local out, _, st = lab.cli(lab.lab_args() .. " expired.example.test")
    assert.equal(1, st)
    assert.matches("tls.cert.expired", out, 1, true)
    -- the MX line names its sending regime
    assert.matches("mx.expired.example.test [127.0.2.1]  pref 10  opportunistic  grade C (60/100)", out, 1, true)
    assert.is_nil(out:find("\27", 1, true))
  end)
end)

describe("examples/summary.lua on the lab #integration", function()
  it("probes a list of domains through the module API and prints its own summary", function()
    local p = assert(io.popen(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 examples/summary.lua '
      .. '--resolver %s --ca-file %s good.example.test expired.example.test 2>&1')
      :format(os.getenv("MXPROBE_CPATH") or "build/?.so", lab.RESOLVER, lab.CA_FILE)))
    local out = p:read("a")
    local _, _, status = p:close()
    assert.matches("good%.example%.test%s+ok%s+A", out)
    assert.matches("expired%.example%.test%s+warning%s+D%s+1%s+tls%.cert%.expired", out)
    assert.equal(1, status)
  end)
end)

describe("mxprobe CLI errors #integration", function()
  it("refuses an invalid domain with one line and status 3", function()
    local out, err, st = lab.cli(lab.lab_args() .. " 'exa mple..test'")
    assert.equal(3, st)
    assert.equal("", out)
    assert.matches("^mxprobe: .*exa mple%.%.test.*\n$", err)
    assert.equal(1, select(2, err:gsub("\n", "")))
  end)

  it("says which policy file cannot be read", function()
    local _, err, st = lab.cli(lab.lab_args() .. " --policy /nonexistent/policy.lua good.example.test")
    assert.equal(3, st)
    assert.matches("/nonexistent/policy.lua", err, 1, true)
    assert.equal(1, select(2, err:gsub("\n", "")))
  end)

  it("gives file and line of a Lua error in a policy", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("return {\n  thresholds = {\n    expiry_days = ,\n  }\n}\n")
    f:close()
    local _, err, st = lab.cli(lab.lab_args() .. " --policy " .. path .. " good.example.test")
    os.remove(path)
    assert.equal(3, st)
    assert.matches(path .. ":3:", err, 1, true)
  end)

  it("explains a missing option value instead of a stack trace", function()
    local _, err, st = lab.cli("--timeout")
    assert.equal(3, st)
    assert.matches("mxprobe: .*timeout", err)
    assert.is_nil(err:find("traceback", 1, true))
  end)

  it("applies a policy's thresholds: a 3 s banner is slow when the policy says 2 s", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("return { thresholds = { banner_slow_ms = 2000 } }\n")
    f:close()
    local out, _, st = lab.cli(lab.lab_args() .. " --json --policy " .. path .. " slowbanner.example.test")
    os.remove(path)
    local r = cjson.decode(out).results[1]
    assert.is_true(codes_of(r, "fail")["smtp.banner.slow"])
    assert.equal(1, st)
    -- and without the policy it is not
    local out2 = lab.cli(lab.lab_args() .. " --json slowbanner.example.test")
    assert.is_nil(codes_of(cjson.decode(out2).results[1], "fail")["smtp.banner.slow"])
  end)

  it("uses a strict policy from examples/ to turn a warning into a failure", function()
    local _, _, st = lab.cli(lab.lab_args() .. " --policy examples/strict-policy.lua notls.example.test")
    assert.equal(2, st)
  end)
end)
