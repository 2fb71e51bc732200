-- Hostile servers (spec/hostile/mxhostile.py): faults real MTAs can't be
-- configured to produce. Each must end in a diagnostic, within the
-- deadline, with the partial facts kept, valid JSON and escaped output.
local cjson = require "cjson"
local core = require "mxprobe.core"
local mxprobe = require "mxprobe"
local facts_io = require "mxprobe.facts"
local text_report = require "mxprobe.report.text"
local judge = require "mxprobe.judge"

local PEER = "spec/hostile/mxhostile.py"
local ADDR = "127.0.66.1"
local TIMEOUT, PROBE_TIMEOUT = 2, 8

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

local pids = {}

-- starts one peer; waits (bounded) for its "ready"
local function start(kind, addr, port, fault, extra)
  local out = ("%s/%s-%d.out"):format(tmp, fault, port)
  local cmd = ("python3 %s %s %s %d %s %s > %s 2>&1 & echo $!")
    :format(PEER, kind, addr, port, fault, extra or "", out)
  local p = assert(io.popen(cmd))
  pids[#pids + 1] = p:read("l")
  p:close()
  local deadline = core.now() + 5000
  while core.now() < deadline do
    local f = io.open(out)
    local s = f and f:read("a") or ""
    if f then f:close() end
    if s:find("ready", 1, true) then return end
    core.poll({}, {}, 20)
  end
  error("hostile peer did not start: " .. fault)
end

local function stop_all()
  for _, pid in ipairs(pids) do os.execute("kill " .. pid .. " 2>/dev/null") end
  pids = {}
end

-- every string anywhere in t is valid UTF-8
local function all_utf8(t, depth)
  depth = depth or 0
  if depth > 40 then return true end
  for k, v in pairs(t) do
    if type(k) == "string" and not utf8.len(k) then return false end
    if type(v) == "string" and not utf8.len(v) then return false end
    if type(v) == "table" and not all_utf8(v, depth + 1) then return false end
  end
  return true
end

local SMTP_FAULTS = {
  "no-banner", "drip-banner", "endless-continuation", "huge-line", "nul-banner", "ansi-banner",
  "invalid-utf8-banner", "bad-code", "code-change", "code-out-of-range", "close-after-banner",
  "close-after-ehlo", "close-after-starttls-220", "close-mid-handshake", "close-after-rcpt",
  "421-banner", "421-ehlo", "421-starttls", "454-starttls", "starttls-plaintext-garbage",
  "stall-handshake", "ehlo-10000-extensions", "pipelining-abuse", "normal",
}

describe("hostile SMTP servers #integration #hostile", function()
  local T, F, J = {}, {}, {}

  setup(function()
    local cert, key = tmp .. "/cert.pem", tmp .. "/key.pem"
    assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=hostile.test -days 30 "
      .. "-keyout %s -out %s >/dev/null 2>&1"):format(key, cert)))
    local queries = {}
    for i, fault in ipairs(SMTP_FAULTS) do
      start("smtp", ADDR, 2600 + i, fault, cert .. " " .. key)
      queries[i] = ("[%s]:%d"):format(ADDR, 2600 + i)
    end
    local list = assert(mxprobe.probe_many(queries, {
      resolver = "127.0.0.1", timeout = TIMEOUT, probe_timeout = PROBE_TIMEOUT,
      ehlo_name = "client.mxprobe.test", per_address = 64,
    }))
    for i, fault in ipairs(SMTP_FAULTS) do
      F[fault] = list[i]
      T[fault] = list[i].targets[1]
      J[fault] = judge.run(list[i])
    end
  end)

  teardown(stop_all)

  local function codes(fault)
    local set = {}
    for _, f in ipairs(J[fault].findings) do set[f.code] = f.state end
    return set
  end

  it("ends every probe within its deadline, with valid UTF-8 facts and valid JSON", function()
    for _, fault in ipairs(SMTP_FAULTS) do
      local t = T[fault]
      assert.is_true(t.time_ms < PROBE_TIMEOUT * 1000 + 500, fault .. " took " .. t.time_ms)
      assert.is_true(all_utf8(F[fault]), fault)
      local decoded = cjson.decode(facts_io.encode(F[fault]))
      assert.equal(F[fault].query, decoded.query)
    end
  end)

  it("completes the dialog with a well-behaved peer (the harness itself works)", function()
    assert.equal("complete", T.normal.status)
    assert.equal("ok", T.normal.tls.status)
  end)

  it("times out on a banner that never comes, or comes one byte a second", function()
    for _, fault in ipairs { "no-banner", "drip-banner" } do
      assert.equal("timeout", T[fault].banner.status, fault)
      assert.equal("banner", T[fault].stopped_at, fault)
      assert.is_true(T[fault].banner.time_ms < TIMEOUT * 1000 + 500, fault)
    end
    assert.is_string(T["drip-banner"].banner.partial)
    assert.is_truthy(codes("no-banner")["smtp.banner.missing"])
  end)

  it("cuts endless continuations, a 1 MiB line and 10,000 extensions off as too-long", function()
    assert.equal("too-long", T["endless-continuation"].banner.status)
    assert.equal("too-long", T["huge-line"].banner.status)
    assert.equal("too-long", T["ehlo-10000-extensions"].ehlo.status)
  end)

  it("calls malformed reply codes protocol errors", function()
    for _, fault in ipairs { "bad-code", "code-out-of-range" } do
      assert.equal("protocol", T[fault].banner.status, fault)
    end
    assert.equal("protocol", T["code-change"].ehlo.status)
  end)

  it("keeps NUL, escapes and invalid UTF-8 of a banner, made valid UTF-8", function()
    assert.equal(220, T["nul-banner"].banner.reply.code)
    assert.matches("\0", T["nul-banner"].banner.reply.lines[1], 1, true)
    assert.matches("\\xFF", T["invalid-utf8-banner"].banner.reply.lines[1], 1, true)
    assert.matches("\27[2J", T["ansi-banner"].banner.reply.lines[1], 1, true)
  end)

  it("lets no control character of a hostile banner reach the text report", function()
    for _, fault in ipairs { "nul-banner", "ansi-banner", "invalid-utf8-banner" } do
      local out = text_report.render({ F[fault] }, { J[fault] }, { color = false, verbose = true })
      assert.is_nil(out:find("[%z\1-\8\11-\31\127]"), fault)
      assert.is_truthy(utf8.len(out), fault)
    end
  end)

  it("keeps the JSON report valid and escaped for every hostile banner", function()
    local json_report = require "mxprobe.report.json"
    for _, fault in ipairs { "nul-banner", "ansi-banner", "invalid-utf8-banner" } do
      local out = json_report.render({ F[fault] }, { J[fault] }, {}):gsub("\n$", "")
      assert.is_nil(out:find("[%z\1-\31]"), fault)
      local doc = cjson.decode(out)
      assert.equal("mxprobe.report/1", doc.schema)
    end
  end)

  it("records where a server closed the connection", function()
    assert.equal("closed", T["close-after-banner"].ehlo.status)
    assert.equal("closed", T["close-after-ehlo"].ehlo.status)
    assert.equal("closed", T["close-after-rcpt"].relay.rcpt_external.status)
    for _, fault in ipairs { "close-after-starttls-220", "close-mid-handshake" } do
      assert.equal(220, T[fault].starttls.reply.code, fault)
      assert.is_truthy(T[fault].tls.status ~= "ok", fault)
      assert.equal("tls", T[fault].stopped_at, fault)
    end
  end)

  it("keeps a 421 as throttled, could not test -- never as 'no STARTTLS'", function()
    assert.equal(421, T["421-banner"].banner.reply.code)
    assert.equal(421, T["421-ehlo"].ehlo.reply.code)
    assert.equal(421, T["421-starttls"].starttls.reply.code)
    for _, fault in ipairs { "421-banner", "421-ehlo", "421-starttls" } do
      assert.equal("rejected", T[fault].status, fault)
      local c = codes(fault)
      assert.equal("untested", c["smtp.throttled"], fault)
      assert.is_nil(c["tls.starttls.missing"], fault)
    end
  end)

  it("goes on in plaintext after 454 to STARTTLS, as a sender would", function()
    local t = T["454-starttls"]
    assert.equal(454, t.starttls.reply.code)
    assert.is_nil(t.tls)
    assert.equal("complete", t.status)
    assert.equal("fail", codes("454-starttls")["tls.starttls.refused"])
  end)

  it("notes plaintext sent after 220 to STARTTLS and does not hang in the handshake", function()
    local t = T["starttls-plaintext-garbage"]
    assert.is_truthy(t.tls.status ~= "ok")
    assert.is_true(t.tls.handshake_ms < TIMEOUT * 1000 + 500)
  end)

  it("times out a stalled TLS handshake", function()
    assert.equal("timeout", T["stall-handshake"].tls.status)
  end)

  it("notes answers that came before their command (pipelining abuse)", function()
    local t = T["pipelining-abuse"]
    assert.is_string(t.ehlo.unsolicited)
    assert.matches("250 2.1.0", t.ehlo.unsolicited, 1, true)
  end)
