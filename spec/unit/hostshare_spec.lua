-- hostshare (issue 10 item 3): the run's registry of host dialogs (keys,
-- the LRU and age bounds, waiting with a deadline), the copies each domain
-- gets (independent of each other), and loop.event. No socket.
local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local hostshare = require "mxprobe.hostshare"
local smtp = require "mxprobe.gather.smtp"
local S = require "mxprobe.schema"

describe("hostshare registry #unit", function()
  it("keys on address, port, MX name, SNI name and canonical name", function()
    local k = hostshare.key("127.0.70.1", 25, "mx.share.example.test", "mx.share.example.test", nil)
    assert.equal("127.0.70.1|25|mx.share.example.test|mx.share.example.test|", k)
    local others = {
      hostshare.key("127.0.70.2", 25, "mx.share.example.test", "mx.share.example.test", nil),
      hostshare.key("127.0.70.1", 2525, "mx.share.example.test", "mx.share.example.test", nil),
      hostshare.key("127.0.70.1", 25, "mx2.share.example.test", "mx.share.example.test", nil),
      hostshare.key("127.0.70.1", 25, "mx.share.example.test", "tlsa.base.example.test", nil),
      hostshare.key("127.0.70.1", 25, "mx.share.example.test", "mx.share.example.test", "real.example.test"),
    }
    local seen = { [k] = true }
    for _, o in ipairs(others) do
      assert.is_nil(seen[o], o)
      seen[o] = true
    end
  end)

  it("keeps an entry in flight, then done for `seconds`; an older one is dropped", function()
    local reg = hostshare.new(10, 300)
    assert.is_nil(hostshare.get(reg, "a", 1000))
    local e = hostshare.open(reg, "a", 1000)
    assert.is_false(e.done)
    -- in flight: found whatever its age (its query holds it)
    assert.equal(e, hostshare.get(reg, "a", 5000))
    hostshare.finish(e, { status = "complete" })
    assert.is_true(e.done)
    assert.equal(e, hostshare.get(reg, "a", 1299))
    assert.is_nil(hostshare.get(reg, "a", 1300))
    assert.equal(0, reg.n)
  end)

  it("holds at most max entries, dropping the least recently used", function()
    local reg = hostshare.new(3, 300)
    for _, k in ipairs { "a", "b", "c" } do hostshare.open(reg, k, 0) end
    assert.is_not_nil(hostshare.get(reg, "a", 1))   -- a is now the most recent
    hostshare.open(reg, "d", 1)                      -- b goes
    assert.equal(3, reg.n)
    assert.is_nil(hostshare.get(reg, "b", 1))
    for _, k in ipairs { "a", "c", "d" } do assert.is_not_nil(hostshare.get(reg, k, 1), k) end
    -- many touches keep the order queue bounded
    for i = 1, 1000 do hostshare.get(reg, ({ "a", "c", "d" })[i % 3 + 1], 2) end
    assert.is_true(reg.otail - reg.ohead + 1 <= 4 * 3 + 64)
    hostshare.open(reg, "e", 2)
    assert.equal(3, reg.n)
  end)

  it("is per run: ctx.cache.hostshare", function()
    local ctx = { cache = {} }
    local reg = hostshare.registry(ctx)
    assert.equal(reg, ctx.cache.hostshare)
    assert.equal(reg, hostshare.registry(ctx))
    assert.equal(hostshare.MAX, reg.max)
    assert.equal(300, reg.seconds)
  end)

  it("is on by default (share_hosts), and the option must be a boolean", function()
    local run = require "mxprobe.run"
    local o = assert(run.options { resolver = "127.0.0.1" })
    assert.is_true(o.share_hosts)
    assert.is_false(assert(run.options { resolver = "127.0.0.1", share_hosts = false }).share_hosts)
    local none, err = run.options { resolver = "127.0.0.1", share_hosts = "no" }
    assert.is_nil(none)
    assert.equal("share_hosts must be true or false", err)
  end)

  it("close(): the run has no more queries; whoever lingers for more is woken", function()
    local ctx = { cache = {} }
    hostshare.close(ctx)   -- no registry yet: nothing to do
    local reg = hostshare.registry(ctx)
    local e = hostshare.open(reg, "k", 0)
    e.more = loop.event()
    local l = loop.new()
    local woke
    local t0 = core.now()
    l:spawn(function() woke = e.more:wait(core.now() + 5000) end)
    l:spawn(function() hostshare.close(ctx) end)
    l:run()
    assert.is_true(woke)
    assert.is_true(core.now() - t0 < 1000)
    assert.is_true(reg.closed)
    assert.equal(reg, e.reg)
  end)

  it("queues items and takes them oldest first, skipping the cancelled", function()
    local e = hostshare.open(hostshare.new(), "k", 0)
    for i = 1, 5 do hostshare.enqueue(e, { n = i, cancelled = i == 2 }) end
    assert.equal(5, hostshare.queued(e))
    local got = hostshare.take(e, 2)
    assert.same({ 1, 3 }, { got[1].n, got[2].n })
    got = hostshare.take(e, 10)
    assert.same({ 4, 5 }, { got[1].n, got[2].n })
    assert.equal(0, hostshare.queued(e))
    assert.same({}, hostshare.take(e, 10))
  end)

  it("makes waiters wait without busy waiting, each until its own deadline", function()
    local reg = hostshare.new()
    local e = hostshare.open(reg, "k", 0)
    local l = loop.new()
    local got = {}
    local t0 = core.now()
    l:spawn(function() got.early = { hostshare.wait(e, core.now() + 50), core.now() - t0 } end)
    l:spawn(function() got.late = { hostshare.wait(e, core.now() + 5000), core.now() - t0 } end)
    l:spawn(function()
      loop.sleep(150)
      hostshare.finish(e, { status = "complete" })
    end)
    l:run()
    assert.is_false(got.early[1])
    assert.is_true(got.early[2] >= 45 and got.early[2] < 140, got.early[2])
    assert.is_true(got.late[1])
    assert.is_true(got.late[2] >= 140 and got.late[2] < 1000, got.late[2])
    assert.is_true(l:stats().turns < 20)
    -- a wait after finish returns at once
    assert.is_true(hostshare.wait(e, core.now()))
  end)

  it("computes a value once per entry; the others get copies with its time", function()
    local e = hostshare.open(hostshare.new(), "k", 0)
    local calls = 0
    local l = loop.new()
    local out = {}
    for i = 1, 3 do
      l:spawn(function()
        out[i] = { hostshare.once(e, "tls_versions", core.now() + 5000, function()
          calls = calls + 1
          loop.sleep(50)
          return { status = "tested", versions = { { version = "TLSv1.3" } } }
        end, 1234.5) }
      end)
    end
    l:run()
    assert.equal(1, calls)
    assert.is_true(out[1][3])
    for i = 2, 3 do
      assert.is_false(out[i][3])
      assert.equal(1234.5, out[i][2])
      assert.same(out[1][1], out[i][1])
    end
    out[2][1].versions[1].version = "changed"
    assert.equal("TLSv1.3", out[3][1].versions[1].version)
  end)
end)

