-- Resource limits (issue 12, robustness): with a low open-file limit, a run
-- of hundreds of targets must not fail target after target with "Too many
-- open files" (and exit 1 for it): mxprobe raises the soft limit to the
-- hard one and fits its concurrency to what is left, saying so in one line.
-- The targets are 300 address literals of one hostile SMTP peer (fault
-- "normal") on 127.0.66.57, with --per-address 64 so that, without the
-- fit, 64 connections would be open at once.
local H = require "hostile.peer"

local ADDR = "127.0.66.57:2530"

local function run_cli(shell_prefix, args)
  local err = os.tmpname()
  local cmd = ("%s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s;;' lua5.4 bin/mxprobe %s 2>%s")
    :format(shell_prefix, os.getenv("MXPROBE_CPATH") or "build/?.so", args, err)
  local p = assert(io.popen("sh -c \"" .. cmd .. "\""))
  local out = p:read("a")
  local _, _, status = p:close()
  local f = assert(io.open(err))
  local stderr = f:read("a")
  f:close()
  os.remove(err)
  return out, stderr, status
end

describe("the open-file limit #hostile #integration", function()
  after_each(H.stop_all)
  teardown(H.stop_all)

  it("fits concurrency to ulimit -n 64 with one line, and probes all 300 targets", function()
    H.start("smtp", ADDR, "normal")
    local one_out, _, one_status = run_cli("", "--per-address 64 --timeout 5 [127.0.66.57]:2530")
    local queries = ("[127.0.66.57]:2530 "):rep(300)
    local out, stderr, status = run_cli("ulimit -n 64;", "--per-address 64 --timeout 5 " .. queries)
    -- one line says so (a bulk run may add its own summary line after it)
    assert.equal("mxprobe: open-file limit 64: concurrency lowered from 64 to 6", stderr:match("^[^\n]*"))
    local _, notices = stderr:gsub("open%-file limit", "")
    assert.equal(1, notices)
    assert.is_nil(stderr:find("Too many open files", 1, true))
    assert.is_nil(out:find("Too many open files", 1, true))
    local ok = 0
    for _ in out:gmatch("tcp%.ok") do ok = ok + 1 end
    assert.equal(300, ok)
    -- the verdict of 300 probes of one server is the verdict of one probe
    assert.equal(one_status, status)
    assert.truthy(one_out:find("tcp.ok", 1, true))
  end)

  it("raises a low soft limit to the hard one, and then needs no fit", function()
    H.start("smtp", ADDR, "normal")
    local queries = ("[127.0.66.57]:2530 "):rep(300)
    local out, stderr = run_cli("ulimit -S -n 64;", "--per-address 64 --timeout 5 " .. queries)
    assert.is_nil(stderr:find("open-file limit", 1, true))
    assert.is_nil(stderr:find("Too many open files", 1, true))
    assert.is_nil(out:find("Too many open files", 1, true))
    local ok = 0
    for _ in out:gmatch("tcp%.ok") do ok = ok + 1 end
    assert.equal(300, ok)
  end)
end)
