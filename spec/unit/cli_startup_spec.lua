-- Start-up (issue 10 part 5): `mxprobe --version` loads no module but
-- mxprobe.version, and `--help` none of the probing, judging or bulk
-- modules. Each forbidden module is preloaded as an error before
-- bin/mxprobe runs: loading it fails the run. (make bench-bulk measures the
-- time; this keeps the eager requires from coming back.)
local ENV = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;"')
  :format(os.getenv("MXPROBE_CPATH") or "build/?.so")

-- runs bin/mxprobe with args, the modules in `forbid` raising when loaded;
-- returns stdout+stderr and the exit status
local function run(args, forbid)
  local pre = {}
  for _, m in ipairs(forbid) do
    pre[#pre + 1] = ('package.preload[%q] = function() error("loaded %s") end'):format(m, m)
  end
  local cmd = ("%s lua5.4 -e '%s' bin/mxprobe %s 2>&1; echo \"status $?\""):format(ENV, table.concat(pre, "; "), args)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status (%d+)\n$"))
  return out:gsub("status %d+\n$", ""), status
end

local HEAVY = { "mxprobe", "mxprobe.probe", "mxprobe.judge", "mxprobe.policy", "mxprobe.facts",
  "mxprobe.loop", "mxprobe.report.json", "mxprobe.cli.results", "mxprobe.cli.resume" }

describe("start-up #unit", function()
  it("mxprobe --version loads neither the CLI nor the core", function()
    local forbid = { "mxprobe.cli", "mxprobe.core", "argparse", "cjson" }
    for _, m in ipairs(HEAVY) do forbid[#forbid + 1] = m end
    local out, status = run("--version", forbid)
    assert.equal("mxprobe " .. dofile("lua/mxprobe/version.lua") .. "\n", out)
    assert.equal(0, status)
  end)

  it("mxprobe --help loads none of the probing, judging and bulk modules", function()
    local out, status = run("--help", HEAVY)
    assert.matches("^Usage: mxprobe ", out)
    assert.matches("%-%-format FMT", out)
    assert.equal(0, status)
  end)

  it("the version is the library's", function()
    -- the preloads prove the fast path; this, that it tells the same version
    local out = run("--no-color --version", {})
    assert.equal("mxprobe " .. dofile("lua/mxprobe/version.lua") .. "\n", out)
    local p = assert(io.popen(ENV .. " lua5.4 -e 'io.write(require(\"mxprobe\").VERSION)'"))
    assert.equal(dofile("lua/mxprobe/version.lua"), p:read("a"))
    p:close()
  end)

  it("a forbidden module does fail the run (the check can fail)", function()
    local out, status = run("--from-facts spec/fixtures/facts/good.json", { "mxprobe.judge" })
    assert.matches("loaded mxprobe.judge", out)
    assert.equal(3, status)
  end)
end)
