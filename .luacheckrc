-- luacheck configuration (make lint): Lua 5.4, no globals anywhere; the
-- specs may use busted's.
std = "lua54"
max_line_length = 120

files["spec"] = { std = "+busted" }
-- generated data (make-fixtures.sh, the lab): long lines are their content
files["spec/fixtures"] = { max_line_length = false }
-- the rockspec is a Lua file of globals that LuaRocks reads
files["mxprobe-scm-1.rockspec"] = { globals = {
  "rockspec_format", "package", "version", "source", "description",
  "dependencies", "external_dependencies", "build",
} }
