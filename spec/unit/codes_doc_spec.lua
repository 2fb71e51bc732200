-- docs/codes.md and the code lists agree: every code a check can emit is
-- documented (with severity, meaning and remediation), every documented
-- code can be emitted by some check, and the documented severity is the
-- default policy's. Checks declare their codes (`codes = {...}`); running
-- every check on every fixture proves they emit nothing else. No sockets.

local fixtures = require "fixtures.facts._load"
local checks = require "mxprobe.checks"
local judge = require "mxprobe.judge"
local policy = require "mxprobe.policy"
local util = require "mxprobe.checks.util"

local function read(path)
  local fh = assert(io.open(path, "r"))
  local s = fh:read("a")
  fh:close()
  return s
end

-- code -> { severity, weight, state, alias, meaning, remediation } from the doc
local function parse_doc()
  local doc, order = {}, {}
  local current
  for line in read("docs/codes.md"):gmatch("[^\n]*") do
    local code = line:match("^### `([^`]+)`%s*$")
    if code then
      assert.is_nil(doc[code], "documented twice: " .. code)
      current = { }
      doc[code] = current
      order[#order + 1] = code
    elseif line:match("^##? ") then
      current = nil
    elseif current then
      local sev, w, st = line:match("^%- severity: (%S+) · weight: (%S+) · state: (%S+)")
      if sev then current.severity, current.weight, current.state = sev, tonumber(w), st end
      local alias = line:match("^%- alias: `([^`]+)`")
      if alias then current.alias = alias end
      local m = line:match("^%- meaning: (.+)$")
      if m then current.meaning = m end
      local r = line:match("^%- remediation: (.+)$")
      if r then current.remediation = r end
    end
  end
  return doc, order
end

-- code -> the check ids that declare it
local function declared()
  local out = {}
  local all = checks.list()
  all[#all + 1] = checks.judge
  for _, c in ipairs(all) do
    for _, code in ipairs(checks.codes(c)) do
      out[code] = out[code] or {}
      table.insert(out[code], c.id)
    end
  end
  return out
end

describe("docs/codes.md #unit", function()
  local doc, order = parse_doc()
  local decl = declared()

  it("documents exactly the declared codes, each once", function()
    local n = 0
    for _ in pairs(decl) do n = n + 1 end
    assert.equal(n, #order)
    -- 76, then 34 of MTA-STS and TLS-RPT (issue 8), 17 of TLS posture (tls.session.*,
    -- tls.starttls.bad-reply, tls.versions.*, rdns.*, tls.cert.cname-only, consistency.versions-mixed),
    -- 13 of check dane, 4 dns.mx.address-* (issue 12), 3 of repeat/greylist (smtp.repeat.*,
    -- consistency.mx-differs)
    assert.equal(147, #order)
  end)

  it("declares each code once, in one check", function()
    for code, ids in pairs(decl) do
      assert.equal(1, #ids, code .. " declared by " .. table.concat(ids, ", "))
    end
  end)

  it("documents every code a check declares", function()
    for code, ids in pairs(decl) do
      assert.is_table(doc[code], "undocumented code " .. code .. " (declared by " .. table.concat(ids, ", ") .. ")")
    end
  end)

  it("documents no code that no check can emit", function()
    for _, code in ipairs(order) do
      assert.is_table(decl[code], "docs/codes.md documents " .. code .. ", which no check declares")
    end
  end)

  it("gives every code a severity, a weight, a state, a meaning and a remediation", function()
    local STATES = { pass = true, fail = true, na = true, untested = true }
    for _, code in ipairs(order) do
      local d = doc[code]
      assert.is_string(d.severity, code)
      assert.is_number(d.weight, code)
      assert.is_true(STATES[d.state] == true, code .. ": state " .. tostring(d.state))
      assert.is_string(d.meaning, code)
      assert.is_string(d.remediation, code)
    end
  end)

  it("states the declared severity and weight for every code, which are the default policy's", function()
    local p = policy.default()
    local d = checks.declarations()
    for _, code in ipairs(order) do
      assert.equal(d[code].severity, doc[code].severity, code)
      assert.equal(d[code].weight, doc[code].weight, code)
      assert.equal(d[code].severity, p.severities[code], code)
      assert.equal(d[code].weight, p.weights[code], code)
    end
  end)

  it("gives the declared fix as the remediation", function()
    local d = checks.declarations()
    local n = 0
    for _, code in ipairs(order) do
      if d[code].fix then
        n = n + 1
        assert.equal(d[code].fix, doc[code].remediation, code)
      end
    end
    assert.equal(117, n) -- the other 30 are pass, info and n/a lines: nothing to fix (3 of repeat/greylist have one)
  end)

  it("documents every alias under its new code, and no alias that is not declared", function()
    local d = checks.declarations()
    local n = 0
    for _, code in ipairs(order) do
      assert.equal(d[code].alias, doc[code].alias, code)
      if d[code].alias then
        n = n + 1
        assert.is_nil(doc[d[code].alias], "the old name " .. d[code].alias .. " has a section of its own")
        assert.is_nil(decl[d[code].alias], "the old name " .. d[code].alias .. " is still declared")
        local row = "| `" .. d[code].alias .. "` | `" .. code .. "` |"
        assert.truthy(read("docs/codes.md"):find(row, 1, true), "no row " .. row)
      end
    end
    assert.equal(12, n)
  end)

  it("leaves no severity in the default policy for a code that does not exist", function()
    for code in pairs(policy.default().severities) do
      assert.is_table(decl[code], "policy/default.lua has a severity for unknown code " .. code)
    end
    for code in pairs(policy.default().weights) do
      assert.is_table(decl[code], "policy/default.lua has a weight for unknown code " .. code)
    end
  end)

  it("has no check emit an undeclared code on any fixture", function()
    local emitted = {}
    for _, name in ipairs(fixtures.names()) do
      local facts = fixtures.load(name)
      for _, c in ipairs(checks.list()) do
        local own = c.codes
        local ctx = { now = facts.finished, policy = policy.default(), util = util }
        for _, f in ipairs(c.run(facts, ctx) or {}) do
          assert.is_table(own[f.code], name .. ": " .. c.id .. " emitted undeclared " .. tostring(f.code))
          assert.is_table(doc[f.code], name .. ": emitted undocumented " .. f.code)
          emitted[f.code] = true
        end
      end
      for _, f in ipairs(judge.run(facts).findings) do
        assert.is_table(doc[f.code], name .. ": judge emitted undocumented " .. f.code)
      end
    end
    -- the fixtures' scenarios (all from real probes) exercise these many of
    -- the codes, the rest by the variants in checks_spec: among them
    -- consistency.cert-mixed, smtp.banner.slow (the lab's 3 s banner is
    -- under the default 5 s) and tls.session.weak-cipher (no 3DES in
    -- Debian 12's OpenSSL); smtp.banner.no-hostname by hostile-markup
    -- (reports, issue 11)
    local n = 0
    for _ in pairs(emitted) do n = n + 1 end
    -- 58, + issue 8: mta_sts (untested), tls_rpt.none/.ok/.dns-error/.missing, tls_rpt (na),
    -- mta_sts.ok, mta_sts.mx-not-listed (fixture mtasts), mta_sts.mx-tls-testing (mtasts-testing);
    -- + TLS posture: tls.versions (n/a), .accepted, .deprecated, rdns (n/a), .ok, .unconfirmed,
    -- .names-differ and tls.session.closed, from the fixtures tlsold, rdnsbad, tlsdies and the older ones
    -- + dane: n/a, match, rollover.non-primary, rollover.single, bogus (dane-* fixtures)
    assert.equal(81, n)
    assert.is_nil(emitted["smtp.banner.slow"])
    assert.is_true(emitted["relay.accepts-any"] and emitted["relay.control-rejected"])
  end)

  it("lists the codes under the check that declares them", function()
    local text = read("docs/codes.md")
    for _, c in ipairs(checks.list()) do
      local head = text:find("## Check `" .. c.id .. "`", 1, true)
      assert.truthy(head, "no section for check " .. c.id)
      local next_head = text:find("\n## ", head + 1, true) or #text
      for _, code in ipairs(checks.codes(c)) do
        local at = text:find("### `" .. code .. "`", head, true)
        assert.truthy(at and at < next_head, code .. " not in the section of " .. c.id)
        assert.truthy(at, code .. " not after the section of " .. c.id)
      end
    end
  end)
end)
