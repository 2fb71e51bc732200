-- One regression spec per fixed bug. Under `make test` these also run on
-- the ASan/UBSan build, where the original bugs were reported.
local core = require "mxprobe.core"

describe("regressions #unit", function()
  it("x509_verify keeps opts strings alive that an __index function made (use-after-free)", function()
    local pem = assert(io.open("spec/fixtures/certs/fullchain.pem")):read("a")
    local want = "mx.example.test" .. ("x"):rep(50)
    local opts = setmetatable({}, { __index = function(_, k)
      if k == "name" then return ("MX.EXAMPLE.TEST"):lower() .. ("x"):rep(50) end
      if k == "ca_file" then return "spec/fixtures/certs/" .. ("ROOT.pem"):sub(1, 4):lower() .. ".pem" end
    end })
    collectgarbage("incremental", 1, 1000)   -- collect (nearly) all the time
    -- back to Lua 5.4's defaults whatever happens, or every later spec crawls
    finally(function() collectgarbage("incremental", 200, 100, 13) end)
    for _ = 1, 100 do
      local r = assert(core.x509_verify(pem, opts))
      assert.equal(want, r.name)
    end
  end)

  it("poll refuses a NaN timeout instead of converting it to int (UB)", function()
    assert.has_error(function() core.poll({}, {}, 0 / 0) end)
  end)
end)
