-- mxprobe.text: making untrusted bytes safe to keep in the facts.
--
-- Facts must always serialise to valid JSON, so every string a server sent
-- is made valid UTF-8 here: each byte that is not part of a valid UTF-8
-- sequence becomes the four characters \xNN. Control characters stay (they
-- are evidence); each report escapes them for its own output.

local M = {}

function M.utf8(s)
  if utf8.len(s) then return s end
  local out, pos = {}, 1
  while pos <= #s do
    local n, bad = utf8.len(s, pos)
    if n then
      out[#out + 1] = s:sub(pos)
      break
    end
    out[#out + 1] = s:sub(pos, bad - 1)
    out[#out + 1] = ("\\x%02X"):format(s:byte(bad))
    pos = bad + 1
  end
  return table.concat(out)
end

--- The one truncation of mxprobe: s cut to at most max bytes, at a
--- character boundary (a UTF-8 sequence the cut would split is dropped
--- whole, so valid UTF-8 stays valid); when s was cut and `mark` is given
--- (e.g. "…"), mark is appended (the result is then at most max + #mark).
function M.cut(s, max, mark)
  if #s <= max then return s end
  local cut = max > 0 and s:sub(1, max) or ""
  -- find the lead byte of the last sequence; drop the sequence only when
  -- the cut left it incomplete
  local i = #cut
  while i > 1 and i > #cut - 3 and cut:byte(i) >= 0x80 and cut:byte(i) < 0xC0 do i = i - 1 end
  local lead = cut:byte(i)
  if lead and lead >= 0xC0 then
    local need = lead >= 0xF0 and 4 or lead >= 0xE0 and 3 or 2
    if #cut - i + 1 < need then cut = cut:sub(1, i - 1) end
  end
  if mark then return cut .. mark end
  return cut
end

--- s made safe for one line of a message (stderr): valid UTF-8, with
--- every control character (C0, DEL, C1) written as \xNN (issue 12:
--- a path or a value from a file reaches the terminal inert).
function M.visible(s)
  s = M.utf8(tostring(s))
  s = s:gsub("[%z\1-\31\127]", function(c) return ("\\x%02X"):format(c:byte()) end)
  s = s:gsub("\194([\128-\159])", function(c) return ("\\u00%02X"):format(c:byte()) end)
  return s
end

--- A copy of a reply with every line made valid UTF-8.
function M.reply(reply)
  local lines = {}
  for i, l in ipairs(reply.lines) do lines[i] = M.utf8(l) end
  return { code = reply.code, lines = lines, text = table.concat(lines, " ") }
end

return M
