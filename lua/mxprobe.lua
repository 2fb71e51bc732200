-- mxprobe: test the mail transport of a domain.
--
--   local mxprobe = require "mxprobe"
--   local facts = mxprobe.probe("example.org", { resolver = "127.0.53.53" })
--   local j = mxprobe.judge(facts)                -- findings, scores, verdict
--   io.write(mxprobe.report({ facts }, { j }, { format = "text" }))
--
-- The layers, each usable alone: probe (facts from real servers, through
-- the gatherers of mxprobe.gather), judge
-- (checks + score under a policy), report (text, JSON, HTML, CSV,
-- monitoring-plugin: mxprobe.report.formats, docs/report.md). Nothing here
-- prints or exits; that is the CLI's job.

local probe = require "mxprobe.probe"
local facts = require "mxprobe.facts"
local judge = require "mxprobe.judge"
local policy_mod = require "mxprobe.policy"
local formats = require "mxprobe.report.formats"

local M = {}

M.VERSION = probe.VERSION
M.defaults = probe.defaults

--- Probes one domain, "host:port" or "[address]"; returns facts,
-- or nil, message when the options are invalid.
function M.probe(query, opts)
  return probe.probe(query, opts)
end

--- Probes a stream of queries concurrently (at most opts.concurrency in
-- flight): source is a list of query strings or an iterator returning them;
-- sink(facts, i) receives each facts table as it finishes, and nothing is
-- kept. Returns the number of queries, or nil, message for bad options.
-- with_loop(loop), optional, sees the run's loop first (loop:watch,
-- loop:stop: see mxprobe.loop).
function M.probe_many(source, opts, sink, with_loop)
  return probe.probe_many(source, opts, sink, with_loop)
end

--- Probes a list of queries; returns the list of facts in their order.
function M.probe_list(queries, opts)
  return probe.probe_list(queries, opts)
end

--- Loads saved facts (JSON, JSON array or JSON Lines): list, or nil, msg.
M.load_facts = facts.load
M.decode_facts = facts.decode
M.encode_facts = facts.encode

--- Judges facts under a policy (a table from policy.load, a path, or nil
-- for the default); returns the judgement, or nil, message.
function M.judge(f, policy, ctx)
  if type(policy) == "string" then
    local p, err = policy_mod.load(policy)
    if not p then return nil, err end
    policy = p
  end
  return judge.run(f, policy or policy_mod.default(), ctx)
end

--- Renders a report of lists of facts and judgements; opts.format is one
-- of mxprobe.report.formats.names ("text", the default, "json", "html",
-- "csv", "nagios"); opts.now is the report's clock (default: the
-- judgement's), opts.policy the policy judged with (nagios' thresholds).
-- Raises on an unknown format (a caller's mistake, not a network fact).
function M.report(facts_list, judgements, opts)
  opts = opts or {}
  local name = opts.format or "text"
  if not formats.known(name) then
    error(("unknown report format %q (known: %s)"):format(tostring(name), table.concat(formats.names, ", ")), 2)
  end
  return require("mxprobe.report." .. name).render(facts_list, judgements, opts)
end

return M
