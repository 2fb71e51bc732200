-- poller_spec.lua -- core.poller(): epoll with one-shot arming. No sockets:
-- the descriptors are pipes to child processes (io.popen; their numbers
-- are found in /proc/<pid>/fd) and other pollers' own descriptors (an
-- epoll descriptor is readable while something armed in it is ready).
local core = require "mxprobe.core"

local function mypid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end
local PID = mypid()

-- descriptor -> link target ("pipe:[123]", ...) of this process, without
-- the pipe this listing itself is read through
local function fds()
  local p = assert(io.popen("readlink /proc/$$/fd/1; ls -l /proc/" .. PID .. "/fd 2>/dev/null"))
  local own = p:read("l")
  local out = {}
  for line in p:lines() do
    local fd, target = line:match(" (%d+) %-> (.*)$")
    if fd and target ~= own then out[tonumber(fd)] = target end
  end
  p:close()
  return out
end

-- io.popen(cmd, mode) and the number of its pipe in this process
local function pipe(cmd, mode)
  local before = fds()
  local f = assert(io.popen(cmd, mode))
  local found
  for fd, target in pairs(fds()) do
    if before[fd] == nil and target:match("^pipe:") then
      assert(found == nil, "two new pipes")
      found = fd
    end
  end
  assert(found, "no new pipe")
  return f, found
end

local NOT_A_FD = 987654