describe("loop.event #unit", function()
  it("wakes every waiter at set(); a waiter whose deadline passed first is not woken twice", function()
    local ev = loop.event()
    local l = loop.new()
    local got = {}
    l:spawn(function() got[1] = ev:wait(core.now() + 20) end)
    l:spawn(function() got[2] = ev:wait(core.now() + 5000) end)
    l:spawn(function() got[3] = ev:wait(core.now() + 5000) end)
    l:spawn(function()
      loop.sleep(60)
      ev:set()
      ev:set()
    end)
    local t0 = core.now()
    local errs = l:run()
    assert.same({}, errs)
    assert.same({ false, true, true }, got)
    assert.is_true(core.now() - t0 < 1000)
    assert.is_true(ev:wait(core.now()))
    assert.equal(0, l:stats().waiting)
  end)

  it("outside a task: true when set, false at once otherwise", function()
    local ev = loop.event()
    local t0 = core.now()
    assert.is_false(ev:wait(core.now() + 1000))
    assert.is_true(core.now() - t0 < 100)
    ev:set()
    assert.is_true(ev:wait(core.now() + 1000))
    assert.has_error(function() loop.event():wait("soon") end)
  end)
end)

-- a host dialog's result as smtp records it, for two domains' copies
local function host_result()
  local tr = {
    { t_ms = 0, dir = "-", line = "connected" },
    { t_ms = 1, dir = "S", line = "220 mx.share.test ESMTP" },
    { t_ms = 2, dir = "C", line = "MAIL FROM:<mxprobe@example.net>" },
    { t_ms = 3, dir = "S", line = "250 2.1.0 Ok" },
    { t_ms = 4, dir = "C", line = "RCPT TO:<mxprobe-relay-test@example.net>" },
    { t_ms = 5, dir = "S", line = "554 5.7.1 Relay access denied" },
    { t_ms = 6, dir = "C", line = "RCPT TO:<postmaster@a.test>" },
    { t_ms = 7, dir = "S", line = "250 2.1.5 Ok" },
    { t_ms = 8, dir = "C", line = "RSET" },
    { t_ms = 9, dir = "S", line = "250 2.0.0 Ok" },
    { t_ms = 10, dir = "C", line = "QUIT" },
    { t_ms = 11, dir = "S", line = "221 2.0.0 Bye" },
  }
  local function phase(cmd, line, code, text)
    return { status = "ok", command = cmd, line = line, reply = { code = code, lines = { text } }, time_ms = 1 }
  end
  return {
    status = "complete", time_ms = 12, transcript = tr, source = "127.0.0.1:4000",
    connect = { status = "ok", time_ms = 0.1 },
    relay = { status = "tested",
      mail_from = phase("MAIL", "MAIL FROM:<mxprobe@example.net>", 250, "2.1.0 Ok"),
      rcpt_external = phase("RCPT", "RCPT TO:<mxprobe-relay-test@example.net>", 554, "5.7.1 Relay access denied"),
      rcpt_control = phase("RCPT", "RCPT TO:<postmaster@a.test>", 250, "2.1.5 Ok"),
      rset = phase("RSET", "RSET", 250, "2.0.0 Ok") },
    quit = phase("QUIT", "QUIT", 221, "2.0.0 Bye"),
  }
