-- mxprobe.framers: the protocol framers a connection reads with, by name.
--
-- A framer is a pure function over a buffer (csrc/): framer(buf, pos [, eof])
-- -> frame, next_pos | false (more bytes needed) | nil, msg, code ("protocol"
-- or "too-long"). conn:read_frame(framer, deadline) feeds it; on a clean
-- close it is called once more with eof = true (a body "until close" ends
-- there; anything else still incomplete is "connection closed by the server").
--
--   smtp     core.smtp_reply      one reply {code, lines}
--   dns_tcp  core.dns_tcp_frame   one DNS message (without its 2-byte length)
--   http     core.http_response   one HTTP/1.x response {version, status,
--                                 reason, headers, body, chunked, length}

local core = require "mxprobe.core"

local M = {}

M.smtp = core.smtp_reply
M.dns_tcp = core.dns_tcp_frame

--- One HTTP response; opts as core.http_response (header_max, body_max, head).
function M.http(buf, pos, eof, opts)
  return core.http_response(buf, pos, eof, opts)
end

--- An HTTP framer with options bound, e.g. framers.http_with { head = true }.
function M.http_with(opts)
  return function(buf, pos, eof) return core.http_response(buf, pos, eof, opts) end
end

return M
