-- Bulk runs of the CLI against the lab: lists from a file or stdin, JSON
-- Lines written as each query ends, --resume after SIGINT, checked writes,
-- the progress line on a terminal and not elsewhere, --shard.
local cjson = require "cjson"
local core = require "mxprobe.core"
local lab = require "support.lab"

local C = require "support.cli"
local fqdn, write_file, read_file, list_file, sh, json_lines =
  C.fqdn, C.write_file, C.read_file, C.list_file, C.sh, C.json_lines

local MXPROBE = C.ENV .. " lua5.4 bin/mxprobe " .. lab.lab_args()

-- quick lab domains (each query a few ms to a few hundred)
local QUICK = { "good", "expired", "notls", "selfsigned", "wrongname", "incomplete", "mixed", "implicit",
  "nullmx", "nxdomain", "single", "samehost", "mxcname", "tls12", "openrelay", "greylist", "helo",
  "dangling", "noaddr", "expiring" }

local function queries_of(list)
  local set, n = {}, 0
  for _, r in ipairs(list) do
    assert.is_nil(set[r.query], "twice: " .. tostring(r.query))
    set[r.query] = true
    n = n + 1
  end
  return set, n
end

local function set_of(names)
  local set = {}
  for _, d in ipairs(names) do set[fqdn(d)] = true end
  return set
end

describe("mxprobe -f on the lab #integration", function()
  it("reads a list file: trims, skips blanks and comments, reports bad lines by number and goes on", function()
    local list = list_file { "# my domains", "", "  good.example.test  ", "exa mple..test",
      "openrelay.example.test # relays", "bad_@.example.test", "notls.example.test" }
    local out, err, st = lab.cli(lab.lab_args() .. " -f " .. list .. " --format jsonl")
    local results = json_lines(out)
    assert.same(set_of { "good", "openrelay", "notls" }, (queries_of(results)))
    for _, r in ipairs(results) do
      assert.equal("mxprobe.result/1", r.schema)
      assert.equal("mxprobe.facts/2", r.facts.schema)
      assert.is_string(r.verdict)
      assert.is_table(r.findings)
    end
    assert.equal(2, st)   -- an open relay is critical: the worst verdict
    assert.matches("mxprobe: " .. list .. ":4: \"exa mple..test\" contains characters not allowed", err, 1, true)
    assert.matches("mxprobe: " .. list .. ":6: ", err, 1, true)
    assert.matches("mxprobe: 3 done: 1 ok, 1 warning, 1 critical in %d+s\n", err)
    os.remove(list)
  end)

  it("reads queries from standard input with -f -", function()
    local out, st = sh(("printf 'good.example.test\\n\\n# x\\nnotls.example.test\\n' | %s -f - %s 2>/dev/null")
      :format(MXPROBE, "--format jsonl"))
    assert.same(set_of { "good", "notls" }, (queries_of(json_lines(out))))
    assert.equal(1, st)
  end)

  it("writes each jsonl line as its query ends, long before the run does", function()
    local list = list_file { "slowbanner.example.test", "good.example.test" }
    local p = assert(io.popen(MXPROBE .. " --concurrency 2 --format jsonl -f " .. list .. " 2>/dev/null"))
    local t0 = core.now()
    local first = cjson.decode(p:read("l"))
    local t_first = core.now()
    local second = cjson.decode(p:read("l"))
    assert.is_nil(p:read("l"))
    local t_end = core.now()
    p:close()
    os.remove(list)
    assert.equal("good.example.test", first.query)
    assert.equal("slowbanner.example.test", second.query)
    -- slowbanner answers after 3 s; good's line came well before
    assert.is_true(t_first - t0 < 1500, ("first line after %.0f ms"):format(t_first - t0))
    assert.is_true(t_end - t_first > 1500, ("end %.0f ms after the first line"):format(t_end - t_first))
  end)

  it("probes while a slow producer on stdin has not written the next line yet", function()
    local p = assert(io.popen(("(echo good.example.test; sleep 3; echo notls.example.test) | %s -f - %s 2>/dev/null")
      :format(MXPROBE, "--format jsonl")))
    local t0 = core.now()
    local first = cjson.decode(p:read("l"))
    local t_first = core.now()
    local second = cjson.decode(p:read("l"))
    p:close()
    assert.equal("good.example.test", first.query)
    assert.equal("notls.example.test", second.query)
    -- good was probed and written while the reader waited for stdin
    assert.is_true(t_first - t0 < 1500, ("first line after %.0f ms"):format(t_first - t0))
  end)

  it("says an unknown --format in one line, with status 3", function()
    local out, err, st = lab.cli("--format xml good.example.test")
    assert.equal(3, st)
    assert.equal("", out)
    assert.equal('mxprobe: unknown --format "xml" (known: text, json, jsonl, facts)\n',
      err:gsub("%(known: [^)]*%)", "(known: text, json, jsonl, facts)"))
  end)

  it("refuses --resume without -o FILE and a line format", function()
    local _, err, st = lab.cli("--resume --format jsonl good.example.test")
    assert.equal(3, st)
    assert.equal("mxprobe: --resume needs -o FILE and --format jsonl or facts\n", err)
  end)
end)

