-- --workers N with a line format (jsonl, facts): the workers judge and
-- render each line (bulk CPU, issue 10 part 5), the coordinator writes
-- them. The same lines as one process, --policy and --expiry-days applied
-- in the workers, and the coordinator's checks of a worker's "J" lines.
local core = require "mxprobe.core"
local lab = require "support.lab"

local C = require "support.cli"
local fqdn, list_file, json_lines, write_file = C.fqdn, C.list_file, C.json_lines, C.write_file

-- query -> "verdict code:state:severity,..."
local function outcomes(list)
  local by = {}
  for _, r in ipairs(list) do
    assert.is_nil(by[r.query], "twice: " .. r.query)
    local codes = {}
    for _, f in ipairs(r.findings) do codes[#codes + 1] = f.code .. ":" .. f.state .. ":" .. f.severity end
    table.sort(codes)
    by[r.query] = r.verdict .. " " .. table.concat(codes, ",")
  end
  return by
end

describe("mxprobe --workers with a line format #integration", function()
  it("judges in the workers under --policy and --expiry-days as one process does", function()
    local names = { "slowbanner", "notls", "good", "expiring", "selfsigned", "nxdomain" }
    local list = {}
    for i, d in ipairs(names) do list[i] = fqdn(d) end
    local path = list_file(list)
    local policy = os.tmpname()
    write_file(policy, "return { thresholds = { banner_slow_ms = 2000 } }\n")
    local args = lab.lab_args() .. " -f " .. path .. " --format jsonl --policy " .. policy .. " --expiry-days 3650"
    local out1, err1, st1 = lab.cli(args .. " --workers 1")
    local out2, err2, st2 = lab.cli(args .. " --workers 2")
    os.remove(path)
    os.remove(policy)
    assert.equal(2, st1)
    assert.equal(st1, st2)
    local r1, r2 = json_lines(out1), json_lines(out2)
    assert.equal(#names, #r2)
    assert.same(outcomes(r1), outcomes(r2))
    local by = {}
    for _, r in ipairs(r2) do by[r.query] = r end
    -- the policy file's threshold and --expiry-days, applied by the workers
    local slow, exp = {}, {}
    for _, f in ipairs(by[fqdn("slowbanner")].findings) do slow[f.code] = f.state end
    for _, f in ipairs(by[fqdn("good")].findings) do exp[f.code] = f.state end
    assert.equal("fail", slow["smtp.banner.slow"])
    assert.equal("fail", exp["tls.cert.expiring"])
    for _, r in ipairs(r2) do assert.equal("mxprobe.result/1", r.schema) end
    assert.equal(err1:gsub(" in %d+s", ""), (err2:gsub(" in %d+s", "")))
  end)

  it("writes the facts lines the workers encoded, one per query", function()
    local names = { "good", "notls", "nullmx", "nxdomain" }
    local list = {}
    for i, d in ipairs(names) do list[i] = fqdn(d) end
    local path = list_file(list)
    local out, err, st = lab.cli(lab.lab_args() .. " -f " .. path .. " --format facts --workers 2")
    os.remove(path)
    assert.equal(0, st)
    assert.matches("^mxprobe: 4 done in %d+s\n$", err)
    local seen = {}
    for _, f in ipairs(json_lines(out)) do
      assert.equal("mxprobe.facts/2", f.schema)
      assert.is_nil(seen[f.query])
      seen[f.query] = true
    end
    for _, q in ipairs(list) do assert.is_true(seen[q], q) end
  end)
end)

describe("the coordinator and a worker's rendered lines #integration", function()
  local workers = require "mxprobe.cli.workers"

  -- runs two queries through one fake worker (a shell script on fd 3) with
  -- render (nil: facts wanted); returns what the sink got by index
  local function with_worker(script, render)
    local got = {}
    local t0 = core.now()
    local opts = { resolver = lab.RESOLVER, ehlo_name = "client.mxprobe.test" }
    local n = assert(workers.probe_many({ "a.example.test", "b.example.test" }, opts, function(f, i, ready)
      got[i] = ready or f
    end, nil, { workers = 1, command = { "sh", "-c", script }, render = render }))
    return got, n, core.now() - t0
  end

  it("hands a worker's lines to the sink as they are, with their verdicts", function()
    -- the worker answers only when the options ask it for jsonl lines
    local got, n = with_worker([[read o <&3; read q1 <&3; read q2 <&3
      case "$o" in *'"fmt":"jsonl"'*) ;; *) exit 9 ;; esac
      set -- $q2; echo "J $2 critical {\"n\":2}" >&3
      set -- $q1; echo "J $2 ok {\"n\":1}" >&3
      read e <&3]], { fmt = "jsonl" })
    assert.equal(2, n)
    assert.same({ { line = '{"n":1}', verdict = "ok" }, { line = '{"n":2}', verdict = "critical" } }, got)
  end)

  local function assert_broken(script, render, why)
    local got, n, took = with_worker(script, render)
    assert.equal(2, n)
    for i = 1, 2 do
      assert.equal("mxprobe.facts/2", got[i].schema)
      assert.matches("^worker 1 %(pid %d+%) died: " .. why:gsub("%p", "%%%0") .. "$", got[i].error)
    end
    assert.is_true(took < 2000, ("took %.0f ms"):format(took))   -- killed, not waited for
  end

  it("ends a worker that sends a line of a query it was not given", function()
    assert_broken([[read o <&3; read q <&3; echo 'J 99 ok {}' >&3; sleep 5]], { fmt = "jsonl" },
      "a line of a query it did not have")
  end)

  it("ends a worker that sends a line nobody asked for, or of the wrong kind", function()
    assert_broken([[read o <&3; read q <&3; echo 'J 1 ok {}' >&3; sleep 5]], nil, "a line it was not asked for")
    assert_broken([[read o <&3; read q <&3; echo 'J 1 - {}' >&3; sleep 5]], { fmt = "jsonl" },
      "a line it was not asked for")
    assert_broken([[read o <&3; read q <&3; echo 'J 1 ok {}' >&3; sleep 5]], { fmt = "facts" },
      "a line it was not asked for")
  end)

  it("ends a worker that sends a line without a verdict", function()
    assert_broken([[read o <&3; read q <&3; echo 'J 1 fine {}' >&3; sleep 5]], { fmt = "jsonl" },
      "malformed message: J: expected an id, a verdict and a JSON object")
  end)
end)
