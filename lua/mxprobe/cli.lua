-- mxprobe.cli: the command-line tool. The only module that prints or exits.
--
-- Exit status follows the monitoring-plugin convention: 0 ok, 1 warning,
-- 2 critical, 3 could not test (also: bad usage, unreadable files).

local argparse = require "argparse"
local mxprobe = require "mxprobe"
local facts_io = require "mxprobe.facts"
local probe = require "mxprobe.probe"
local pol = require "mxprobe.policy"
local judge = require "mxprobe.judge"

local M = {}

local EXIT_UNKNOWN = 3

local function parser()
  local p = argparse("mxprobe", "Test the mail transport of domains: MX records, TCP port 25, "
    .. "the SMTP banner, EHLO, STARTTLS, the TLS certificate, and whether the server is an open relay.")
    :epilog([[
Each QUERY is a domain (its MX hosts are looked up), a host name with a port
(mx1.example.org:25, probed without an MX lookup; or any name with --host),
or an address literal ([192.0.2.1], [2001:db8::1]:2525).

mxprobe sends EHLO, STARTTLS, MAIL FROM, RCPT TO, RSET and QUIT. It never
sends DATA and never delivers a message.

Exit status: 0 ok, 1 warning, 2 critical, 3 could not test or bad usage.]])
  p:argument("query", "Domains, host:port or [address] literals to probe."):args("*")
  p:flag("--facts", "Print the raw facts as JSON Lines (one document per query), no judging.")
  p:flag("--json", "Print the report as one JSON document (facts, findings, scores).")
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
  p:option("--resolver", "DNS resolver to ask (default: first nameserver of /etc/resolv.conf)."):argname("ADDR[:PORT]")
  p:option("--ca-file", "Trust these CA certificates (PEM) instead of the system store."):argname("FILE")
  p:option("--concurrency", "Queries probed at once (default 64)."):argname("N"):convert(math.tointeger)
  p:option("--per-address", "Simultaneous connections to one address (default 2)."):argname("N")
    :convert(math.tointeger)
  -- robustness (issue 12)
  p:flag("--public-only", "Probe only public addresses: loopback, private, link-local and documentation "
    .. "addresses from DNS (or given as [address]) are reported, not probed.")
  p:flag("--version", "Print the version and exit."):action(function()
    print("mxprobe " .. mxprobe.VERSION)
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
    as_host = args.host,
    public_only = args.public_only,                                       -- issue 12
    on_notice = function(msg) io.stderr:write("mxprobe: ", msg, "\n") end, -- issue 12
  }
end

local function use_color(args)
  if args.no_color or args.json then return false end
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then return false end
  local term = os.getenv("TERM")
  if term == "dumb" then return false end
  -- isatty(1) without C: ask the shell once
  local ok = os.execute("test -t 1")
  return ok == true
end

function M.run(argv)
  local p = parser()
  local okp, args = p:pparse(argv)
  if not okp then
    io.stderr:write(p:get_usage(), "\n")
    return fail(args)
  end
  if args.from_facts and #args.query > 0 then
    return fail("give either queries or --from-facts FILE, not both")
  end
  if not args.from_facts and #args.query == 0 then
    io.stderr:write(p:get_usage(), "\n")
    return fail("nothing to probe: give a domain (or --from-facts FILE)")
  end
  if args.facts and args.from_facts then
    return fail("--facts prints what a probe gathered; with --from-facts there is no probe")
  end

  -- bad queries and a broken policy are told before a whole probe run
  for _, q in ipairs(args.query) do
    local ok, err = probe.parse_query(q, args.host)
    if not ok then return fail(err) end
  end
  -- the policy first: a broken policy file should not cost a whole probe run
  local policy
  if not args.facts then
    local err
    if args.policy then
      policy, err = pol.load(args.policy)
      if not policy then return fail(err) end
    else
      policy = pol.default()
    end
    if args.expiry_days then
      if args.expiry_days < 0 then return fail("--expiry-days must not be negative") end
      local err2
      policy, err2 = pol.merge(policy, { thresholds = { expiry_days = args.expiry_days } }, "--expiry-days")
      if not policy then return fail(err2) end
    end
  end

  local list
  if args.from_facts then
    local err
    list, err = facts_io.load(args.from_facts)
    if not list then return fail(err) end
  elseif args.facts then
    local out = io.stdout
    local res, err = mxprobe.probe_many(args.query, probe_options(args), function(f)
      out:write(facts_io.encode(f), "\n")
      out:flush()
      if f.error then io.stderr:write("mxprobe: ", f.query, ": ", f.error, "\n") end
    end)
    if not res then return fail(err) end
    return 0
  else
    local err
    list, err = mxprobe.probe_list(args.query, probe_options(args))
    if not list then return fail(err) end
  end

  local judgements = {}
  for i, f in ipairs(list) do
    judgements[i] = judge.run(f, policy)
  end
  local text = mxprobe.report(list, judgements, {
    format = args.json and "json" or "text", color = use_color(args),
  })
  io.stdout:write(text)
  if text:sub(-1) ~= "\n" then io.stdout:write("\n") end
  return judge.exit_status(judgements)
end

--- Runs the CLI, turning any internal error into one line and status 3.
function M.main(argv)
  local ok, status = xpcall(M.run, debug.traceback, argv)
  if not ok then
    if os.getenv("MXPROBE_DEBUG") then io.stderr:write(status, "\n") end
    local first = tostring(status):match("^[^\n]*")
    return fail("internal error: " .. first .. " (set MXPROBE_DEBUG=1 for details)")
  end
  return status
end

return M
