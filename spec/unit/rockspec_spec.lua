-- The rockspec must install every source file the tree has, and nothing else.
local function rockspec()
  local env = {}
  local chunk = assert(loadfile("mxprobe-scm-1.rockspec", "t", env))
  chunk()
  return env
end

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  table.sort(out)
  return out
end

describe("mxprobe-scm-1.rockspec #unit", function()
  local spec = rockspec()

  it("lists every Lua module under lua/ with its file", function()
    local want = {}
    for _, path in ipairs(lines_of("find lua -name '*.lua'")) do
      local mod = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      want[mod] = path
    end
    local have = {}
    for mod, src in pairs(spec.build.modules) do
      if type(src) == "string" then have[mod] = src end
    end
    assert.same(want, have)
  end)

  it("compiles every C file under csrc/ into mxprobe.core", function()
    local sources = {}
    for _, s in ipairs(spec.build.modules["mxprobe.core"].sources) do sources[#sources + 1] = s end
    table.sort(sources)
    assert.same(lines_of("ls csrc/*.c"), sources)
  end)

  it("installs the mxprobe command", function()
    assert.equal("bin/mxprobe", spec.build.install.bin.mxprobe)
  end)

  it("declares the C libraries as external dependencies", function()
    assert.is_table(spec.external_dependencies.LIBTLS)
    assert.is_table(spec.external_dependencies.LDNS)
    assert.is_table(spec.external_dependencies.OPENSSL)
  end)
end)
