-- mxprobe.cli: the command-line tool. The only module that prints or exits.
--
-- Exit status follows the monitoring-plugin convention: 0 ok, 1 warning,
-- 2 critical, 3 could not test (also: bad usage, unreadable files).

local argparse = require "argparse"
local core = require "mxprobe.core"
local formats = require "mxprobe.report.formats"
-- start-up (issue 10 part 5): the other modules are required where they
-- are used, so --version and --help load none of the probing and judging

local M = {}

local EXIT_UNKNOWN = 3
local SIGNAL_GRACE_MS = 5000   -- in-flight queries get this long to end after SIGINT/SIGTERM
local STREAMING = { jsonl = true, facts = true }   -- written a line at a time
-- the hidden mode of bin/mxprobe in which a coordinator starts its workers
M.WORKER_ARG = "--worker-process"

local function parser()
  local p = argparse("mxprobe", "Test the mail transport of domains: MX records, TCP port 25, "
    .. "the SMTP banner, EHLO, STARTTLS, the TLS certificate, and whether the server is an open relay.")
    :epilog([[
Each QUERY is a domain (its MX hosts are looked up), a host name with a port
(mx1.example.org:25, probed without an MX lookup; or any name with --host),
or an address literal ([192.0.2.1], [2001:db8::1]:2525).

mxprobe sends EHLO, STARTTLS, MAIL FROM, RCPT TO, RSET and QUIT. It never
sends DATA and never delivers a message.

Bulk runs: -f FILE reads one query per line ("-": stdin; blank lines and
"#" comments ignored; a bad line is reported with its number and skipped).
--format jsonl (or facts) with -o FILE appends one line per query as it
ends; after an interruption, the same command with --resume skips what FILE
already holds. --shard I/N probes this machine's share of the list.
SIGINT/SIGTERM: no new query starts, those in flight get 5 s to end, every
line written is complete; "interrupted: N of M done", status 130/143.
--workers N probes in N processes (which also judge jsonl and facts lines);
this one reads and writes, and hands out the --per-address slots, so the
cap holds across all of them.

Exit status: 0 ok, 1 warning, 2 critical, 3 could not test, bad usage or
output that could not be written; 130/143 interrupted.]])
  p:argument("query", "Domains, host:port or [address] literals to probe."):args("*")
  p:flag("--facts", "Print the raw facts as JSON Lines (one document per query), no judging. "
    .. "Same as --format facts.")
  p:flag("--json", "Print the report as one JSON document (facts, findings, scores). Same as --format json.")
  -- bulk CLI: lists in, lines out, shards, progress
  p:option("-f --file", "Read queries from FILE, one a line ('-': standard input)."):argname("FILE")
  p:option("--format", "Output format: " .. table.concat(formats.names, ", ") .. " (whole reports; text "
    .. "is the default), jsonl (one judged result a line, as each query ends), facts (raw facts, JSON Lines).")
    :argname("FMT")
  p:option("-o --output", "Write the output to FILE: jsonl/facts lines are appended and flushed as "
    .. "results arrive; a whole document is written to a temporary file and renamed."):argname("FILE")
  p:flag("--resume", "With -o FILE and --format jsonl or facts: skip the queries FILE already holds "
    .. "a complete line for, drop a torn last line, append the rest.")
  p:option("--shard", "Probe only shard I of N (0 <= I < N): a stable hash of each normalised query "
    .. "picks its shard, so N machines cover a list exactly once."):argname("I/N")
  p:flag("--progress", "Show progress on stderr even when it is not a terminal.")
  p:flag("--no-progress", "Never show progress (default: shown when stderr is a terminal).")
  p:option("--from-facts", "Judge and report facts saved by --facts, without any network."):argname("FILE")
  p:option("--policy", "Load a policy file (Lua) with weights, thresholds and checks of its own."):argname("FILE")
  p:option("--expiry-days", "Warn when a certificate expires within N days (default 14)."):argname("N")
    :convert(tonumber)
  p:flag("--no-color", "Never colour the text report (also: NO_COLOR set, or not a terminal).")
  p:flag("--host", "Treat each QUERY as an MX host name: no MX lookup.")
  p:option("--port", "SMTP port to connect to (default 25)."):convert(math.tointeger)
  p:option("--timeout", "Seconds to wait in each phase: connect, banner, each reply, TLS handshake (default 15).")
    :argname("SECONDS"):convert(tonumber)
  p:option("--probe-timeout", "Seconds one whole server probe may take (default 90)."):argname("SECONDS")
    :convert(tonumber)
  p:option("--dns-timeout", "Seconds to wait for each DNS answer (default 5)."):argname("SECONDS")
    :convert(tonumber)
  p:option("--ehlo-name", "Name to send with EHLO (default: this host's name)."):argname("NAME")
  p:option("--mail-from", "Sender address for the relay test (default mxprobe@example.net)."):argname("ADDR")
  p:option("--relay-rcpt", "Outside recipient for the relay test (default mxprobe-relay-test@example.net).")
    :argname("ADDR")
  p:flag("--no-relay-test", "Skip MAIL FROM / RCPT TO.")
  p:flag("--no-tls-versions", "Skip the extra STARTTLS dialogs that find which TLS versions are accepted.")
  p:flag("--no-share-hosts", "One dialog per domain, even when domains share an MX host (default: one host"
    .. " dialog per run and worker, the control RCPTs batched).")
  p:option("--resolver", "DNS resolver to ask (default: first nameserver of /etc/resolv.conf)."):argname("ADDR[:PORT]")
  p:option("--ca-file", "Trust these CA certificates (PEM) instead of the system store."):argname("FILE")
  p:option("--concurrency", "Queries probed at once (default 64)."):argname("N"):convert(math.tointeger)
  p:option("--per-address", "Simultaneous connections to one address (default 2), across all workers.")
    :argname("N"):convert(math.tointeger)
  -- workers: every core, one politeness
  p:option("--workers", "Probe in N processes (default: the number of cores; 1: all in this process); "
    .. "one coordinator hands out queries and the per-address slots."):argname("N"):convert(math.tointeger)
  p:option("--rate-per-address", "At most N new connections a minute to one address, across all workers.")
    :argname("N/MIN")
  -- repeat/greylist (issue 9 items 6, 7)
  p:option("--repeat", "Probe each server N times (1-10, a pause between tries) and report what differs "
    .. "between tries (STARTTLS, certificate, TLS version, banner: a stale node behind a load balancer)."):argname("N")
    :convert(math.tointeger)
  p:option("--greylist-retry", "When the outside RCPT gets a 4xx (greylisting), retry the relay test once "
    .. "after SECONDS (1-3600, within --probe-timeout) on a new connection."):argname("SECONDS"):convert(tonumber)
  -- robustness (issue 12)
  p:flag("--public-only", "Probe only public addresses: loopback, private, link-local and documentation "
    .. "addresses from DNS (or given as [address]) are reported, not probed.")
  p:flag("--version", "Print the version and exit."):action(function()
    print("mxprobe " .. require("mxprobe.version"))
    os.exit(0)
  end)
  return p
