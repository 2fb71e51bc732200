-- Gatherer smtp -- the SMTP dialog with one target, as a sending server
-- would hold it, plus the relay test.
--
--   connect -> complete banner (not one byte sent before the final "220 ")
--   -> EHLO (HELO if EHLO is refused) -> STARTTLS if offered -> handshake
--   -> EHLO again -> MAIL FROM, RCPT TO an outside address, RCPT TO
--   postmaster@domain (control) -> RSET -> QUIT.   DATA is never sent.
--
-- When the TLS session cannot carry the mail -- the connection fails in
-- answer to STARTTLS, the handshake fails, or EHLO inside TLS does not get
-- a 2xx (closed, not TLS, timed out, refused) -- an opportunistic sender
-- reconnects and delivers in clear text; so does the probe: a second
-- dialog without STARTTLS (EHLO, relay test, QUIT) on a new connection,
-- within the same per-address slot and probe deadline, recorded as
-- smtp.fallback. A refused STARTTLS (454 ...) needs no reconnect: the
-- session goes on in plaintext as a sender's does.
--
-- Scope:  target (one MX host address). Holds one of the run's per-address
--         slots for the whole dialog.
-- Writes: targets[i].smtp (docs/facts.md): every phase as it came -- a
--         421, a timeout or a refused STARTTLS is recorded, not raised.
-- Intrusive: the relay test (MAIL FROM / RCPT TO, never DATA); off with
--         relay_test = false.

local core = require "mxprobe.core"
local conn = require "mxprobe.conn"
local chaincache = require "mxprobe.chaincache"
local hostshare = require "mxprobe.hostshare"   -- hostshare (issue 10 item 3)
local loop = require "mxprobe.loop"
local framers = require "mxprobe.framers"
local text = require "mxprobe.text"
local S = require "mxprobe.schema"
local T = require "mxprobe.facttypes"

local M = {
  id = "smtp", title = "SMTP dialog, STARTTLS, TLS and the relay test",
  scope = "target", key = "smtp", needs = { "addresses", "tlsa" },  -- tlsa: DANE's SNI
  intrusive = "relay test: MAIL FROM and RCPT TO an outside address (never DATA); relay_test = false skips it",
}

-- the phases of the dialog, in order: facts keys and stopped_at values
M.PHASES = { "connect", "banner", "ehlo", "starttls", "tls", "ehlo_tls",
             "mail_from", "rcpt_external", "rcpt_control", "rset", "quit" }

local cert = S.record({
  subject = S.str, issuer = S.str, subject_cn = S.str, san_dns = S.list(S.str), san_ip = S.list(S.str),
  san_count = S.int, not_before = S.int, not_after = S.int, serial = S.str, key_type = S.str,
  key_bits = S.int, curve = S.str, sig_alg = S.str, sha256 = S.str, spki_sha256 = S.str,
  is_ca = S.bool, self_issued = S.bool, version = S.int, unknown_critical = S.list(S.str),
})

local verify = S.record({
  ok = S.bool, reason = S.str, detail = S.str, depth = S.int,
  errors = S.list(S.record { depth = S.int, reason = S.str, detail = S.str }),
  errors_truncated = S.bool, name = S.str, name_match = S.bool, ca = S.str, chain_length = S.int,
  -- TLS posture: the leaf against the CNAME-expanded name of an MX alias
  cname = S.str, cname_match = S.bool,
}, { "ok" })

local tls_schema = S.record({
  status = T.phase_status, error = S.str, version = S.str, cipher = S.str, cipher_bits = S.int,
  handshake_ms = S.num, servername = S.str, protocols = S.str, chain_pem = S.str,
  chain_pem_omitted = S.int, chain_error = S.str, chain_truncated = S.bool, chain_presented = S.int,
}, { "status" })

-- one dialog: the main one, and the plaintext fallback (below)
local DIALOG = {
  status = T.status { "complete", "rejected" },
  stopped_at = S.enum(M.PHASES), error = S.str, time_ms = S.num, source = S.str,
  connect = T.phase, banner = T.phase, ehlo = T.phase, starttls = T.phase, tls = tls_schema,
  certificates = S.list(cert), verify = verify, ehlo_tls = T.phase, quit = T.phase,
  relay = S.record({
    status = T.status { "tested", "skipped", "rejected" },
    mail_from = T.phase, rcpt_external = T.phase, rcpt_control = T.phase, rset = T.phase,
  }, { "status" }),
  transcript = S.list(S.record({ t_ms = S.num, dir = S.enum { "C", "S", "-" }, line = S.str },
                               { "t_ms", "dir", "line" })),
  transcript_truncated = S.bool,
}
local REQUIRED = { "status", "time_ms", "transcript" }

-- TLS posture: the plaintext dialog a sender falls back to; `after` is the
-- phase of the main dialog whose failure made the probe reconnect
local fallback = S.extend(S.record(DIALOG, REQUIRED), { after = S.enum { "starttls", "tls", "ehlo_tls" } })

-- repeat/greylist (issue 9 item 7): the relay test retried after a 4xx to
-- the outside RCPT; a dialog, or { status = "skipped", skipped = why }
local relay_retry = S.extend(S.record(DIALOG, { "status" }), {
  status = T.status { "complete", "rejected", "skipped" },
  after_ms = S.num, skipped = S.str, plain = S.bool,
})
-- repeat/greylist (issue 9 item 6): a compact summary of each extra try
local repeat_try = S.record({
  status = T.status { "complete", "rejected", "skipped" }, stopped_at = S.enum(M.PHASES),
  error = S.str, pause_ms = S.num, time_ms = S.num, banner = S.str, starttls = S.bool,
  tls_status = S.str, tls_version = S.str, cipher = S.str, cert_sha256 = S.str, verify_ok = S.bool,
}, { "status" })

