-- Gatherer tls_versions -- which TLS protocol versions a target accepts.
--
-- What:   after the main dialog, one short STARTTLS dialog per version
--         (TLS 1.0, 1.1, 1.2, 1.3): connect -> complete banner -> EHLO ->
--         STARTTLS -> a handshake offering only that version -> QUIT; no
--         relay test. The main dialog negotiates the best version both
--         sides know, so it never shows what else a server still accepts
--         (RFC 8996 deprecates TLS 1.0 and 1.1). The handshakes run at
--         OpenSSL security level 0 with every cipher but the anonymous and
--         NULL ones (a per-option TLS config of the core), so a server that
--         still speaks TLS 1.0 is seen as it is; what is weak is judged
--         afterwards (checks/tls_versions.lua), never refused here.
--         Only when the main dialog established a TLS session: without
--         one, there is nothing to enumerate (tls.starttls / tls.session
--         say why). Each dialog holds one of the run's per-address slots
--         (at most per_address connections at once, the main dialog's
--         included) and all of them end by the target's probe deadline.
--         tls_versions = false (--no-tls-versions) skips them.
-- Scope:  target.
-- Writes: targets[i].tls_versions = { status = "tested" | "skipped", reason,
--         versions = { {version, protocols, status = "accepted" |
--         "refused" | "untested", error, stopped_at, negotiated, cipher,
--         cipher_bits, handshake_ms, time_ms} } }

local core = require "mxprobe.core"
local loop = require "mxprobe.loop"
local smtp = require "mxprobe.gather.smtp"
local hostshare = require "mxprobe.hostshare"   -- hostshare (issue 10 item 3)
local S = require "mxprobe.schema"

local M = {
  id = "tls_versions", title = "TLS protocol versions accepted",
  scope = "target", key = "tls_versions", needs = { "smtp" },
  intrusive = false,
}

-- the versions tried, in order: the name in the facts and the libtls
-- protocol string offered
M.VERSIONS = {
  { version = "TLSv1.0", protocols = "tlsv1.0" },
  { version = "TLSv1.1", protocols = "tlsv1.1" },
  { version = "TLSv1.2", protocols = "tlsv1.2" },
  { version = "TLSv1.3", protocols = "tlsv1.3" },
}

-- every cipher but the unauthenticated ones, at security level 0: OpenSSL 3
-- refuses TLS 1.0/1.1 (SHA-1 handshake signatures) at any higher level
M.CIPHERS = "ALL:!aNULL:!eNULL"
M.SECLEVEL = 0

M.schema = S.record({
  status = S.enum { "tested", "skipped" },
  reason = S.str,
  versions = S.list(S.record({
    version = S.str, protocols = S.str,
    status = S.enum { "accepted", "refused", "untested" },
    error = S.str, stopped_at = S.str, negotiated = S.str, cipher = S.str, cipher_bits = S.int,
    handshake_ms = S.num, time_ms = S.num,
  }, { "version", "protocols", "status" })),
  -- hostshare (issue 10 item 3): a copy of the host's result, taken at
  -- `at` (unix time) by the query that held the host dialog
  shared = S.record({ at = S.num, host_dialog = S.bool }, { "at", "host_dialog" }),
}, { "status", "versions" })

local function skipped(reason)
  return { status = "skipped", reason = reason, versions = {} }
end

-- one version's record from smtp.tls_dialog's result
local function record(v, r)
  local out = { version = v.version, protocols = v.protocols, error = r.error,
                handshake_ms = r.handshake_ms, time_ms = r.time_ms }
  if r.status == "accepted" then
    out.status, out.negotiated, out.cipher, out.cipher_bits = "accepted", r.version, r.cipher, r.cipher_bits
  elseif r.status == "refused" then
    out.status = "refused"
  else
    -- the dialog stopped before the handshake ended (or it timed out):
    -- nothing learnt about this version
    out.status = "untested"
    out.stopped_at = r.stopped_at or (r.status == "timeout" and "tls") or nil
    out.error = out.error or r.status
  end
  return out
end

local function versions(t, ctx)
  local o = ctx.options
  if o.tls_versions == false then return skipped("not asked for (--no-tls-versions)") end
  local s = type(t.smtp) == "table" and t.smtp or {}
  if not (type(s.tls) == "table" and s.tls.status == "ok") then
    return skipped("no TLS session in the main dialog")
  end
  -- the target's probe deadline: its dialogs (main, fallback) began
  -- time_ms ago
  local spent = (s.time_ms or 0) + (type(s.fallback) == "table" and s.fallback.time_ms or 0)
  local deadline = core.now() - spent + o.probe_timeout * 1000
  if core.now() >= deadline then return skipped("probe deadline reached") end
  local out = { status = "tested", versions = {} }
  local fns = {}
  for i, v in ipairs(M.VERSIONS) do
    fns[i] = function()
      local r = smtp.tls_dialog(t, ctx,
        { protocols = v.protocols, ciphers = M.CIPHERS, seclevel = M.SECLEVEL }, deadline)
      out.versions[i] = record(v, r)
    end
  end
  loop.all(fns)
  return out
end

-- hostshare (issue 10 item 3): the versions a host accepts are asked once
-- per host dialog (the same key as smtp's) and copied to every domain that
-- shares it, with the time they were taken
function M.run(t, ctx, env)
  local o = ctx.options
  local domain = env and env.facts and env.facts.kind == "domain" and env.facts.domain
  local entry = o.share_hosts ~= false and domain and o.tls_versions ~= false
    and hostshare.get(hostshare.registry(ctx), smtp.share_key(t, env), core.time())
  if not entry or not entry.done then return versions(t, ctx) end
  local at = core.time()
  local v, taken, ran = hostshare.once(entry, M.id, core.now() + o.probe_timeout * 1000,
    function() return versions(t, ctx) end, at)
  if v == nil then return skipped("probe deadline reached: waiting for the shared version dialogs") end
  if not ran then v.shared = { at = taken, host_dialog = false } end
  return v
end

return M