describe("core.poller #unit", function()
  it("creates an open poller with its own descriptor, closed idempotently", function()
    local p = core.poller()
    assert.matches("^mxprobe.poller %(fd %d+%)$", tostring(p))
    assert.equal("integer", math.type(p:fd()))
    assert.equal("anon_inode:[eventpoll]", fds()[p:fd()])
    local fd = p:fd()
    assert.equal(true, p:close())
    assert.equal(true, p:close())
    assert.equal("mxprobe.poller (closed)", tostring(p))
    assert.is_nil(fds()[fd])              -- the descriptor is closed
    assert.has_error(function() p:fd() end, "attempt to use a closed poller")
    assert.has_error(function() p:arm(0, 1) end, "attempt to use a closed poller")
    assert.has_error(function() p:wait(0) end, "attempt to use a closed poller")
    assert.has_error(function() p:disarm(0) end, "attempt to use a closed poller")
  end)

  it("closes through a to-be-closed variable", function()
    local outer, fd
    do
      local p <close> = core.poller()
      outer, fd = p, p:fd()
    end
    assert.equal("mxprobe.poller (closed)", tostring(outer))
    assert.is_nil(fds()[fd])
  end)

  it("raises on bad arguments", function()
    local p <close> = core.poller()
    assert.has_error(function() p:arm(-1, 1) end)
    assert.has_error(function() p:arm(2 ^ 40 // 1, 1) end)
    assert.has_error(function() p:arm(0, 4) end)
    assert.has_error(function() p:arm(0, -1) end)
    assert.has_error(function() p:arm("x", 1) end)
    assert.has_error(function() p:wait(0 / 0) end)
    assert.has_error(function() p:wait("soon") end)
    assert.has_error(function() p:wait(0, 0) end)
    assert.has_error(function() p:disarm(-1) end)
    assert.has_error(function() p.wait(io.stdout, 0) end)
  end)

  it("returns nil, msg, code when epoll refuses a descriptor", function()
    local p <close> = core.poller()
    local ok, msg, code = p:arm(NOT_A_FD, 1)
    assert.is_nil(ok)
    assert.equal("epoll arm 987654: Bad file descriptor", msg)
    assert.equal("error", code)
    assert.equal(true, p:disarm(NOT_A_FD))   -- best effort, no error
  end)

  it("waits its timeout when nothing is ready, and rounds a fraction up", function()
    local p <close> = core.poller()
    local t0 = core.now()
    local fds_, revs, n = p:wait(30)
    local took = core.now() - t0
    assert.equal(0, n)
    assert.same({}, fds_)
    assert.same({}, revs)
    assert.is_true(took >= 29.5 and took < 1000, took)
    t0 = core.now()
    assert.equal(0, select(3, p:wait(0.2)))
    assert.is_true(core.now() - t0 >= 0.2)
    t0 = core.now()
    assert.equal(0, select(3, p:wait(-5)))
    assert.is_true(core.now() - t0 < 20)
  end)

  it("reports a writable pipe once, then not until armed again", function()
    local p <close> = core.poller()
    local w, wfd = pipe("cat >/dev/null", "w")
    assert.equal(true, p:arm(wfd, 2))
    local fds_, revs, n = p:wait(1000)
    assert.equal(1, n)
    assert.equal(wfd, fds_[1])
    assert.equal(2, revs[1])
    -- one-shot: still writable, but disarmed
    assert.equal(0, select(3, p:wait(20)))
    assert.equal(true, p:arm(wfd, 2))        -- MOD of a disarmed entry
    assert.equal(1, select(3, p:wait(1000)))
    w:close()
  end)

  it("reports a readable pipe and only the events asked", function()
    local p <close> = core.poller()
    local r, rfd = pipe("exec sleep 0.3", "r")
    assert.equal(true, p:arm(rfd, 1))
    local t0 = core.now()
    assert.equal(0, select(3, p:wait(50)))   -- nothing written yet
    local fds_, revs, n = p:wait(5000)       -- the child exits: hangup
    assert.is_true(core.now() - t0 >= 250)
    assert.equal(1, n)
    assert.equal(rfd, fds_[1])
    assert.equal(4, revs[1] & 4)
    r:close()
    local r2, rfd2 = pipe("printf x; exec sleep 1", "r")
    assert.equal(true, p:arm(rfd2, 2))       -- writable never, on a read end
    assert.equal(0, select(3, p:wait(100)))
    assert.equal(true, p:arm(rfd2, 1))
    fds_, revs, n = p:wait(5000)
    assert.equal(1, n)
    assert.equal(rfd2, fds_[1])
    assert.equal(1, revs[1])
    assert.equal("x", r2:read(1))
    r2:close()
  end)

  it("forgets a disarmed descriptor", function()
    local p <close> = core.poller()
    local w, wfd = pipe("cat >/dev/null", "w")
    assert.equal(true, p:arm(wfd, 2))
    assert.equal(true, p:disarm(wfd))
    assert.equal(0, select(3, p:wait(20)))
    assert.equal(true, p:disarm(wfd))        -- not in the set: ignored
    w:close()
  end)

  it("caps the events of one wait at max and returns the rest next time", function()
    local p <close> = core.poller()
    local w1, fd1 = pipe("cat >/dev/null", "w")
    local w2, fd2 = pipe("cat >/dev/null", "w")
    assert(p:arm(fd1, 3))
    assert(p:arm(fd2, 3))
    local fds_, revs, n = p:wait(1000, 1)
    assert.equal(1, n)
    local first = fds_[1]
    assert.equal(2, revs[1])
    local fds2, revs2, n2 = p:wait(1000)
    assert.equal(1, n2)
    assert.equal(fds_, fds2)                 -- the same, reused table
    assert.equal(revs, revs2)
    assert.same(first == fd1 and { fd2 } or { fd1 }, fds2)
    assert.equal(0, select(3, p:wait(0)))
    assert.same({}, fds2)                    -- nothing left over from before
    assert.same({}, revs2)
    w1:close()
    w2:close()
  end)

  it("arms a descriptor number that was closed and reused", function()
    local p <close> = core.poller()
    local q = core.poller()
    local n = q:fd()
    assert.equal(true, p:arm(n, 1))
    q:close()                                -- leaves p's set with its close
    local q2 <close> = core.poller()
    assert.equal(n, q2:fd())                 -- the lowest free number again
    assert.equal(true, p:arm(n, 1))          -- MOD fails ENOENT, ADD works
    -- q2 becomes readable when something armed in it is ready
    local w, wfd = pipe("cat >/dev/null", "w")
    assert.equal(true, q2:arm(wfd, 2))
    local fds_, revs, k = p:wait(1000)
    assert.equal(1, k)
    assert.equal(n, fds_[1])
    assert.equal(1, revs[1])
    w:close()
  end)

  it("reports the limits it was built with", function()
    assert.equal(256, core.limits.poll_events_max)
    assert.equal(3600000, core.limits.poll_wait_max_ms)
  end)
end)
