-- mxprobe's safety promises, checked against the lab's real Postfix.
local mxprobe = require "mxprobe"
local lab = require "support.lab"
local loop = require "mxprobe.loop"

local MAILLOG = "spec/lab/state/postfix/maillog"

local function read_log()
  local f = assert(io.open(MAILLOG))
  local s = f:read("a")
  f:close()
  return s
end

-- every "disconnect from" line Postfix wrote, with its command counts
local function disconnects(log)
  local out = {}
  for line in log:gmatch("[^\n]+") do
    if line:find("disconnect from", 1, true) then out[#out + 1] = line end
  end
  return out
end

describe("safety promises #integration", function()
  it("never sends DATA: Postfix's own command counts show none", function()
    -- the open relay would accept a message if we sent one: the place to look
    local list = assert(mxprobe.probe_many({ "openrelay.example.test", "good.example.test",
      "greylist.example.test" }, lab.options()))
    assert.equal(250, list[1].targets[1].relay.rcpt_external.reply.code)
    -- postlogd writes the log a moment after the sessions end
    local with_data, with_rcpt
    for _ = 1, 50 do
      with_data, with_rcpt = 0, 0
      for _, l in ipairs(disconnects(read_log())) do
        if l:find(" rcpt=", 1, true) then with_rcpt = with_rcpt + 1 end
        if l:find(" data=", 1, true) then with_data = with_data + 1 end
      end
      if with_rcpt >= 4 then break end
      loop.sleep(100)
    end
    -- the command summary this relies on is there for our relay tests
    assert.is_true(with_rcpt >= 4)
    assert.equal(0, with_data)
    -- and Postfix never queued a message from us
    assert.is_nil(read_log():find("message-id=", 1, true))
  end)

  -- postscreen (127.0.9.1) lets one client hold 2 connections, and its 2 s
  -- greeting makes the connections of concurrent probes overlap
  local function throttled_count(list)
    local n = 0
    for _, f in ipairs(list) do
      local t = f.targets[1]
      if t.banner and t.banner.reply and t.banner.reply.code == 421 then n = n + 1 end
    end
    return n
  end
  local function queries(n)
    local q = {}
    for i = 1, n do q[i] = "postscreen.example.test" end
    return q
  end

  it("keeps to --per-address 2: six probes of one address at once draw no 421", function()
    local list = assert(mxprobe.probe_many(queries(6), lab.options { per_address = 2 }))
    assert.equal(0, throttled_count(list))
    for _, f in ipairs(list) do assert.equal("complete", f.targets[1].status) end
  end)

  it("shows what the cap prevents: with --per-address 6 the server answers 421", function()
    local list = assert(mxprobe.probe_many(queries(6), lab.options { per_address = 6 }))
    assert.is_true(throttled_count(list) > 0)
  end)
end)
