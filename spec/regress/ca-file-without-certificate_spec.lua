-- Bug (issue 12): a --ca-file that held no certificate was accepted, and
-- every server was then blamed for it (tls.cert.untrusted). It is a usage
-- error now (exit 3) naming the file, told before any probe.
local run = require "mxprobe.run"

local function cli(args)
  local p = io.popen(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="%s;;" lua5.4 bin/mxprobe %s 2>&1')
    :format(os.getenv("MXPROBE_CPATH") or "build/?.so", args))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status
end

describe("regress: a CA file with no usable certificate #unit", function()
  local path

  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)

  for name, content in pairs {
    empty = "",
    text = "not a certificate\n",
    ["a broken PEM block"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ["a private key only"] = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
  } do
    it("refuses " .. name .. " as a usage error naming the file", function()
      local f = assert(io.open(path, "w"))
      f:write(content)
      f:close()
      local o, err = run.options { resolver = "127.0.0.1", ca_file = path }
      assert.is_nil(o)
      local want = "CA file " .. path .. " holds no usable certificate (PEM, -----BEGIN CERTIFICATE-----)"
      assert.equal(want, err)
      local out, status = cli("--resolver 127.0.0.1:9 --ca-file " .. path .. " '[127.0.0.1]:9'")
      assert.equal(3, status)
      assert.equal("mxprobe: " .. want .. "\n", out)
    end)
  end

  it("refuses a directory, and accepts a real CA file", function()
    local _, err = run.options { resolver = "127.0.0.1", ca_file = "spec" }
    assert.equal("cannot read CA file spec: is a directory", err)
    assert.is_table(run.options { resolver = "127.0.0.1", ca_file = "spec/hostile/certs/ca.pem" })
  end)
end)
