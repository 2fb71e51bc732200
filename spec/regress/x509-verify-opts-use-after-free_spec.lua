-- Bug: core.x509_verify read the name and ca_file of its opts table with
-- lua_getfield and popped the strings before using them; when an __index
-- function made them, the GC could free them first (use-after-free, seen
-- under ASan). Under `make test` this also runs on the ASan/UBSan build.
local core = require "mxprobe.core"

describe("regress: x509_verify opts strings made by __index stay alive #unit", function()
  it("verifies 100 times under constant collection with the name it was given", function()
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
end)
