-- UBSan: csrc/net.c l_poll converts a NaN timeout to int (undefined
-- behaviour: "-nan is outside the range of representable values of type
-- 'int'"). Found by review, not by a fuzz target; reproduce with the
-- sanitizer build:
--   make asan && LD_PRELOAD=$(gcc -print-file-name=libasan.so) \
--     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=0 \
--     lua5.4 -e 'package.cpath="build-asan/?.so"' fuzz/crashes/lua-net-poll-nan.lua
local core = require "mxprobe.core"
print(core.poll({}, {}, 0/0))
