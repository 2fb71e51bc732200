-- ASan: heap-use-after-free in csrc/x509.c l_x509_verify. opts.name and
-- opts.ca_file are read with lua_getfield, their char pointers kept, and
-- the values popped ("still referenced from opts"); when opts has an
-- __index function the strings are referenced by nothing, the collector
-- frees them, and X509_check_host / get_store / the final
-- lua_pushlstring(name) read freed memory. Found by review; reproduce with
-- the sanitizer build:
--   make asan && LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
--     lua5.4 -e 'package.cpath="build-asan/?.so"' fuzz/crashes/lua-x509-verify-opts-uaf.lua
local core = require "mxprobe.core"
local pem = assert(io.open("fuzz/corpus/x509/chain-good.pem")):read("a")
collectgarbage("incremental", 1, 1000)   -- collect (nearly) all the time
local want = "mx.example.test" .. string.rep("x", 50)
local opts = setmetatable({}, {__index = function(_, k)
	-- fresh strings, referenced by nothing once returned
	if k == "name" then return ("MX.EXAMPLE.TEST"):lower() .. string.rep("x", 50) end
	if k == "ca_file" then return "fuzz/" .. ("ca.pem"):lower() end
end})
for _ = 1, 200 do
	local r = core.x509_verify(pem, opts)
	assert(r.name == want, "name changed under our feet: " .. tostring(r.name))
end
print("no error")
