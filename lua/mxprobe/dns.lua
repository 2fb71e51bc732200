-- mxprobe.dns: a stub resolver on the project's own sockets.
--
-- Queries go to one recursive resolver (--resolver, else the first
-- nameserver of /etc/resolv.conf) over UDP, and over TCP when the answer is
-- truncated. The C core only encodes and decodes (ldns); waiting happens
-- here through the loop, so many queries run at once and none blocks.
-- An answer counts only if its ID and question match what we asked: others
-- are dropped and noted (spoofed or confused), and waiting goes on until
-- the deadline.

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local conn = require "mxprobe.conn"
local framers = require "mxprobe.framers"
local text = require "mxprobe.text"

local M = {}

M.CNAME_MAX = 8       -- CNAME hops followed inside one answer
M.UDP_TRIES = 2       -- the query is sent again once if no answer comes

--- Parses "ADDR", "ADDR:PORT", "[V6]:PORT" into {address, port}; or nil, msg.
function M.parse_resolver(spec)
  local addr, port = spec:match("^%[(.-)%]:(%d+)$")
  if not addr then
    addr, port = spec:match("^([^:]+):(%d+)$")
  end
  if not addr then addr, port = spec:match("^%[(.-)%]$"), nil end
  addr = addr or spec
  local family, canonical = core.parse_address(addr)
  if not family then
    return nil, ("resolver %q is not an IP address (ADDR or ADDR:PORT)"):format(spec)
  end
  port = tonumber(port or 53)
  if port < 1 or port > 65535 then return nil, ("resolver port %s out of range"):format(port) end
  return { address = canonical, port = port, family = family }
end

--- The resolver of /etc/resolv.conf (first nameserver line).
function M.system_resolver(path)
  local f = io.open(path or "/etc/resolv.conf", "r")
  if not f then return nil, "no resolver given and /etc/resolv.conf is unreadable" end
  for line in f:lines() do
    local ns = line:match("^%s*nameserver%s+(%S+)")
    if ns then
      f:close()
      return M.parse_resolver((ns:gsub("%%.*$", "")))   -- drop a zone index
    end
  end
  f:close()
  return nil, "no nameserver in /etc/resolv.conf"
end

function M.resolver_string(r)
  if r.family == "ipv6" then return ("[%s]:%d"):format(r.address, r.port) end
  return ("%s:%d"):format(r.address, r.port)
end

local function lower_name(name)
  return (name:lower():gsub("%.$", ""))
end

local function matches(msg, id, name, qtype)
  return msg.id == id and msg.qr and msg.question ~= nil
    and lower_name(msg.question.name) == lower_name(name)
    and msg.question.type == qtype
end

-- One exchange over UDP: returns msg, or nil, msg, code.
local function exchange_udp(res, wire, id, name, qtype, deadline, rec)
  local sock, err, code = core.connect(res.address, res.port, "udp")
  if not sock then return nil, err, code end
  local start = core.now()
  local per_try = (deadline - start) / M.UDP_TRIES
  local mismatched = 0
  for try = 1, M.UDP_TRIES do
    local try_deadline = try == M.UDP_TRIES and deadline or start + per_try * try
    local ok, serr, scode = sock:send(wire)
    if ok == nil then sock:close() return nil, serr, scode end
    while true do
      if not loop.wait(sock:fd(), loop.READ, try_deadline) then break end
      local data, rerr, rcode = sock:recv(core.limits.dns_msg_max)
      if data == nil then
        sock:close()
        if rcode == "refused" then
          return nil, ("query %s %s: resolver %s refused the connection (port unreachable)")
            :format(name, qtype, M.resolver_string(res)), "unreachable"
        end
        return nil, rerr, rcode
      end
      if data then
        local msg, perr, pcode = core.dns_parse(data)
        if msg and matches(msg, id, name, qtype) then
          sock:close()
          return msg
        end
        -- a stray, spoofed or garbled datagram: note it and keep waiting
        mismatched = mismatched + 1
        rec.rejected = (rec.rejected or 0) + 1
        rec.rejected_reason = msg and "answer with a wrong ID or question"
          or (perr .. " (" .. pcode .. ")")
        rec.rejected_code = msg and "protocol" or pcode
      end
    end
  end
  sock:close()
  if mismatched > 0 then
    return nil, ("query %s %s: no valid answer from %s (%s)")
      :format(name, qtype, M.resolver_string(res), rec.rejected_reason), rec.rejected_code
  end
  return nil, ("query %s %s: no answer from %s"):format(name, qtype, M.resolver_string(res)), "timeout"
end