end

local function entry_of(result)
  local e = hostshare.open(hostshare.new(), "k", 1796500000.5)
  e.ranges, e.ctl_path, e.ctl_start = { main = { 7, 8 } }, "main", 100
  hostshare.finish(e, result)
  return e
end

local function req_of(domain, control, code, extra)
  local r = {
    domain = domain, control = control, txn = { n = 3 }, source = "127.0.0.1:5000", session_start = 1100,
    time_ms = 20,
    lines = { { t_ms = 15, dir = "C", line = "RCPT TO:<postmaster@" .. domain .. ">" },
              { t_ms = 16, dir = "S", line = code .. " reply" } },
    phase = { status = "ok", command = "RCPT", line = "RCPT TO:<postmaster@" .. domain .. ">",
              reply = { code = code, lines = { "reply" } } },
  }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function lines_of(s)
  local out = {}
  for _, x in ipairs(s.transcript) do out[#out + 1] = x.dir .. " " .. x.line end
  return out
end

describe("gather.smtp.domain_copy #unit", function()
  it("gives each domain the host dialog with its own control RCPT only, in the host's place", function()
    local e = entry_of(host_result())
    local b = smtp.domain_copy(e, req_of("b.test", "host-dialog", 250))
    assert.same({
      "- connected", "S 220 mx.share.test ESMTP", "C MAIL FROM:<mxprobe@example.net>", "S 250 2.1.0 Ok",
      "C RCPT TO:<mxprobe-relay-test@example.net>", "S 554 5.7.1 Relay access denied",
      "C RCPT TO:<postmaster@b.test>", "S 250 reply", "C RSET", "S 250 2.0.0 Ok", "C QUIT", "S 221 2.0.0 Bye",
    }, lines_of(b))
    assert.equal("RCPT TO:<postmaster@b.test>", b.relay.rcpt_control.line)
    assert.equal("complete", b.status)
    local s, shared = smtp.domain_copy(e, req_of("c.test", "batch", 250))
    assert.same({ at = 1796500000.5, host_dialog = false, control = "batch", size = 3,
                  batch = { source = "127.0.0.1:5000", time_ms = 20 } }, shared)
    -- the batch session's lines count from the host dialog's start
    assert.same({ t_ms = 1000, dir = "-", line = "control RCPT in a batch session from 127.0.0.1:5000" },
      s.transcript[7])
    assert.equal(1015, s.transcript[8].t_ms)
    s.shared = shared
    local ok, errs = S.validate(s, smtp.schema)
    assert.is_true(ok, table.concat(errs or {}, "; "))
    s.shared.control = "neither"
    assert.is_nil((S.validate(s, smtp.schema)))
  end)

  it("makes copies that share no table: changing one domain's never changes another's", function()
    local e = entry_of(host_result())
    local b = smtp.domain_copy(e, req_of("b.test", "host-dialog", 250))
    local c = smtp.domain_copy(e, req_of("c.test", "host-dialog", 250))
    b.relay.rcpt_external.reply.lines[1] = "changed"
    b.transcript[1].line = "changed"
    b.connect.status = "changed"
    assert.equal("5.7.1 Relay access denied", c.relay.rcpt_external.reply.lines[1])
    assert.equal("connected", c.transcript[1].line)
    assert.equal("ok", c.connect.status)
    assert.equal("5.7.1 Relay access denied", e.result.relay.rcpt_external.reply.lines[1])
    local seen = {}
    local function walk(t)
      seen[t] = true
      for _, v in pairs(t) do if type(v) == "table" then walk(v) end end
    end
    walk(b)
    local function shares(t)
      if seen[t] then return true end
      for _, v in pairs(t) do if type(v) == "table" and shares(v) then return true end end
      return false
    end
    assert.is_false(shares(c))
  end)

  it("records an RCPT the batch could not send as a lone dialog stopped there; no RCPT reached: none", function()
    local e = entry_of(host_result())
    local r = req_of("d.test", "host-dialog", 250)
    r.phase = { status = "closed", command = "RCPT", line = "RCPT TO:<postmaster@d.test>",
                error = "not sent: an earlier RCPT was answered 421 4.7.0 bye" }
    r.lines = {}
    local d = smtp.domain_copy(e, r)
    assert.equal("closed", d.status)
    assert.equal("rcpt_control", d.stopped_at)
    assert.equal("closed", d.relay.status)
    assert.is_nil(d.relay.rset)
    assert.is_nil(d.quit)
    local r421 = req_of("f.test", "host-dialog", 421)
    local f = smtp.domain_copy(e, r421)
    assert.equal("rejected", f.status)
    assert.equal("rejected", f.relay.status)
    -- the host dialog never reached RCPT: the copy has no control RCPT
    local res = host_result()
    res.relay.rcpt_control = nil
    local e2 = hostshare.open(hostshare.new(), "k", 1)
    e2.ranges = {}
    hostshare.finish(e2, res)
    local g, shared = smtp.domain_copy(e2, nil)
    assert.is_nil(g.relay.rcpt_control)
    assert.same({ at = 1, host_dialog = false }, shared)
  end)
end)
