-- mxprobe.conn: one connection, TCP and then TLS over the same socket;
-- bytes only, protocols are framers over it (mxprobe.framers).
--
--   conn.connect(address, port, deadline [, opts]) -> c | nil, msg, code
--       opts.bytes_max: bytes the connection may receive in all (1 MiB)
--   conn.wrap(io [, opts]) -> c      an already connected socket (or any
--       object with :fd() :recv(max) :send(data, i) :close())
--   c:send(data, deadline) -> true | nil, msg, code
--   c:read_frame(framer, deadline) -> frame | nil, msg, code
--   c:pending() -> bytes received and not consumed;  c:discard_pending()
--   c:starttls(servername, deadline [, tls_opts]) -> info | nil, msg, code
--       tls_opts go to core.tls_client {protocols, ciphers, seclevel}; the
--       transport must be a core socket (conn.connect's)
--   c:close()                        idempotent
--   fields: c.first_byte (core.now() of the first byte), c.bytes_in,
--           c.source ("addr:port" of our end), c.tls (after starttls)
--
-- Every call takes a deadline (monotonic ms) and never waits past it; the
-- waiting is loop.wait, so inside a task of mxprobe.loop the other tasks run
-- meanwhile. Bytes read before a timeout or an error are kept (:pending()),
-- since a partial reply is a fact. read_frame follows one rule at the end
-- of the stream: on a clean close the framer is called once more with
-- eof = true; if it still needs bytes the result is "connection closed by
-- the server" ("closed"). Errors use the core's codes (timeout closed reset
-- refused tls protocol too-long ...).

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"

local M = {}

M.BYTES_MAX = 1024 * 1024   -- default: bytes one connection may receive in all

local Conn = {}
Conn.__index = Conn

local function endpoint(address, port)
  if address:find(":", 1, true) then return ("[%s]:%d"):format(address, port) end
  return ("%s:%d"):format(address, port)
end

--- Wraps a connected socket-like object; see the header.
function M.wrap(io, opts)
  local bytes_max = opts and opts.bytes_max or M.BYTES_MAX
  if math.type(bytes_max) ~= "integer" or bytes_max < 1 then
    error("mxprobe.conn: bytes_max must be a positive integer", 2)
  end
  return setmetatable({
    sock = io, io = io, fd = io:fd(), tls = nil,
    buf = "", pos = 1, eof = false, closed = false,
    bytes_in = 0, bytes_max = bytes_max, first_byte = nil, source = nil,
  }, Conn)
end

--- Connects to address:port; returns a connection, or nil, msg, code.
function M.connect(address, port, deadline, opts)
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
      return nil, ("connect %s: timed out"):format(endpoint(address, port)), "timeout"
    end
  end
  local self = M.wrap(sock, opts)
  local a, p = sock:local_address()
  if a then self.source = endpoint(a, p) end
  return self
end

-- One non-blocking read into the buffer, waiting as the io object asks.
-- true | nil, msg, code ("closed" on a clean close).
function Conn:fill(deadline)
  while true do
    local data, why, code = self.io:recv(core.limits.recv_max)
    if data then
      self.bytes_in = self.bytes_in + #data
      self.first_byte = self.first_byte or core.now()
      if self.bytes_in > self.bytes_max then
        return nil, ("server sent more than %d bytes on one connection"):format(self.bytes_max), "too-long"
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

--- Reads one frame with framer (see the header); or nil, msg, code.
function Conn:read_frame(framer, deadline)
  while true do
    local frame, nxt, code = framer(self.buf, self.pos, self.eof)
    if frame then
      self.pos = nxt
      return frame
    end
    if frame == nil then return nil, nxt, code end
    if self.eof then return nil, "connection closed by the server", "closed" end
    local ok, err, ecode = self:fill(deadline)
    if not ok then
      if ecode ~= "closed" then return nil, err, ecode end
      self.eof = true   -- one more call, with eof
    end
  end
end

--- Bytes received and not yet consumed by a frame.
function Conn:pending()
  return self.buf:sub(self.pos)
end

function Conn:discard_pending()
  self.buf, self.pos = "", 1
end

--- Sends all of data; or nil, msg, code.
function Conn:send(data, deadline)
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

--- Upgrades to TLS on the same socket (after "220" to STARTTLS, or at once
-- for implicit TLS). tls_opts go to core.tls_client. Returns the tls info
-- table, or nil, msg, code. Bytes still pending in plaintext are not fed to
-- TLS: look at :pending() before, and :discard_pending().
function Conn:starttls(servername, deadline, tls_opts)
  -- the tls object holds the socket itself: its fd cannot be reused under it
  local tls, err, code = core.tls_client(self.sock, servername, tls_opts)
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
  self.eof = false
  return tls:info()
end

--- Closes TLS (best effort, no waiting) and the socket; idempotent.
function Conn:close()
  if self.closed then return end
  self.closed = true
  if self.tls then self.tls:close() end
  self.sock:close()
end

Conn.__close = Conn.close

return M
