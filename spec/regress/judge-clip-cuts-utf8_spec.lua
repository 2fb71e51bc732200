-- Bug: judge.clip cut a finding's message or evidence at 4096 bytes with
-- s:sub(1, 4096), in the middle of a UTF-8 character when one straddled
-- the limit: the finding, the text report and the JSON report got invalid
-- UTF-8. It now uses the one truncation, text.cut (whole characters).
local judge = require "mxprobe.judge"
local policy = require "mxprobe.policy"

describe("regress: judge.clip keeps whole UTF-8 characters #unit", function()
  it("drops a character that straddles the 4096-byte limit instead of cutting it", function()
    local s = ("a"):rep(4095) .. "ü" .. "tail"      -- ü is bytes 4096 and 4097
    local out = judge.clip(s)
    assert.equal(("a"):rep(4095) .. "…", out)
    assert.truthy(utf8.len(out))
  end)

  it("leaves a field of exactly 4096 bytes alone, and cuts the next one after a whole character", function()
    assert.equal(("a"):rep(4094) .. "ü", judge.clip(("a"):rep(4094) .. "ü"))
    assert.equal(("a"):rep(4094) .. "ü…", judge.clip(("a"):rep(4094) .. "üb"))
  end)

  it("gives a policy check's long message and evidence back as valid UTF-8", function()
    local long = ("x"):rep(4094) .. "✓✓✓"                 -- ✓ is 3 bytes: 4095..4097 split
    local p = assert(policy.merge(nil, { checks = { { id = "t.long", codes = { ["t.long"] = { severity = "info" } },
      run = function() return { { code = "t.long", state = "pass", message = long, evidence = long } } end } } },
      "test"))
    local facts = { schema = "mxprobe.facts/2", query = "example.test", kind = "host", targets = {}, mx = {} }
    local f
    for _, x in ipairs(judge.run(facts, p).findings) do if x.code == "t.long" then f = x end end
    assert.equal(("x"):rep(4094) .. "…", f.message)
    assert.equal(("x"):rep(4094) .. "…", f.evidence)
  end)
end)
