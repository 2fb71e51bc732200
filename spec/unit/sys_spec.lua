-- csrc/sys.c (issue 12): the kind of a file, the open-file limit, and a
-- resume under a memory limit.
local core = require "mxprobe.core"

describe("core.file_kind #unit", function()
  it("names regular files, directories and devices, with the size", function()
    local k, size = core.file_kind("README.md")
    assert.equal("file", k)
    assert.is_true(size > 0)
    assert.equal("directory", (core.file_kind(".")))
    assert.equal("char-device", (core.file_kind("/dev/null")))
  end)
  it("returns nil, message, code when there is no such file", function()
    assert.same({ nil, "stat /nonexistent: No such file or directory", "error" }, { core.file_kind("/nonexistent") })
  end)
end)

describe("core.raise_fd_limit #unit", function()
  it("returns the soft and hard limits, the soft raised to the hard", function()
    local soft, hard = core.raise_fd_limit()
    assert.is_true(math.type(soft) == "integer" and soft > 0)
    assert.equal(hard, soft)
  end)
end)

describe("core.resume_limited #unit", function()
  it("resumes like coroutine.resume when the limit is not reached", function()
    local co = coroutine.create(function(a, b) local x = coroutine.yield(a + b) return x * 2 end)
    assert.same({ true, 3 }, { core.resume_limited(co, 1 << 20, 1, 2) })
    assert.same({ true, 42 }, { core.resume_limited(co, 1 << 20, 21) })
    assert.same({ false, "cannot resume this coroutine" }, { core.resume_limited(co, 1 << 20) })
    local bad = coroutine.create(function() error("boom", 0) end)
    assert.same({ false, "boom" }, { core.resume_limited(bad, 1 << 20) })
  end)
  it("refuses allocations past the limit, even when the coroutine catches the error", function()
    local co = coroutine.create(function()
      local t = {}
      for i = 1, 1e6 do if not pcall(function() t[i] = ("x"):rep(64) .. i end) then return "caught" end end
      return "done " .. #t
    end)
    assert.same({ false, "memory limit exceeded", "memory" }, { core.resume_limited(co, 256 * 1024) })
    collectgarbage()
    -- the state's own allocator is back: a large allocation works again
    assert.equal(8 * 1024 * 1024, #("x"):rep(8 * 1024 * 1024))
  end)
  it("raises on misuse", function()
    assert.has_error(function() core.resume_limited("not a thread", 10) end)
    assert.has_error(function() core.resume_limited(coroutine.create(print), 0) end)
  end)
end)
