-- mxprobe.run: the options of a run and the context every gatherer gets.
--
--   run.options(opts) -> options (defaults merged, checked) | nil, message
--   run.new(opts)     -> ctx | nil, message
--
-- Two fields of opts are not options but parts of the context (workers,
-- issue 10): opts.slot_provider, a function(address, port) -> slot with
-- :acquire() and :release() that replaces the in-process semaphore of
-- Ctx:semaphore (a worker process asks its coordinator for slots, so the
-- cap holds across processes); opts.run_id, the run identity shared by the
-- worker processes of one run.
--
-- The context is what gatherers share during one run (one probe or one
-- probe_many): the checked options, the resolver, the per-address
-- connection caps, caches, and the prober's identity that goes
-- into every facts table. It is not the options table: gatherers read
-- ctx.options and never write it.

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local dns = require "mxprobe.dns"
local text = require "mxprobe.text"

local M = {}

M.VERSION = require "mxprobe.version"   -- one place: bin/mxprobe --version reads it alone

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
  chain_cache = true,        -- reuse a chain's decoded result within a run
  tls_versions = true,       -- TLS posture: one short dialog per TLS version (gather/tls_versions.lua)
  public_only = false,       -- probe only global addresses from DNS (issue 12)
  -- repeat/greylist (issue 9 items 6, 7)
  ["repeat"] = 1,            -- tries of each target (--repeat)
  greylist_retry = nil,      -- seconds before retrying a 4xx relay test (--greylist-retry)
  -- hostshare (issue 10 item 3): one host dialog per MX host per run,
  -- shared by the domains whose MX it is (--no-share-hosts: false)
  share_hosts = true,
}

