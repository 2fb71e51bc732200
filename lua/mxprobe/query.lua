-- mxprobe.query: what the user asked for. Turns a query string (a domain,
-- "host:port" or an address literal) into {kind, name, address, family,
-- port}, or a message saying what is wrong with it. Pure: no I/O.

local core = require "mxprobe.core"
local text = require "mxprobe.text"

local M = {}

--- Normalises a domain or host name; returns it, or nil, reason.
function M.normalise_name(s)
  local name = s:lower():gsub("%.$", "")
  if name == "" then return nil, "empty name" end
  if name:find("[^%w%-%._]") then
    if name:find("[\128-\255]") then
      return nil, ("%q is not an ASCII name (give its punycode form, xn--...)"):format(text.utf8(s))
    end
    return nil, ("%q contains characters not allowed in a domain name"):format(text.utf8(s))
  end
  if #name > 253 then return nil, "name longer than 253 characters" end
  for label in (name .. "."):gmatch("([^.]*)%.") do
    if label == "" then return nil, ("%q has an empty label"):format(s) end
    if #label > 63 then return nil, ("%q has a label longer than 63 characters"):format(s) end
    if label:sub(1, 1) == "-" or label:sub(-1) == "-" then
      return nil, ("%q has a label starting or ending with a hyphen"):format(s)
    end
  end
  return name
end

--- Classifies a query: "[addr]", "[addr]:port", "host:port" or a name.
-- Returns {kind, name, address, family, port} or nil, reason.
function M.parse(q, as_host)
  local inner, port = q:match("^%[(.-)%]:(%d+)$")
  if not inner then inner = q:match("^%[(.-)%]$") end
  if inner then
    local class, family, canonical = core.address_class(inner)
    if not class then return nil, ("%q is not an IPv4 or IPv6 address literal"):format(text.utf8(q)) end
    -- issue 12: only unicast addresses are ever probed; ports range-checked here
    if class == "unspecified" or class == "multicast" or class == "broadcast" or class == "reserved" then
      local article = class:match("^[aeiou]") and "an" or "a"
      return nil, ("%s is %s %s address: mxprobe connects only to unicast addresses"):format(canonical, article, class)
    end
    if port and not (#port <= 5 and tonumber(port) >= 1 and tonumber(port) <= 65535) then
      return nil, ("port %s out of range (1-65535)"):format(port)
    end
    return { kind = "address", address = canonical, family = family, port = tonumber(port), class = class }
  end
  local name, p = q:match("^([^:]+):(%d+)$")
  if name then as_host, port = true, p else name = q end
  if core.parse_address(name) then
    return nil, ("%q is an address: write it as [%s]"):format(q, name)
  end
  local norm, err = M.normalise_name(name)
  if not norm then return nil, err end
  if port and not (#port <= 5 and tonumber(port) >= 1 and tonumber(port) <= 65535) then
    return nil, ("port %s out of range (1-65535)"):format(port)
  end
  return { kind = as_host and "host" or "domain", name = norm, port = tonumber(port) }
end

return M
