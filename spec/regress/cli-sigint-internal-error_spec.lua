-- regress (issue 12, "Signals"): SIGINT was "internal error: interrupted!"
-- (Lua's own handler) with status 3. Now: caught, "interrupted", 130, and
-- at once when no query is in flight -- here mxprobe waits for a list on
-- a stdin that stays silent. No socket: the queries never come.
local function run(script)
  local p = assert(io.popen(script))
  local out = p:read("a")
  p:close()
  return out
end

describe("regress: SIGINT while waiting for the list on stdin #unit", function()
  it("says interrupted, exits 130, and does not wait out a grace period", function()
    local err = os.tmpname()
    local env = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;"')
      :format(os.getenv("MXPROBE_CPATH") or "build/?.so")
    local fifo = os.tmpname()
    os.remove(fifo)
    -- stdin: a FIFO whose writer stays silent for 4 s (not a pipeline: the
    -- shell's wait would wait for the whole pipeline)
    local out = run(([[
      mkfifo %s
      sleep 4 > %s &
      writer=$!
      %s lua5.4 bin/mxprobe -f - --format jsonl <%s 2>%s &
      pid=$!
      sleep 0.5
      start=$(date +%%s%%N)
      kill -INT $pid
      wait $pid
      st=$?
      echo "status $st after $(( ($(date +%%s%%N) - start) / 1000000 )) ms"
      kill $writer
    ]]):format(fifo, fifo, env, fifo, err))
    os.remove(fifo)
    local st, ms = out:match("status (%d+) after (%d+) ms")
    assert.equal("130", st)
    assert.is_true(tonumber(ms) < 2000, ms .. " ms")
    local f = assert(io.open(err))
    local e = f:read("a")
    f:close()
    os.remove(err)
    assert.equal("mxprobe: interrupted: 0 of 0 done\n", e)
  end)
end)