-- hostshare (issue 10 item 3): this dialog is a copy of a host dialog
-- shared by the domains of the run whose MX is the same host (docs/facts.md)
local shared_schema = S.record({
  at = S.num, host_dialog = S.bool, control = S.enum { "host-dialog", "batch" }, size = S.int,
  batch = S.record({ source = S.str, time_ms = S.num }),
}, { "at", "host_dialog" })

M.schema = S.extend(S.record(DIALOG, REQUIRED), {
  fallback = fallback,
  relay_retry = relay_retry, repeats = S.list(repeat_try),   -- repeat/greylist
  shared = shared_schema,   -- hostshare
})

M.TRANSCRIPT_MAX = 400       -- transcript entries kept per target
M.CHAIN_PEM_MAX = 128 * 1024 -- bytes of the presented chain kept in the facts

local Session = {}
Session.__index = Session

local function new_session(t, ctx, domain)
  local now = core.now()
  local o = ctx.options
  return setmetatable({
    s = { transcript = {} }, o = o, domain = domain, mx = t.mx,
    address = t.address, port = t.port, start = now,
    probe_deadline = now + o.probe_timeout * 1000,
  }, Session)
end

function Session:deadline()
  return math.min(core.now() + self.o.timeout * 1000, self.probe_deadline)
end

function Session:elapsed()
  return core.now() - self.start
end

-- server bytes as evidence: at most 1 KiB, valid UTF-8
local function evidence(bytes)
  return text.utf8(text.cut(bytes, 1024))
end