end)

describe("hostile DNS servers #integration #hostile", function()
  local DNS_FAULTS = { "wrong-id", "wrong-question", "truncated-no-tcp", "compression-loop",
                       "many-mx", "mx-cname-self", "servfail", "no-answer", "normal" }
  local F = {}

  setup(function()
    local fns = {}
    for i, fault in ipairs(DNS_FAULTS) do
      local addr = ("127.0.66.%d"):format(100 + i)
      start("dns", addr, 5300, fault)
      fns[i] = function()
        F[fault] = assert(mxprobe.probe("h.test", {
          resolver = addr .. ":5300", dns_timeout = 2, timeout = TIMEOUT,
          probe_timeout = PROBE_TIMEOUT, relay_test = false, port = 2700,
        }))
      end
    end
    for _, fn in ipairs(fns) do fn() end
  end)

  teardown(function()
    stop_all()
    os.execute("rm -rf " .. tmp)
  end)

  local function mxq(fault) return F[fault].dns.mx end

  it("answers the harness's normal question (so the faults are what differs)", function()
    assert.equal("ok", mxq("normal").status)
    assert.equal("mx.h.test", F.normal.mx[1].name)
  end)

  it("ignores answers with a wrong ID or question, then says so", function()
    for _, fault in ipairs { "wrong-id", "wrong-question" } do
      local q = mxq(fault)
      assert.equal("protocol", q.status, fault)
      assert.matches("wrong ID or question", q.error, 1, true)
      assert.is_true(q.time_ms < 2500, fault)
    end
  end)

  it("reports truncation without a TCP answer", function()
    local q = mxq("truncated-no-tcp")
    assert.is_true(q.tc)
    assert.equal("tcp", q.transport)
    assert.is_truthy(q.status ~= "ok")
  end)

  it("refuses a compression loop as a protocol error", function()
    assert.equal("protocol", mxq("compression-loop").status)
  end)

  it("refuses 1,000 MX records as too-long", function()
    assert.equal("too-long", mxq("many-mx").status)
  end)

  it("detects an MX that loops through CNAMEs", function()
    local q = mxq("mx-cname-self")
    assert.equal("protocol", q.status)
    assert.matches("CNAME loop", q.error)
  end)

  it("records SERVFAIL and silence", function()
    assert.equal("servfail", mxq("servfail").status)
    assert.equal("timeout", mxq("no-answer").status)
    assert.is_true(mxq("no-answer").time_ms < 2500)
  end)

  it("judges every DNS fault without crashing, never calling the domain fine", function()
    for _, fault in ipairs(DNS_FAULTS) do
      if fault ~= "normal" then
        local j = judge.run(F[fault])
        assert.is_truthy(j.verdict ~= "ok", fault)
      end
    end
  end)
end)
