-- tls_spec.lua -- core.tls_client's argument checks. No sockets: a TLS
-- object needs an open mxprobe.sock, so everything that makes one (the
-- option sets, the cached configurations, handshakes over loopback) is in
-- spec/integration/tls_socket_spec.lua.
local core = require "mxprobe.core"

describe("core.tls_client #unit", function()
  it("raises unless given an mxprobe.sock", function()
    assert.has_error(function() core.tls_client() end)
    assert.has_error(function() core.tls_client("x") end)
    assert.has_error(function() core.tls_client(io.stdout) end)
    assert.has_error(function() core.tls_client(core.poller()) end)
  end)

  it("no longer takes a bare descriptor number", function()
    local ok, err = pcall(core.tls_client, 3, "mx1.example.test")
    assert.is_false(ok)
    assert.matches("mxprobe.sock expected, got number", err, 1, true)
  end)

  it("has the cipher list cap in core.limits", function()
    assert.equal(1024, core.limits.tls_ciphers_max)
  end)
end)
