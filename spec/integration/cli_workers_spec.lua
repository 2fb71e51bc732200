-- --workers N against the lab: the same results as one process, the
-- per-address cap held across worker processes (counted in Postfix's own
-- log), a worker killed mid-run, SIGINT and --resume with workers,
-- --rate-per-address.
local core = require "mxprobe.core"
local lab = require "support.lab"
local loop = require "mxprobe.loop"

local C = require "support.cli"
local fqdn, read_file, list_file, sh, json_lines = C.fqdn, C.read_file, C.list_file, C.sh, C.json_lines

local MXPROBE = C.ENV .. " lua5.4 bin/mxprobe " .. lab.lab_args()

-- query -> "verdict code:state,..." (what a user compares between runs)
local function outcomes(list)
  local by = {}
  for _, r in ipairs(list) do
    assert.is_nil(by[r.query], "twice: " .. r.query)
    local codes = {}
    for _, f in ipairs(r.findings) do codes[#codes + 1] = f.code .. ":" .. f.state end
    table.sort(codes)
    by[r.query] = r.verdict .. " " .. table.concat(codes, ",")
  end
  return by
end

local function mark()
  loop.sleep(300)   -- sessions of earlier specs reach the log first
  return #read_file(lab.MAILLOG)
end

-- postscreen's sessions in a stretch of the log, in the order Postfix
-- logged them: a session opens at postscreen's CONNECT and closes at its
-- smtpd's "disconnect" (or at postscreen's own "too many connections"
-- refusal). Returns the most sessions open at once, the CONNECTs and the
-- refusals.
local function postscreen_sessions(log)
  local open, most, connects, refused = 0, 0, 0, 0
  for line in log:gmatch("[^\n]+") do
    if line:find("lab%-postscreen/postscreen%[%d+%]: CONNECT from %[127%.0%.0%.1%]:%d+ to ") then
      open = open + 1
      connects = connects + 1
      if open > most then most = open end
    elseif line:find("lab%-postscreen/postscreen%[%d+%]: NOQUEUE: reject: CONNECT from .*too many connections") then
      open = open - 1
      refused = refused + 1
    elseif line:find("lab%-postscreen/smtpd%[%d+%]: disconnect from ") then
      open = open - 1
    end
  end
  return most, connects, refused
end

-- waits (at most 5 s) until the log since `from` shows n postscreen CONNECTs
-- and as many ends; returns that log
local function wait_sessions(from, n)
  local log
  for _ = 1, 50 do
    log = read_file(lab.MAILLOG):sub(from + 1)
    local _, connects, refused = postscreen_sessions(log)
    local _, ends = log:gsub("lab%-postscreen/smtpd%[%d+%]: disconnect from ", "")
    if connects >= n and ends + refused >= n then break end
    loop.sleep(100)
  end
  return log
end