end

local function fail(msg)
  io.stderr:write("mxprobe: ", msg, "\n")
  return EXIT_UNKNOWN
end

local function probe_options(args)
  return {
    port = args.port, timeout = args.timeout, probe_timeout = args.probe_timeout,
    dns_timeout = args.dns_timeout, ehlo_name = args.ehlo_name, mail_from = args.mail_from,
    relay_rcpt = args.relay_rcpt, relay_test = not args.no_relay_test, resolver = args.resolver,
    ca_file = args.ca_file, concurrency = args.concurrency, per_address = args.per_address,
    as_host = args.host, tls_versions = not args.no_tls_versions, share_hosts = not args.no_share_hosts,
    public_only = args.public_only,                                       -- issue 12
    ["repeat"] = args["repeat"], greylist_retry = args.greylist_retry,    -- repeat/greylist
    on_notice = function(msg) io.stderr:write("mxprobe: ", msg, "\n") end, -- issue 12
  }
end

local function use_color(args)
  if args.no_color or args.json or (args.output and args.output ~= "-") then return false end
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then return false end
  local term = os.getenv("TERM")
  if term == "dumb" then return false end
  return core.isatty(1)
end

-- the output format of args, or nil, message
local function format_of(args)
  local fmt = args.format
  if args.json or args.facts then
    local alias = args.json and "json" or "facts"
    if args.json and args.facts then return nil, "give one of --json and --facts" end
    if fmt and fmt ~= alias then return nil, ("--%s and --format %s disagree"):format(alias, fmt) end
    fmt = alias
  end
  fmt = fmt or "text"
  if not STREAMING[fmt] and not formats.known(fmt) then
    return nil, ("unknown --format %q (known: %s, jsonl, facts)"):format(fmt, table.concat(formats.names, ", "))
  end
  return fmt
