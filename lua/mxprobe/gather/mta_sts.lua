-- Gatherer mta_sts -- the domain's MTA-STS record and policy (RFC 8461).
--
-- What:   at once: the TXT records at _mta-sts.<domain> and the A/AAAA of
--         mta-sts.<domain>. Then, when that host has an address, the policy
--         fetch as a sending server does it (§3.3): HTTPS to port 443 with
--         SNI mta-sts.<domain>, the chain verified (PKIX and the name)
--         against the run's CA store, then "GET /.well-known/mta-sts.txt
--         HTTP/1.1" with a Host header; one response, redirects not
--         followed, the body at most 64 KiB, one deadline (the run's
--         per-phase timeout) for the whole fetch. A host with no address
--         costs no connection. Then the policy parsed (§3.2).
--         Nothing is judged here but what RFC 8461 says makes a policy
--         apply: `policy` is set only then (the checks and the per-MX
--         regime read it); everything else is kept as it came.
-- Scope:  domain (queries of kind "domain" only). Needs nothing: it runs
--         concurrently with the MX lookup, so it adds no latency.
-- Writes: facts.mta_sts (docs/facts.md): { txt, txt_status, records,
--         host_a, host_aaaa, fetch, parsed, policy }
--
-- Limits: M.BODY_MAX (64 KiB, §3.2's cap as the framer's body_max),
-- M.HEADERS_KEEP header fields and M.HEADER_VALUE_MAX bytes of each, and
-- M.BODY_KEEP bytes of the body kept in the facts; M.MX_MAX mx patterns;
-- M.ADDRESSES_MAX addresses tried.

local core = require "mxprobe.core"
local conn = require "mxprobe.conn"
local dns = require "mxprobe.dns"
local loop = require "mxprobe.loop"
local framers = require "mxprobe.framers"
local text = require "mxprobe.text"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "mta_sts", title = "MTA-STS record and policy (RFC 8461)",
  scope = "domain", key = "mta_sts", needs = {}, intrusive = false,
}

