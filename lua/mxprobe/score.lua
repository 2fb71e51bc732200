-- mxprobe.score -- findings + policy -> a score (0-100) and a grade per
-- target, per MX host and for the domain.
--
-- Rules (the numbers are policy data, see policy/default.lua):
-- * Only findings in state "fail" cost points: a target starts at 100 and
--   loses the weight of each failed code. Pass, not-applicable and
--   could-not-test findings never cost anything.
-- * A target with no pass/fail finding at all could not be tested: it has
--   no score (nil), never a bad one. Neither has a target where something
--   stopped the test (an untested finding of severity warning or critical:
--   throttled, timeout, 554 at the greeting ...) and nothing that was
--   tested failed: 100 would claim what was not seen. A target with such a
--   stop *and* failures is scored on the failures. Either way coverage is
--   "partial" when anything was left untested.
-- * A critical failure caps the score at scoring.critical_cap (49: F).
-- * An MX host scores as its weakest address (a sender may use any).
-- * The domain: the mean of its hosts weighted by MX preference
--   (preference_decay ^ (rank - 1)), but at most weakest_margin points
--   above the weakest *reachable* target (senders, and attackers who block
--   the others, fall back to it); then domain-level failures (DNS,
--   consistency, MX-host records) are taken off.
--
--   score.compute(facts, findings, policy) -> scores
--   score.grade(score, policy)             -> "A".."F" | nil
--   score.blocks_verdict(finding)          -> bool

local M = {}

-- The one rule for "could not test blocks the verdict": an untested
-- finding of severity warning or critical (a throttle, a timeout, a 554
-- greeting ...) means something that matters was not seen. It makes the
-- verdict "unknown" when nothing failed (judge), counts as "not tested" in
-- the summary (judge), withholds a target's score when nothing failed
-- (below) and ranks a target's block in the text report.
function M.blocks_verdict(f)
  return f.state == "untested" and (f.severity == "warning" or f.severity == "critical")
end

local RANK = { critical = 3, warning = 2, info = 1, ok = 0 }

local function round(x)
  return math.floor(x + 0.5)
end

function M.grade(score, policy)
  if type(score) ~= "number" then return nil end
  for _, g in ipairs(policy.grades) do
    if score >= g.min then return g.grade end
  end
  return policy.grades[#policy.grades].grade
end

local function key(mx, address)
  return tostring(mx or "") .. "\0" .. tostring(address or "")
end

-- score of a list of findings, starting from `start`; returns score or nil
-- (nil when nothing in the list was tested), deductions, worst severity
local function tally(findings, policy, start)
  local tested, critical, total = false, false, 0
  local deductions, worst = {}, nil
  for _, f in ipairs(findings) do
    if f.state == "pass" or f.state == "fail" then tested = true end
    if f.state == "fail" then
      if (RANK[f.severity] or 0) > (RANK[worst] or -1) then worst = f.severity end
      if f.severity == "critical" then critical = true end
      if (f.weight or 0) > 0 then
        total = total + f.weight
        deductions[#deductions + 1] = { code = f.code, weight = f.weight }
      end
    end
  end
  local s = math.max(0, math.min(100, start - total))
  if critical then s = math.min(s, policy.scoring.critical_cap) end
  return tested and round(s) or nil, deductions, worst, critical
end

function M.compute(facts, findings, policy)
  local targets, by_key = {}, {}
  for _, t in ipairs(type(facts.targets) == "table" and facts.targets or {}) do
    if type(t) == "table" then
      local mx = type(t.mx) == "string" and t.mx or nil
      local st = {
        mx = mx, address = t.address, port = t.port,
        preference = type(t.preference) == "number" and t.preference or nil,
        reachable = type(t.smtp) == "table" and type(t.smtp.connect) == "table"
          and t.smtp.connect.status == "ok",
        findings = {},
      }
      targets[#targets + 1] = st
      by_key[key(mx, t.address)] = st
    end
  end

  -- split findings: target, host-level (mx only) and domain-level
  local domain_f = {}
  for _, f in ipairs(findings) do
    local tr = f.target
    local st = tr and tr.address and by_key[key(tr.mx, tr.address)]
    if st then
      st.findings[#st.findings + 1] = f
    else
      domain_f[#domain_f + 1] = f
    end
  end

  local out_targets = {}
  for i, st in ipairs(targets) do
    local s, deductions, worst = tally(st.findings, policy, 100)
    local untested, stopped = {}, false
    for _, f in ipairs(st.findings) do
      if f.state == "untested" then
        untested[#untested + 1] = f.code
        if M.blocks_verdict(f) then stopped = true end
      end
    end
    local coverage = s == nil and "none" or (#untested > 0 and "partial" or "complete")
    if stopped and #deductions == 0 then s = nil end
    out_targets[i] = {
      mx = st.mx, address = st.address, port = st.port, preference = st.preference,
      score = s, grade = M.grade(s, policy), coverage = coverage,
      reachable = st.reachable, worst = worst, deductions = deductions, untested = untested,
    }
  end

  -- hosts, in facts order (targets without an MX name are their own host)
  local hosts, host_by = {}, {}
  for _, t in ipairs(out_targets) do
    local name = t.mx or ("[" .. tostring(t.address) .. "]")
    local h = host_by[name]
    if not h then
      h = { mx = t.mx, name = name, preference = t.preference, targets = 0 }
      host_by[name] = h
      hosts[#hosts + 1] = h
    end
    h.targets = h.targets + 1
    if t.score and (h.score == nil or t.score < h.score) then h.score = t.score end
  end
  for _, h in ipairs(hosts) do h.grade = M.grade(h.score, policy) end

  -- preference ranks
  local prefs, seen = {}, {}
  for _, h in ipairs(hosts) do
    local p = h.preference or 0
    if not seen[p] then seen[p] = true; prefs[#prefs + 1] = p end
  end
  table.sort(prefs)
  local rank = {}
  for i, p in ipairs(prefs) do rank[p] = i end

  local decay = policy.scoring.preference_decay
  local sum, wsum = 0, 0
  for _, h in ipairs(hosts) do
    if h.score then
      local w = decay ^ ((rank[h.preference or 0] or 1) - 1)
      h.weight = w
      sum, wsum = sum + w * h.score, wsum + w
    end
  end
  local weakest
  for _, t in ipairs(out_targets) do
    if t.reachable and t.score and (weakest == nil or t.score < weakest.score) then
      weakest = { mx = t.mx, address = t.address, score = t.score }
    end
  end

  local mean = wsum > 0 and sum / wsum or nil
  local ds, deductions, worst, critical = tally(domain_f, policy, 100)
  local dscore
  if mean then
    local base = mean
    if weakest then base = math.min(base, weakest.score + policy.scoring.weakest_margin) end
    local total = 0
    for _, d in ipairs(deductions) do total = total + d.weight end
    dscore = math.max(0, base - total)
    if critical then dscore = math.min(dscore, policy.scoring.critical_cap) end
    dscore = round(dscore)
  elseif critical then
    -- nothing could be scored per target, but the domain itself fails
    dscore = ds
  end
  local untested = 0
  for _, t in ipairs(out_targets) do
    if t.coverage == "none" then untested = untested + 1 end
  end

  return {
    targets = out_targets,
    hosts = hosts,
    domain = {
      score = dscore, grade = M.grade(dscore, policy),
      mean = mean and round(mean) or nil, weakest = weakest,
      deductions = deductions, worst = worst,
      target_count = #out_targets, untested_count = untested,
    },
  }
end

return M
