-- What the integration specs need to know about the lab (spec/lab/).
local M = {}

M.RESOLVER = "127.0.53.53"
M.CA_FILE = "spec/lab/state/ca/root.pem"
M.MAILLOG = "spec/lab/state/postfix/maillog"   -- the lab Postfix's own log

--- The lab Postfix's log, whole.
function M.maillog()
  local f = assert(io.open(M.MAILLOG))
  local s = f:read("a")
  f:close()
  return s
end

--- The smtpd "disconnect" summaries ("ehlo=1 mail=1 ... commands=5") of
-- one lab service (its syslog_name, "lab-good1") in a piece of the log, in
-- log order.
function M.disconnects(log, service)
  local out = {}
  for line in log:gmatch("[^\n]+") do
    local svc, summary = line:match(" (lab%-[%w%-]+)/smtpd%[%d+%]: disconnect from %S+ (.*)$")
    if svc == service then out[#out + 1] = summary end
  end
  return out
end

--- Probe options pointing at the lab, with short deadlines; extra wins.
function M.options(extra)
  local o = {
    resolver = M.RESOLVER, ca_file = M.CA_FILE, timeout = 5, probe_timeout = 30,
    dns_timeout = 3, ehlo_name = "client.mxprobe.test",
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- Runs the CLI; returns its stdout, stderr and exit status.
function M.cli(args)
  local err = os.tmpname()
  local cmd = ('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 bin/mxprobe %s 2>%s')
    :format(os.getenv("MXPROBE_CPATH") or "build/?.so", args, err)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, status = p:close()
  local f = io.open(err)
  local stderr = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  return out, stderr, status
end

--- Asserts that the facts of each of `names` (facts_by_name[name]) are
-- what the schema validates, and still are after a JSON round trip: what
-- --facts writes is what --from-facts reads.
function M.assert_valid_facts(facts_by_name, names)
  local facts_mod = require "mxprobe.facts"
  for _, d in ipairs(names) do
    local ok, errs = facts_mod.validate(facts_by_name[d])
    assert(ok, d .. ": " .. table.concat(errs or {}, "; "))
    local back = assert(facts_mod.decode(facts_mod.encode(facts_by_name[d])))[1]
    assert(facts_mod.validate(back), d .. " after JSON")
  end
end

--- The one finding of a judgement with this code (and, when given, for
-- this target address); nil when there is none. Two such findings fail.
function M.finding(j, code, address)
  local found
  for _, f in ipairs(j.findings) do
    if f.code == code and (not address or (f.target and f.target.address == address)) then
      assert(found == nil, "two findings " .. code)
      found = f
    end
  end
  return found
end

function M.lab_args()
  return ("--resolver %s --ca-file %s --timeout 5"):format(M.RESOLVER, M.CA_FILE)
end

return M
