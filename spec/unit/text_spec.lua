local text = require "mxprobe.text"

describe("text.utf8 #unit", function()
  it("leaves valid UTF-8 alone", function()
    assert.equal("Grüße, 220 ✓", text.utf8("Grüße, 220 ✓"))
  end)
  it("turns each invalid byte into \\xNN so JSON stays valid", function()
    assert.equal("a\\xFFb\\xC3", text.utf8("a\255b\195"))
    assert.is_truthy(utf8.len(text.utf8("\192\128\237\160\128")))
  end)
  it("keeps control characters (reports escape them)", function()
    assert.equal("a\0\27[31m", text.utf8("a\0\27[31m"))
  end)
end)

describe("text.cut #unit", function()
  it("cuts at a character boundary", function()
    assert.equal("ab", text.cut("abü", 3))
    assert.equal("abü", text.cut("abü", 4))
    -- a complete character at the cut stays; a split one goes
    assert.equal("abü", text.cut("abüx", 4))
    assert.equal("ab", text.cut("ab✓x", 4))
  end)
end)
