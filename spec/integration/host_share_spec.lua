-- One host-level probe per MX address per run (issue 10 item 3): 200 lab
-- domains (share001 ... share200.example.test) whose MX is one host
-- (mx.share.example.test, the lab Postfix service lab-share on 127.0.70.1),
-- counted on the server side in Postfix's own log; then the hostile peer
-- (127.0.70.1:2525, DNS on 127.0.70.53:5300) for what Postfix does not do
-- here: a recipient limit (452) and a 421 in the middle of the RCPTs.
local core = require "mxprobe.core"
local mxprobe = require "mxprobe"
local facts_io = require "mxprobe.facts"
local smtp = require "mxprobe.gather.smtp"
local lab = require "support.lab"
local loop = require "mxprobe.loop"
local C = require "support.cli"
local H = require "hostile.peer"

local N = 200
local SERVICE = "lab-share"

local function names(n)
  local out = {}
  for i = 1, n do out[i] = ("share%03d.example.test"):format(i) end
  return out
end

local function mark()
  loop.sleep(300)   -- sessions of earlier specs reach the log first
  return #lab.maillog()
end

-- the lab-share sessions logged since `from`, once n of them are there
-- (Postfix logs a disconnect a moment after it)
local function sessions(from, n)
  local d
  for _ = 1, 50 do
    d = lab.disconnects(lab.maillog():sub(from + 1), SERVICE)
    if #d >= n then break end
    loop.sleep(100)
  end
  loop.sleep(300)
  return lab.disconnects(lab.maillog():sub(from + 1), SERVICE)
end

-- "rcpt=12/13" or "rcpt=5": RCPT commands the server saw and accepted
local function rcpts(summaries)
  local seen, accepted = 0, 0
  for _, s in ipairs(summaries) do
    local ok, all = s:match("rcpt=(%d+)/(%d+)")
    if not ok then ok = s:match("rcpt=(%d+)") all = ok end
    seen, accepted = seen + tonumber(all or 0), accepted + tonumber(ok or 0)
  end
  return seen, accepted
end

