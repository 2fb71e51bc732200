-- mxprobe.probe: the probe plan. Turns a query (domain, host or address
-- literal) into a facts table (docs/facts.md), talking to real servers
-- through the C core. It records what happened and judges nothing: a 421,
-- a timeout or a refused STARTTLS is written down as it came.
--
-- The dialog per target:
--   connect -> complete banner (not one byte sent before the final "220 ")
--   -> EHLO (HELO if EHLO is refused) -> STARTTLS if offered -> handshake
--   -> EHLO again -> MAIL FROM, RCPT TO an outside address, RCPT TO
--   postmaster@domain (control) -> RSET -> QUIT.   DATA is never sent.

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local dns = require "mxprobe.dns"
local conn = require "mxprobe.conn"
local framers = require "mxprobe.framers"
local text = require "mxprobe.text"

local M = {}

M.SCHEMA = "mxprobe.facts/1"
M.VERSION = "0.1.0"
M.TRANSCRIPT_MAX = 400     -- transcript entries kept per target

M.defaults = {
  port = 25,
  timeout = 15,              -- seconds, per phase
  probe_timeout = 90,        -- seconds, per target in all
  dns_timeout = 5,           -- seconds, per DNS query
  ehlo_name = nil,           -- default: the local host name
  mail_from = "mxprobe@example.net",
  relay_rcpt = "mxprobe-relay-test@example.net",
  relay_test = true,
  per_address = 2,           -- simultaneous connections to one address
  max_mx = 16,               -- MX hosts probed per domain (by preference)
  max_addresses = 16,        -- addresses probed per MX host
  concurrency = 64,          -- queries (domains) in flight at once
  resolver = nil,            -- "ADDR[:PORT]"; default /etc/resolv.conf
  ca_file = nil,             -- default: the system CA store
}

local function local_hostname()
  local f = io.open("/etc/hostname", "r")
  local name = f and f:read("l")
  if f then f:close() end
  if name and name:match("^[%w%-%.]+$") and name:find("%.") then return name end
  return "mxprobe.invalid"
end

--- Options merged over the defaults, checked; or nil, message.
function M.options(opts)
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  o.ehlo_name = o.ehlo_name or local_hostname()
  for _, k in ipairs { "timeout", "probe_timeout", "dns_timeout" } do
    if type(o[k]) ~= "number" or o[k] <= 0 then
      return nil, ("%s must be a positive number of seconds"):format(k)
    end
  end
  if math.type(o.port) ~= "integer" or o.port < 1 or o.port > 65535 then
    return nil, "port must be an integer from 1 to 65535"
  end
  for _, k in ipairs { "per_address", "concurrency", "max_mx", "max_addresses" } do
    if math.type(o[k]) ~= "integer" or o[k] < 1 then return nil, k .. " must be a positive integer" end
  end
  if not o.ehlo_name:match("^[%w%-%.%[%]:]+$") then return nil, "invalid EHLO name: " .. o.ehlo_name end
  for _, k in ipairs { "mail_from", "relay_rcpt" } do
    if not o[k]:match("^[^%s<>@]*@[%w%-%.]+$") then return nil, ("invalid address for %s: %s"):format(k, o[k]) end
  end
  local res, err
  if o.resolver then res, err = dns.parse_resolver(o.resolver) else res, err = dns.system_resolver() end
  if not res then return nil, err end
  o.resolver_addr = res
  if o.ca_file then
    local f = io.open(o.ca_file, "r")
    if not f then return nil, "cannot read CA file " .. o.ca_file end
    f:close()
  end
  -- one table of caps shared by every probe of this run
  o.address_slots = o.address_slots or {}
  return o
end

