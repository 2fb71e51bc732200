-- Regenerates the facts fixtures (spec/fixtures/facts/NAME.json) from real
-- probes: the lab's servers, or the hostile peer for faults a real MTA
-- cannot be configured to produce. Fixtures are never written by hand.
--
--   sh scripts/make-fixtures.sh            (as root: lab up, this, lab down)
--   lua5.4 scripts/make-fixtures.lua [NAME ...]   (the lab already up)
--
-- Each fixture is what `mxprobe --facts` would save for its query, one JSON
-- document, with the run's identity kept (the specs judge them as saved).

package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local mxprobe = require "mxprobe"
local facts = require "mxprobe.facts"
local H = require "hostile.peer"

local LAB = { resolver = "127.0.53.53", ca_file = "spec/lab/state/ca/root.pem", timeout = 5,
              probe_timeout = 30, dns_timeout = 3, ehlo_name = "probe.mxprobe.test" }
local HOSTILE_DNS = "127.0.66.54:5300"
local PEER = "127.0.66.70"

-- name -> where it comes from: a lab query (and options), or a hostile
-- peer fault probed as an address literal or through the hostile DNS
local SOURCES = {
  good = { query = "good.example.test" },
  expired = { query = "expired.example.test" },
  expiring = { query = "expiring.example.test" },
  wrongname = { query = "wrongname.example.test" },
  selfsigned = { query = "selfsigned.example.test" },
  incomplete = { query = "incomplete.example.test" },
  notls = { query = "notls.example.test" },
  openrelay = { query = "openrelay.example.test" },
  greylist = { query = "greylist.example.test" },
  postscreen = { query = "postscreen.example.test" },
  slowbanner = { query = "slowbanner.example.test" },
  implicit = { query = "implicit.example.test" },
  nullmx = { query = "nullmx.example.test" },
  nxdomain = { query = "nxdomain.example.test" },
  ipv6 = { query = "v6only.example.test" },
  sameaddr = { query = "samehost.example.test" },
  tlsmixed = { query = "mixed.example.test" },
  refused = { query = "closed.example.test" },
  timeout = { query = "blackhole.example.test" },
  address = { query = "[127.0.1.1]" },
  norelaytest = { query = "good.example.test", opts = { relay_test = false } },
  mxproblems = { query = "mxproblems.example.test" },
  nomx = { query = "mx.noaddr.example.test" },
  weakkey = { query = "weakkey.example.test" },
  tls12 = { query = "tls12.example.test" },
  -- MTA-STS (issue 8): an enforce policy that does not list the MX, and a
  -- testing policy whose MX's certificate names another host
  mtasts = { query = "sts-notlisted.example.test" },
  ["mtasts-testing"] = { query = "sts-testing.example.test" },
  -- DANE (RFC 7672): a DANE-TA match beside a stale DANE-EE record, an
  -- expired leaf pinned by 3 1 1, a bogus TLSA answer
  ["dane-stale"] = { query = "dane-stale.example.test" },
  ["dane-expired"] = { query = "dane-expired.example.test" },
  ["dane-bogus"] = { query = "dane-bogus.example.test" },
  heloonly = { peer = "helo-only" },
  silent = { peer = "no-banner" },
  ["throttled-banner"] = { peer = "421-banner" },
  ["throttled-starttls"] = { peer = "421-starttls" },
  starttls454 = { peer = "454-starttls" },
  handshake = { peer = "close-mid-handshake" },
  banner554 = { peer = "554-banner" },
  authrequired = { peer = "auth-required" },
  -- a domain (the hostile DNS names the peer as its MX), so that the relay
  -- test also asks for postmaster@DOMAIN, the control accept-any refuses
  acceptsany = { peer = "accept-any", domain = "acceptsany.hostile.test" },
  weaktls = { peer = "tls10" },
  ["hostile-banner"] = { peer = "all-hostile-banner" },
  -- reports (issue 11): markup, a CSV formula and perfdata syntax in the banner
  ["hostile-markup"] = { peer = "markup-banner" },
  -- the peer sends its self-signed root; verified against the lab's CA
  untrusted = { peer = "untrusted-root", opts = { ca_file = "spec/lab/state/ca/root.pem" } },
  -- TLS posture: versions, reverse DNS, a TLS session that dies after the
  -- handshake (and the plaintext fallback)
  tlsold = { query = "tlsold.example.test" },
  rdnsbad = { query = "rdnsbad.example.test" },
  tlsdies = { peer = "close-after-tls" },
  servfail = { dns = "servfail" },
  dnstimeout = { dns = "no-answer" },
}

local function probe_lab(src)
  local o = {}
  for k, v in pairs(LAB) do o[k] = v end
  for k, v in pairs(src.opts or {}) do o[k] = v end
  return assert(mxprobe.probe(src.query, o))
end

local port = 2600
local function probe_peer(src)
  port = port + 1
  local listen = ("%s:%d"):format(PEER, port)
  local p = H.start("smtp", listen, src.peer)
  local o = {}
  for k, v in pairs(LAB) do o[k] = v end
  o.ca_file, o.timeout, o.probe_timeout = "spec/hostile/certs/ca.pem", 2, 8
  for k, v in pairs(src.opts or {}) do o[k] = v end
  local query, dns = ("[%s]:%d"):format(PEER, port), nil
  if src.domain then
    dns = H.start("dns", HOSTILE_DNS, "normal", "--a " .. PEER)
    query, o.resolver, o.dns_timeout, o.port = src.domain, HOSTILE_DNS, 2, port
  end
  local f = assert(mxprobe.probe(query, o))
  H.stop(p)
  if dns then H.stop(dns) end
  return f
end

local function probe_dns(src)
  local p = H.start("dns", HOSTILE_DNS, src.dns)
  local o = {}
  for k, v in pairs(LAB) do o[k] = v end
  o.resolver, o.dns_timeout = HOSTILE_DNS, 2
  local f = assert(mxprobe.probe(src.dns .. ".hostile.test", o))
  H.stop(p)
  return f
end

local names = {}
if #arg > 0 then
  for i, n in ipairs(arg) do names[i] = n end
else
  for n in pairs(SOURCES) do names[#names + 1] = n end
  table.sort(names)
end
local failed = 0
for _, name in ipairs(names) do
  local src = assert(SOURCES[name], "no source for fixture " .. name)
  local ok, f = pcall(src.peer and probe_peer or src.dns and probe_dns or probe_lab, src)
  if not ok then
    failed = failed + 1
    io.stderr:write(("make-fixtures: %s: %s\n"):format(name, tostring(f)))
  else
    local valid, errs = facts.validate(f)
    if not valid then
      failed = failed + 1
      io.stderr:write(("make-fixtures: %s: invalid facts: %s\n"):format(name, table.concat(errs, "; ")))
    else
      local out = assert(io.open(("spec/fixtures/facts/%s.json"):format(name), "w"))
      assert(out:write(facts.encode(f), "\n"))
      assert(out:close())
      print(("make-fixtures: %-20s %-28s %d targets"):format(name, f.query, #f.targets))
    end
  end
end
H.stop_all()
os.exit(failed == 0 and 0 or 1)
