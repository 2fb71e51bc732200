-- fuzz/replay.lua -- feed files to the parsers as the fuzz targets do, in
-- plain Lua with the normal build, for valgrind (make fuzz-valgrind):
-- memcheck sees inside ldns and OpenSSL, which the fuzz build does not
-- instrument.
--
--   lua5.4 fuzz/replay.lua [--ca FILE] FILE-OR-DIRECTORY...
--
-- A directory stands for the files in it (missing ones are skipped). The
-- parser is chosen by the name of the directory a file is in: smtp,
-- dns, x509 or http (fuzz/corpus/<target>/, fuzz/corpus-run/<target>/), or by a
-- fuzz/crashes/<target>-* name. A parser that raises is a failure (exit 1);
-- any result is fine otherwise: the checks are valgrind's.
local core = require "mxprobe.core"

local ca, files = nil, {}
local i = 1
while i <= #arg do
	if arg[i] == "--ca" then
		ca = arg[i + 1]
		i = i + 2
	else
		-- find lists a plain file as itself, a directory's files sorted
		local p = assert(io.popen("find '" .. arg[i]:gsub("'", "'\\''") ..
		    "' -maxdepth 1 -type f 2>/dev/null | sort"))
		for path in p:lines() do files[#files + 1] = path end
		p:close()
		i = i + 1
	end
end

local function smtp(data)
	local init = 1
	while true do
		local reply, nxt = core.smtp_reply(data, init)
		if type(reply) ~= "table" then return end
		init = nxt
	end
end

local function dns(data)
	core.dns_parse(data)
end

-- as fuzz_x509.c: PEM as it is, anything else DER elements wrapped in PEM
local function der_element(data, off)
	local n = #data - off + 1
	if n < 2 then return n end
	local b1 = data:byte(off + 1)
	local hdr, len
	if b1 < 0x80 then
		hdr, len = 2, b1
	else
		local k = b1 & 0x7f
		if k == 0 or k > 4 or n < 2 + k then return n end
		hdr, len = 2 + k, 0
		for j = 1, k do len = len << 8 | data:byte(off + 1 + j) end
	end
	if len > n - hdr then return n end
	return hdr + len
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
	local out = {}
	for j = 1, #s, 3 do
		local a, b, c = s:byte(j, j + 2)
		local v = a << 16 | (b or 0) << 8 | (c or 0)
		local q = {}
		for k = 1, 4 do
			local idx = (v >> (6 * (4 - k))) & 63
			q[k] = B64:sub(idx + 1, idx + 1)
		end
		if not b then q[3] = "=" end
		if not c then q[4] = "=" end
		out[#out + 1] = table.concat(q)
	end
	return (table.concat(out):gsub(("."):rep(64), "%0\n"))
end

local function x509(data)
	local pem = data
	if data:sub(1, 1) ~= "-" then
		local parts, off = {}, 1
		while off <= #data do
			local n = der_element(data, off)
			parts[#parts + 1] = "-----BEGIN CERTIFICATE-----\n" ..
			    base64(data:sub(off, off + n - 1)):gsub("\n?$", "\n") ..
			    "-----END CERTIFICATE-----\n"
			off = off + n
		end
		pem = table.concat(parts)
	end
	if core.x509_parse(pem) and ca then
		core.x509_verify(pem, { name = "mx.example.test", ca_file = ca, time = 1811808000 })
	end
end

-- as fuzz_http.c: first byte eof/head flags, then responses one after the
-- other, then the same bytes as DNS-over-TCP messages
local function http(data)
	if #data == 0 then return end
	local flags, buf = data:byte(1), data:sub(2)
	local opts = { head = flags & 2 ~= 0 }
	local pos = 1
	while true do
		local resp, nxt = core.http_response(buf, pos, flags & 1 ~= 0, opts)
		if type(resp) ~= "table" or nxt == pos or nxt > #buf then break end
		pos = nxt
	end
	pos = 1
	while true do
		local m, nxt = core.dns_tcp_frame(buf, pos)
		if type(m) ~= "string" then break end
		pos = nxt
	end
end

-- as fuzz_addr.c (robustness, issue 12)
local function addr(data)
	local class, _, canonical = core.address_class(data)
	if class then assert(core.address_class(canonical) == class) end
end

local parsers = { smtp = smtp, dns = dns, x509 = x509, http = http, addr = addr }
local failed, count = 0, 0
for _, path in ipairs(files) do
	local kind = path:match("([^/]+)/[^/]+$")
	if not parsers[kind] then kind = path:match("/(%w+)%-[^/]*$") end
	local parse = parsers[kind]
	if parse then
		local f = assert(io.open(path, "rb"))
		local data = f:read("a")
		f:close()
		local ok, err = pcall(parse, data)
		count = count + 1
		if not ok then
			failed = failed + 1
			io.stderr:write(path, ": raised: ", tostring(err), "\n")
		end
		if count % 500 == 0 then collectgarbage() end
	end
end
print(("replay: %d inputs, %d raised"):format(count, failed))
-- close the state, so that valgrind's leak check sees what __gc frees
os.exit(failed == 0 and 0 or 1, true)