M.PORT = 443
M.PATH = "/.well-known/mta-sts.txt"
M.BODY_MAX = 64 * 1024        -- §3.2 (and the HTTP framer's own cap)
M.BODY_KEEP = 8 * 1024        -- bytes of the body kept in the facts
M.HEADERS_KEEP = 32           -- header fields kept in the facts
M.HEADER_VALUE_MAX = 512      -- bytes of each header value kept
M.BYTES_MAX = 256 * 1024      -- bytes one fetch may receive in all
M.MX_MAX = 64                 -- mx patterns kept from one policy
M.UNKNOWN_MAX = 16            -- unknown keys listed
M.ADDRESSES_MAX = 4           -- addresses of mta-sts.<domain> tried in turn
M.MAX_AGE_MAX = 31557600      -- §3.2: at most about one year
M.ERROR_MAX = 256             -- bytes of a server-derived value in an error

-- --------------------------------------------------------------- pure parts

local function lower_name(s)
  return (s:lower():gsub("%.$", ""))
end

local function show(s, max)
  return text.utf8(text.cut(s, max or M.ERROR_MAX, "…"))
end

--- The fields of one TXT record text, or nil when it is not an STS record
-- (pure). RFC 8461 §3.1: "v=STSv1" then ";"-separated "key=value" fields,
-- optional whitespace; id = 1*32(ALPHA / DIGIT); other fields ignored.
-- Returns { text, id, fields, valid, error }.
function M.parse_txt(txt)
  if txt:sub(1, 7) ~= "v=STSv1" then return nil end
  local rest = txt:sub(8)
  local rec = { text = text.utf8(txt), fields = {}, valid = false }
  if rest ~= "" and not rest:match("^[ \t]*;") then
    rec.error = "\"v=STSv1\" is not followed by \";\""
    return rec
  end
  local n = 0
  for part in (rest .. ";"):gmatch("([^;]*);") do
    local k, v = part:match("^[ \t]*([%w_%.%-]+)=(.-)[ \t]*$")
    if k and n < M.UNKNOWN_MAX then
      n = n + 1
      if rec.fields[k] == nil then rec.fields[k] = text.utf8(v) end
    elseif not k and not part:match("^[ \t]*$") then
      rec.error = rec.error or ("a field that is not key=value: %q"):format(show(part, 64))
    end
  end
  local id = rec.fields.id
  if rec.error then return rec end
  if id == nil then
    rec.error = "no id field"
  elseif not id:match("^%w+$") or #id > 32 then
    rec.error = ("id %q is not 1 to 32 letters and digits"):format(show(id, 64))
  else
    rec.id = id
    rec.valid = true
  end
  return rec
end

--- Is s a valid mx pattern: a host name, or "*." and a host name (pure)?
function M.valid_pattern(s)
  local name = s:sub(1, 2) == "*." and s:sub(3) or s
  name = name:gsub("%.$", "")
  if #name == 0 or #name > 253 then return false end
  for label in (name .. "."):gmatch("([^.]*)%.") do
    if #label == 0 or #label > 63 or not label:match("^[%w_%-]+$") then return false end
  end
  return true
end

--- Does the mx pattern cover host (pure)? RFC 8461 §4.1: the same name
-- (case-insensitive, a trailing dot ignored), or "*." followed by a name
-- that the host's name after its leftmost label equals: "*" stands for
-- exactly one whole label, never a part of one, never two. Anchored: plain
-- string comparison, no pattern language.
function M.match(pattern, host)
  if type(pattern) ~= "string" or type(host) ~= "string" then return false end
  local p, h = lower_name(pattern), lower_name(host)
  if p == "" or h == "" then return false end
  if p:sub(1, 2) == "*." then
    local dot = h:find(".", 1, true)
    if not dot or dot == 1 then return false end
    local rest = p:sub(3)
    return rest ~= "" and h:sub(dot + 1) == rest
  end
  if p:find("*", 1, true) then return false end
  return p == h
end

--- The first pattern of patterns that covers host, or nil (pure).
function M.covered(patterns, host)
  for _, p in ipairs(patterns or {}) do
    if M.match(p, host) then return p end
  end
  return nil
end

--- A policy body parsed (pure). RFC 8461 §3.2: lines "key: value" ending
-- in CRLF or LF; version STSv1, mode enforce|testing|none, max_age a
-- number of seconds at most 31557600, one or more mx (required unless the
-- mode is none); unknown keys ignored; a repeated version, mode or max_age:
-- the first one counts. Returns { valid, version, mode, max_age, mx,
-- mx_truncated, unknown, ignored_lines, errors = { {kind, message} } } with
-- every server string made valid UTF-8 and bounded.
function M.parse_policy(body)
  local p = { valid = false, mx = {}, unknown = {}, ignored_lines = 0, errors = {} }
  local function err(kind, msg) p.errors[#p.errors + 1] = { kind = kind, message = msg } end
  local seen_unknown = {}
  local raw = {}
  for line in (body .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local k, v = line:match("^([%w_%-%.]+):[ \t]*(.-)[ \t]*$")
    if not k then
      if not line:match("^[ \t]*$") then p.ignored_lines = p.ignored_lines + 1 end
    elseif k == "version" or k == "mode" or k == "max_age" then
      if raw[k] == nil then raw[k] = v end
    elseif k == "mx" then
      if #p.mx >= M.MX_MAX then
        p.mx_truncated = true
      elseif M.valid_pattern(v) then
        p.mx[#p.mx + 1] = lower_name(v)
      else
        err("mx", ("mx %q is not a host name or \"*.\" and a host name"):format(show(v, 128)))
      end
    elseif not seen_unknown[k] and #p.unknown < M.UNKNOWN_MAX then
      seen_unknown[k] = true
      p.unknown[#p.unknown + 1] = show(k, 64)
    end
  end
  if raw.version == nil then
    err("version", "no version field")
  else
    p.version = show(raw.version, 64)
    if raw.version ~= "STSv1" then err("version", ("version %q is not \"STSv1\""):format(p.version)) end
  end
  if raw.mode == nil then
    err("mode", "no mode field")
  else
    p.mode = show(raw.mode, 64)
    if raw.mode ~= "enforce" and raw.mode ~= "testing" and raw.mode ~= "none" then
      err("mode", ("mode %q is not enforce, testing or none"):format(p.mode))
    end
  end
  if raw.max_age == nil then
    err("max_age", "no max_age field")
  elseif not raw.max_age:match("^%d+$") or #raw.max_age > 10 then
    err("max_age", ("max_age %q is not a number of seconds (1 to 10 digits)"):format(show(raw.max_age, 64)))
  else
    p.max_age = math.tointeger(tonumber(raw.max_age))
    if p.max_age > M.MAX_AGE_MAX then
      err("max_age", ("max_age %d is more than %d (one year)"):format(p.max_age, M.MAX_AGE_MAX))
    end
  end
  if #p.mx == 0 and raw.mode ~= "none" then
    local bad = false
    for _, e in ipairs(p.errors) do if e.kind == "mx" then bad = true end end
    if not bad then err("mx", "no mx field") end
  end
  p.valid = #p.errors == 0
  return p
end

--- The media type of a Content-Type value, lower-case, parameters dropped.
function M.media_type(value)
  if type(value) ~= "string" then return nil end
  return (value:match("^[ \t]*([^;]-)[ \t]*;") or value:match("^[ \t]*(.-)[ \t]*$")):lower()
end

--- Does this fetch record deliver a policy per RFC 8461 §3.3: an HTTP
-- response 200 with Content-Type text/plain (pure)?
function M.fetched(fetch)
  local h = fetch and fetch.status == "ok" and fetch.http
  return h ~= nil and h ~= false and h.status == 200 and M.media_type(h.content_type) == "text/plain"
end

--- The policy that applies (§3, §3.3): exactly one valid TXT record, a
-- policy fetched, parsed valid. Returns { mode, mx, max_age, id } or nil.
function M.applies(out)
  if out.txt_status ~= "ok" or not M.fetched(out.fetch) or not out.parsed or not out.parsed.valid then
    return nil
  end
  local mx = {}
  for i, v in ipairs(out.parsed.mx) do mx[i] = v end
  return { mode = out.parsed.mode, mx = mx, max_age = out.parsed.max_age, id = out.records[1].id }
end

-- ------------------------------------------------------------------ schema

local verify = S.record({
  ok = S.bool, reason = S.str, detail = S.str, name = S.str, name_match = S.bool, depth = S.int,
  chain_length = S.int, leaf_subject = S.str, leaf_san_dns = S.list(S.str), leaf_not_after = S.int,
}, { "ok" })

M.fetch_schema = S.record({
  status = T.status { "ok", "no-address", "untrusted" }, error = S.str, url = S.str,
  address = S.str, port = S.int, time_ms = S.num, attempts = S.list(S.record({
    address = S.str, status = S.str, error = S.str }, { "address", "status" })),
  tls = S.record({ version = S.str, cipher = S.str, servername = S.str }),
  verify = verify, partial = S.str,
  http = S.record({
    version = S.str, status = S.int, reason = S.str, content_type = S.str,
    headers = S.list(S.record({ name = S.str, value = S.str }, { "name", "value" })),
    headers_truncated = S.bool, body = S.str, body_bytes = S.int, body_truncated = S.bool,
    chunked = S.bool,
  }, { "status", "headers" }),
}, { "status", "url" })

M.schema = S.record({
  txt = T.dns_query,
  txt_status = S.enum { "ok", "none", "several", "invalid", "dns-error" },
  records = S.list(S.record({
    text = S.str, id = S.str, fields = S.map(S.str), valid = S.bool, error = S.str,
  }, { "text", "fields", "valid" })),
  host = S.str, host_a = T.dns_query, host_aaaa = T.dns_query,
  fetch = M.fetch_schema,
  parsed = S.record({
    valid = S.bool, version = S.str, mode = S.str, max_age = S.int, mx = S.list(S.str),
    mx_truncated = S.bool, unknown = S.list(S.str), ignored_lines = S.int,
    errors = S.list(S.record({ kind = S.enum { "version", "mode", "max_age", "mx" }, message = S.str },
      { "kind", "message" })),
  }, { "valid", "mx", "errors" }),
  policy = S.record({
    mode = S.enum { "enforce", "testing", "none" }, mx = S.list(S.str), max_age = S.int, id = S.str,
  }, { "mode", "mx", "max_age" }),
}, { "txt", "txt_status", "records" })

-- ------------------------------------------------------------------- fetch

local function http_record(resp)
  local h = { version = text.utf8(resp.version), status = resp.status,
    reason = show(resp.reason), headers = {}, chunked = resp.chunked or nil }
  for i, f in ipairs(resp.headers) do
    if f.name == "content-type" and h.content_type == nil then h.content_type = show(f.value) end
    if i <= M.HEADERS_KEEP then
      h.headers[#h.headers + 1] = { name = show(f.name, 128), value = show(f.value, M.HEADER_VALUE_MAX) }
    else
      h.headers_truncated = true
    end
  end
  local body = resp.body or ""
  h.body_bytes = #body
  if #body > M.BODY_KEEP then h.body_truncated = true end
  h.body = text.utf8(text.cut(body, M.BODY_KEEP))
  return h
end

-- One address: connect, TLS, verify, GET, one response. Fills rec.
-- Returns the raw body (for the parser) when a response came.
local function fetch_one(rec, address, port, servername, opts, deadline)
  local c, err, code = conn.connect(address, port, deadline, { bytes_max = M.BYTES_MAX })
  if not c then
    rec.status, rec.error = code or "error", err
    return nil, "connect"
  end
  local ok, body = pcall(function()
    local info, terr, tcode = c:starttls(servername, deadline)
    if not info then
      rec.status, rec.error = tcode or "tls", "TLS with " .. servername .. ": " .. tostring(terr)
      return nil
    end
    rec.tls = { version = info.version, cipher = info.cipher, servername = servername }
    if not info.chain_pem then
      rec.status, rec.error = "untrusted", info.chain_error or "no certificate presented"
      rec.verify = { ok = false, reason = "no certificate", name = servername }
      return nil
    end
    local r, xerr = core.x509_chain(info.chain_pem, { name = servername, ca_file = opts.ca_file })
    if not r then
      rec.status, rec.error = "untrusted", "certificate: " .. tostring(xerr)
      rec.verify = { ok = false, reason = "unparsable", name = servername }
      return nil
    end
    local v = r.verify or { ok = false, reason = "other", detail = r.verify_error }
    local leaf = r.certificates and r.certificates[1] or {}
    local sans
    if type(leaf.san_dns) == "table" then
      sans = {}
      for i = 1, math.min(#leaf.san_dns, 16) do sans[i] = show(leaf.san_dns[i], 256) end
    end
    rec.verify = {
      ok = v.ok == true, reason = v.reason and show(v.reason) or nil, detail = v.detail and show(v.detail) or nil,
      name = servername, name_match = v.name_match, depth = v.depth, chain_length = v.chain_length,
      leaf_subject = leaf.subject and show(leaf.subject) or nil, leaf_san_dns = sans,
      leaf_not_after = leaf.not_after,
    }
    -- verify.ok is the chain (PKIX); the name is name_match
    if not rec.verify.ok then
      rec.status = "untrusted"
      rec.error = ("certificate of %s does not verify: %s"):format(servername,
        rec.verify.detail or rec.verify.reason or "?")
      return nil
    end
    if rec.verify.name_match ~= true then
      rec.status = "untrusted"
      rec.error = ("certificate does not name %s"):format(servername)
      return nil
    end
    local req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mxprobe/%s\r\nAccept: text/plain\r\n"
      .. "Connection: close\r\n\r\n"):format(M.PATH, servername, opts.version or "0")
    local sent, serr, scode = c:send(req, deadline)
    if not sent then
      rec.status, rec.error = scode or "error", serr
      return nil
    end
    local resp, rerr, rcode = c:read_frame(framers.http, deadline)
    if not resp then
      rec.status, rec.error = rcode or "error", "HTTP response: " .. tostring(rerr)
      local partial = c:pending()
      if #partial > 0 then rec.partial = show(partial, 1024) end
      return nil
    end
    rec.status = "ok"
    rec.http = http_record(resp)
    return resp.body
  end)
  c:close()
  if not ok then
    rec.status, rec.error = "error", "internal error: " .. tostring(body)
    return nil
  end
  return body
end

--- Fetches the policy of servername from the first of addresses that
-- accepts a connection (a refused or unreachable one: the next), on port
-- (M.PORT); opts = { deadline (monotonic ms), ca_file, version, semaphore =
-- function(address, port) -> the run's per-address cap (optional) }. Must
-- run inside a task of mxprobe.loop. Returns the fetch record (schema
-- M.fetch_schema) and the raw body when a response came.
function M.fetch(addresses, port, servername, opts)
  local start = core.now()
  local rec = { url = "https://" .. servername .. M.PATH, port = port }
  if #addresses == 0 then
    rec.status, rec.error, rec.time_ms = "no-address", servername .. " has no address", 0
    return rec
  end
  local body
  for i, a in ipairs(addresses) do
    if i > M.ADDRESSES_MAX then break end
    rec.address = a
    -- one of the run's per-address slots, as for SMTP: many domains may
    -- host their policies at one provider's address
    local slot = opts.semaphore and opts.semaphore(a, port)
    if slot then slot:acquire() end
    local ok, b, why = pcall(fetch_one, rec, a, port, servername, opts, opts.deadline)
    if slot then slot:release() end
    if not ok then error(b, 0) end
    body = b
    if why ~= "connect" or core.now() >= opts.deadline then break end
    rec.attempts = rec.attempts or {}
    rec.attempts[#rec.attempts + 1] = { address = a, status = rec.status, error = rec.error }
  end
  rec.time_ms = core.now() - start
  return rec, body
end

-- --------------------------------------------------------------------- run

local function txt_state(q, records)
  local n, valid = #records, 0
  for _, r in ipairs(records) do if r.valid then valid = valid + 1 end end
  if n > 1 then return "several" end
  if n == 1 then return valid == 1 and "ok" or "invalid" end
  if q.status == "ok" or q.status == "nodata" or q.status == "nxdomain" then return "none" end
  return "dns-error"
end

function M.run(facts, ctx)
  local host = "mta-sts." .. facts.domain
  local deadline = ctx:dns_deadline()
  local q, a, aaaa
  loop.all {
    function() q = dns.query(ctx.resolver, "_mta-sts." .. facts.domain, "TXT", deadline) end,
    function() a = dns.query(ctx.resolver, host, "A", deadline) end,
    function() aaaa = dns.query(ctx.resolver, host, "AAAA", deadline) end,
  }
  local out = { txt = q, records = {}, host = host, host_a = a, host_aaaa = aaaa }
  for _, r in ipairs(q.records) do
    local rec = type(r.text) == "string" and M.parse_txt(r.text)
    if rec then out.records[#out.records + 1] = rec end
  end
  out.txt_status = txt_state(q, out.records)
  local addresses = {}
  for _, qq in ipairs { a, aaaa } do
    for _, r in ipairs(qq.records) do
      if type(r.address) == "string" then addresses[#addresses + 1] = r.address end
    end
  end
  -- nothing to connect to: no record and no host, or a host that does not
  -- resolve while the record could not be read either
  local published = out.txt_status == "ok" or out.txt_status == "several" or out.txt_status == "invalid"
  if #addresses == 0 and not published then return out end
  local o = ctx.options
  local fetch, body = M.fetch(addresses, M.PORT, host, {
    deadline = core.now() + o.timeout * 1000, ca_file = o.ca_file, version = ctx.run and ctx.run.tool.version,
    semaphore = function(address, port) return ctx:semaphore(address, port) end,
  })
  out.fetch = fetch
  if fetch.status == "ok" and fetch.http.status == 200 then out.parsed = M.parse_policy(body or "") end
  out.policy = M.applies(out)
  return out
end

return M
