-- mxprobe.probe: the orchestrator. Turns queries into facts tables
-- (docs/facts.md) by running the gatherers of lua/mxprobe/gather/, scope
-- by scope:
--
--   the query       -> facts (kind, domain)              query.parse
--   domain scope    -> facts.dns, the MX hosts           gather.mx
--   mx scope        -> mx[i].dns, the targets            gather.addresses
--   target scope    -> targets[i].smtp                   gather.smtp
--
-- Within a scope, the gatherers of one subject run in registry order, in
-- waves: those whose needs are met run concurrently; all the subjects of a
-- scope (every MX host, every target) run concurrently. The domain
-- gatherers that neither produce the MX hosts nor are needed by a later
-- scope (MTA-STS, TLS-RPT) run beside the MX and target scopes, so a slow
-- policy host never delays the SMTP probes. It records and
-- judges nothing itself; only the structure (which MX hosts, which
-- targets) is its own.

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local dns = require "mxprobe.dns"
local text = require "mxprobe.text"
local query = require "mxprobe.query"
local run = require "mxprobe.run"
local gather = require "mxprobe.gather"
local mxgather = require "mxprobe.gather.mx"
local smtpgather = require "mxprobe.gather.smtp"
local hostshare = require "mxprobe.hostshare"   -- hostshare (issue 10 item 3)

local M = {}

M.SCHEMA = "mxprobe.facts/2"
M.VERSION = run.VERSION
M.defaults = run.defaults
M.options = run.options
M.parse_query = query.parse
M.normalise_name = query.normalise_name
M.mx_plan = mxgather.plan
M.pem_prefix = smtpgather.pem_prefix