-- the control RCPTs (postmaster@...) a dialog's transcript shows sent,
-- each with the reply code on the line after it
local function control_lines(s)
  local out, tr = {}, s.transcript
  for i, e in ipairs(tr) do
    local who = e.dir == "C" and e.line:match("postmaster@([%w%.%-]+)")
    if who then out[#out + 1] = who .. " " .. (tr[i + 1] and tr[i + 1].line:match("^%d%d%d") or "-") end
  end
  return out
end

-- every domain's facts: valid, its own control RCPT answered 250 by the
-- server, only its own control lines in its transcript
local function assert_each_own(list)
  local by, host, copies = {}, 0, { tls_versions = 0, rdns = 0 }
  for _, f in ipairs(list) do
    local ok, errs = facts_io.validate(f)
    assert(ok, f.query .. ": " .. table.concat(errs or {}, "; "))
    assert.is_nil(by[f.domain], "twice: " .. f.domain)
    by[f.domain] = true
    assert.equal(1, #f.targets)
    local s = f.targets[1].smtp
    assert.equal("complete", s.status, f.domain)
    local ctl = s.relay.rcpt_control
    assert.equal("RCPT TO:<postmaster@" .. f.domain .. ">", ctl.line)
    assert.equal(250, ctl.reply.code, f.domain)
    assert.equal(554, s.relay.rcpt_external.reply.code)
    assert.same({ f.domain .. " 250" }, control_lines(s))
    if s.shared and s.shared.host_dialog then host = host + 1 end
    if not (s.shared and s.shared.host_dialog) and s.shared then
      assert.is_true(s.shared.control == "host-dialog" or s.shared.control == "batch")
    end
    local tv = f.targets[1].tls_versions
    assert.equal("tested", tv.status)
    for k in pairs(copies) do
      if f.targets[1][k].shared then copies[k] = copies[k] + 1 end
    end
  end
  return by, host, copies
end

describe("hostshare: 200 domains on one lab MX host #integration", function()
  local list200 = names(N)
  local path = C.list_file(list200)
  teardown(function() os.remove(path) end)

  local function run(extra, file)
    local out, err, st = lab.cli(lab.lab_args() .. " " .. extra .. " -f " .. file .. " --format facts")
    assert.equal(0, st, err)
    local list = C.json_lines(out)
    return list
  end

  it("with --workers 1: 1 host dialog, 4 version dialogs, at most 4 batch sessions; each domain its own RCPT",
    function()
      local from = mark()
      local t0 = core.now()
      local list = run("--workers 1", path)
      local wall = core.now() - t0
      assert.equal(N, #list)
      local by, _, copies = assert_each_own(list)
      for _, d in ipairs(list200) do assert.is_true(by[d], d) end
      -- the version dialogs and the reverse DNS: taken once, 199 copies
      assert.same({ tls_versions = N - 1, rdns = N - 1 }, copies)
      -- the bound: 1 host dialog + 4 TLS version dialogs + ceil(200/50) batches
      local bound = 1 + 4 + math.ceil(N / smtp.RCPT_BATCH_MAX)
      local d = sessions(from, 6)
      assert.is_true(#d >= 6 and #d <= bound, #d .. " sessions: " .. table.concat(d, " | "))
      -- the server saw one control RCPT per domain and the one outside RCPT
      local seen, accepted = rcpts(d)
      assert.equal(N + 1, seen)
      assert.equal(N, accepted)
      -- the four version dialogs: no MAIL, no RCPT
      local versions = 0
      for _, s in ipairs(d) do
        if not s:find("mail=", 1, true) then versions = versions + 1 end
      end
      assert.equal(4, versions)
      -- never DATA; each session ends with QUIT
      assert.is_nil(lab.maillog():sub(from + 1):find(SERVICE .. "/smtpd%[%d+%]: [^\n]*DATA"))
      for _, s in ipairs(d) do
        if s:find("mail=", 1, true) then assert.matches("rset=%d+ quit=1 ", s) end
      end
      -- 200 domains, with the batch session's 2 s linger, in well under 30 s
      assert.is_true(wall < 30000, wall)
    end)

  it("with the default workers: the same bound per worker", function()
    local workers = core.ncpu()
    local from = mark()
    local list = run("", path)
    assert.equal(N, #list)
    assert_each_own(list)
    local d = sessions(from, 6)
    local bound = workers * (1 + 4 + math.ceil(N / smtp.RCPT_BATCH_MAX))
    assert.is_true(#d >= 6 and #d <= bound, #d .. " sessions for " .. workers .. " workers")
    local seen, accepted = rcpts(d)
    -- each worker's host dialog sends the outside RCPT once
    assert.is_true(seen >= N + 1 and seen <= N + workers, seen)
    assert.equal(N, accepted)
  end)

  it("with --no-share-hosts: one dialog per domain (10 domains, no version dialogs)", function()
    local ten = C.list_file(names(10))
    local from = mark()
    local list = run("--workers 1 --no-share-hosts --no-tls-versions", ten)
    assert.equal(10, #list)
    for _, f in ipairs(list) do
      local s = f.targets[1].smtp
      assert.is_nil(s.shared)
      assert.equal(250, s.relay.rcpt_control.reply.code)
    end
    local d = sessions(from, 10)
    assert.equal(10, #d)
    for _, s in ipairs(d) do
      assert.equal("ehlo=2 starttls=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=7/8", s)
    end
    -- and shared: the 10 in at most 2 sessions (the host dialog, a batch)
    from = mark()
    list = run("--workers 1 --no-tls-versions", ten)
    assert.equal(10, #list)
    d = sessions(from, 1)
    assert.is_true(#d >= 1 and #d <= 2, #d)
    local seen, accepted = rcpts(d)
    assert.equal(11, seen)
    assert.equal(10, accepted)
    os.remove(ten)
  end)

  it("domains whose postmaster the server refuses: a new session before Postfix's error limits", function()
    -- refused01 ... refused30: MX mx.share, not its destinations, so every
    -- control RCPT is a 554 -- an error to Postfix, which answers 1 s late
    -- after 10 of them and cuts the session (421) at 20
    local list30 = {}
    for i = 1, 30 do list30[i] = ("refused%02d.example.test"):format(i) end
    local file = C.list_file(list30)
    local from = mark()
    local t0 = core.now()
    local list = run("--workers 1 --no-tls-versions", file)
    local wall = core.now() - t0
    os.remove(file)
    assert.equal(30, #list)
    for _, f in ipairs(list) do
      local s = f.targets[1].smtp
      assert.equal("complete", s.status, f.domain)
      assert.equal(554, s.relay.rcpt_control.reply.code, f.domain)
      assert.same({ f.domain .. " 554" }, control_lines(s))
    end
    local log = lab.maillog():sub(from + 1)
    assert.is_nil(log:find("too many errors", 1, true))
    -- at most SESSION_REFUSALS_MAX refusals a session: 31 (30 + the outside
    -- RCPT) need at least 4 sessions; each ended with QUIT, none with a 421
    local d = sessions(from, 4)
    local seen, accepted = rcpts(d)
    assert.equal(31, seen)
    assert.equal(0, accepted)
    assert.is_true(#d >= math.ceil(31 / smtp.SESSION_REFUSALS_MAX) and #d <= 8, #d .. ": " .. table.concat(d, " | "))
    for _, x in ipairs(d) do assert.matches("quit=1 ", x) end
    -- no 1 s error delays: well under the 10+ s they would add
    assert.is_true(wall < 8000, wall)
  end)

  it("one domain alone: the facts carry no shared record", function()
    local f = assert(mxprobe.probe("share001.example.test", lab.options()))
    assert.is_nil(f.targets[1].smtp.shared)
    assert.is_nil(f.targets[1].tls_versions.shared)
    assert.is_true((facts_io.validate(f)))
  end)
end)

describe("hostshare on the hostile peer: recipient limits #hostile #integration", function()
  local ADDR, DNS = "127.0.70.1", "127.0.70.53:5300"
  local dns
  local domains = {}
  for i = 1, 8 do domains[i] = ("d%d.share.test"):format(i) end

  setup(function()
    dns = H.start("dns", DNS, "normal", "--a " .. ADDR .. " --mx mx.share.test", true)
  end)
  after_each(H.stop_all)
  teardown(function()
    H.stop_all()
    H.stop(dns)
  end)

  local function probe(fault)
    local peer = H.start("smtp", ADDR .. ":2525", fault, "--count 3")
    local t0 = core.now()
    local list = assert(mxprobe.probe_list(domains, H.options { resolver = DNS, port = 2525, tls_versions = false }))
    local ms = core.now() - t0
    local by = {}
    for _, f in ipairs(list) do
      H.check_common(f, ms)
      local ok, errs = facts_io.validate(f)
      assert(ok, f.domain .. ": " .. table.concat(errs or {}, "; "))
      by[f.domain] = f
    end
    return by, peer
  end

  it("452 after 3 RCPTs: a new transaction for the rest, every domain gets its answer, one connection", function()
    local by, peer = probe("rcpt-452")
    for _, d in ipairs(domains) do
      local s = by[d].targets[1].smtp
      assert.equal("complete", s.status, d)
      assert.equal(250, s.relay.rcpt_control.reply.code, d)
      -- its transcript: its own RCPT (a 452 first, when it was retried)
      local lines = control_lines(s)
      if #lines == 2 then
        assert.same({ d .. " 452", d .. " 250" }, lines)
      else
        assert.same({ d .. " 250" }, lines)
      end
    end
    assert.equal(1, #H.clients(peer))
    local mails, data = 0, 0
    for _, l in ipairs(H.lines(peer)) do
      if l:find("^MAIL") then mails = mails + 1 end
      if l:find("^DATA") then data = data + 1 end
    end
    -- 2 + 8 RCPTs (outside, own, 7 others) at 3 a transaction: 452 twice
    assert.equal(3, mails)
    assert.equal(0, data)
    assert.equal("QUIT", H.lines(peer)[#H.lines(peer)])
  end)

  it("421 in the middle of the RCPTs: the rest record it, nothing crashes, their verdicts are not ok", function()
    local by, peer = probe("rcpt-421")
    assert.equal(1, #H.clients(peer))
    local answered, closed, rejected = 0, 0, 0
    for _, d in ipairs(domains) do
      local f = by[d]
      local s = f.targets[1].smtp
      local ctl = s.relay.rcpt_control
      local j = mxprobe.judge(f)
      if ctl.reply and ctl.reply.code == 250 then
        answered = answered + 1
      elseif ctl.reply and ctl.reply.code == 421 then
        rejected = rejected + 1
        assert.equal("rejected", s.status)
        assert.equal("rcpt_control", s.stopped_at)
        assert.are_not.equal("ok", j.verdict, d)
      else
        closed = closed + 1
        assert.equal("closed", ctl.status)
        assert.matches("^not sent: an earlier RCPT was answered 421 ", ctl.error)
        assert.equal("closed", s.status)
        assert.equal("rcpt_control", s.stopped_at)
        assert.are_not.equal("ok", j.verdict, d)
      end
    end
    -- outside, own, one more: 3 RCPTs; the 4th is answered 421
    assert.equal(2, answered)
    assert.equal(1, rejected)
    assert.equal(5, closed)
  end)
end)
