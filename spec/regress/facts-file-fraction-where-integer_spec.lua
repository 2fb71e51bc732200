-- Bug (issue 12): a facts file with a number where an integer code belongs
-- (220.5, 1e300) crashed a check, and escape sequences in a facts file
-- reached stderr raw. A facts file is now validated against the facts
-- schema on load ("file:line: field: what is wrong"), 1e300 is not an
-- integer, and what the file says is shown escaped.
local facts = require "mxprobe.facts"
local S = require "mxprobe.schema"

local function good_line()
  local f = assert(io.open("spec/fixtures/facts/good.json", "rb"))
  local doc = require("cjson").decode(f:read("a"))
  f:close()
  return doc
end

local function write(lines)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return path
end

describe("regress: numbers that are not integers, and raw escapes, in a facts file #unit", function()
  it("does not count 1e300 or 220.5 as integers", function()
    assert.is_nil((S.validate(220.5, S.int)))
    assert.is_nil((S.validate(1e300, S.int)))
    assert.is_nil((S.validate(-1e300, S.int)))
    assert.is_true(S.validate(220, S.int))
    assert.is_true(S.validate(220.0, S.int))
    local _, errs = S.validate(1e300, S.int)
    assert.equal("facts: integer expected, got a number too large for an integer", errs[1])
  end)

  for _, bad in ipairs { { 220.5, "a fraction" }, { 1e300, "a number too large for an integer" } } do
    it("refuses a banner code of " .. bad[1] .. " with file:line: field: what is wrong", function()
      local doc = good_line()
      doc.targets[1].smtp.banner.reply.code = bad[1]
      local path = write { facts.encode(good_line()), facts.encode(doc) }
      local list, err = facts.load(path)
      os.remove(path)
      assert.is_nil(list)
      assert.equal(path .. ":2: facts.targets[1].smtp.banner.reply.code: integer expected, got " .. bad[2], err)
    end)
  end

  it("escapes what the file says before it reaches a terminal", function()
    local doc = good_line()
    doc.schema = "\27[2J\27]52;c;eA==\7"
    local path = write { facts.encode(doc) }
    local list, err = facts.load(path)
    os.remove(path)
    assert.is_nil(list)
    assert.is_nil(err:find("[%z\1-\31\127]"))
    assert.matches("\\x1B[2J", err, 1, true)
  end)
end)