-- Runs the gatherers of one scope on one subject; returns the children of
-- the producing one.
local function run_scope(gatherers, subject, ctx, env)
  local done, children = {}, nil
  local pending = {}
  for i, g in ipairs(gatherers) do pending[i] = g end
  while #pending > 0 do
    local wave, rest = {}, {}
    for _, g in ipairs(pending) do
      local ready = true
      for _, need in ipairs(g.needs or {}) do
        -- a need of another scope was met by the scope before this one
        if ctx.scope_of[need] == g.scope and not done[need] then ready = false end
      end
      if ready then wave[#wave + 1] = g else rest[#rest + 1] = g end
    end
    if #wave == 0 then
      error("mxprobe.probe: gatherers with needs that cannot be met in scope " .. gatherers[1].scope)
    end
    local fns = {}
    for i, g in ipairs(wave) do
      fns[i] = function()
        local value, kids = g.run(subject, ctx, env)
        subject[g.key] = value
        if g.produces then children = kids end
      end
    end
    if #fns == 1 then fns[1]() else loop.all(fns) end
    for _, g in ipairs(wave) do done[g.id] = true end
    pending = rest
  end
  return children or {}
end

local function new_facts(q, ctx)
  local o = ctx.options
  return {
    schema = M.SCHEMA,
    run = ctx:identity(),
    query = text.utf8(q),
    started = core.time(),
    options = {
      port = o.port, timeout = o.timeout, probe_timeout = o.probe_timeout,
      ehlo_name = o.ehlo_name, mail_from = o.mail_from, relay_test = o.relay_test,
      relay_rcpt = o.relay_rcpt, resolver = dns.resolver_string(o.resolver_addr),
      ca_file = o.ca_file, per_address = o.per_address,
      max_mx = o.max_mx, max_addresses = o.max_addresses,
      public_only = o.public_only or nil,   -- issue 12
      ["repeat"] = o["repeat"] ~= 1 and o["repeat"] or nil, greylist_retry = o.greylist_retry,  -- repeat/greylist
    },
    mx = {},
    targets = {},
  }
end

-- Gathers the facts of one query within the run ctx.
local function gather_one(qstr, ctx)
  local facts = new_facts(qstr, ctx)
  local o = ctx.options
  local q, err = query.parse(qstr, o.as_host)
  if not q then
    facts.kind, facts.error = "domain", err
    facts.finished = core.time()
    return facts
  end
  facts.kind = q.kind
  -- issue 12: an address literal that is not public, under --public-only
  if q.kind == "address" and o.public_only and q.class ~= "global" then
    facts.error = ("%s is a %s address: not probed (--public-only)"):format(q.address, q.class)
    facts.finished = core.time()
    return facts
  end
  local port = q.port or o.port
  local env = { facts = facts }
  local G = ctx.gatherers
  local mx_of = {}   -- targets[i] -> its MX entry, for the gatherers' env
  -- the MX hosts, their addresses, the targets: what the SMTP probes wait for
  local function structure()
    if q.kind == "address" then
      facts.targets[1] = { address = q.address, family = q.family, port = port }
      return
    end
    facts.domain = q.name
    local hosts
    if q.kind == "domain" then
      hosts = run_scope(G.domain, facts, ctx, env)
    else
      hosts = { { name = q.name, preference = 0 } }
    end
    for i, h in ipairs(hosts) do
      facts.mx[i] = { name = h.name, preference = h.preference, implicit = h.implicit }
    end
    local per_mx, fns = {}, {}
    for i, mx in ipairs(facts.mx) do
      fns[i] = function() per_mx[i] = run_scope(G.mx, mx, ctx, { facts = facts, mx = mx }) end
    end
    loop.all(fns)
    for i, mx in ipairs(facts.mx) do
      for _, a in ipairs(per_mx[i]) do
        facts.targets[#facts.targets + 1] = {
          mx = mx.name, preference = mx.preference, address = a.address, family = a.family, port = port,
        }
        mx_of[#facts.targets] = mx
      end
    end
  end
  local function main()
    structure()
    local fns = {}
    for i, t in ipairs(facts.targets) do
      fns[i] = function() run_scope(G.target, t, ctx, { facts = facts, mx = mx_of[i] }) end
    end
    loop.all(fns)
  end
  if q.kind == "domain" and #G.domain_aside > 0 then
    loop.all({ function() run_scope(G.domain_aside, facts, ctx, env) end, main })
  else
    main()
  end
  facts.finished = core.time()
  return facts
end

-- The domain gatherers in two lists: those the MX and target scopes wait
-- for (the one that produces the MX hosts, whatever a gatherer of a later
-- scope needs, and their own needs), and the rest, which run from the
-- start beside everything else: an MTA-STS policy host that never answers
-- must not hold up the SMTP probes by its timeout, nor a DNS timeout of
-- theirs follow the MX lookup's. One of the rest that needs one of the
-- first list (none does today) joins the first list.
local function split_domain(list)
  local by_id, wanted = {}, {}
  for _, g in ipairs(list) do by_id[g.id] = g end
  local function want(id)
    if wanted[id] then return end
    wanted[id] = true
    for _, n in ipairs(by_id[id] and by_id[id].needs or {}) do want(n) end
  end
  for _, g in ipairs(list) do
    if g.scope ~= "domain" then
      for _, n in ipairs(g.needs or {}) do want(n) end
    elseif g.produces then
      want(g.id)
    end
  end
  -- one of the rest that needs one of the first list waits for it there
  local moved = true
  while moved do
    moved = false
    for _, g in ipairs(list) do
      if g.scope == "domain" and not wanted[g.id] then
        for _, n in ipairs(g.needs or {}) do
          if wanted[n] then want(g.id) moved = true break end
        end
      end
    end
  end
  local first, aside = {}, {}
  for _, g in ipairs(list) do
    if g.scope == "domain" then
      if wanted[g.id] then first[#first + 1] = g else aside[#aside + 1] = g end
    end
  end
  return first, aside
end

local function new_ctx(opts)
  local ctx, err = run.new(opts)
  if not ctx then return nil, err end
  local list = gather.list()
  ctx.gatherers, ctx.scope_of = {}, {}
  for _, scope in ipairs(gather.SCOPES) do ctx.gatherers[scope] = gather.of_scope(scope, list) end
  for _, g in ipairs(list) do ctx.scope_of[g.id] = g.scope end
  ctx.gatherers.domain, ctx.gatherers.domain_aside = split_domain(list)
  return ctx
end

-- facts of a query whose gathering raised: what broke, as a facts table
local function broken_facts(qstr, ctx, err)
  local f = new_facts(qstr, ctx)
  f.kind, f.error, f.finished = "domain", "internal error: " .. tostring(err), core.time()
  return f
end

--- Facts of a query that could not be probed at all, message saying why
-- (workers: the worker process that had it died); ctx from mxprobe.run.new.
function M.failed_facts(qstr, ctx, message)
  local f = new_facts(qstr, ctx)
  f.kind, f.error, f.finished = "domain", message, core.time()
  return f
end

--- Probes one query; returns facts, or nil, message for bad options.
function M.probe(qstr, opts)
  local ctx, err = new_ctx(opts)
  if not ctx then return nil, err end
  local facts
  local l = loop.new()
  l:spawn(function() facts = gather_one(qstr, ctx) end)
  local errs = l:run()
  if #errs > 0 then error(errs[1], 0) end
  return facts
end

-- an iterator over a list, or the iterator itself
local function iterate(source)
  if type(source) == "function" then return source end
  local i = 0
  return function()
    i = i + 1
    return source[i]
  end
end

--- Probes a stream of queries, at most opts.concurrency in flight, and
-- hands each facts table to sink(facts, i) as it finishes; keeps none.
-- source: a list of query strings, or an iterator returning them (nil at
-- the end). Returns the number of queries probed, or nil, message for bad
-- options. with_loop(l), when given, is called with the run's loop before
-- it starts (the CLI installs its signal watch and stops it through it);
-- queries abandoned by l:stop() never reach the sink.
function M.probe_many(source, opts, sink, with_loop)
  if type(sink) ~= "function" then error("probe_many: sink must be a function (facts, i)", 2) end
  local ctx, err = new_ctx(opts)
  if not ctx then return nil, err end
  local next_query = iterate(source)
  local n = 0
  local l = loop.new()
  l:spawn(function()
    loop.pool(function()
      local q = next_query()
      if q == nil then return nil end
      n = n + 1
      return { q = q, i = n }
    end, ctx.options.concurrency, function(item)
      local ok, f = pcall(gather_one, item.q, ctx)
      if not ok then f = broken_facts(item.q, ctx, f) end
      sink(f, item.i)
    end)
    hostshare.close(ctx)   -- hostshare: no query left to wait for in a batch session
  end)
  if with_loop then with_loop(l) end
  local errs = l:run()
  if #errs > 0 then error(errs[1], 0) end
  return n
end

--- Probes a list of queries; returns the list of facts in the order of
-- the queries (all kept in memory: for long lists use probe_many and a
-- sink), or nil, message for bad options.
function M.probe_list(queries, opts)
  local results = {}
  local n, err = M.probe_many(queries, opts, function(f, i) results[i] = f end)
  if not n then return nil, err end
  return results
end

return M