-- robustness (issue 12): every number an option gives is range-checked
-- where it enters: seconds finite, positive and at most this; counts from
-- 1 to this
M.MAX_SECONDS = { timeout = 3600, probe_timeout = 86400, dns_timeout = 600 }
-- (per_address is a bound against nonsense, not a politeness rule -- the
-- default 2 is that: make bench-bulk holds 10,000 idle connects to the
-- lab's blackhole address to measure the loop, so it is as high as the
-- concurrency bound it can never usefully exceed)
M.MAX_COUNT = { per_address = 100000, concurrency = 100000, max_mx = 64, max_addresses = 256 }
-- the open-file limit: descriptors kept for the process itself, and those
-- one query in flight is counted to need (DNS sockets, SMTP connections)
M.GREYLIST_RETRY_MAX = 3600   -- repeat/greylist: --greylist-retry seconds
M.REPEAT_MAX = 10             -- repeat/greylist: --repeat tries
M.FD_RESERVE = 16
M.FDS_PER_QUERY = 8
M.CA_FILE_MAX = 16 * 1024 * 1024

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
    local v, max = o[k], M.MAX_SECONDS[k]
    -- NaN fails every comparison: v ~= v catches it
    if type(v) ~= "number" or v ~= v or v <= 0 or v > max then
      return nil, ("%s must be a number of seconds above 0 and at most %d"):format(k, max)
    end
  end
  -- repeat/greylist (issue 9 items 6, 7)
  if o.greylist_retry ~= nil then
    local v = o.greylist_retry
    if type(v) ~= "number" or v ~= v or v < 1 or v > M.GREYLIST_RETRY_MAX then
      return nil, ("greylist_retry must be a number of seconds from 1 to %d"):format(M.GREYLIST_RETRY_MAX)
    end
  end
  if math.type(o["repeat"]) ~= "integer" or o["repeat"] < 1 or o["repeat"] > M.REPEAT_MAX then
    return nil, ("repeat must be an integer from 1 to %d"):format(M.REPEAT_MAX)
  end
  if type(o.share_hosts) ~= "boolean" then return nil, "share_hosts must be true or false" end   -- hostshare
  if math.type(o.port) ~= "integer" or o.port < 1 or o.port > 65535 then
    return nil, "port must be an integer from 1 to 65535"
  end
  for _, k in ipairs { "per_address", "concurrency", "max_mx", "max_addresses" } do
    if math.type(o[k]) ~= "integer" or o[k] < 1 or o[k] > M.MAX_COUNT[k] then
      return nil, ("%s must be an integer from 1 to %d"):format(k, M.MAX_COUNT[k])
    end
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
    local ok, cerr = M.check_ca_file(o.ca_file)
    if not ok then return nil, cerr end
  end
  -- issue 12: as many descriptors as the hard limit allows, and no more
  -- queries at once than they can serve (one line says so)
  local soft = core.raise_fd_limit()
  if soft then
    local fit = math.max(1, (soft - M.FD_RESERVE) // M.FDS_PER_QUERY)
    if o.concurrency > fit then
      if type(o.on_notice) == "function" then
        o.on_notice(("open-file limit %d: concurrency lowered from %d to %d"):format(soft, o.concurrency, fit))
      end
      o.concurrency = fit
    end
  end
  return o
end

--- A CA file that holds at least one certificate the core can parse:
-- true, or nil, message naming the file (issue 12: a CA file with none
-- is the user's mistake, not every server's untrusted certificate).
function M.check_ca_file(path)
  local shown = text.visible(path)
  local kind = core.file_kind(path)
  if kind ~= "file" then
    return nil, ("cannot read CA file %s%s"):format(shown, kind and (": is a " .. kind:gsub("%-", " ")) or "")
  end
  local f = io.open(path, "rb")
  if not f then return nil, "cannot read CA file " .. shown end
  local data = f:read(M.CA_FILE_MAX) or ""
  f:close()
  -- the first PEM certificate in it must parse
  local pem = data:match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-")
  local ok, certs = false, nil
  if pem then ok, certs = pcall(core.x509_parse, pem) end
  if not (ok and type(certs) == "table" and #certs > 0) then
    return nil, ("CA file %s holds no usable certificate (PEM, -----BEGIN CERTIFICATE-----)"):format(shown)
  end
  return true
end

-- the versions of everything that shapes what a probe sees
local function versions()
  local v = { mxprobe = M.VERSION, core = core.version, lua = _VERSION }
  for k, x in pairs(core.library_versions or {}) do v[k] = x end
  return v
end

local Ctx = {}
Ctx.__index = Ctx

--- A new run context; or nil, message for bad options.
function M.new(opts)
  local o, err = M.options(opts)
  if not o then return nil, err end
  -- workers: the slot provider and run id are context, not options
  local provider, run_id = o.slot_provider, o.run_id
  o.slot_provider, o.run_id = nil, nil
  if run_id ~= nil and (type(run_id) ~= "string" or not run_id:match("^%x+$") or #run_id > 64) then
    return nil, "run_id must be a hex string"
  end
  local id = run_id or core.random_bytes(16):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  return setmetatable({
    options = o,
    resolver = o.resolver_addr,
    slots = {},          -- "address|port" -> semaphore, shared by the run
    slot_provider = provider,   -- workers: slots from the coordinator (nil: in-process)
    cache = {},          -- per-run caches, one sub-table per gatherer id
    run = {
      id = id,
      tool = { name = "mxprobe", version = M.VERSION },
      versions = versions(),
      prober = { ehlo_name = o.ehlo_name, mail_from = o.mail_from, relay_rcpt = o.relay_rcpt },
    },
  }, Ctx)
end

--- The connection cap of one destination (per_address simultaneous
-- connections), shared by every probe of the run -- and, through a slot
-- provider, by every worker process of it.
function Ctx:semaphore(address, port)
  local key = address .. "|" .. port
  local s = self.slots[key]
  if not s then
    if self.slot_provider then
      s = self.slot_provider(address, port)
    else
      s = loop.semaphore(self.options.per_address)
    end
    self.slots[key] = s
  end
  return s
end

--- The deadline of one DNS query started now.
function Ctx:dns_deadline()
  return core.now() + self.options.dns_timeout * 1000
end

--- The identity of the prober, a fresh copy for one facts table.
function Ctx:identity()
  local r = self.run
  local v = {}
  for k, x in pairs(r.versions) do v[k] = x end
  return {
    id = r.id, tool = { name = r.tool.name, version = r.tool.version }, versions = v,
    prober = { ehlo_name = r.prober.ehlo_name, mail_from = r.prober.mail_from, relay_rcpt = r.prober.relay_rcpt },
  }
end

return M
