-- mxprobe's safety promises, checked against the lab's real Postfix: what
-- our facts say we sent, and what Postfix's own log says it received.
local mxprobe = require "mxprobe"
local lab = require "support.lab"
local loop = require "mxprobe.loop"
local core = require "mxprobe.core"

local read_log = lab.maillog

-- the log from byte `from` on: what Postfix wrote since then
local function log_since(from)
  return read_log():sub(from + 1)
end

-- Waits (at most 5 s: postlogd writes a moment after a session ends)
-- until count(log since `from`) reaches n; returns that log.
local function wait_log(from, count, n)
  local log
  for _ = 1, 50 do
    log = log_since(from)
    if count(log) >= n then break end
    loop.sleep(100)
  end
  return log
end

-- the command summaries of the smtpd "disconnect from" lines of a log, by
-- service (syslog_name lab-good1 ...): { ["lab-good1"] = {"ehlo=2 ...", ...} }
local function disconnects(log)
  local by, n = {}, 0
  for line in log:gmatch("[^\n]+") do
    local service, summary = line:match(" (lab%-[%w%-]+)/smtpd%[%d+%]: disconnect from %S+ (.*)$")
    if service then
      by[service] = by[service] or {}
      table.insert(by[service], summary)
      n = n + 1
    end
  end
  return by, n
end

