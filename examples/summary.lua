#!/usr/bin/env lua5.4
-- summary.lua -- probe a list of domains through the Lua API and print a
-- summary of one line per domain (and the worst findings under it).
--
--   lua5.4 examples/summary.lua example.org example.net
--   lua5.4 examples/summary.lua --policy examples/strict-policy.lua < domains.txt
--   lua5.4 examples/summary.lua --resolver 127.0.53.53 --ca-file spec/lab/state/ca/root.pem \
--       good.example.test expired.example.test          (against the lab)
--
-- Exits like mxprobe itself: 0 ok, 1 warning, 2 critical, 3 could not test.
-- (Run from the source tree: LUA_PATH="lua/?.lua;lua/?/init.lua;;"
--  LUA_CPATH="build/?.so;;")

local mxprobe = require "mxprobe"
local policy = require "mxprobe.policy"
local judge = require "mxprobe.judge"
local text = require "mxprobe.report.text"

local domains, policy_file = {}, nil
local opts = { timeout = 10 }
local i = 1
while i <= #arg do
  if arg[i] == "--policy" then
    policy_file = arg[i + 1]
    i = i + 2
  elseif arg[i] == "--resolver" or arg[i] == "--ca-file" then
    opts[arg[i] == "--resolver" and "resolver" or "ca_file"] = arg[i + 1]
    i = i + 2
  else
    domains[#domains + 1] = arg[i]
    i = i + 1
  end
end
if #domains == 0 then
  for line in io.lines() do
    local d = line:match("^%s*([^%s#]+)")
    if d then domains[#domains + 1] = d end
  end
end

local pol = policy.default()
if policy_file then
  local p, err = policy.load(policy_file)
  if not p then
    io.stderr:write("summary: ", err, "\n")
    os.exit(3)
  end
  pol = p
end

-- all domains through one event loop, each judged as it finishes; only the
-- judgement and the MX count are kept, not the facts (probe_many streams)
local mx_count, judgements = {}, {}
local count, err = mxprobe.probe_many(domains, opts, function(facts, n)
  mx_count[n], judgements[n] = #(facts.mx or {}), mxprobe.judge(facts, pol)
end)
if not count then
  io.stderr:write("summary: ", err, "\n")
  os.exit(3)
end

-- our own summary: domain, verdict, grade, MX count, worst findings
local esc = text.escape
local SEV = { critical = 3, warning = 2 }
print(string.format("%-32s %-9s %-5s %4s  %s", "domain", "verdict", "grade", "MX", "worst findings"))
for n, j in ipairs(judgements) do
  local worst = {}
  for _, f in ipairs(j.findings) do
    if f.state == "fail" and SEV[f.severity] then worst[#worst + 1] = f end
  end
  table.sort(worst, function(a, b) return SEV[a.severity] > SEV[b.severity] end)
  local codes, seen = {}, {}
  for _, f in ipairs(worst) do
    if not seen[f.code] then seen[f.code] = true; codes[#codes + 1] = f.code end
  end
  local d = j.scores.domain
  print(string.format("%-32s %-9s %-5s %4d  %s",
    esc(j.query or domains[n]), j.verdict,
    d.score and (d.grade .. "") or "-",
    mx_count[n],
    #codes > 0 and esc(table.concat(codes, " ")) or "-"))
end

os.exit(judge.exit_status(judgements))
