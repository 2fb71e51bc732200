-- Bug: core.poll converted a NaN timeout to int (undefined behaviour,
-- reported by UBSan). It must refuse it as misuse.
local core = require "mxprobe.core"

describe("regress: poll refuses a NaN timeout #unit", function()
  it("raises instead of converting NaN to int", function()
    assert.has_error(function() core.poll({}, {}, 0 / 0) end)
  end)
end)