function Session:log(dir, line)
  -- hostshare: another domain's control RCPT goes to its own lines
  local tr = self.logto or self.s.transcript
  if #tr >= M.TRANSCRIPT_MAX then
    if not self.logto then self.s.transcript_truncated = true end
    return
  end
  tr[#tr + 1] = { t_ms = self:elapsed(), dir = dir, line = evidence(line) }
end

function Session:log_reply(reply)
  for i, l in ipairs(reply.lines) do
    self:log("S", ("%03d%s%s"):format(reply.code, i == #reply.lines and " " or "-", l))
  end
end

-- Reads one reply into phase (status, reply, error); returns the reply or nil.
function Session:read(phase)
  local reply, err, code = self.c:read_frame(framers.smtp, self:deadline())
  if not reply then
    if code == "timeout" and core.now() >= self.probe_deadline then
      err = "probe deadline reached: " .. err
    end
    phase.status, phase.error = code or "error", err
    local partial = self.c:pending()
    if #partial > 0 then phase.partial = evidence(partial) end
    self:log("-", ("%s: %s"):format(code, err))
    return nil
  end
  self:log_reply(reply)
  phase.status, phase.reply = "ok", text.reply(reply)
  return reply
end

-- Sends one command line and reads its reply into a new phase table.
function Session:command(line)
  local verb = line:match("^%S+")
  local phase = { command = verb, line = line }
  local start = core.now()
  -- bytes that arrived before we asked: pipelining abuse, or a desync
  local early = self.c:pending()
  if #early > 0 then
    phase.unsolicited = evidence(early)
    self:log("-", "unsolicited data before " .. verb)
    self.c:discard_pending()
  end
  self:log("C", line)
  local ok, err, code = self.c:send(line .. "\r\n", self:deadline())
  if not ok then
    phase.status, phase.error = code or "error", err
    return nil, phase
  end
  local reply = self:read(phase)
  phase.time_ms = core.now() - start
  -- hostshare: what the server counts against this session (its error limits)
  if reply and reply.code >= 400 then self.refusals = (self.refusals or 0) + 1 end
  return reply, phase
end

--- The first n PEM certificates of a chain, and how many it holds (pure).
function M.pem_prefix(pem, n)
  local out, total = {}, 0
  for block in pem:gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-") do
    total = total + 1
    if total <= n then out[total] = block end
  end
  return table.concat(out, "\n") .. "\n", total
end

local function extensions_of(reply)
  local ext = {}
  for i = 2, #reply.lines do
    local kw, param = reply.lines[i]:match("^%s*([%w][%w%-]*)%s*(.-)%s*$")
    if kw then ext[kw:upper()] = param end
  end
  return ext
end

local function is_2xx(reply) return reply and reply.code >= 200 and reply.code < 300 end

-- Ends the dialog: status word and the phase (facts key) where it stopped.
function Session:stop(status, phase_name)
  self.s.status = status
  self.s.stopped_at = phase_name
end

function Session:quit()
  local reply, phase = self:command("QUIT")
  self.s.quit = phase
  return reply
end

-- Ends the dialog politely after a reply that refuses us (421, 554 ...).
function Session:refused(phase_name, reply)
  self:stop("rejected", phase_name)
  if reply and reply.code ~= 421 then self:quit() end
end

function Session:ehlo(key)
  local s, o = self.s, self.o
  local reply, phase = self:command("EHLO " .. o.ehlo_name)
  s[key] = phase
  if not reply then self:stop(phase.status, key) return false end
  if is_2xx(reply) then
    phase.extensions = extensions_of(reply)
    return true
  end
  if reply.code == 421 then self:stop("rejected", key) return false end
  -- EHLO refused: fall back to HELO as RFC 5321 §3.2 allows
  local helo, hphase = self:command("HELO " .. o.ehlo_name)
  hphase.ehlo_reply = phase.reply
  hphase.extensions = {}
  s[key] = hphase
  if not helo then self:stop(hphase.status, key) return false end
  if not is_2xx(helo) then self:refused(key, helo) return false end
  return true
end

-- SNI carries a host name (RFC 6066 §3): never an address, never a DNS
-- name with escapes (a hostile zone's "\027[2J" or "dot\.inside")
local function sni_of(name)
  if name and #name <= 253 and name:match("^[%w][%w%-%.]*$") and not core.parse_address(name) then
    return name
  end
  return nil
end

-- certificate fields are server bytes: valid UTF-8 in the facts
local function clean_certs(certs)
  for _, c in ipairs(certs) do
    for k, v in pairs(c) do if type(v) == "string" then c[k] = text.utf8(v) end end
    for _, list in ipairs { c.san_dns or {}, c.san_ip or {} } do
      for i, v in ipairs(list) do list[i] = text.utf8(v) end
    end
  end
end

-- A chain's decoded result, shared by every probe of a run that is shown
-- the same chain for the same name and CA store (mxprobe.chaincache: for
-- a few minutes, and only while no presented certificate's date has
-- passed since).
M.CHAIN_CACHE_MAX, M.CHAIN_CACHE_SECONDS = chaincache.MAX, chaincache.SECONDS

function M.chain_result(cache, pem, opts, now)
  local key = table.concat({ pem, opts.name or "", opts.ca_file or "" }, "\0")
  return chaincache.get(cache, key, now or core.time(), function() return core.x509_chain(pem, opts) end,
    function(r) return chaincache.bounds(r.certificates) end)
end

-- The presented chain: fields and verification from one decode.
function Session:chain(tls, pem)
  local s = self.s
  local opts = { name = self.mx, ca_file = self.o.ca_file }
  local r, err
  if self.chains then
    r, err = M.chain_result(self.chains, pem, opts)
  else
    r, err = core.x509_chain(pem, opts)
  end
  if not r then
    tls.chain_error = err
    return
  end
  if r.truncated then
    -- the first certificates, leaf first, are kept and judged, and we say so
    tls.chain_truncated, tls.chain_presented = true, r.presented
    tls.chain_error = ("x509 parse: more than %d certificates"):format(core.limits.x509_chain_max)
    pem = (M.pem_prefix(pem, core.limits.x509_chain_max))
  end
  if #pem <= M.CHAIN_PEM_MAX then tls.chain_pem = pem else tls.chain_pem_omitted = #pem end
  clean_certs(r.certificates)
  s.certificates = r.certificates
  if r.verify then
    r.verify.ca = r.verify.ca and text.utf8(r.verify.ca)
    s.verify = r.verify
    -- TLS posture: an MX name that is an alias (CNAME) and a certificate
    -- that does not cover it: does it cover the name the alias leads to?
    -- (senders that verify check the MX name as published; RFC 7672
    -- §2.2.3 lets DANE use both)
    local canon = self.canonical
    if r.verify.name_match == false and canon and canon ~= self.mx then
      local cr = self.chains and M.chain_result(self.chains, pem, { name = canon, ca_file = self.o.ca_file })
        or core.x509_chain(pem, { name = canon, ca_file = self.o.ca_file })
      if cr and cr.verify and type(cr.verify.name_match) == "boolean" then
        s.verify.cname, s.verify.cname_match = canon, cr.verify.name_match
      end
    end
  else
    s.verify = { ok = false, reason = "other", detail = r.verify_error }
  end
end

function Session:tls_phase()
  local s = self.s
  local start = core.now()
  -- DANE (RFC 7672 §3.1.1): when it applies, SNI is the TLSA base domain
  local servername = sni_of(self.dane_servername or self.mx)
  local info, err, code = self.c:starttls(servername, self:deadline())
  local tls = { handshake_ms = core.now() - start, servername = servername }
  s.tls = tls
  if not info then
    tls.status, tls.error = code or "tls", err
    self:log("-", "TLS handshake failed: " .. tostring(err))
    self:stop(tls.status, "tls")
    return false
  end
  tls.status = "ok"
  tls.version, tls.cipher, tls.cipher_bits = info.version, info.cipher, info.cipher_bits
  tls.protocols = info.protocols
  self:log("-", ("TLS established: %s %s"):format(info.version, info.cipher))
  if info.chain_pem then
    self:chain(tls, info.chain_pem)
  else
    tls.chain_error = info.chain_error or "no certificate presented"
  end
  return true
end

-- MAIL FROM, RCPT TO outside, RCPT TO postmaster@domain, RSET.
-- Returns false when the dialog cannot go on.
function Session:relay()
  local s, o = self.s, self.o
  local relay = { status = "tested" }
  s.relay = relay
  local function step(key, line)
    local reply, phase = self:command(line)
    relay[key] = phase
    if not reply then
      relay.status = phase.status
      self:stop(phase.status, key)
      return nil
    end
    if reply.code == 421 then
      relay.status = "rejected"
      self:stop("rejected", key)
      return nil
    end
    return reply
  end
  local mail = step("mail_from", ("MAIL FROM:<%s>"):format(o.mail_from))
  if not mail then return false end
  if is_2xx(mail) then
    if not step("rcpt_external", ("RCPT TO:<%s>"):format(o.relay_rcpt)) then return false end
    if self.domain then
      local from = #s.transcript + 1
      local ok = step("rcpt_control", ("RCPT TO:<postmaster@%s>"):format(self.domain))
      -- hostshare: the control RCPTs of the other domains waiting on this host
      if self.share and not M.at_control(self, from, ok ~= nil) then return false end
      if not ok then return false end
    end
  end
  if not step("rset", "RSET") then return false end
  return true
end

-- Connect, the complete banner, EHLO (or HELO); true when the dialog can
-- go on. Fills self.s.
function Session:greet()
  local s, o = self.s, self.o
  local cstart = core.now()
  local c, err, code = conn.connect(self.address, self.port, math.min(cstart + o.timeout * 1000, self.probe_deadline))
  s.connect = { time_ms = core.now() - cstart }
  if not c then
    s.connect.status, s.connect.error = code or "error", err
    self:log("-", err)
    self:stop(s.connect.status, "connect")
    return false
  end
  self.c = c
  s.connect.status = "ok"
  s.source = c.source
  self:log("-", "connected")

  -- banner: the complete reply, however long postscreen makes us wait
  s.banner = {}
  local banner = self:read(s.banner)
  s.banner.time_ms = core.now() - cstart
  if c.first_byte then s.banner.first_byte_ms = c.first_byte - cstart end
  if not banner then self:stop(s.banner.status, "banner") return false end
  if banner.code ~= 220 then self:refused("banner", banner) return false end

  return self:ehlo("ehlo")
end

-- STARTTLS; the reply, or nil when the dialog cannot go on (stopped)
function Session:starttls()
  local reply, phase = self:command("STARTTLS")
  self.s.starttls = phase
  if not reply then self:stop(phase.status, "starttls") return nil end
  if reply.code == 220 then
    local early = self.c:pending()
    if #early > 0 then
      -- plaintext after "220 ready" would be read as TLS: note and drop it
      phase.unsolicited = evidence(early)
      self.c:discard_pending()
    end
  end
  return reply
end

-- The whole dialog; fills self.s. self.plain: never STARTTLS (the
-- fallback dialog).
function Session:run()
  local s, o = self.s, self.o
  if not self:greet() then return end

  if s.ehlo.extensions.STARTTLS and not self.plain then
    local reply = self:starttls()
    if not reply then return end
    if reply.code == 220 then
      if not self:tls_phase() then return end
      if not self:ehlo("ehlo_tls") then return end
    elseif reply.code == 421 then
      return self:stop("rejected", "starttls")
    end
    -- any other answer (454 ...): a sender goes on in plaintext, and so do we
  end

  if o.relay_test and not self.no_relay then
    if not self:relay() then return end
  else
    s.relay = { status = "skipped" }
  end
  self:quit()
  self:stop("complete", nil)
end

local function is_2xx_reply(r) return type(r) == "table" and type(r.code) == "number" and r.code // 100 == 2 end

--- Why a sender would reconnect in plaintext after this dialog (pure):
-- the phase whose failure ended the TLS session -- "starttls" (the
-- connection failed in answer to STARTTLS), "tls" (the handshake failed),
-- "ehlo_tls" (EHLO inside TLS got no 2xx: closed, not TLS, timed out,
-- refused; a 421 there is throttling, not a broken session) -- or nil.
function M.fallback_after(s)
  local st = s.starttls
  if type(st) ~= "table" then return nil end
  if st.status ~= "ok" then return "starttls" end
  if not (st.reply and st.reply.code == 220) then return nil end
  local tls = s.tls
  if type(tls) ~= "table" then return nil end
  if tls.status ~= "ok" then return "tls" end
  local e = s.ehlo_tls
  if type(e) ~= "table" then return nil end
  if e.status ~= "ok" then return "ehlo_tls" end
  if e.reply and e.reply.code == 421 then return nil end
  if is_2xx_reply(e.reply) then return nil end
  return "ehlo_tls"
end

--- One short dialog that tries one TLS option set (gatherer tls_versions):
-- connect -> complete banner -> EHLO -> STARTTLS -> handshake with tls_opts
-- -> QUIT (inside TLS when the handshake succeeded). No relay test. Holds
-- one of the run's per-address slots; the deadline of the whole dialog is
-- probe_deadline (monotonic ms). Returns a record: status ("accepted";
-- "refused" when the handshake failed; "timeout" when it timed out;
-- "skipped" when STARTTLS was not offered or not accepted this time; the
-- status word of the dialog when it stopped before STARTTLS, with
-- stopped_at; "error" for a bug), error, version, cipher, cipher_bits,
-- handshake_ms, time_ms.
function M.tls_dialog(t, ctx, tls_opts, probe_deadline)
  local slot = ctx:semaphore(t.address, t.port)
  slot:acquire()
  local session = new_session(t, ctx, nil)
  session.probe_deadline = math.min(session.probe_deadline, probe_deadline)
  local out = {}
  local ok, err = pcall(function()
    if not session:greet() then return end
    local s = session.s
    if not s.ehlo.extensions.STARTTLS then
      out.status, out.error = "skipped", "STARTTLS not offered"
      session:quit()
      return
    end
    local reply = session:starttls()
    if not reply then return end
    if reply.code ~= 220 then
      out.status, out.error = "skipped", "STARTTLS answered " .. reply.code
      if reply.code ~= 421 then session:quit() end
      return
    end
    local start = core.now()
    local info, terr, code = session.c:starttls(sni_of(session.mx), session:deadline(), tls_opts)
    out.handshake_ms = core.now() - start
    if not info then
      out.status = code == "timeout" and "timeout" or "refused"
      out.error = text.utf8(text.cut(tostring(terr), 1024))
      return
    end
    out.status = "accepted"
    out.version, out.cipher, out.cipher_bits = info.version, info.cipher, info.cipher_bits
    session:quit()
  end)
  if session.c then session.c:close() end
  slot:release()
  local s = session.s
  if not ok then
    out.status, out.error = "error", "internal error: " .. tostring(err)
  elseif not out.status then
    -- the dialog stopped before the handshake: where, and why
    out.status, out.stopped_at = s.status or "error", s.stopped_at
    local phase = s.stopped_at and s[s.stopped_at]
    out.error = phase and (phase.error or (phase.reply and ("%d %s"):format(phase.reply.code,
      table.concat(phase.reply.lines, " ")))) or nil
    if out.error then out.error = text.utf8(text.cut(out.error, 1024)) end
  end
  out.time_ms = session:elapsed()
  return out
end

-- runs session under pcall; fills its time and, on a bug, its error
local function run_session(session)
  local ok, err = pcall(session.run, session)
  if session.c then session.c:close() end
  local s = session.s
  if not ok then
    -- a bug, not a network fact: keep what was gathered, say what broke
    s.status, s.error = "error", "internal error: " .. tostring(err)
  end
  s.time_ms = session:elapsed()
  return s
end

--- The 4xx (not 421) the outside RCPT of a dialog got, or nil (pure):
-- what makes the probe retry the relay test (--greylist-retry).
function M.greylisted(d)
  local relay = type(d) == "table" and d.relay
  local ext = type(relay) == "table" and relay.rcpt_external
  local reply = type(ext) == "table" and ext.reply
  local code = type(reply) == "table" and math.tointeger(reply.code)
  if code and code // 100 == 4 and code ~= 421 then return code end
  return nil
end

--- The compact summary of one dialog for --repeat (pure): status, where it
-- stopped, the banner line, STARTTLS offered, the TLS outcome and the leaf.
function M.summary(d)
  local out = { status = d.status, stopped_at = d.stopped_at, time_ms = d.time_ms }
  local b = type(d.banner) == "table" and d.banner.reply
  local code = type(b) == "table" and math.tointeger(b.code)
  if code and type(b.lines) == "table" then
    out.banner = text.utf8(text.cut(("%d %s"):format(code, tostring(b.lines[1] or "")), 512))
  end
  local e = type(d.ehlo) == "table" and d.ehlo.extensions
  if type(e) == "table" then out.starttls = e.STARTTLS ~= nil end
  if type(d.tls) == "table" then
    out.tls_status, out.tls_version, out.cipher = d.tls.status, d.tls.version, d.tls.cipher
  end
  local leaf = type(d.certificates) == "table" and d.certificates[1]
  if type(leaf) == "table" then out.cert_sha256 = leaf.sha256 end
  if type(d.verify) == "table" then out.verify_ok = d.verify.ok end
  return out
end

M.REPEAT_PAUSE_MS = 1000   -- --repeat: the pause between two tries of a target

-- The dialog of one target as it always was (one query alone, or the host
-- dialog of hostshare when share is given).
local function dialog(t, ctx, env, share)
  local o = ctx.options
  local slot = ctx:semaphore(t.address, t.port)
  slot:acquire()
  local domain = env.facts.kind ~= "address" and env.facts.domain or nil
  -- a session of this target (every try shares the probe deadline)
  local first
  local function session_of()
    local session = new_session(t, ctx, domain)
    if first then session.probe_deadline = first.probe_deadline end
    session.share, session.path = share, first and "relay_retry" or "main"   -- hostshare
    session.dane_servername = env.mx and type(env.mx.tlsa) == "table" and env.mx.tlsa.servername or nil -- DANE
    -- the CNAME-expanded name of the MX host, when its name is an alias
    local cname = env.mx and type(env.mx.dns) == "table" and env.mx.dns.cname
    if type(cname) == "table" and #cname > 0 then session.canonical = sni_of(cname[#cname]) end
    if o.chain_cache ~= false then
      ctx.cache.chains = ctx.cache.chains or chaincache.new()
      session.chains = ctx.cache.chains
    end
    return session
  end
  local session = session_of()
  first = session
  local s = run_session(session)
  -- the plaintext fallback, on a new connection in the same slot
  local after = s.status ~= "error" and M.fallback_after(s)
  if after and core.now() < session.probe_deadline then
    local fb = new_session(t, ctx, domain)
    fb.plain, fb.probe_deadline = true, session.probe_deadline
    fb.share, fb.path = share, "fallback"   -- hostshare
    s.fallback = run_session(fb)
    s.fallback.after = after
  end
  -- repeat/greylist (issue 9 item 7): the outside RCPT got a 4xx: retry
  -- the relay test once after the delay, as a sender would retry (the
  -- dialog the verdict comes from: plaintext when it was the fallback)
  local verdict = s.fallback or s
  if o.greylist_retry and o.relay_test and M.greylisted(verdict) then
    local delay = o.greylist_retry * 1000
    if core.now() + delay >= session.probe_deadline then
      s.relay_retry = { status = "skipped", after_ms = delay,
        skipped = ("the retry after %g s would pass the probe deadline (--probe-timeout)"):format(o.greylist_retry) }
    else
      slot:release()            -- nobody's slot is held through the pause
      loop.sleep(delay)
      slot:acquire()
      local retry = session_of()
      retry.plain = s.fallback ~= nil
      local r = run_session(retry)
      r.after_ms, r.plain = delay, retry.plain or nil
      s.relay_retry = r
    end
  end
  -- repeat/greylist (issue 9 item 6): the extra tries of --repeat, without
  -- the relay test, each summed up
  if (o["repeat"] or 1) > 1 then
    s.repeats = {}
    for _ = 2, o["repeat"] do
      local pause = M.REPEAT_PAUSE_MS
      if core.now() + pause >= session.probe_deadline then
        s.repeats[#s.repeats + 1] = { status = "skipped", error = "probe deadline reached" }
      else
        slot:release()
        loop.sleep(pause)
        slot:acquire()
        local try = session_of()
        try.no_relay = true
        local sum = M.summary(run_session(try))
        sum.pause_ms = pause
        s.repeats[#s.repeats + 1] = sum
      end
    end
  end
  slot:release()
  return s
end

------------------------------------------------------------------------
-- hostshare (issue 10 item 3): one host dialog per (address, port, MX
-- name, SNI name, canonical name) per run, shared by every domain of the
-- run whose MX it is (mxprobe.hostshare). The first query of a key holds
-- the host dialog; what is domain-specific, the control RCPT
-- (postmaster@domain), is sent for every domain waiting on the key when
-- the host dialog reaches that point, its own first, in transactions of
-- at most RCPT_BATCH_MAX RCPTs (RFC 5321 §4.5.3.1.8: a server takes at
-- least 100); the domains that come later get theirs in a batch session
-- (one at a time per key, in a per-address slot like every dialog), which
-- lingers BATCH_LINGER_MS for more (Postfix's
-- smtp_connection_cache_time_limit default, 2 s). Never DATA; RSET and
-- QUIT at the end, as in every dialog.

M.RCPT_BATCH_MAX = 50       -- control RCPTs in one transaction
-- Refused commands one session may collect before the control RCPTs left
-- go to a new session: Postfix counts each refusal as an error, answers
-- every command 1 s late after smtpd_soft_error_limit (10) of them and
-- ends the session with "421 Error: too many errors" at
-- smtpd_hard_error_limit (20) -- a batch of domains whose postmaster the
-- server refuses would be slowed, then cut off
M.SESSION_REFUSALS_MAX = 8
M.BATCH_LINGER_MS = 2000    -- a batch session waits this long for more domains

local function reply_text(reply)
  return text.utf8(text.cut(("%d %s"):format(reply.code, table.concat(reply.lines, " ")), 512))
end

local function control_line(domain)
  return ("RCPT TO:<postmaster@%s>"):format(domain)
end

-- a request answered (or failed): its phase, and how it was sent
local function answer(req, phase, session, how, txn)
  if req.answered then return end
  req.answered, req.phase, req.control, req.txn = true, phase, how, txn
  req.source, req.session_start, req.time_ms = session and session.s.source, session and session.start,
    session and session:elapsed()
  req.event:set()
end

-- every request of reqs from index i on gets a phase that says why it was
-- not answered (status: an error word)
local function fail_from(reqs, i, status, why, session, how)
  for j = i, #reqs do
    local req = reqs[j]
    answer(req, { command = "RCPT", line = control_line(req.domain), status = status,
                  error = text.utf8(text.cut(why, 1024)) }, session, how)
  end
end

-- RSET, then MAIL FROM: a new transaction on the open session (its lines
-- are the batch's, in no domain's transcript). true, or false, status,
-- why, alive (the session can still QUIT)
function Session:new_transaction()
  self.logto = {}
  local ok, status, why, alive = true, nil, nil, nil
  for _, line in ipairs { "RSET", ("MAIL FROM:<%s>"):format(self.o.mail_from) } do
    local reply, phase = self:command(line)
    if not reply then
      ok, status, why = false, phase.status, ("the connection ended at %s: %s"):format(phase.command, phase.error)
      break
    elseif reply.code == 421 then
      ok, status, why = false, "closed", ("not sent: %s was answered %s"):format(phase.command, reply_text(reply))
      break
    elseif not is_2xx(reply) then
      ok, status, why, alive = false, "error", ("not sent: %s was answered %s"):format(phase.command,
        reply_text(reply)), true
      break
    end
  end
  self.logto = nil
  return ok, status, why, alive
end

--- Sends the control RCPTs of reqs on this session, whose transaction
-- holds `used` RCPTs already; a new transaction at RCPT_BATCH_MAX, and
-- for the rest after a 452 (too many recipients, RFC 5321 §4.5.3.1.10).
-- A 421 or a dead connection ends it: the remaining requests record that.
-- Returns true, used; or false, status, alive.
function Session:control_batch(reqs, used, how)
  local txn = { n = used }
  local i = 1
  while i <= #reqs do
    local req = reqs[i]
    if i > 1 and (self.refusals or 0) >= M.SESSION_REFUSALS_MAX then
      -- the rest in a new session, before the server's error limits bite
      hostshare.requeue(self.share_entry, reqs, i)
      for j = #reqs, i, -1 do reqs[j] = nil end
      return false, "refusals", true
    end
    if used >= M.RCPT_BATCH_MAX then
      local ok, status, why, alive = self:new_transaction()
      if not ok then
        fail_from(reqs, i, status, why, self, how)
        return false, status, alive
      end
      used, txn = 0, { n = 0 }
    end
    self.logto = req.lines
    local reply, phase = self:command(control_line(req.domain))
    self.logto = nil
    if reply and reply.code == 452 and used > 0 then
      used = M.RCPT_BATCH_MAX   -- this one and the rest: a new transaction
    else
      txn.n = txn.n + 1
      answer(req, phase, self, how, txn)
      used, i = used + 1, i + 1
      if not reply then
        fail_from(reqs, i, phase.status, ("not sent: the connection ended at an earlier RCPT (%s)")
          :format(tostring(phase.error)), self, how)
        return false, phase.status, false
      elseif reply.code == 421 then
        fail_from(reqs, i, "closed", "not sent: an earlier RCPT was answered " .. reply_text(reply), self, how)
        return false, "rejected", false
      end
    end
  end
  return true, used
end

local batch_session

-- starts the batch session of entry when requests wait and nobody serves them
local function ensure_batcher(t, ctx, entry)
  if entry.batcher or entry.host_taking or not entry.rcpt_open or hostshare.queued(entry) == 0 then return end
  entry.batcher = true
  local l = loop.current()
  if l then
    l:spawn(batch_session, t, ctx, entry)
  else
    batch_session(t, ctx, entry)
  end
end

--- The host dialog reached the control RCPT (its own sent; ok: answered):
-- the waiting domains' RCPTs, in this transaction and the next ones.
-- false when the host dialog cannot go on.
function M.at_control(session, from, ok)
  local entry = session.share
  entry.ranges[session.path] = { from, #session.s.transcript }
  if entry.ctl_path then return true end   -- the greylist retry: its own RCPT only
  entry.ctl_path, entry.ctl_start, entry.rcpt_open = session.path, session.start, true
  local tls = session.s.tls
  entry.batch_tls = type(tls) == "table" and tls.status == "ok"
  entry.servername = entry.batch_tls and tls.servername or nil
  if not ok then
    ensure_batcher(entry.t, entry.ctx, entry)
    return true
  end
  entry.host_taking = true
  session.share_entry = entry
  local used, alive, status = 1, true, nil
  while true do
    local reqs = hostshare.take(entry, M.RCPT_BATCH_MAX)
    if #reqs == 0 then break end
    local okb, u_or_status, still = session:control_batch(reqs, used, "host-dialog")
    if not okb then
      if u_or_status ~= "refusals" then status, alive = u_or_status, still end
      break
    end
    used = u_or_status
  end
  entry.host_taking = false
  ensure_batcher(entry.t, entry.ctx, entry)
  if not status or alive then return true end
  session.s.relay.status = status
  session:stop(status, "rset")
  return false
end

-- The batch session of one key: connect, banner, EHLO, STARTTLS and EHLO
-- when the host's verdict dialog went through TLS, then transactions of
-- the queued requests (MAIL FROM, RCPTs, RSET) until none comes for
-- BATCH_LINGER_MS, QUIT. Runs as a task of its own.
function batch_session(t, ctx, entry)
  local o = ctx.options
  local slot = ctx:semaphore(t.address, t.port)
  slot:acquire()
  local session = new_session(t, ctx, nil)
  session.share_entry = entry
  local taken = {}
  local ok, err = pcall(function()
    -- why the session could not serve the requests (the phase it stopped at)
    local function broken(what)
      local s = session.s
      local phase = s.stopped_at and s[s.stopped_at]
      local why = phase and (phase.error or (phase.reply and reply_text(phase.reply))) or what
      local reqs = hostshare.take(entry, math.maxinteger)
      fail_from(reqs, 1, (phase and phase.status ~= "ok" and phase.status) or "error",
        ("the batch session for the control RCPT stopped at %s: %s"):format(what, tostring(why)), session, "batch")
    end
    if not session:greet() then return broken(session.s.stopped_at or "connect") end
    if entry.batch_tls then
      if not session.s.ehlo.extensions.STARTTLS then return broken("ehlo") end
      local reply = session:starttls()
      if not reply or reply.code ~= 220 then return broken("starttls") end
      local info, terr = session.c:starttls(entry.servername, session:deadline())
      if not info then
        session.s.tls = { status = "tls", error = terr }
        session:stop("tls", "tls")
        return broken("tls")
      end
      if not session:ehlo("ehlo_tls") then return broken("ehlo_tls") end
    end
    while true do
      taken = hostshare.take(entry, M.RCPT_BATCH_MAX)
      if #taken == 0 then
        -- linger for more (Postfix's smtp_connection_cache_time_limit: 2 s),
        -- unless the run has no more queries (hostshare.close)
        if entry.reg.closed then break end
        entry.more = loop.event()
        local until_ms = math.min(core.now() + M.BATCH_LINGER_MS, session.probe_deadline)
        entry.more:wait(until_ms)
        entry.more = nil
        taken = hostshare.take(entry, M.RCPT_BATCH_MAX)
        if #taken == 0 then break end
      end
      local mail, phase = session:command(("MAIL FROM:<%s>"):format(o.mail_from))
      if not mail or not is_2xx(mail) then
        local why = mail and ("not sent: MAIL FROM was answered " .. reply_text(mail))
          or ("not sent: the connection ended at MAIL FROM: " .. tostring(phase.error))
        fail_from(taken, 1, mail and "error" or phase.status, why, session, "batch")
        if not mail or mail.code == 421 then return end
        break
      end
      local okb, why, alive = session:control_batch(taken, 0, "batch")
      if not okb and not alive then return end
      local rset = session:command("RSET")
      if not rset or rset.code == 421 then return end
      if why == "refusals" then break end   -- QUIT; a new session takes the rest
    end
    session:quit()
  end)
  if session.c then session.c:close() end
  slot:release()
  -- a bug, or a request taken and not answered: it says so
  fail_from(taken, 1, "error", ok and "not answered by the batch session"
    or ("internal error: " .. tostring(err)), session, "batch")
  entry.batcher = false
  ensure_batcher(t, ctx, entry)
end

-- the key of a target's host dialog: its address, port, MX name, the SNI
-- name the dialog sends and the canonical name of the CNAME check
function M.share_key(t, env)
  local servername = sni_of(env.mx and type(env.mx.tlsa) == "table" and env.mx.tlsa.servername or t.mx)
  local canonical
  local cname = env.mx and type(env.mx.dns) == "table" and env.mx.dns.cname
  if type(cname) == "table" and #cname > 0 then canonical = sni_of(cname[#cname]) end
  return hostshare.key(t.address, t.port, t.mx, servername, canonical)
end

--- The dialog record a domain gets from a shared host dialog (pure, but
-- for the copy): a deep copy of entry.result, without the host's own
-- control RCPT (entry.ranges: path -> its transcript lines), with this
-- domain's (req: phase, lines, control, txn, source) in its place in the
-- dialog that reached RCPT (entry.ctl_path); and its shared record.
function M.domain_copy(entry, req)
  local s = hostshare.copy(entry.result)
  local function dialog_at(path)
    if path == "main" then return s end
    return type(s[path]) == "table" and s[path] or nil
  end
  for path, r in pairs(entry.ranges) do
    local d = dialog_at(path)
    if d and type(d.transcript) == "table" then
      local tr = {}
      for i, x in ipairs(d.transcript) do
        if i < r[1] or i > r[2] then tr[#tr + 1] = x end
      end
      d.transcript = tr
      if type(d.relay) == "table" then d.relay.rcpt_control = nil end
    end
  end
  local shared = { at = entry.at, host_dialog = false }
  local d = entry.ctl_path and dialog_at(entry.ctl_path)
  if req and req.phase and d and type(d.relay) == "table" then
    shared.control = req.control
    shared.size = req.txn and req.txn.n or nil
    local offset = 0
    local lines = {}
    if req.control == "batch" then
      offset = (req.session_start or entry.ctl_start) - entry.ctl_start
      shared.batch = { source = req.source, time_ms = req.time_ms }
      lines[1] = { t_ms = offset, dir = "-", line = ("control RCPT in a batch session%s"):format(
        req.source and (" from " .. req.source) or "") }
    end
    for _, x in ipairs(req.lines) do
      lines[#lines + 1] = { t_ms = x.t_ms + offset, dir = x.dir, line = x.line }
    end
    local at = math.min(entry.ranges[entry.ctl_path][1], #d.transcript + 1)
    for k, x in ipairs(lines) do
      if #d.transcript < M.TRANSCRIPT_MAX then table.insert(d.transcript, at + k - 1, x) end
    end
    local phase = req.phase
    d.relay.rcpt_control = phase
    local reply = phase.reply
    if phase.status ~= "ok" or (reply and reply.code == 421) then
      -- as a lone dialog that stopped there
      local status = phase.status == "ok" and "rejected" or phase.status
      d.relay.status, d.status, d.stopped_at = status, status, "rcpt_control"
      d.relay.rset, d.quit = nil, nil
    elseif d.stopped_at == "rcpt_control" or (d.stopped_at == "rset" and not d.relay.rset) then
      -- the host's own control failed (or the batch after it), this one was answered
      d.relay.status, d.status, d.stopped_at = "tested", "complete", nil
    end
  end
  return s, shared
end

function M.run(t, ctx, env)
  local o = ctx.options
  -- domain queries share; an address or a host named on purpose is probed
  -- on its own
  local domain = env.facts.kind == "domain" and env.facts.domain or nil
  if o.share_hosts == false or not domain then return dialog(t, ctx, env) end
  local reg = hostshare.registry(ctx)
  local key = M.share_key(t, env)
  local entry = hostshare.get(reg, key, core.time())
  if not entry then
    -- the first query of this host: it holds the host dialog
    entry = hostshare.open(reg, key, core.time())
    entry.ranges = {}
    entry.t, entry.ctx = t, ctx
    local share = entry
    local ok, s = pcall(dialog, t, ctx, env, share)
    if not ok then
      -- a bug: the waiters get it as an error dialog, this query raises as before
      hostshare.finish(entry, { status = "error", error = "internal error: " .. tostring(s), time_ms = 0,
                                transcript = {} })
      for _, req in ipairs(hostshare.take(entry, math.maxinteger)) do req.event:set() end
      error(s, 0)
    end
    hostshare.finish(entry, s)
    if not entry.rcpt_open then
      -- the host dialog never reached RCPT: nothing to batch
      for _, req in ipairs(hostshare.take(entry, math.maxinteger)) do req.event:set() end
    else
      ensure_batcher(t, ctx, entry)
    end
    if entry.sharers > 0 then
      s.shared = { at = entry.at, host_dialog = true, control = entry.ctl_path and "host-dialog" or nil }
    end
    return s
  end
  -- a later query: wait for the host dialog, and for this domain's RCPT
  local start = core.now()
  local deadline = start + o.probe_timeout * 1000
  entry.sharers = entry.sharers + 1
  local req
  if not entry.done or entry.rcpt_open then
    req = { domain = domain, lines = {}, event = loop.event() }
    hostshare.enqueue(entry, req)
    ensure_batcher(t, ctx, entry)
  end
  if not hostshare.wait(entry, deadline) then
    if req then req.cancelled = true end
    return { status = "timeout", time_ms = core.now() - start, transcript = {},
             error = "probe deadline reached: waiting for the dialog with this host another query holds",
             shared = { at = entry.at, host_dialog = false } }
  end
  if req and not req.event:wait(deadline) then
    req.cancelled = true
    answer(req, { command = "RCPT", line = control_line(domain), status = "timeout",
                  error = "probe deadline reached: waiting for the batch session" })
  end
  local s, shared = M.domain_copy(entry, req)
  s.shared = shared
  return s
end

return M
