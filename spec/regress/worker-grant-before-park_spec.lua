-- Bug (issue 10, found by the hostshare bench under load): a worker asked
-- the coordinator for a slot ("A key") and only then parked on its
-- semaphore; but sending can yield -- the channel is full and the asking
-- task is the one flushing everybody's lines -- and the coordinator's
-- "G key" could be read in that time. The worker counted parked tasks, saw
-- none, said "a slot granted that nobody asked for" and stopped: 256 of
-- 10,000 bench queries came back as could-not-test. A request now counts
-- as asked before its line is sent, and an early grant waits for it.
local loop = require "mxprobe.loop"
local workers = require "mxprobe.cli.workers"

describe("regress: a slot grant read while the asking worker task still flushes #unit", function()
  it("is kept for the asking task, which then holds the slot", function()
    local client
    local sent = {}
    local function send(line)
      sent[#sent + 1] = line
      -- the coordinator answers at once, while this task still flushes
      if line:match("^A ") then
        loop.current():spawn(function() assert.is_true(client.grant(line:sub(3))) end)
      end
      loop.sleep(5)
      return true
    end
    client = workers.slot_client(send, function() return nil end)
    local held = false
    local l = loop.new()
    l:spawn(function()
      local slot = client.provider("127.0.0.1", 25)
      slot.acquire()
      held = true
      slot.release()
    end)
    assert.same({}, l:run())
    assert.is_true(held)
    assert.same({ "A 127.0.0.1|25", "R 127.0.0.1|25" }, sent)
    assert.equal(0, client.slots["127.0.0.1|25"].asked)
  end)

  it("still refuses a grant nobody asked for", function()
    local client = workers.slot_client(function() return true end, function() return nil end)
    assert.is_false(client.grant("127.0.0.1|25"))
    local l = loop.new()
    l:spawn(function()
      local slot = client.provider("127.0.0.1", 25)
      assert.is_false(client.grant("127.0.0.1|25"))   -- known key, nothing asked
      slot.release()
    end)
    assert.same({}, l:run())
  end)

  it("raises in the asking task when the coordinator went away during the send", function()
    local dead
    local client = workers.slot_client(function() dead = "it closed the channel" return nil end,
      function() return dead end)
    local err
    local l = loop.new()
    l:spawn(function()
      local ok, e = pcall(client.provider("127.0.0.1", 25).acquire)
      assert.is_false(ok)
      err = e
    end)
    assert.same({}, l:run())
    assert.equal("the coordinator is gone: it closed the channel", err)
  end)
end)
