-- Facts files: saved and loaded again without any network.
local facts = require "mxprobe.facts"

local sample = {
  schema = "mxprobe.facts/2", query = "good.example.test", kind = "domain",
  domain = "good.example.test", mx = {},
  run = { id = ("0"):rep(32), tool = { name = "mxprobe", version = "0.2.0" }, versions = {}, prober = {} },
  targets = { { address = "127.0.1.1", family = "ipv4", port = 25, smtp = { status = "complete",
    banner = { status = "ok", reply = { code = 220, lines = { "a\0\27[0m" } } } } } },
}

describe("facts.encode/decode #unit", function()
  it("round-trips a facts table, control bytes included", function()
    local list = assert(facts.decode(facts.encode(sample)))
    assert.equal(1, #list)
    assert.same(sample, list[1])
  end)
  it("reads JSON Lines and JSON arrays", function()
    local line = facts.encode(sample)
    assert.equal(2, #assert(facts.decode(line .. "\n" .. line .. "\n")))
    assert.equal(2, #assert(facts.decode("[" .. line .. "," .. line .. "]")))
  end)
  it("refuses other documents and other schema versions with a message", function()
    local l, err = facts.decode('{"a":1}', "x.json")
    assert.is_nil(l)
    assert.matches("x.json: not an mxprobe facts document", err)
    l, err = facts.decode('{"schema":"mxprobe.facts/9"}', "x.json")
    assert.is_nil(l)
    assert.matches("schema", err)
    l, err = facts.decode("{oops\n", "y.json")
    assert.is_nil(l)
    assert.matches("y.json:1: invalid JSON", err)
  end)
  it("says which file could not be read", function()
    local l, err = facts.load("/nonexistent/facts.json")
    assert.is_nil(l)
    assert.matches("cannot read facts file", err)
  end)
end)
