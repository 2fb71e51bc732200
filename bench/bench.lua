-- make bench: speed and memory of mxprobe against the lab (spec/lab).
--   1. x509_verify with a cached CA store (the store is loaded once)
--   2. reply framing throughput on a captured EHLO reply
--   3. many domains probed at once through one event loop: wall time,
--      probes per second, Lua heap and process RSS
-- Numbers are printed, not asserted: benchmarks measure, specs assert.
local core = require "mxprobe.core"
local mxprobe = require "mxprobe"

local N = tonumber(os.getenv("BENCH_DOMAINS") or "") or 300

local function rss_kib()
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  for line in f:lines() do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then f:close() return tonumber(kb) end
  end
  f:close()
  return -1
end

local function timeit(label, n, fn)
  local t0 = core.now()
  for i = 1, n do fn(i) end
  local ms = core.now() - t0
  print(("%-44s %8d runs %10.2f us/run"):format(label, n, ms / n * 1000))
  return ms / n
end

-- 1. certificate verification, CA store cached per file
local pem = assert(io.open("spec/lab/state/ca/root.pem")):read("a")
local first
do
  local t0 = core.now()
  core.x509_verify(pem, { ca_file = "/etc/ssl/certs/ca-certificates.crt", name = "x" })
  first = core.now() - t0
end
print(("%-44s %8d run  %10.3f ms (loads the system store)"):format("x509_verify, first call", 1, first))
timeit("x509_verify, store cached", 500, function()
  core.x509_verify(pem, { ca_file = "/etc/ssl/certs/ca-certificates.crt", name = "x" })
end)

-- 2. framing
local ehlo = "250-mx1.good.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n"
  .. "250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
  .. "250-SMTPUTF8\r\n250 CHUNKING\r\n"
timeit("smtp_reply on an 11-line EHLO reply", 200000, function() core.smtp_reply(ehlo) end)

-- 3. concurrent probes of lab domains
local names = { "good", "single", "notls", "openrelay", "greylist", "expired", "wrongname",
                "selfsigned", "incomplete", "closed", "nullmx", "implicit", "mixed" }
local queries = {}
for i = 1, N do queries[i] = names[(i - 1) % #names + 1] .. ".example.test" end
collectgarbage()
local heap0, rss0 = collectgarbage("count"), rss_kib()
local t0 = core.now()
local list = assert(mxprobe.probe_many(queries, {
  resolver = "127.0.53.53", ca_file = "spec/lab/state/ca/root.pem", timeout = 5,
  concurrency = 64, per_address = 8, ehlo_name = "bench.mxprobe.test",
}))
local ms = core.now() - t0
local targets, complete = 0, 0
for _, f in ipairs(list) do
  for _, t in ipairs(f.targets) do
    targets = targets + 1
    if t.status == "complete" then complete = complete + 1 end
  end
end
local heap1 = collectgarbage("count")
print(("%-44s %8d domains %d targets (%d complete) in %.0f ms: %.1f targets/s")
  :format("probe_many, concurrency 64, 8 per address", N, targets, complete, ms, targets / ms * 1000))
print(("%-44s Lua heap +%.0f KiB (facts kept), RSS %d -> %d KiB")
  :format("memory", heap1 - heap0, rss0, rss_kib()))