describe("mxprobe interrupted and resumed on the lab #integration", function()
  -- one query at a time; slowbanner (3 s) is in flight when SIGINT comes
  local names = { "good", "openrelay", "slowbanner", "notls", "selfsigned", "wrongname", "incomplete", "mixed",
    "implicit", "nullmx", "single", "tls12" }
  local domains = {}
  for i, d in ipairs(names) do domains[i] = fqdn(d) end

  -- starts a run in the background, sends sig once `lines` lines are in
  -- out; returns the exit status
  local function run_and_signal(list, out, sig, lines, extra)
    local script = ([[
      %s -f %s --format jsonl --concurrency 1 -o %s %s 2>%s.err &
      pid=$!
      i=0
      while [ "$(cat %s 2>/dev/null | wc -l)" -lt %d ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
      kill -%s $pid
      wait $pid
      echo $?
    ]]):format(MXPROBE, list, out, extra or "", out, out, lines, sig)
    local o = sh(script)
    return tonumber(o:match("(%d+)%s*$"))
  end

  it("ends on SIGINT with complete lines and status 130, and --resume probes each query once in the end", function()
    local list = list_file(domains)
    local out = os.tmpname()
    os.remove(out)
    -- without the version dialogs, slowbanner's probe (one 3 s banner)
    -- ends within the 5 s grace; with them it takes five banners
    local st = run_and_signal(list, out, "INT", 2, "--no-tls-versions")
    local err = read_file(out .. ".err")
    assert.equal(130, st)
    local saved = read_file(out)
    local first = json_lines(saved)
    -- stopped early: good and openrelay, and slowbanner that was in flight
    -- and had its grace period to end
    assert.same({ [domains[1]] = true, [domains[2]] = true, [domains[3]] = true }, (queries_of(first)))
    assert.matches("mxprobe: interrupted: 3 of 12 done\n$", err)
    assert.is_nil(err:find("internal error", 1, true))

    -- a line torn by a kill -9 at the worst moment: resume drops it
    write_file(out, saved .. '{"schema":"mxprobe.result/1","query":"notls.exa')
    local _, err2, st2 = lab.cli(lab.lab_args() .. " -f " .. list .. " --format jsonl --resume -o " .. out)
    -- the status is the worst of the whole file: openrelay, saved before
    assert.equal(2, st2)
    assert.matches("mxprobe: 9 done: ", err2, 1, true)
    assert.matches("dropped a torn last line (47 bytes)", err2, 1, true)
    local all = read_file(out)
    assert.equal(saved, all:sub(1, #saved), "the saved lines are kept byte for byte")
    local set, n = queries_of(json_lines(all))
    assert.equal(12, n)
    for _, d in ipairs(domains) do assert.is_true(set[d], d) end

    -- resumed again: nothing left to do
    local _, err3, st3 = lab.cli(lab.lab_args() .. " -f " .. list .. " --format jsonl --resume -o " .. out)
    assert.equal(2, st3)
    assert.equal("mxprobe: no query to probe (0 in other shards, 12 already in " .. out .. ", 0 invalid)\n", err3)
    assert.equal(all, read_file(out))
    os.remove(list)
    os.remove(out)
    os.remove(out .. ".err")
  end)

  it("ends on SIGTERM with status 143 and facts lines complete", function()
    local list = list_file(domains)
    local out = os.tmpname()
    os.remove(out)
    local script = ([[
      %s -f %s --facts --concurrency 1 -o %s 2>%s.err &
      pid=$!
      i=0
      while [ "$(cat %s 2>/dev/null | wc -l)" -lt 1 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
      kill -TERM $pid
      wait $pid
      echo $?
    ]]):format(MXPROBE, list, out, out, out)
    local st = tonumber((sh(script)):match("(%d+)%s*$"))
    assert.equal(143, st)
    local got = json_lines(read_file(out))
    assert.is_true(#got >= 1 and #got < 12)
    for _, f in ipairs(got) do assert.equal("mxprobe.facts/2", f.schema) end
    assert.matches(("mxprobe: interrupted: %d of 12 done\n$"):format(#got), read_file(out .. ".err"))
    os.remove(list)
    os.remove(out)
    os.remove(out .. ".err")
  end)
end)

describe("mxprobe interrupted twice #integration", function()
  it("stops at once on a second SIGINT, says interrupted (no internal error), writes a whole document", function()
    local errf = os.tmpname()
    local script = ([[
      %s --json blackhole.example.test 2>%s &
      pid=$!
      sleep 0.5; kill -INT $pid; sleep 0.3; kill -INT $pid
      wait $pid
      echo "status $?"
    ]]):format(MXPROBE, errf)
    local t0 = core.now()
    local out = sh(script)
    local took = core.now() - t0
    local doc, status = out:match("^(.*\n)status (%d+)\n$")
    assert.equal("130", status)
    assert.is_true(took < 3000, ("took %.0f ms"):format(took))   -- blackhole alone takes 5 s
    local d = cjson.decode(doc)
    assert.equal("mxprobe.report/1", d.schema)
    assert.same({}, d.results)
    assert.equal("mxprobe: interrupted: 0 of 1 done\n", read_file(errf))
    os.remove(errf)
  end)
end)

describe("mxprobe output that cannot be written #integration", function()
  local function one_line(err) return select(2, err:gsub("\n", "")) == 1 end

  it("exits 3 with one line on a full disk, for jsonl, --facts and --json alike", function()
    for _, fmt in ipairs { "--format jsonl", "--facts", "--json", "" } do
      local out, err, st = lab.cli(lab.lab_args() .. " " .. fmt .. " good.example.test notls.example.test > /dev/full")
      assert.equal("", out)
      assert.equal(3, st, fmt)
      assert.equal("mxprobe: cannot write to stdout: No space left on device\n", err, fmt)
    end
    local _, err, st = lab.cli(lab.lab_args() .. " --format jsonl -o /dev/full good.example.test")
    assert.equal(3, st)
    assert.equal("mxprobe: cannot write to /dev/full: No space left on device\n", err)
  end)

  it("exits 3 with one line when stdout is closed", function()
    local _, err, st = lab.cli(lab.lab_args() .. " --json good.example.test >&-")
    assert.equal(3, st)
    assert.is_true(one_line(err))
    assert.matches("^mxprobe: cannot write to stdout: Bad file descriptor", err)
  end)

  it("exits 3 on EPIPE when SIGPIPE is ignored, and quietly by SIGPIPE when it is not", function()
    local rc, errf = os.tmpname(), os.tmpname()
    sh(("(trap '' PIPE; sleep 0.2; %s --facts good.example.test 2>%s; echo $? > %s) | true"):format(MXPROBE, errf, rc))
    assert.equal("3\n", read_file(rc))
    assert.equal("mxprobe: cannot write to stdout: Broken pipe\n", read_file(errf))
    sh(("(sleep 0.2; %s --facts good.example.test 2>%s; echo $? > %s) | true"):format(MXPROBE, errf, rc))
    assert.equal("141\n", read_file(rc))   -- 128 + SIGPIPE
    assert.equal("", read_file(errf))
    os.remove(rc)
    os.remove(errf)
  end)

  it("writes a whole document to -o only when it is complete", function()
    local path = os.tmpname()
    write_file(path, "the previous report\n")
    local out, _, st = lab.cli(lab.lab_args() .. " --json -o " .. path .. " good.example.test")
    assert.equal("", out)
    assert.equal(0, st)
    local doc = cjson.decode(read_file(path))
    assert.equal("mxprobe.report/1", doc.schema)
    assert.equal("good.example.test", doc.results[1].query)
    os.remove(path)
  end)
end)

describe("mxprobe progress #integration", function()
  local list
  setup(function() list = list_file { "good.example.test", "notls.example.test", "openrelay.example.test" } end)
  teardown(function() os.remove(list) end)

  it("draws a progress line on a terminal", function()
    local out = os.tmpname()
    local tty = sh(("script -qec %q /dev/null"):format(MXPROBE .. " -f " .. list .. " --format jsonl -o " .. out))
    assert.matches("\r0/3 done, 0.0/s, 1 in flight\27%[K", tty)
    assert.matches("\r3/3 done, [%d.]+/s, 0 in flight\27%[K", tty)
    assert.matches("\r\27%[Kmxprobe: 3 done: 1 ok, 1 warning, 1 critical in %d+s\r?\n", tty)
    assert.equal(3, #json_lines(read_file(out)))
    os.remove(out)
  end)

  it("writes no control character when stderr is not a terminal", function()
    local _, err, st = lab.cli(lab.lab_args() .. " -f " .. list .. " --format jsonl")
    assert.equal(2, st)
    assert.is_nil(err:find("[\1-\9\11-\31\127]"))
    assert.matches("^mxprobe: 3 done: 1 ok, 1 warning, 1 critical in %d+s\n$", err)
    -- forced: plain lines, still no control character
    local _, err2 = lab.cli(lab.lab_args() .. " --progress -f " .. list .. " --format jsonl")
    assert.matches("^mxprobe: 0/3 done, 0.0/s, 1 in flight\n", err2)
    assert.is_nil(err2:find("[\1-\9\11-\31\127]"))
    -- and off on a terminal with --no-progress
    local tty = sh(("script -qec %q /dev/null")
      :format(MXPROBE .. " --no-progress -f " .. list .. " --format jsonl -o /dev/null"))
    assert.is_nil(tty:find("in flight", 1, true))
    assert.matches("mxprobe: 3 done", tty, 1, true)
  end)
end)

describe("mxprobe --shard #integration", function()
  it("splits a list into 4 shards that cover it exactly once, and the facts merge into one report", function()
    local list = list_file((function()
      local l = {}
      for i, d in ipairs(QUICK) do l[i] = fqdn(d) end
      return l
    end)())
    local merged = os.tmpname()
    os.remove(merged)
    local seen, total = {}, 0
    for i = 0, 3 do
      local out, _, st = lab.cli(("%s -f %s --shard %d/4 --facts --no-relay-test"):format(lab.lab_args(), list, i))
      assert.equal(0, st)
      local f = assert(io.open(merged, "ab"))
      f:write(out)
      f:close()
      for _, facts in ipairs(json_lines(out)) do
        assert.is_nil(seen[facts.query], facts.query .. " in two shards")
        seen[facts.query] = i
        total = total + 1
      end
    end
    assert.equal(#QUICK, total)
    assert.same(set_of(QUICK), (function()
      local s = {}
      for q in pairs(seen) do s[q] = true end
      return s
    end)())
    -- the same query, spelt otherwise, lands in the same shard
    local out = lab.cli(("%s --shard %d/4 --facts --no-relay-test GOOD.example.test."):format(lab.lab_args(),
      seen["good.example.test"]))
    assert.equal(1, #json_lines(out))
    -- the concatenation of the shards is one facts file: any report of it
    local doc_out, _, st = lab.cli("--from-facts " .. merged .. " --json")
    assert.equal(2, st)
    assert.equal(#QUICK, #cjson.decode(doc_out).results)
    local _, err, st2 = lab.cli(lab.lab_args() .. " --shard 4/4 good.example.test")
    assert.equal(3, st2)
    assert.equal("mxprobe: --shard 4/4: I must be 0 to N-1\n", err)
    os.remove(list)
    os.remove(merged)
  end)
end)
