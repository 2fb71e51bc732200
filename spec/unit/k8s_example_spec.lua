-- examples/k8s/job.yaml: valid YAML (python3-yaml) holding what an Indexed
-- Job needs, wired to mxprobe's --shard, -f and -o as the README says.
local cjson = require "cjson"
local queries = require "mxprobe.cli.queries"

local function load_yaml(path)
  local p = assert(io.popen(("python3 -c 'import sys, json, yaml; "
    .. "print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))' %s 2>&1"):format(path)))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, out)
  return cjson.decode(out)
end

describe("examples/k8s/job.yaml #unit", function()
  local docs = load_yaml("examples/k8s/job.yaml")
  local by_kind = {}
  for _, d in ipairs(docs) do by_kind[d.kind] = d end
  local job, cm = by_kind.Job, by_kind.ConfigMap

  it("is an Indexed batch/v1 Job with a pod template", function()
    assert.equal("batch/v1", job.apiVersion)
    assert.is_string(job.metadata.name)
    assert.equal("Indexed", job.spec.completionMode)
    assert.is_number(math.tointeger(job.spec.completions))
    assert.is_true(job.spec.completions >= 1)
    assert.is_true(job.spec.parallelism >= 1 and job.spec.parallelism <= job.spec.completions)
    local pod = job.spec.template.spec
    assert.is_truthy(({ Never = true, OnFailure = true })[pod.restartPolicy])
    assert.equal(1, #pod.containers)
    assert.is_string(pod.containers[1].name)
    assert.is_string(pod.containers[1].image)
  end)

  it("gives each pod its shard: JOB_COMPLETION_INDEX of completions", function()
    local c = job.spec.template.spec.containers[1]
    local cmd = table.concat(c.command, " ")
    assert.matches('--shard "$JOB_COMPLETION_INDEX/$SHARDS"', cmd, 1, true)
    local shards
    for _, e in ipairs(c.env) do
      if e.name == "SHARDS" then shards = tonumber(e.value) end
    end
    assert.equal(job.spec.completions, shards)
    -- one output file per pod, resumable
    assert.matches('-o "/results/shard-$JOB_COMPLETION_INDEX.jsonl"', cmd, 1, true)
    assert.matches("--resume", cmd, 1, true)
    assert.matches("--format facts", cmd, 1, true)
  end)

  it("mounts every volume it uses, the ConfigMap's list where -f reads it", function()
    local pod = job.spec.template.spec
    local volumes = {}
    for _, v in ipairs(pod.volumes) do volumes[v.name] = v end
    local mounts = {}
    for _, m in ipairs(pod.containers[1].volumeMounts) do
      assert.is_table(volumes[m.name], m.name)
      mounts[m.name] = m.mountPath
    end
    assert.equal(cm.metadata.name, volumes.domains.configMap.name)
    assert.equal(by_kind.PersistentVolumeClaim.metadata.name, volumes.results.persistentVolumeClaim.claimName)
    local file = table.concat(pod.containers[1].command, " "):match("%-f (%S+)")
    assert.equal(mounts.domains .. "/domains.txt", file)
    assert.equal("/results", mounts.results)
  end)

  it("ships a list of valid queries in its ConfigMap", function()
    assert.equal("v1", cm.apiVersion)
    local n = 0
    for line in cm.data["domains.txt"]:gmatch("[^\n]*") do
      local q = queries.parse_line(line)
      if q then
        assert.is_string(queries.identity(q), q)
        n = n + 1
      end
    end
    assert.is_true(n >= 1)
  end)
end)
