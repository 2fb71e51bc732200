-- mxprobe.facttypes: the record types that several gatherers write (a DNS
-- query, an SMTP reply, a dialog phase), in the vocabulary of
-- mxprobe.schema. docs/facts.md describes each field.

local S = require "mxprobe.schema"

local M = {}

-- the status words of a failed step (docs/facts.md, "Conventions")
M.ERRORS = { "timeout", "refused", "unreachable", "reset", "closed", "tls", "protocol", "too-long", "error" }

--- A status word: one of the error words, or one of ok_words.
function M.status(ok_words)
  local all = {}
  for _, v in ipairs(ok_words) do all[#all + 1] = v end
  for _, v in ipairs(M.ERRORS) do all[#all + 1] = v end
  return S.enum(all)
end

M.dns_status = M.status { "ok", "nodata", "nxdomain", "servfail" }   -- "refused" is an error word

-- one DNS question and what came back
M.dns_query = S.record({
  name = S.str, type = S.str, status = M.dns_status, rcode = S.str, ad = S.bool, tc = S.bool,
  transport = S.enum { "udp", "tcp" }, time_ms = S.num, error = S.str, cname = S.list(S.str),
  records = S.list(S.map(S.any)), truncated = S.bool,
  rejected = S.int, rejected_reason = S.str, rejected_code = S.str,
  signed = S.bool, cd = S.bool,   -- DANE: RRSIG in the answer; asked with checking disabled
}, { "name", "type", "status", "records" })

M.reply = S.record({ code = S.int, lines = S.list(S.str), text = S.str }, { "code", "lines" })

M.phase_status = M.status { "ok" }

-- one step of a dialog: a command sent (absent for a greeting) and its reply
M.phase = S.record({
  status = M.phase_status, command = S.str, line = S.str, reply = M.reply, error = S.str,
  partial = S.str, unsolicited = S.str, time_ms = S.num, first_byte_ms = S.num,
  extensions = S.map(S.str), ehlo_reply = M.reply,
}, { "status" })

return M
