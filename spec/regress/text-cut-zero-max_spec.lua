-- Bug: text.cut(s, 0) indexed byte 0 of an empty string and raised
-- ("attempt to compare nil with number") instead of returning "".
local text = require "mxprobe.text"

describe("regress: text.cut to zero bytes #unit", function()
  it("returns the empty string (and the mark)", function()
    assert.equal("", text.cut("abc", 0))
    assert.equal("…", text.cut("ü", 0, "…"))
    assert.equal("", text.cut("", 0))
  end)
end)
