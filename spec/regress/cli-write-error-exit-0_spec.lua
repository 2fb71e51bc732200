-- regress (issue 12, "Output"): a full disk, a closed stdout or EPIPE
-- exited 0 with nothing on stderr, for --json and --facts alike. Now one
-- line and status 3 (the lab spec cli_bulk_spec covers the probe paths;
-- this one needs no network: saved facts).
local ENV = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;"')
  :format(os.getenv("MXPROBE_CPATH") or "build/?.so")

local function run(redirect, fmt)
  local p = assert(io.popen(('%s lua5.4 bin/mxprobe --from-facts spec/fixtures/facts/good.json %s %s; echo "status $?"')
    :format(ENV, fmt, redirect)))
  local out = p:read("a")
  p:close()
  return out
end

describe("regress: a write error exited 0 #unit", function()
  it("exits 3 with one line when stdout is a full disk", function()
    for _, fmt in ipairs { "--json", "--format jsonl", "" } do
      assert.equal("mxprobe: cannot write to stdout: No space left on device\nstatus 3\n",
        run("2>&1 >/dev/full", fmt), fmt)
    end
  end)

  it("exits 3 with one line when stdout is closed", function()
    assert.equal("mxprobe: cannot write to stdout: Bad file descriptor\nstatus 3\n", run("2>&1 >&-", "--json"))
  end)
end)
