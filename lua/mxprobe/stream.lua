-- mxprobe.stream: an SMTP conversation over a non-blocking socket, then
-- over TLS on the same socket after STARTTLS.
--
-- Every call takes a deadline (monotonic ms) and never waits past it. Every
-- byte read counts against a per-session cap. Replies are framed by the C
-- core (core.smtp_reply); bytes that arrive before we asked for them are
-- kept and counted (a server answering before the command is a fact).

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"

local M = {}

-- bytes one session may receive in all; a server past it is cut off
M.SESSION_BYTES_MAX = 1024 * 1024

local Stream = {}
Stream.__index = Stream

--- Connects to address:port; returns a stream, or nil, msg, code.
function M.connect(address, port, deadline)
  local sock, err, code = core.connect(address, port)
  if not sock then return nil, err, code end
  while true do
    local ok, why, c = sock:finish_connect()
    if ok then break end
    if ok == nil then
      sock:close()
      return nil, why, c
    end
    if not loop.wait(sock:fd(), loop.WRITE, deadline) then
      -- one last look: the connection may have completed at the deadline
      ok, why, c = sock:finish_connect()
      if ok then break end
      sock:close()
      if ok == nil then return nil, why, c end
      return nil, ("connect %s:%d: timed out"):format(address, port), "timeout"
    end
  end
  return setmetatable({
    sock = sock, io = sock, fd = sock:fd(),
    buf = "", pos = 1, bytes_in = 0, first_byte = nil,
  }, Stream)
end

-- One non-blocking read into the buffer, waiting as the io object asks.
function Stream:fill(deadline)
  while true do
    local data, why, code = self.io:recv(core.limits.recv_max)
    if data then
      self.bytes_in = self.bytes_in + #data
      self.first_byte = self.first_byte or core.now()
      if self.bytes_in > M.SESSION_BYTES_MAX then
        return nil, ("server sent more than %d bytes in one session"):format(M.SESSION_BYTES_MAX), "too-long"
      end
      if self.pos > 1 then
        self.buf, self.pos = self.buf:sub(self.pos), 1
      end
      self.buf = self.buf .. data
      return true
    end
    if data == nil then
      if code == "closed" then return nil, "connection closed by the server", "closed" end
      return nil, why, code
    end
    local events = why == "wantwrite" and loop.WRITE or loop.READ
    if not loop.wait(self.fd, events, deadline) then
      return nil, "timed out waiting for the server", "timeout"
    end
  end
end

--- Reads one complete reply {code, lines}; or nil, msg, code.
-- The partial bytes of an unfinished reply stay available as :pending().
function Stream:read_reply(deadline)
  while true do
    local reply, nxt, code = core.smtp_reply(self.buf, self.pos)
    if reply then
      self.pos = nxt
      return reply
    end
    if reply == nil then return nil, nxt, code end
    local ok, err, ecode = self:fill(deadline)
    if not ok then return nil, err, ecode end
  end
end

--- Bytes received and not yet consumed as a reply.
function Stream:pending()
  return self.buf:sub(self.pos)
end

function Stream:discard_pending()
  self.buf, self.pos = "", 1
end

--- Sends all of data; or nil, msg, code.
function Stream:send(data, deadline)
  local i = 1
  while i <= #data do
    local n, why, code = self.io:send(data, i)
    if n then
      i = i + n
    elseif n == nil then
      return nil, why, code
    else
      local events = why == "wantread" and loop.READ or loop.WRITE
      if not loop.wait(self.fd, events, deadline) then
        return nil, "timed out sending to the server", "timeout"
      end
    end
  end
  return true
end

--- Upgrades to TLS on the same socket (after "220" to STARTTLS).
-- Returns the tls info table, or nil, msg, code.
function Stream:starttls(servername, deadline)
  local tls, err, code = core.tls_client(self.fd, servername)
  if not tls then return nil, err, code end
  self.tls = tls
  while true do
    local ok, why, c = tls:handshake()
    if ok then break end
    if ok == nil then return nil, why, c end
    local events = why == "wantwrite" and loop.WRITE or loop.READ
    if not loop.wait(self.fd, events, deadline) then
      return nil, "TLS handshake timed out", "timeout"
    end
  end
  self.io = tls
  return tls:info()
end

--- Closes TLS (best effort, no waiting) and the socket; idempotent.
function Stream:close()
  if self.tls then self.tls:close() end
  self.sock:close()
end

return M