describe("mxprobe --workers on the lab #integration", function()
  it("gives the same results with --workers 4 as with --workers 1, query by query", function()
    local names = { "good", "expired", "notls", "selfsigned", "wrongname", "incomplete", "mixed", "implicit",
      "nullmx", "nxdomain", "single", "samehost", "mxcname", "tls12", "openrelay", "greylist", "helo",
      "dangling", "noaddr", "expiring", "v6only", "mxproblems", "weakkey", "closed" }
    local list = {}
    for i, d in ipairs(names) do list[i] = fqdn(d) end
    local path = list_file(list)
    local out1, err1, st1 = lab.cli(lab.lab_args() .. " --workers 1 -f " .. path .. " --format jsonl")
    local out4, err4, st4 = lab.cli(lab.lab_args() .. " --workers 4 -f " .. path .. " --format jsonl")
    os.remove(path)
    assert.equal(2, st1)
    assert.equal(st1, st4)
    local r1, r4 = json_lines(out1), json_lines(out4)
    assert.equal(#names, #r4)
    assert.same(outcomes(r1), outcomes(r4))
    -- one run: every line of the four workers carries the same run id
    local id = r4[1].facts.run.id
    assert.matches("^%x+$", id)
    for _, r in ipairs(r4) do
      assert.equal(id, r.facts.run.id)
      assert.is_nil(r.facts.error)
    end
    assert.equal(err1:gsub(" in %d+s", ""), (err4:gsub(" in %d+s", "")))
  end)

  it("holds --per-address across workers: Postfix never sees more than 2 sessions from us", function()
    -- postscreen's 2 s greeting makes sessions overlap; it refuses a third
    -- simultaneous connection from one client with a 421. One session per
    -- probe: no version dialogs (--no-tls-versions)
    local q = {}
    for i = 1, 8 do q[i] = "postscreen.example.test" end
    local path = list_file(q)
    local from = mark()
    local out, _, st = lab.cli(lab.lab_args() .. " --workers 4 --per-address 2 --no-relay-test --no-tls-versions"
      .. " --no-share-hosts"   -- hostshare: one session per query, as counted
      .. " -f " .. path
      .. " --format jsonl")
    local list = json_lines(out)
    assert.equal(8, #list)
    for _, r in ipairs(list) do
      local s = r.facts.targets[1].smtp
      assert.equal("complete", s.status)
      assert.equal(220, s.banner.reply.code)
    end
    assert.equal(0, st)
    local most, connects, refused = postscreen_sessions(wait_sessions(from, 8))
    assert.equal(8, connects)
    assert.equal(0, refused)
    assert.equal(2, most)

    -- the same count catches a cap that lets 3 through: postscreen refuses
    from = mark()
    local out3 = lab.cli(lab.lab_args() .. " --workers 4 --per-address 3 --no-relay-test --no-tls-versions"
      .. " --no-share-hosts -f " .. path   -- hostshare
      .. " --format jsonl")
    assert.equal(8, #json_lines(out3))
    local most3, connects3, refused3 = postscreen_sessions(wait_sessions(from, 8))
    assert.is_true(connects3 >= 8)
    assert.equal(3, most3)
    assert.is_true(refused3 >= 1)
    os.remove(path)
  end)

  it("reports a worker killed with SIGKILL: its queries get an error line, status 3, no zombie", function()
    -- the slow banner (3 s) keeps queries in flight when the kill comes
    local q = { "slowbanner.example.test", "SLOWBANNER.example.test", "slowbanner.example.test.",
      "Slowbanner.Example.Test", "good.example.test", "single.example.test", "tls12.example.test",
      "nullmx.example.test", "greylist.example.test" }
    local path = list_file(q)
    local out = os.tmpname()
    os.remove(out)
    local script = ([[
      %s --workers 2 -f %s --format jsonl -o %s 2>%s.err &
      pid=$!
      i=0
      while [ "$(cat %s 2>/dev/null | wc -l)" -lt 1 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
      ws=$(pgrep -P $pid | tr '\n' ' ')
      w=${ws%%%% *}
      kill -KILL $w
      sleep 0.5
      echo "workers $ws"
      echo "killed $w"
      echo "state [$(ps -o stat= -p $w)]"
      kill -0 $pid 2>/dev/null && echo "coordinator running"
      wait $pid
      echo "status $?"
      for x in $ws; do ps -o pid= -p $x; done
      echo end
    ]]):format(MXPROBE, path, out, out, out)
    local got = sh(script)
    local killed = tonumber(got:match("killed (%d+)"))
    assert.is_number(killed)
    assert.equal(2, select(2, got:match("workers ([%d ]+)"):gsub("%d+", "")))
    -- reaped by the coordinator while it still ran: no zombie, nothing left
    assert.matches("state %[%]", got)
    assert.matches("coordinator running", got, 1, true)
    assert.matches("status 3\nend\n$", got)
    local list = json_lines(read_file(out))
    assert.equal(#q, #list)
    local errors, seen = 0, {}
    for _, r in ipairs(list) do
      seen[r.query] = true
      if r.facts.error then
        errors = errors + 1
        assert.equal(("worker 1 (pid %d) died: signal 9"):format(killed),
          r.facts.error:gsub("worker %d", "worker 1"))
        assert.equal("unknown", r.verdict)
        assert.equal("mxprobe.query-error", r.findings[1].code)
      else
        assert.equal("ok", r.verdict, r.query)
      end
    end
    for _, x in ipairs(q) do assert.is_true(seen[x], x) end
    assert.is_true(errors >= 1)
    assert.matches("unknown in %d+s\n$", read_file(out .. ".err"))
    os.remove(path)
    os.remove(out)
    os.remove(out .. ".err")
  end)

  it("ends on SIGINT with workers: status 130, complete lines, and --resume probes each query once", function()
    local names = { "good", "expired", "slowbanner", "notls", "selfsigned", "wrongname", "incomplete", "mixed",
      "implicit", "nullmx", "single", "tls12" }
    local domains = {}
    for i, d in ipairs(names) do domains[i] = fqdn(d) end
    local path = list_file(domains)
    local out = os.tmpname()
    os.remove(out)
    local script = ([[
      %s --workers 2 --concurrency 2 -f %s --format jsonl -o %s 2>%s.err &
      pid=$!
      i=0
      while [ "$(cat %s 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
      ws=$(pgrep -P $pid | tr '\n' ' ')
      kill -INT $pid
      wait $pid
      echo "status $?"
      for x in $ws; do ps -o pid= -p $x; done
      echo end
    ]]):format(MXPROBE, path, out, out, out)
    local got = sh(script)
    assert.equal("status 130\nend\n", got)
    local saved = read_file(out)
    local first = json_lines(saved)
    assert.is_true(#first >= 2 and #first < #domains, #first .. " lines")
    assert.matches(("mxprobe: interrupted: %d of %d done\n$"):format(#first, #domains), read_file(out .. ".err"))
    for _, r in ipairs(first) do assert.is_nil(r.facts.error) end

    local _, err2 = lab.cli(lab.lab_args() .. " --workers 2 -f " .. path .. " --format jsonl --resume -o " .. out)
    assert.matches(("mxprobe: %d done: "):format(#domains - #first), err2, 1, true)
    local all = read_file(out)
    assert.equal(saved, all:sub(1, #saved))
    local by = outcomes(json_lines(all))
    for _, d in ipairs(domains) do assert.is_string(by[d], d) end
    os.remove(path)
    os.remove(out)
    os.remove(out .. ".err")
  end)

  it("spaces the connections to one address with --rate-per-address", function()
    -- single: one MX, 127.0.1.1; three probes at 60/min start a second
    -- apart (one connection each: no version dialogs)
    local q = { "single.example.test", "SINGLE.example.test", "single.example.test." }
    local path = list_file(q)
    local t0 = core.now()
    local out, _, st = lab.cli(lab.lab_args() .. " --workers 2 --rate-per-address 60/min --no-relay-test"
      .. " --no-tls-versions --no-share-hosts -f "   -- hostshare: one connection per probe
      .. path .. " --format jsonl")
    local took = core.now() - t0
    os.remove(path)
    assert.equal(0, st)
    local list = json_lines(out)
    assert.equal(3, #list)
    for _, r in ipairs(list) do assert.equal("complete", r.facts.targets[1].smtp.status) end
    assert.is_true(took >= 2000, ("took %.0f ms"):format(took))
    assert.is_true(took < 8000, ("took %.0f ms"):format(took))
    local _, err, st2 = lab.cli(lab.lab_args() .. " --rate-per-address fast good.example.test")
    assert.equal(3, st2)
    assert.equal("mxprobe: --rate-per-address fast: expected N or N/min, 1 to 60000\n", err)
    local _, err3, st3 = lab.cli(lab.lab_args() .. " --workers 0 good.example.test")
    assert.equal(3, st3)
    assert.equal("mxprobe: --workers must be 1 to 256\n", err3)
  end)
end)

describe("core.spawn #integration", function()
  it("starts a process with a line channel on descriptor 3, and reaps it", function()
    local pid, ch = core.spawn { "sh", "-c", 'while read l <&3; do echo "got $l" >&3; done' }
    assert.is_number(pid)
    assert.is_true(ch:send("hello\nworld\n"))
    assert.is_true(ch:flush())
    local got = {}
    local deadline = core.now() + 5000
    while #got < 2 and core.now() < deadline do
      loop.wait(ch:rfd(), loop.READ, deadline)
      assert.is_number(ch:fill())
      while true do
        local s = ch:line()
        if not s then break end
        got[#got + 1] = s
      end
    end
    assert.same({ "got hello", "got world" }, got)
    ch:close()
    assert.same({ "exited", 0 }, { core.waitpid(pid, true) })
    local pid2 = core.spawn { "sleep", "10" }
    assert.is_false(core.waitpid(pid2))
    assert.is_true(core.kill(pid2, "KILL"))
    assert.same({ "signaled", 9 }, { core.waitpid(pid2, true) })
    local none, msg = core.spawn { "/nonexistent/mxprobe-worker" }
    assert.is_nil(none)
    assert.equal("spawn /nonexistent/mxprobe-worker: No such file or directory", msg)
  end)

  it("refuses a line longer than its limit: the peer is broken, not trusted", function()
    local pid, ch = core.spawn { "sh", "-c", "head -c 17000000 /dev/zero >&3 2>/dev/null" }
    local deadline = core.now() + 10000
    local r, msg, code
    while core.now() < deadline do
      r, msg, code = ch:line()
      if r == nil then break end
      loop.wait(ch:rfd(), loop.READ, deadline)
      local n, ferr, fcode = ch:fill()
      if not n then r, msg, code = n, ferr, fcode break end
    end
    assert.is_nil(r)
    assert.equal("too-long", code)
    assert.matches("line too long", msg)
    ch:close()
    core.kill(pid, "KILL")
    core.waitpid(pid, true)
  end)
end)

describe("the coordinator and a broken worker #integration", function()
  local workers = require "mxprobe.cli.workers"

  -- runs two queries through one fake worker (a shell script on fd 3);
  -- returns the facts by query and how long it took
  local function with_worker(script)
    local got = {}
    local t0 = core.now()
    -- (no lab needed: nothing gets as far as the network)
    local opts = { resolver = lab.RESOLVER, ehlo_name = "client.mxprobe.test" }
    local n = assert(workers.probe_many({ "a.example.test", "b.example.test" }, opts, function(f)
      got[f.query] = f
    end, nil, { workers = 1, command = { "sh", "-c", script } }))
    return got, n, core.now() - t0
  end

  local function assert_broken(script, why)
    local got, n, took = with_worker(script)
    assert.equal(2, n)
    for _, q in ipairs { "a.example.test", "b.example.test" } do
      assert.equal("mxprobe.facts/2", got[q].schema)
      assert.matches("^worker 1 %(pid %d+%) died: " .. why:gsub("%p", "%%%0") .. "$", got[q].error)
      assert.same({}, got[q].targets)
    end
    assert.is_true(took < 2000, ("took %.0f ms"):format(took))   -- killed, not waited for
  end

  it("ends a worker that sends a malformed line; its queries get an error", function()
    assert_broken(("read o <&3; read q <&3; echo 'A evil.example|25' >&3; sleep 5"),
      "malformed message: A: not an address|port key")
  end)

  it("ends a worker that releases a slot it does not hold", function()
    assert_broken(("read o <&3; read q <&3; echo 'R 127.0.0.1|25' >&3; sleep 5"),
      "release of a slot not held: 127.0.0.1|25")
  end)

  it("ends a worker that sends facts of a query it was not given", function()
    assert_broken(([[read o <&3; read q <&3; echo 'F 99 {"schema":"mxprobe.facts/2"}' >&3; sleep 5]]),
      "facts of a query it did not have")
  end)

  it("ends a worker whose line never ends (too long)", function()
    assert_broken(("read o <&3; read q <&3; head -c 17000000 /dev/zero >&3 2>/dev/null; sleep 5"),
      "its channel broke: channel: line too long")
  end)

  it("reports a worker that exits with its queries unanswered", function()
    assert_broken(("read o <&3; read q <&3; exit 7"), "exit status 7")
  end)
end)
