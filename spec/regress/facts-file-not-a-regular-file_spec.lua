-- Bug (issue 12): --from-facts on a directory was an internal error, and
-- on /dev/zero it read until memory ran out (one endless line). A facts
-- file is now stat'ed first (only a regular file is read) and read as a
-- stream with a cap per line.
local facts = require "mxprobe.facts"
local core = require "mxprobe.core"

local function cli(args)
  local p = io.popen(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 bin/mxprobe %s 2>&1')
    :format(os.getenv("MXPROBE_CPATH") or "build/?.so", args))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status
end

describe("regress: facts files that are not regular files, or have endless lines #unit", function()
  it("tells the kind of file with core.file_kind", function()
    assert.equal("directory", (core.file_kind("spec")))
    assert.equal("char-device", (core.file_kind("/dev/zero")))
    assert.equal("file", (core.file_kind("README.md")))
    local k, err, code = core.file_kind("/nonexistent/x")
    assert.is_nil(k)
    assert.equal("stat /nonexistent/x: No such file or directory", err)
    assert.equal("error", code)
  end)

  it("refuses a directory, a device and a FIFO in one line", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. fifo))
    for path, kind in pairs { spec = "directory", ["/dev/zero"] = "char device", [fifo] = "fifo" } do
      local list, err = facts.load(path)
      assert.is_nil(list)
      assert.equal(path .. ": is a " .. kind .. ", not a facts file", err)
      local out, status = cli("--from-facts " .. path)
      assert.equal(3, status)
      assert.equal("mxprobe: " .. path .. ": is a " .. kind .. ", not a facts file\n", out)
    end
    os.remove(fifo)
  end)

  it("stops at the first line longer than the cap, without reading the rest", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("\n", ("x"):rep(facts.LINE_MAX + 1))
    f:close()
    local list, err = facts.load(path)
    os.remove(path)
    assert.is_nil(list)
    assert.equal(("%s:2: line longer than %d MiB"):format(path, facts.LINE_MAX // (1024 * 1024)), err)
  end)
end)