-- the command lines (C) of a transcript, in order
local function sent(t)
  local out = {}
  for _, e in ipairs(t.smtp.transcript) do
    if e.dir == "C" then out[#out + 1] = e.line end
  end
  return out
end

-- let sessions of earlier specs reach the log before we mark where ours begin
local function mark()
  loop.sleep(300)
  return #read_log()
end

describe("safety promises #integration", function()
  it("never sends DATA: the relay test reaches RCPT and RSET, and Postfix's own command counts show no DATA",
    function()
      local from = mark()
      -- the open relay would accept a message if we sent one: the place to look
      local list = assert(mxprobe.probe_list({ "openrelay.example.test", "good.example.test",
        "greylist.example.test" }, lab.options()))
      assert.equal(250, list[1].targets[1].smtp.relay.rcpt_external.reply.code)

      -- what we sent, from our transcript: the whole relay test, then QUIT
      local function dialog(domain)
        return {
          "EHLO client.mxprobe.test", "STARTTLS", "EHLO client.mxprobe.test",
          "MAIL FROM:<mxprobe@example.net>", "RCPT TO:<mxprobe-relay-test@example.net>",
          "RCPT TO:<postmaster@" .. domain .. ">", "RSET", "QUIT",
        }
      end
      local targets = { list[1].targets[1], list[2].targets[1], list[2].targets[2], list[3].targets[1] }
      local domains = { "openrelay.example.test", "good.example.test", "good.example.test", "greylist.example.test" }
      assert.equal(1, #list[1].targets)
      assert.equal(2, #list[2].targets)
      assert.equal(1, #list[3].targets)
      for i, t in ipairs(targets) do
        assert.equal("complete", t.smtp.status, t.address)
        assert.equal("tested", t.smtp.relay.status, t.address)
        assert.same(dialog(domains[i]), sent(t))
      end

      -- what Postfix received, from its log: per target the main session,
      -- with RCPT and RSET, and one short session per TLS version (TLS
      -- posture: EHLO, STARTTLS, QUIT inside TLS when the version is
      -- accepted -- 1.2 and 1.3 here -- or the failed handshake for 1.0 and
      -- 1.1); none with MAIL or RCPT but the main one, none with DATA
      local by, n = disconnects(wait_log(from, function(l) return select(2, disconnects(l)) end, 20))
      assert.equal(20, n)
      local function sessions(main)
        local out = { main, "ehlo=1 starttls=1 quit=1 commands=3", "ehlo=1 starttls=1 quit=1 commands=3",
                      "ehlo=1 starttls=0/1 commands=1/2", "ehlo=1 starttls=0/1 commands=1/2" }
        table.sort(out)
        return out
      end
      for _, l in pairs(by) do table.sort(l) end
      assert.same(sessions("ehlo=2 starttls=1 mail=1 rcpt=2 rset=1 quit=1 commands=8"), by["lab-openrelay"])
      assert.same(sessions("ehlo=2 starttls=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=7/8"), by["lab-good1"])
      assert.same(sessions("ehlo=2 starttls=1 mail=1 rcpt=1/2 rset=1 quit=1 commands=7/8"), by["lab-good2"])
      assert.same(sessions("ehlo=2 starttls=1 mail=1 rcpt=0/2 rset=1 quit=1 commands=6/8"), by["lab-greylist"])
      -- and Postfix never queued a message from us
      assert.is_nil(log_since(from):find("message-id=", 1, true))
    end)

  -- postscreen (127.0.9.1) lets one client hold 2 connections, and its 2 s
  -- greeting makes the connections of concurrent probes overlap. It logs
  -- the client's port ("CONNECT from [127.0.0.1]:40312"), so each of our
  -- connections (smtp.source) can be found in its log.
  local function throttled(list)
    local out = {}
    for _, f in ipairs(list) do
      local t = f.targets[1].smtp
      if t.banner and t.banner.reply and t.banner.reply.code == 421 then out[#out + 1] = t.source end
    end
    table.sort(out)
    return out
  end
  local function queries(n)
    local q = {}
    for i = 1, n do q[i] = "postscreen.example.test" end
    return q
  end
  -- the client ends postscreen logged: every CONNECT, and those it refused
  local function postscreen(log)
    local connects, refused = {}, {}
    for line in log:gmatch("[^\n]+") do
      local ep = line:match("lab%-postscreen/postscreen%[%d+%]: CONNECT from %[([%d%.]+%]:%d+) to ")
      if ep then connects[#connects + 1] = ep:gsub("%]", "") end
      ep = line:match("lab%-postscreen/postscreen%[%d+%]: NOQUEUE: reject: CONNECT from "
        .. "%[([%d%.]+%]:%d+): too many connections")
      if ep then refused[#refused + 1] = ep:gsub("%]", "") end
    end
    table.sort(connects)
    table.sort(refused)
    return connects, refused
  end
  local function sources(list)
    local out = {}
    for i, f in ipairs(list) do out[i] = f.targets[1].smtp.source end
    table.sort(out)
    return out
  end

  -- the two specs below are about the main dialogs' connections: without
  -- the version dialogs (with them, 30 connections of 2 s each); the one
  -- after them counts those too
  it("keeps to --per-address 2: six probes of one address at once draw no 421", function()
    local from = mark()
    -- (hostshare off: six probes of one domain would share one dialog)
    local list = assert(mxprobe.probe_list(queries(6), lab.options { per_address = 2, tls_versions = false,
      share_hosts = false }))
    assert.same({}, throttled(list))
    for _, f in ipairs(list) do assert.equal("complete", f.targets[1].smtp.status) end
    local connects, refused = postscreen(wait_log(from, function(l) return #(postscreen(l)) end, 6))
    -- postscreen saw exactly our six connections, and refused none
    assert.same(sources(list), connects)
    assert.same({}, refused)
  end)

  it("shows what the cap prevents: with --per-address 6 the server answers 421 to all but two", function()
    local from = mark()
    local list = assert(mxprobe.probe_list(queries(6), lab.options { per_address = 6, tls_versions = false,
      share_hosts = false }))   -- hostshare off
    local got = throttled(list)
    assert.equal(4, #got)
    local connects, refused = postscreen(wait_log(from, function(l) return #(postscreen(l)) end, 6))
    assert.same(sources(list), connects)
    -- the probes that recorded a 421 are the connections postscreen refused
    assert.same(refused, got)
  end)

  -- The version dialogs (TLS posture) go through the same cap: with
  -- --per-address 1 the main dialog and the four version dialogs of one
  -- probe follow one another, each behind postscreen's 2 s greeting. (With
  -- two at a time, postscreen sometimes answers 421 "too many connections"
  -- to a connection opened right after one of ours closed: its count of a
  -- client's connections lags the close of one handed to smtpd. That is
  -- the server's count, not two connections of ours at once.)
  it("keeps to --per-address 1 with the version dialogs: five connections one after another, no 421", function()
    local from = mark()
    local t0 = core.now()
    local list = assert(mxprobe.probe_list(queries(1), lab.options { per_address = 1 }))
    local elapsed = core.now() - t0
    assert.same({}, throttled(list))
    local t = list[1].targets[1]
    assert.equal("complete", t.smtp.status)
    assert.equal("tested", t.tls_versions.status)
    for _, v in ipairs(t.tls_versions.versions) do
      -- every version dialog reached its handshake: none was refused
      assert.truthy(v.status == "accepted" or v.status == "refused", v.version .. " " .. v.status)
    end
    -- five greetings of 2 s, one after another
    assert.is_true(elapsed >= 10000, elapsed)
    local connects, refused = postscreen(wait_log(from, function(l) return #(postscreen(l)) end, 5))
    assert.equal(5, #connects)
    assert.same({}, refused)
    assert.truthy(({ [connects[1]] = true, [connects[2]] = true, [connects[3]] = true, [connects[4]] = true,
      [connects[5]] = true })[t.smtp.source])
  end)
end)