end

-- a user's path or a list's text in a message on stderr: valid UTF-8, no
-- control characters (a terminal must not take them as commands)
local function shown(s)
  local text = require "mxprobe.text"
  return (text.utf8(tostring(s)):gsub("%c", "?"))
end

-- bulk CLI: the usage of -o, --resume, --progress and --shard; returns
-- the shard {i, n} (false: none), or nil, message
local function bulk_usage(args, fmt)
  local queries = require "mxprobe.cli.queries"
  if args.resume and not (args.output and args.output ~= "-" and STREAMING[fmt]) then
    return nil, "--resume needs -o FILE and --format jsonl or facts"
  end
  if args.progress and args.no_progress then return nil, "give one of --progress and --no-progress" end
  -- a closed stdout: the next descriptor opened (a socket) would get its number
  if (not args.output or args.output == "-") and not core.fd_valid(1) then
    return nil, "cannot write to stdout: Bad file descriptor"
  end
  if not args.shard then return false end
  if args.from_facts then return nil, "--shard splits queries to probe, not --from-facts" end
  local i, n = queries.parse_shard(args.shard)
  if not i then return nil, n end
  return { i, n }
end

-- workers: how a run is spread over processes -- false: in this process
-- (--workers 1, or nothing to share), or the plan for
-- mxprobe.cli.workers.probe_many; nil, message for bad usage
local function workers_plan(args, argv)
  local n = args.workers or core.ncpu()
  if math.type(n) ~= "integer" or n < 1 or n > 256 then return nil, "--workers must be 1 to 256" end
  local interval
  if args.rate_per_address then
    local r = tostring(args.rate_per_address)
    local num = r:match("^(%d+)$") or r:match("^(%d+)/[mM][iI][nN]$")
    num = math.tointeger(tonumber(num))
    if not num or num < 1 or num > 60000 then
      return nil, ("--rate-per-address %s: expected N or N/min, 1 to 60000"):format(shown(r))
    end
    interval = 60000 / num
  end
  -- no more processes than queries can be in flight (or than queries)
  n = math.min(n, args.concurrency or require("mxprobe.run").defaults.concurrency)
  if not args.file then n = math.min(n, #args.query) end
  if args.from_facts or (n <= 1 and not interval) then return false end
  local lo = 0
  while argv[lo - 1] ~= nil do lo = lo - 1 end
  if argv[0] == nil then
    if interval then return nil, "--rate-per-address needs the mxprobe script (workers)" end
    return false
  end
  local command = {}
  for i = lo, 0 do command[#command + 1] = argv[i] end
  command[#command + 1] = M.WORKER_ARG
  return { workers = math.max(n, 1), interval = interval, command = command }
end

-- The run itself, once the usage is checked and the policy loaded: the
-- queries (arguments, list file, or --from-facts) through shard and resume
-- into probe_many, each result to its output as it ends; progress, signals.
local function run_queries(args, fmt, shard, policy, plan)
  local mxprobe = require "mxprobe"
  local facts_io = require "mxprobe.facts"
  local report_json = require "mxprobe.report.json"
  local queries = require "mxprobe.cli.queries"
  local output = require "mxprobe.cli.output"
  local resume = require "mxprobe.cli.resume"
  local progress = require "mxprobe.cli.progress"
  local results = require "mxprobe.cli.results"
  local loop = require "mxprobe.loop"
  local to_stdout = not args.output or args.output == "-"
  -- from here on SIGINT/SIGTERM end the run in order, not in mid-write:
  -- the first stops new queries and gives those in flight a grace period,
  -- a second stops at once
  local sigfd = core.signal_catch()
  local show = args.progress or (not args.no_progress and core.isatty(2))
  local prog = progress.new { out = io.stderr, tty = core.isatty(2), show = show }
  local signal, run_loop
  local function signalled()
    local sig, count = core.signal_caught()
    if sig ~= 0 then
      signal = signal or sig
      -- nothing in flight (only the list reader waiting): no grace needed
      local now = count >= 2 or prog.started_n == prog.done_n
      if run_loop then run_loop:stop(core.now() + (now and 0 or SIGNAL_GRACE_MS)) end
    end
    return signal ~= nil
  end

  -- what an interrupted run already saved
  local skip, saved_verdicts
  if args.resume then
    local schema = fmt == "facts" and facts_io.SCHEMA or report_json.RESULT_SCHEMA
    local info
    skip, info = resume.scan(args.output, schema, args.host)
    if not skip then return fail(info) end
    saved_verdicts = info.verdicts
    if info.torn > 0 then
      local ok, err = resume.drop_torn(args.output, info)
      if not ok then return fail(err) end
      prog:say(("%s: dropped a torn last line (%d bytes)"):format(shown(args.output), info.torn))
    end
  end

  local out, oerr
  if STREAMING[fmt] then out, oerr = output.stream(args.output) else out, oerr = output.document(args.output) end
  if not out then return fail(oerr) end
  local R = results.new { fmt = fmt, policy = policy, out = out, prog = prog }
  R.saved_verdicts = saved_verdicts

  local function finish()
    prog:done()
    if R.werr then
      out:abort()
      return fail(R.werr)
    end
    if not STREAMING[fmt] then
      if signal and not to_stdout then
        out:abort()   -- an interrupted document does not replace a saved one
      else
        local ok, err = R:document(use_color(args))
        if not ok then return fail(err) end
      end
    else
      local ok, err = out:commit()
      if not ok then return fail(err) end
    end
    signalled()
    if prog.started_n > 1 then prog:say(prog:summary()) end
    if signal then
      local total = prog.total or (prog.started_n + (R.rest and R.rest() or 0))
      prog:say(("interrupted: %d of %d done"):format(prog.done_n, total))
      return 128 + signal
    end
    if R.rerr then
      -- what was probed is written; the list could not be read to its end
      prog:say(("cannot read %s: %s"):format(shown(args.file), R.rerr))
      return EXIT_UNKNOWN
    end
    if prog.started_n == 0 and not args.from_facts then
      -- nothing to probe: every query was in another shard, already saved
      -- (both fine), or invalid (not)
      local sk = R.skipped
      prog:say(("no query to probe (%d in other shards, %d already in %s, %d invalid)")
        :format(sk.shard or 0, sk.done or 0, shown(args.output), sk.invalid or 0))
      if (sk.invalid or 0) > 0 then return EXIT_UNKNOWN end
      return next(R.saved_verdicts or {}) and R:status() or 0
    end
    return R:status()
  end

  if args.from_facts then
    local list, err = facts_io.load(args.from_facts)
    if not list then
      out:abort()
      return fail(err)
    end
    prog.total = #list
    for i, f in ipairs(list) do
      if signalled() then break end
      prog:started()
      local ok, werr = R.emit(f, i)
      if not ok then R.werr = werr break end
    end
    return finish()
  end

  -- the queries: arguments, then the list file, through shard and resume
  local reader
  if args.file then
    local rerr
    reader, rerr = core.line_reader(args.file == "-" and 0 or args.file)
    if not reader then
      out:abort()
      return fail("cannot read " .. shown((tostring(rerr):gsub("^open ", ""))))
    end
  end
  local select = queries.selector { as_host = args.host, shard = shard, skip = skip }
  local counted = #args.query
  for _, q in ipairs(args.query) do
    if not select(q) then counted = counted - 1 end
  end
  local regular = reader and reader:regular()
  if not reader then
    prog.total = counted
  elseif regular and show then
    -- a regular file is counted first for the progress line's total
    -- (about 5 s a million lines: only when the line is shown)
    local fh = io.open(args.file, "rb")
    if fh then
      prog.total = counted + queries.count(queries.file_lines(fh), select)
      fh:close()
    end
  end
  local read_line
  if reader then
    read_line = queries.reader_lines(reader, function(fd)
      loop.wait(fd, loop.READ, core.now() + 3600000)
    end, function(err) R.rerr = err end)
    -- otherwise only an interrupted run counts what it left in the file
    if regular and not prog.total then R.rest = function() return queries.count(read_line, select) end end
  end
  -- one task at a time reads the list (a read may wait for stdin)
  local reading = loop.semaphore(1)
  local source = queries.source {
    args = args.query, read_line = read_line, name = args.file == "-" and "stdin" or args.file,
    select = function(q)
      local key, why, msg = select(q)
      if not key then R.skipped[why] = (R.skipped[why] or 0) + 1 end
      return key, why, msg
    end,
    on_invalid = function(name, n, msg) prog:say(("%s:%d: %s (skipped)"):format(shown(name), n, msg)) end,
    stop = function() return R.werr ~= nil or signalled() end,
  }
  local function next_query()
    reading:acquire()
    local ok, q = pcall(source)
    reading:release()
    if not ok then error(q, 0) end
    if q ~= nil then prog:started() end
    return q
  end
  local probe_many = mxprobe.probe_many
  if plan then   -- --workers N: the same contract, in N processes
    -- bulk CPU: the workers judge and render the lines of a line format
    -- (the policy loaded there as here), this process only writes them
    if STREAMING[fmt] then plan.render = { fmt = fmt, policy = args.policy, expiry_days = args.expiry_days } end
    probe_many = function(src, o, sink, wl)
      return require("mxprobe.cli.workers").probe_many(src, o, sink, wl, plan)
    end
  end
  local n, perr = probe_many(next_query, probe_options(args), function(f, i, ready)
    if R.werr then return end
    local ok, err = R.emit(f, i, ready)
    if not ok then
      R.werr = err
      run_loop:stop()
    elseif signal and prog.started_n == prog.done_n then
      run_loop:stop()   -- the last one in flight ended: no need to wait for the grace
    end
  end, function(l)
    run_loop = l
    if sigfd then l:watch(sigfd, signalled) end
    signalled()   -- one that came before the loop
  end)
  if not n then
    out:abort()
    return fail(perr)
  end
  local status = finish()
  if reader then reader:close() end
  return status
end

function M.run(argv)
  local p = parser()
  local okp, args = p:pparse(argv)
  if not okp then
    io.stderr:write(p:get_usage(), "\n")
    return fail(args)
  end
  local fmt, ferr = format_of(args)
  if not fmt then return fail(ferr) end
  if args.from_facts and (#args.query > 0 or args.file) then
    return fail("give either queries (or -f FILE) or --from-facts FILE, not both")
  end
  if not args.from_facts and #args.query == 0 and not args.file then
    io.stderr:write(p:get_usage(), "\n")
    return fail("nothing to probe: give a domain, -f FILE (or --from-facts FILE)")
  end
  if fmt == "facts" and args.from_facts then
    return fail("--facts prints what a probe gathered; with --from-facts there is no probe")
  end
  local shard, berr = bulk_usage(args, fmt)
  if shard == nil then return fail(berr) end

  local probe = require "mxprobe.probe"
  -- bad queries and a broken policy are told before a whole probe run
  for _, q in ipairs(args.query) do
    local ok, err = probe.parse_query(q, args.host)
    if not ok then return fail(err) end
  end
  -- the policy first: a broken policy file should not cost a whole probe run
  local policy
  if fmt ~= "facts" then
    -- bulk CPU: loaded as a worker process loads it (mxprobe.cli.results)
    local err
    policy, err = require("mxprobe.cli.results").policy(args.policy, args.expiry_days)
    if not policy then return fail(err) end
  end

  local plan, werr = workers_plan(args, argv)
  if plan == nil then return fail(werr) end
  return run_queries(args, fmt, shard or nil, policy, plan or nil)
end

--- Runs the CLI, turning any internal error into one line and status 3,
-- and SIGINT/SIGTERM (caught from the start: never Lua's "interrupted!")
-- into "interrupted" and 130/143.
function M.main(argv)
  -- workers: a worker process (started by a coordinator, never by a user)
  if argv[1] == M.WORKER_ARG and argv[2] == nil then
    local ok, status = xpcall(require("mxprobe.cli.workers").worker_main, debug.traceback)
    if ok then return status end
    io.stderr:write("mxprobe worker: internal error: ", tostring(status):match("^[^\n]*"), "\n")
    return EXIT_UNKNOWN
  end
  core.signal_catch()
  local ok, status = xpcall(M.run, debug.traceback, argv)
  if not ok then
    if os.getenv("MXPROBE_DEBUG") then io.stderr:write(status, "\n") end
    local first = tostring(status):match("^[^\n]*")
    return fail("internal error: " .. first .. " (set MXPROBE_DEBUG=1 for details)")
  end
  local sig = core.signal_caught()
  if sig ~= 0 and status < 128 then
    io.stderr:write("mxprobe: interrupted\n")
    return 128 + sig
  end
  return status
end

return M