--- Normalises a domain or host name; returns it, or nil, reason.
function M.normalise_name(s)
  local name = s:lower():gsub("%.$", "")
  if name == "" then return nil, "empty name" end
  if name:find("[^%w%-%._]") then
    if name:find("[\128-\255]") then
      return nil, ("%q is not an ASCII name (give its punycode form, xn--...)"):format(text.utf8(s))
    end
    return nil, ("%q contains characters not allowed in a domain name"):format(text.utf8(s))
  end
  if #name > 253 then return nil, "name longer than 253 characters" end
  for label in (name .. "."):gmatch("([^.]*)%.") do
    if label == "" then return nil, ("%q has an empty label"):format(s) end
    if #label > 63 then return nil, ("%q has a label longer than 63 characters"):format(s) end
    if label:sub(1, 1) == "-" or label:sub(-1) == "-" then
      return nil, ("%q has a label starting or ending with a hyphen"):format(s)
    end
  end
  return name
end

--- Classifies a query: "[addr]", "[addr]:port", "host:port" or a name.
-- Returns {kind, name, address, family, port} or nil, reason.
function M.parse_query(q, as_host)
  local inner, port = q:match("^%[(.-)%]:(%d+)$")
  if not inner then inner = q:match("^%[(.-)%]$") end
  if inner then
    local family, canonical = core.parse_address(inner)
    if not family then return nil, ("%q is not an IPv4 or IPv6 address literal"):format(text.utf8(q)) end
    return { kind = "address", address = canonical, family = family, port = tonumber(port) }
  end
  local name, p = q:match("^([^:]+):(%d+)$")
  if name then as_host, port = true, p else name = q end
  if core.parse_address(name) then
    return nil, ("%q is an address: write it as [%s]"):format(q, name)
  end
  local norm, err = M.normalise_name(name)
  if not norm then return nil, err end
  if port and (tonumber(port) < 1 or tonumber(port) > 65535) then
    return nil, ("port %s out of range"):format(port)
  end
  return { kind = as_host and "host" or "domain", name = norm, port = tonumber(port) }
end

------------------------------------------------------------------------
-- DNS: the MX set and the addresses of each MX host

local run_parallel = loop.all