-- One exchange over TCP (after truncation): returns msg, or nil, msg, code.
local function exchange_tcp(res, wire, id, name, qtype, deadline)
  local c, err, code = conn.connect(res.address, res.port, deadline,
    { bytes_max = 2 + core.limits.dns_msg_max })
  if not c then return nil, err, code end
  local n = #wire
  local ok
  ok, err, code = c:send(string.char(n >> 8, n & 0xff) .. wire, deadline)
  local data
  if ok then data, err, code = c:read_frame(framers.dns_tcp, deadline) end
  c:close()
  if not data then return nil, ("query %s %s over TCP: %s"):format(name, qtype, err), code end
  local msg, perr, pcode = core.dns_parse(data)
  if not msg then return nil, ("query %s %s over TCP: %s"):format(name, qtype, perr), pcode end
  if not matches(msg, id, name, qtype) then
    return nil, ("query %s %s over TCP: answer with a wrong ID or question"):format(name, qtype), "protocol"
  end
  return msg
end

local STATUS_OF_RCODE = {
  NXDOMAIN = "nxdomain", SERVFAIL = "servfail", REFUSED = "refused",
}

-- Follows the CNAME chain from name inside the answer section; returns the
-- final owner name and the chain, or nil, msg on a loop or a long chain.
local function follow_cnames(answer, name)
  local by_owner = {}
  for _, rr in ipairs(answer) do
    if rr.type == "CNAME" then by_owner[lower_name(rr.name)] = lower_name(rr.target) end
  end
  local chain, seen, cur = {}, { [lower_name(name)] = true }, lower_name(name)
  while by_owner[cur] do
    cur = by_owner[cur]
    if seen[cur] then return nil, "CNAME loop at " .. cur end
    if #chain >= M.CNAME_MAX then return nil, "CNAME chain longer than " .. M.CNAME_MAX end
    seen[cur] = true
    chain[#chain + 1] = cur
  end
  return cur, chain
end

local TYPE_FIELDS = {
  MX = { "preference", "exchange" }, A = { "address" }, AAAA = { "address" },
  CNAME = { "target" }, PTR = { "target" }, NS = { "target" }, TXT = { "text" },
  TLSA = { "usage", "selector", "mtype", "data" },
}

local function record_of(rr)
  local r = { ttl = rr.ttl }
  for _, f in ipairs(TYPE_FIELDS[rr.type] or { "rdata" }) do
    local v = rr[f]
    r[f] = type(v) == "string" and text.utf8(v) or v
  end
  -- the codec cut a field at its limit: say so, or it looks complete
  if rr.truncated then r.truncated = true end
  return r
end

--- Asks one question; returns a query record as in docs/facts.md:
-- {name, type, status, rcode, ad, tc, transport, time_ms, records, cname,
--  error, truncated (a record was cut by the codec), signed}
-- qopts: core.dns_query's options (DANE: { cd = true } asks with checking
-- disabled, recorded as cd = true)
function M.query(res, name, qtype, deadline, qopts)
  local rec = { name = lower_name(name), type = qtype, records = {} }
  local start = core.now()
  -- from getrandom(2): an off-path spoofer must guess it (math.random's
  -- state is neither secret nor per process)
  local id = core.random_u16()
  local ok_wire, wire = pcall(core.dns_query, name, qtype, id, qopts)
  if qopts and qopts.cd then rec.cd = true end
  if not ok_wire then
    rec.status, rec.error, rec.time_ms = "error", ("invalid query %s %s"):format(name, qtype), 0
    return rec
  end
  rec.transport = "udp"
  local msg, err, code = exchange_udp(res, wire, id, name, qtype, deadline, rec)
  if msg and msg.tc then
    rec.tc, rec.transport = true, "tcp"
    msg, err, code = exchange_tcp(res, wire, id, name, qtype, deadline)
  end
  rec.time_ms = core.now() - start
  if not msg then
    rec.status, rec.error = code or "error", err
    return rec
  end
  return M.answer(rec, msg, name, qtype)
end

--- Fills the query record rec from a parsed answer msg (core.dns_parse) to
-- the question name/qtype: rcode, ad, cname, status, records, truncated.
-- Pure: no I/O. Returns rec.
function M.answer(rec, msg, name, qtype)
  rec.rcode, rec.ad = msg.rcode, msg.ad
  local owner, chain = follow_cnames(msg.answer, name)
  if not owner then
    rec.status, rec.error = "protocol", chain
    return rec
  end
  if #chain > 0 then rec.cname = chain end
  if msg.rcode ~= "NOERROR" then
    rec.status = STATUS_OF_RCODE[msg.rcode] or "error"
    if rec.status == "error" then rec.error = "resolver answered " .. msg.rcode end
    return rec
  end
  for _, rr in ipairs(msg.answer) do
    -- DANE: an RRSIG in the answer says the zone is signed, even when the
    -- resolver does not validate (no AD)
    if rr.type == "RRSIG" then rec.signed = true end
    if rr.type == qtype and lower_name(rr.name) == owner then
      local r = record_of(rr)
      if r.truncated then rec.truncated = true end
      rec.records[#rec.records + 1] = r
    end
  end
  rec.status = #rec.records > 0 and "ok" or "nodata"
  return rec
end

return M
