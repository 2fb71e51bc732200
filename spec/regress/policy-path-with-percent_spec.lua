-- Bug (issue 12): a policy path containing "%" was an internal error: the
-- path went into a gsub replacement string ("invalid use of '%' in
-- replacement string"). Messages that quote a user's path now build it
-- with plain string operations, escaped for the terminal.
local policy = require "mxprobe.policy"

describe("regress: a policy path with % or control characters in it #unit", function()
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
  end)

  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  it("reports a policy error at file:line, with a % in the path", function()
    local path = dir .. "/100%.lua"
    local f = assert(io.open(path, "w"))
    f:write("return {\n  wieghts = {}\n}\n")
    f:close()
    local p, err = policy.load(path)
    assert.is_nil(p)
    assert.equal(path .. ":2: unknown key \"wieghts\" (expected one of: severities, weights, thresholds, "
      .. "scoring, grades, disable, checks, regime_severities)", err)
  end)

  it("escapes control characters of the path in its messages", function()
    local path = dir .. "/a\27[2Jb%d.lua"
    local p, err = policy.load(path)
    assert.is_nil(p)
    assert.equal(dir .. "/a\\x1B[2Jb%d.lua: cannot read: No such file or directory", err)
  end)
end)