local function resolve_host(facts, o, name, preference)
  local mx = { name = name, preference = preference, addresses = {} }
  local deadline = core.now() + o.dns_timeout * 1000
  local a, aaaa
  run_parallel {
    function() a = dns.query(o.resolver_addr, name, "A", deadline) end,
    function() aaaa = dns.query(o.resolver_addr, name, "AAAA", deadline) end,
  }
  mx.a, mx.aaaa = a, aaaa
  facts.dns.queries[#facts.dns.queries + 1] = a
  facts.dns.queries[#facts.dns.queries + 1] = aaaa
  mx.cname = a.cname or aaaa.cname
  -- each address once (a zone may repeat one), at most max_addresses: a
  -- hostile zone must not turn one probe into a port scan
  local seen, dropped = {}, 0
  for _, q in ipairs { a, aaaa } do
    for _, r in ipairs(q.records) do
      if not seen[r.address] then
        seen[r.address] = true
        if #mx.addresses < o.max_addresses then
          mx.addresses[#mx.addresses + 1] = { address = r.address, family = q.type == "A" and "ipv4" or "ipv6" }
        else
          dropped = dropped + 1
        end
      end
    end
  end
  if dropped > 0 then mx.addresses_dropped = dropped end
  if #mx.addresses > 0 then
    mx.status = "ok"
  elseif a.status == "nxdomain" or aaaa.status == "nxdomain" then
    mx.status = "nxdomain"
  elseif (a.status == "ok" or a.status == "nodata") and (aaaa.status == "ok" or aaaa.status == "nodata") then
    mx.status = "no-address"
  else
    mx.status = "dns-error"
  end
  return mx
end

--- The MX plan from an MX query record (pure: unit-tested on fixtures).
-- Returns what to do: { null_mx = bool, implicit = bool, hosts = {{name, preference}...} }
-- hosts in preference order (ties by name, so runs are reproducible);
-- implicit is set when the domain has no MX at all (RFC 5321 §5.1) and its
-- own addresses are to be tried; a null MX (RFC 7505) means: no mail.
function M.mx_plan(q)
  local plan = { null_mx = false, implicit = false, hosts = {} }
  if q.status == "nodata" then
    plan.implicit = true
    return plan
  end
  if q.status ~= "ok" then return plan end
  local recs = {}
  for i, r in ipairs(q.records) do recs[i] = r end
  table.sort(recs, function(x, y)
    if x.preference ~= y.preference then return x.preference < y.preference end
    return x.exchange < y.exchange
  end)
  if #recs == 1 and recs[1].exchange == "." then
    plan.null_mx = true
    return plan
  end
  local seen = {}
  for _, r in ipairs(recs) do
    -- "." among other MX is meaningless (RFC 7505 §3): skip it; a host
    -- listed twice is probed once, at its best preference
    if r.exchange ~= "." and not seen[r.exchange] then
      seen[r.exchange] = true
      plan.hosts[#plan.hosts + 1] = { name = r.exchange, preference = r.preference }
    end
  end
  return plan
end

local function resolve_mx(facts, o, domain)
  local q = dns.query(o.resolver_addr, domain, "MX", core.now() + o.dns_timeout * 1000)
  facts.dns.mx = q
  facts.dns.queries[#facts.dns.queries + 1] = q
  local plan = M.mx_plan(q)
  facts.dns.null_mx, facts.dns.implicit_mx = plan.null_mx, false
  if plan.implicit then
    local host = resolve_host(facts, o, domain, 0)
    if host.status == "ok" then
      facts.dns.implicit_mx = true
      host.implicit = true
      facts.mx[1] = host
    end
    return
  end
  local fns = {}
  for i, h in ipairs(plan.hosts) do
    if i > o.max_mx then
      facts.dns.mx_dropped = #plan.hosts - o.max_mx
      break
    end
    fns[i] = function() facts.mx[i] = resolve_host(facts, o, h.name, h.preference) end
  end
  run_parallel(fns)
end

------------------------------------------------------------------------
-- SMTP: the dialog with one target

local Session = {}
Session.__index = Session

local function new_session(target, o)
  local now = core.now()
  return setmetatable({
    t = target, o = o, start = now,
    probe_deadline = now + o.probe_timeout * 1000,
  }, Session)
end

function Session:deadline()
  return math.min(core.now() + self.o.timeout * 1000, self.probe_deadline)
end

function Session:elapsed()
  return core.now() - self.start
end

-- server bytes as evidence: at most 1 KiB, valid UTF-8
local function evidence(bytes)
  return text.utf8(text.cut(bytes, 1024))
end

function Session:log(dir, line)
  local tr = self.t.transcript
  if #tr >= M.TRANSCRIPT_MAX then
    self.t.transcript_truncated = true
    return
  end
  tr[#tr + 1] = { t_ms = self:elapsed(), dir = dir, line = evidence(line) }
end

function Session:log_reply(reply)
  for i, l in ipairs(reply.lines) do
    self:log("S", ("%03d%s%s"):format(reply.code, i == #reply.lines and " " or "-", l))
  end
end

-- Reads one reply into phase (status, reply, error); returns the reply or nil.
function Session:read(phase)
  local reply, err, code = self.s:read_frame(framers.smtp, self:deadline())
  if not reply then
    if code == "timeout" and core.now() >= self.probe_deadline then
      err = "probe deadline reached: " .. err
    end
    phase.status, phase.error = code or "error", err
    local partial = self.s:pending()
    if #partial > 0 then phase.partial = evidence(partial) end
    self:log("-", ("%s: %s"):format(code, err))
    return nil
  end
  self:log_reply(reply)
  phase.status, phase.reply = "ok", text.reply(reply)
  return reply
end

-- Sends one command line and reads its reply into a new phase table.
function Session:command(line)
  local phase = {}
  local start = core.now()
  -- bytes that arrived before we asked: pipelining abuse, or a desync
  local early = self.s:pending()
  if #early > 0 then
    phase.unsolicited = evidence(early)
    self:log("-", "unsolicited data before " .. line:match("^%S+"))
    self.s:discard_pending()
  end
  phase.command = line
  self:log("C", line)
  local ok, err, code = self.s:send(line .. "\r\n", self:deadline())
  if not ok then
    phase.status, phase.error = code or "error", err
    return nil, phase
  end
  local reply = self:read(phase)
  phase.time_ms = core.now() - start
  return reply, phase
end

--- The first n PEM certificates of a chain, and how many it holds (pure).
function M.pem_prefix(pem, n)
  local out, total = {}, 0
  for block in pem:gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-") do
    total = total + 1
    if total <= n then out[total] = block end
  end
  return table.concat(out, "\n") .. "\n", total
end

local function extensions_of(reply)
  local ext = {}
  for i = 2, #reply.lines do
    local kw, param = reply.lines[i]:match("^%s*([%w][%w%-]*)%s*(.-)%s*$")
    if kw then ext[kw:upper()] = param end
  end
  return ext
end

local function is_2xx(reply) return reply and reply.code >= 200 and reply.code < 300 end

-- Ends the dialog: status word and phase where it stopped.
function Session:stop(status, phase_name)
  self.t.status = status
  self.t.stopped_at = phase_name
end

function Session:quit()
  local reply, phase = self:command("QUIT")
  self.t.quit = phase
  return reply
end

-- Ends the dialog politely after a reply that refuses us (421, 554 ...).
function Session:refused(phase_name)
  self:stop("rejected", phase_name)
  local reply = self.t[phase_name] and self.t[phase_name].reply
  if reply and reply.code ~= 421 then self:quit() end
end

function Session:ehlo(key)
  local t, o = self.t, self.o
  local reply, phase = self:command("EHLO " .. o.ehlo_name)
  t[key] = phase
  phase.command = "EHLO"
  if not reply then self:stop(phase.status, key) return false end
  if is_2xx(reply) then
    phase.extensions = extensions_of(reply)
    return true
  end
  if reply.code == 421 then self:stop("rejected", key) return false end
  -- EHLO refused: fall back to HELO as RFC 5321 §3.2 allows
  local helo, hphase = self:command("HELO " .. o.ehlo_name)
  hphase.ehlo_reply = phase.reply
  hphase.command = "HELO"
  hphase.extensions = {}
  t[key] = hphase
  if not helo then self:stop(hphase.status, key) return false end
  if not is_2xx(helo) then self:refused(key) return false end
  return true
end

function Session:tls_phase()
  local t, o = self.t, self.o
  local start = core.now()
  -- SNI carries a host name (RFC 6066 §3): never an address, never a DNS
  -- name with escapes (a hostile zone's "\027[2J" or "dot\.inside")
  local servername = t.mx and #t.mx <= 253 and t.mx:match("^[%w][%w%-%.]*$")
    and not core.parse_address(t.mx) and t.mx or nil
  local info, err, code = self.s:starttls(servername, self:deadline())
  local tls = { handshake_ms = core.now() - start, servername = servername }
  t.tls = tls
  if not info then
    tls.status, tls.error = code or "tls", err
    self:log("-", "TLS handshake failed: " .. tostring(err))
    self:stop(tls.status, "tls")
    return false
  end
  tls.status = "ok"
  tls.version, tls.cipher, tls.cipher_bits = info.version, info.cipher, info.cipher_bits
  self:log("-", ("TLS established: %s %s"):format(info.version, info.cipher))
  if info.chain_pem then
    local pem = info.chain_pem
    local certs, perr, pcode = core.x509_parse(pem)
    if not certs and pcode == "too-long" then
      -- keep (and judge) the first certificates, leaf first, and say so
      pem, tls.chain_presented = M.pem_prefix(pem, core.limits.x509_chain_max)
      tls.chain_error, tls.chain_truncated = perr, true
      certs, perr = core.x509_parse(pem)
    end
    if certs then
      for _, c in ipairs(certs) do
        for k, v in pairs(c) do if type(v) == "string" then c[k] = text.utf8(v) end end
        for _, list in ipairs { c.san_dns or {}, c.san_ip or {} } do
          for i, v in ipairs(list) do list[i] = text.utf8(v) end
        end
      end
      t.certificates = certs
      local v, verr = core.x509_verify(pem, { name = t.mx, ca_file = o.ca_file })
      if v then
        v.ca = v.ca and text.utf8(v.ca)
        t.verify = v
      else
        t.verify = { ok = false, reason = "other", detail = verr }
      end
    else
      tls.chain_error = tls.chain_error or perr
    end
  else
    tls.chain_error = info.chain_error or "no certificate presented"
  end
  return true
end

-- The whole dialog; fills target.
function Session:run()
  local t, o = self.t, self.o
  local cstart = core.now()
  local s, err, code = conn.connect(t.address, t.port, math.min(cstart + o.timeout * 1000, self.probe_deadline))
  t.connect = { time_ms = core.now() - cstart }
  if not s then
    t.connect.status, t.connect.error = code or "error", err
    self:log("-", err)
    return self:stop(t.connect.status, "connect")
  end
  self.s = s
  t.connect.status = "ok"
  self:log("-", "connected")

  -- banner: the complete reply, however long postscreen makes us wait
  t.banner = {}
  local banner = self:read(t.banner)
  t.banner.time_ms = core.now() - cstart
  if s.first_byte then t.banner.first_byte_ms = s.first_byte - cstart end
  if not banner then return self:stop(t.banner.status, "banner") end
  if banner.code ~= 220 then return self:refused("banner") end

  if not self:ehlo("ehlo") then return end

  if t.ehlo.extensions.STARTTLS then
    local reply, phase = self:command("STARTTLS")
    t.starttls = phase
    if not reply then return self:stop(phase.status, "starttls") end
    if reply.code == 220 then
      local early = s:pending()
      if #early > 0 then
        -- plaintext after "220 ready" would be read as TLS: note and drop it
        phase.unsolicited = evidence(early)
        s:discard_pending()
      end
      if not self:tls_phase() then return end
      if not self:ehlo("ehlo_tls") then return end
    elseif reply.code == 421 then
      return self:stop("rejected", "starttls")
    end
    -- any other answer (454 ...): a sender goes on in plaintext, and so do we
  end

  if o.relay_test then
    if not self:relay() then return end
  else
    t.relay = { status = "skipped" }
  end
  self:quit()
  self:stop("complete", nil)
end

-- MAIL FROM, RCPT TO outside, RCPT TO postmaster@domain, RSET.
-- Returns false when the dialog cannot go on.
function Session:relay()
  local t, o = self.t, self.o
  local relay = { status = "tested" }
  t.relay = relay
  local function step(key, line)
    local reply, phase = self:command(line)
    relay[key] = phase
    if not reply then
      relay.status = phase.status
      self:stop(phase.status, key == "mail_from" and "mail" or (key == "rset" and "rset" or "rcpt"))
      return nil
    end
    if reply.code == 421 then
      relay.status = "rejected"
      self:stop("rejected", key == "mail_from" and "mail" or "rcpt")
      return nil
    end
    return reply
  end
  local mail = step("mail_from", ("MAIL FROM:<%s>"):format(o.mail_from))
  if not mail then return false end
  if is_2xx(mail) then
    if not step("rcpt_external", ("RCPT TO:<%s>"):format(o.relay_rcpt)) then return false end
    if t.domain then
      if not step("rcpt_control", ("RCPT TO:<postmaster@%s>"):format(t.domain)) then return false end
    end
  end
  if not step("rset", "RSET") then return false end
  return true
end

local function probe_target(t, o)
  local slots = o.address_slots
  local key = t.address .. "|" .. t.port
  slots[key] = slots[key] or loop.semaphore(o.per_address)
  slots[key]:acquire()
  local session = new_session(t, o)
  local ok, err = pcall(session.run, session)
  if session.s then session.s:close() end
  slots[key]:release()
  if not ok then
    -- a bug, not a network fact: keep what was gathered, say what broke
    t.status, t.error = "error", "internal error: " .. tostring(err)
  end
  t.time_ms = session:elapsed()
end

------------------------------------------------------------------------
-- the public entry points

local function new_facts(query, o)
  return {
    schema = M.SCHEMA,
    tool = { name = "mxprobe", version = M.VERSION },
    query = text.utf8(query),
    started = core.time(),
    options = {
      port = o.port, timeout = o.timeout, probe_timeout = o.probe_timeout,
      ehlo_name = o.ehlo_name, mail_from = o.mail_from, relay_test = o.relay_test,
      relay_rcpt = o.relay_rcpt, resolver = dns.resolver_string(o.resolver_addr),
      ca_file = o.ca_file, per_address = o.per_address,
      max_mx = o.max_mx, max_addresses = o.max_addresses,
    },
    dns = { resolver = dns.resolver_string(o.resolver_addr), queries = {} },
    mx = {},
    targets = {},
  }
end

-- Gathers the facts of one query with options already checked.
local function gather(query, o)
  local facts = new_facts(query, o)
  local q, err = M.parse_query(query, o.as_host)
  if not q then
    facts.kind, facts.error = "domain", err
    facts.finished = core.time()
    return facts
  end
  facts.kind = q.kind
  local port = q.port or o.port
  if q.kind == "address" then
    facts.targets[1] = { address = q.address, family = q.family, port = port }
  else
    facts.domain = q.name
    if q.kind == "domain" then
      resolve_mx(facts, o, q.name)
    else
      facts.mx[1] = resolve_host(facts, o, q.name, 0)
    end
    for _, mx in ipairs(facts.mx) do
      for _, a in ipairs(mx.addresses) do
        facts.targets[#facts.targets + 1] = {
          mx = mx.name, preference = mx.preference,
          address = a.address, family = a.family, port = port,
        }
      end
    end
  end
  local fns = {}
  for _, t in ipairs(facts.targets) do
    t.domain = q.kind ~= "address" and facts.domain or nil
    t.transcript = {}
    fns[#fns + 1] = function() probe_target(t, o) end
  end
  run_parallel(fns)
  for _, t in ipairs(facts.targets) do t.domain = nil end
  facts.finished = core.time()
  return facts
end

--- Probes one query; returns facts, or nil, message for bad options.
function M.probe(query, opts)
  local o, err = M.options(opts)
  if not o then return nil, err end
  local facts
  local l = loop.new()
  l:spawn(function() facts = gather(query, o) end)
  local errs = l:run()
  if #errs > 0 then error(errs[1], 0) end
  return facts
end

--- Probes many queries at once (at most opts.concurrency in flight);
-- calls on_facts(facts, i) as each finishes; returns the list of facts.
function M.probe_many(queries, opts, on_facts)
  local o, err = M.options(opts)
  if not o then return nil, err end
  local results = {}
  local l = loop.new()
  local slots = loop.semaphore(o.concurrency)
  for i, query in ipairs(queries) do
    l:spawn(function()
      slots:acquire()
      local ok, f = pcall(gather, query, o)
      slots:release()
      if not ok then
        f = new_facts(query, o)
        f.kind, f.error, f.finished = "domain", "internal error: " .. tostring(f), core.time()
      end
      results[i] = f
      if on_facts then on_facts(f, i) end
    end)
  end
  local errs = l:run()
  if #errs > 0 then error(errs[1], 0) end
  return results
end

return M
