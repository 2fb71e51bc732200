-- --workers N without any process or socket: the coordinator <-> worker
-- protocol as it is parsed, and the slot broker's counters and queues.
local workers = require "mxprobe.cli.workers"
local broker = require "mxprobe.broker"

describe("workers.parse", function()
  it("reads every message a worker sends", function()
    assert.same({ t = "F", id = 17, body = '{"schema":"mxprobe.facts/2"}' },
      workers.parse('F 17 {"schema":"mxprobe.facts/2"}', "worker"))
    assert.same({ t = "A", key = "127.0.1.1|25" }, workers.parse("A 127.0.1.1|25", "worker"))
    assert.same({ t = "R", key = "2001:db8::1|2525" }, workers.parse("R 2001:db8::1|2525", "worker"))
    -- bulk CPU: a line the worker rendered, with its verdict ("-": a facts line)
    assert.same({ t = "J", id = 5, verdict = "warning", body = '{"schema":"mxprobe.result/1"}' },
      workers.parse('J 5 warning {"schema":"mxprobe.result/1"}', "worker"))
    assert.same({ t = "J", id = 6, verdict = "-", body = '{"schema":"mxprobe.facts/2"}' },
      workers.parse('J 6 - {"schema":"mxprobe.facts/2"}', "worker"))
  end)

  it("reads every message a coordinator sends", function()
    assert.same({ t = "O", body = '{"port":25}' }, workers.parse('O {"port":25}', "coordinator"))
    assert.same({ t = "Q", id = 3, query = "mx.example.org:2525" },
      workers.parse("Q 3 mx.example.org:2525", "coordinator"))
    assert.same({ t = "G", key = "::1|25" }, workers.parse("G ::1|25", "coordinator"))
    assert.same({ t = "E" }, workers.parse("E", "coordinator"))
  end)

  it("refuses a malformed line with a reason, whatever it holds", function()
    local bad = {
      { "", "not a message" },
      { "F", "not a message" },
      { "E", "not a message" },                       -- only a coordinator ends a run
      { "F x {}", "F: expected an id and a JSON object" },
      { "F 1 [1]", "F: expected an id and a JSON object" },
      { "F 1234567890123456 {}", "F: expected an id and a JSON object" },   -- id over 15 digits
      { "A 127.0.0.1", "A: not an address|port key" },
      { "A 127.0.0.1|25 x", "A: not an address|port key" },
      { "R evil.example|25", "R: not an address|port key" },
      { "A " .. ("1"):rep(80) .. "|25", "A: not an address|port key" },
      { "Q 1 example.org", "unknown message Q" },        -- a worker never sends queries
      { "X 1", "unknown message X" },
      { "A 127.0.0.1|25\r", "a line break inside a message" },
      { "f 1 {}", "not a message" },
      { "J 1 {}", "J: expected an id, a verdict and a JSON object" },
      { "J 1 fine {}", "J: expected an id, a verdict and a JSON object" },      -- not a verdict
      { "J 1 ok [1]", "J: expected an id, a verdict and a JSON object" },
      { "J x ok {}", "J: expected an id, a verdict and a JSON object" },
      { "J 1 ok {}\n", "a line break inside a message" },
    }
    for _, c in ipairs(bad) do
      local m, why = workers.parse(c[1], "worker")
      assert.is_nil(m, c[1])
      assert.equal(c[2], why, c[1])
    end
    local m, why = workers.parse("Q 1 ", "coordinator")
    assert.is_nil(m)
    assert.equal("Q: expected an id and a query", why)
    m, why = workers.parse("O [1]", "coordinator")
    assert.is_nil(m)
    assert.equal("O: expected a JSON object", why)
    m, why = workers.parse("F 1 {}", "coordinator")
    assert.is_nil(m)
    assert.equal("unknown message F", why)
    m, why = workers.parse("J 1 ok {}", "coordinator")
    assert.is_nil(m)
    assert.equal("unknown message J", why)
    assert.has_error(function() workers.parse("E", "someone") end)
  end)
end)

describe("mxprobe.broker", function()
  -- a broker whose grants are recorded as "who key" strings
  local function new(cap, interval, clock)
    local log = {}
    local b = broker.new { cap = cap, interval = interval, now = clock and function() return clock.t end,
      grant = function(who, key) log[#log + 1] = who .. " " .. key end }
    return b, log
  end

  it("grants at most cap slots of one key, then queues first come first served", function()
    local b, log = new(2)
    b:acquire("w1", "a|25")
    b:acquire("w2", "a|25")
    b:acquire("w3", "a|25")
    b:acquire("w1", "a|25")
    b:acquire("w4", "b|25")   -- another address: its own cap
    assert.same({ "w1 a|25", "w2 a|25", "w4 b|25" }, log)
    assert.same({ held = 3, queued = 2, keys = 2 }, b:stats())
    assert.is_true(b:release("w2", "a|25"))
    assert.same("w3 a|25", log[4])
    assert.is_true(b:release("w1", "a|25"))
    assert.same("w1 a|25", log[5])
    assert.equal(5, #log)
    assert.same({ held = 3, queued = 0, keys = 2 }, b:stats())
  end)

  it("refuses a release of a slot not held (a broken worker)", function()
    local b = new(1)
    assert.same({ nil, "release of a slot not held: a|25" }, { b:release("w1", "a|25") })
    b:acquire("w1", "a|25")
    assert.is_nil((b:release("w2", "a|25")))
    assert.is_true(b:release("w1", "a|25"))
    assert.is_nil((b:release("w1", "a|25")))
  end)

  it("releases a dropped worker's slots and skips its queued requests", function()
    local b, log = new(1)
    b:acquire("w1", "a|25")
    b:acquire("w1", "b|25")
    b:acquire("w2", "a|25")
    b:acquire("w1", "a|25")   -- w1 queued again behind w2
    b:acquire("w3", "a|25")
    b:acquire("w3", "b|25")
    b:drop("w1")
    -- a|25 goes to w2, b|25 to w3; w1's queued request is never granted
    assert.same({ "w1 a|25", "w1 b|25", "w2 a|25", "w3 b|25" }, log)
    assert.is_true(b:release("w2", "a|25"))
    assert.same("w3 a|25", log[5])
    assert.equal(5, #log)
    assert.is_nil((b:release("w1", "b|25")))
  end)

  it("forgets a key nobody holds or waits for", function()
    local b = new(2)
    for i = 1, 1000 do
      b:acquire("w", "k" .. i .. "|25")
      b:release("w", "k" .. i .. "|25")
    end
    assert.same({ held = 0, queued = 0, keys = 0 }, b:stats())
  end)

  it("keeps its queues O(1): 20000 waiters on one key are granted in order", function()
    local order, n = {}, 0
    local b = broker.new { cap = 1, grant = function(who) n = n + 1 order[n] = who end }
    for i = 1, 20000 do b:acquire(i, "a|25") end
    for i = 1, 20000 do assert.is_true(b:release(i, "a|25")) end
    assert.equal(20000, n)
    for i = 1, 20000 do if order[i] ~= i then error("out of order at " .. i) end end
  end)

  it("spaces the grants of one key by the interval (--rate-per-address)", function()
    local clock = { t = 1000 }
    local b, log = new(5, 2000, clock)
    b:acquire("w1", "a|25")
    b:acquire("w2", "a|25")
    b:acquire("w3", "b|25")   -- another key is not held back
    assert.same({ "w1 a|25", "w3 b|25" }, log)
    assert.equal(3000, b:next_due())
    clock.t = 2999
    b:tick()
    assert.equal(2, #log)
    clock.t = 3000
    b:tick()
    assert.same("w2 a|25", log[3])
    assert.is_nil(b:next_due())
    -- a release does not bypass the spacing
    b:acquire("w4", "a|25")
    assert.is_true(b:release("w1", "a|25"))
    assert.equal(3, #log)
    assert.equal(5000, b:next_due())
  end)

  it("lets a grant re-enter the broker", function()
    local b
    local log = {}
    b = broker.new { cap = 1, grant = function(who, key)
      log[#log + 1] = who
      if who == "w1" then b:release("w1", key) end   -- gives it straight back
    end }
    b:acquire("w2", "a|25")
    b:release("w2", "a|25")
    b:acquire("w1", "a|25")
    b:acquire("w3", "a|25")
    assert.same({ "w2", "w1", "w3" }, log)
  end)
end)
