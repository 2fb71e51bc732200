-- mxprobe: test the mail transport of a domain.
-- Offline install on Debian (lua-cjson and lua-argparse from apt):
--   luarocks --lua-version 5.4 make --deps-mode=none
rockspec_format = "3.0"
package = "mxprobe"
version = "scm-1"
source = {
  url = "git+https://example.invalid/mxprobe.git",
}
description = {
  summary = "Test the mail transport of a domain: MX, SMTP, STARTTLS, certificates, open relay",
  detailed = [[
mxprobe probes every MX host and address of a domain: DNS MX resolution, TCP
connect to port 25, the banner, EHLO, STARTTLS with the negotiated TLS version
and cipher, the certificate chain (trust, expiry, name, key), and whether the
server relays. It never sends DATA. Checks, scoring and reports are Lua.]],
  license = "MIT",
  labels = { "smtp", "mail", "tls", "dns", "monitoring" },
}
dependencies = {
  "lua >= 5.4",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",
}
external_dependencies = {
  LIBTLS = { header = "tls.h", library = "tls" },
  LDNS = { header = "ldns/ldns.h", library = "ldns" },
  OPENSSL = { header = "openssl/x509.h", library = "crypto" },
}
-- start-up (issue 10 part 5): bin/mxprobe is installed as it is, not in a
-- wrapper that loads luarocks.loader on every run; it falls back to the
-- loader itself when the modules are outside the plain Lua paths
deploy = { wrap_bin_scripts = false }
build = {
  type = "builtin",
  modules = {
    ["mxprobe.core"] = {
      sources = {
        "csrc/core.c", "csrc/err.c", "csrc/net.c", "csrc/smtp.c", "csrc/dns.c", "csrc/tls.c", "csrc/x509.c",
        "csrc/poller.c", "csrc/random.c", "csrc/http.c",
        "csrc/proc.c", "csrc/lines.c", -- bulk CLI
        "csrc/sys.c", -- robustness (issue 12)
        "csrc/spawn.c", -- workers
      },
      defines = { "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      incdirs = { "csrc", "$(LIBTLS_INCDIR)", "$(LDNS_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(LIBTLS_LIBDIR)", "$(LDNS_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      libraries = { "tls", "ldns", "ssl", "crypto" },
    },
    -- kept in step with lua/ and csrc/ by spec/unit/rockspec_spec.lua
    ["mxprobe"] = "lua/mxprobe.lua",
    ["mxprobe.checks.consistency"] = "lua/mxprobe/checks/consistency.lua",
    ["mxprobe.checks.dns_mx"] = "lua/mxprobe/checks/dns_mx.lua",
    ["mxprobe.checks"] = "lua/mxprobe/checks/init.lua",
    ["mxprobe.checks.rdns"] = "lua/mxprobe/checks/rdns.lua",
    ["mxprobe.checks.smtp_repeat"] = "lua/mxprobe/checks/smtp_repeat.lua",  -- repeat/greylist
    ["mxprobe.checks.relay"] = "lua/mxprobe/checks/relay.lua",
    ["mxprobe.checks.smtp_banner"] = "lua/mxprobe/checks/smtp_banner.lua",
    ["mxprobe.checks.smtp_ehlo"] = "lua/mxprobe/checks/smtp_ehlo.lua",
    ["mxprobe.checks.smtp_extensions"] = "lua/mxprobe/checks/smtp_extensions.lua",
    ["mxprobe.checks.smtp_throttle"] = "lua/mxprobe/checks/smtp_throttle.lua",
    ["mxprobe.checks.smtp_timeout"] = "lua/mxprobe/checks/smtp_timeout.lua",
    ["mxprobe.checks.smtp_unsolicited"] = "lua/mxprobe/checks/smtp_unsolicited.lua",
    ["mxprobe.checks.tcp"] = "lua/mxprobe/checks/tcp.lua",
    ["mxprobe.checks.tls_cert"] = "lua/mxprobe/checks/tls_cert.lua",
    ["mxprobe.checks.tls_chain_order"] = "lua/mxprobe/checks/tls_chain_order.lua",
    ["mxprobe.checks.dane"] = "lua/mxprobe/checks/dane.lua",   -- DANE
    ["mxprobe.checks.tls_session"] = "lua/mxprobe/checks/tls_session.lua",
    ["mxprobe.checks.tls_starttls"] = "lua/mxprobe/checks/tls_starttls.lua",
    ["mxprobe.checks.tls_versions"] = "lua/mxprobe/checks/tls_versions.lua",
    ["mxprobe.checks.util"] = "lua/mxprobe/checks/util.lua",
    ["mxprobe.chaincache"] = "lua/mxprobe/chaincache.lua",
    ["mxprobe.hostshare"] = "lua/mxprobe/hostshare.lua",   -- hostshare (issue 10 item 3)
    ["mxprobe.cli"] = "lua/mxprobe/cli.lua",
    -- bulk CLI: the CLI's helpers, one concern each
    ["mxprobe.cli.output"] = "lua/mxprobe/cli/output.lua",
    ["mxprobe.cli.progress"] = "lua/mxprobe/cli/progress.lua",
    ["mxprobe.cli.queries"] = "lua/mxprobe/cli/queries.lua",
    ["mxprobe.cli.resume"] = "lua/mxprobe/cli/resume.lua",
    ["mxprobe.cli.results"] = "lua/mxprobe/cli/results.lua",
    -- workers: --workers N, the slot broker
    ["mxprobe.cli.workers"] = "lua/mxprobe/cli/workers.lua",
    ["mxprobe.broker"] = "lua/mxprobe/broker.lua",
    ["mxprobe.conn"] = "lua/mxprobe/conn.lua",
    ["mxprobe.dns"] = "lua/mxprobe/dns.lua",
    ["mxprobe.facts"] = "lua/mxprobe/facts.lua",
    ["mxprobe.facttypes"] = "lua/mxprobe/facttypes.lua",
    ["mxprobe.framers"] = "lua/mxprobe/framers.lua",
    ["mxprobe.gather.addresses"] = "lua/mxprobe/gather/addresses.lua",
    ["mxprobe.gather"] = "lua/mxprobe/gather/init.lua",
    ["mxprobe.gather.mx"] = "lua/mxprobe/gather/mx.lua",
    ["mxprobe.gather.rdns"] = "lua/mxprobe/gather/rdns.lua",
    ["mxprobe.gather.smtp"] = "lua/mxprobe/gather/smtp.lua",
    ["mxprobe.gather.tls_rpt"] = "lua/mxprobe/gather/tls_rpt.lua",
    -- MTA-STS and TLS-RPT (issue 8)
    ["mxprobe.gather.mta_sts"] = "lua/mxprobe/gather/mta_sts.lua",
    ["mxprobe.checks.mta_sts"] = "lua/mxprobe/checks/mta_sts.lua",
    ["mxprobe.checks.tls_rpt"] = "lua/mxprobe/checks/tls_rpt.lua",
    ["mxprobe.gather.tls_versions"] = "lua/mxprobe/gather/tls_versions.lua",
    ["mxprobe.gather.tlsa"] = "lua/mxprobe/gather/tlsa.lua",   -- DANE
    ["mxprobe.gather.dane"] = "lua/mxprobe/gather/dane.lua",   -- DANE
    ["mxprobe.json"] = "lua/mxprobe/json.lua",
    ["mxprobe.judge"] = "lua/mxprobe/judge.lua",
    ["mxprobe.loop"] = "lua/mxprobe/loop.lua",
    ["mxprobe.policy"] = "lua/mxprobe/policy.lua",
    ["mxprobe.policy.default"] = "lua/mxprobe/policy/default.lua",
    ["mxprobe.probe"] = "lua/mxprobe/probe.lua",
    ["mxprobe.query"] = "lua/mxprobe/query.lua",
    ["mxprobe.report.formats"] = "lua/mxprobe/report/formats.lua",
    ["mxprobe.report.json"] = "lua/mxprobe/report/json.lua",
    ["mxprobe.report.text"] = "lua/mxprobe/report/text.lua",
    -- reports (issue 11)
    ["mxprobe.report.view"] = "lua/mxprobe/report/view.lua",
    ["mxprobe.report.html"] = "lua/mxprobe/report/html.lua",
    ["mxprobe.report.csv"] = "lua/mxprobe/report/csv.lua",
    ["mxprobe.report.nagios"] = "lua/mxprobe/report/nagios.lua",
    ["mxprobe.run"] = "lua/mxprobe/run.lua",
    ["mxprobe.version"] = "lua/mxprobe/version.lua", -- start-up (issue 10 part 5)
    ["mxprobe.schema"] = "lua/mxprobe/schema.lua",
    ["mxprobe.score"] = "lua/mxprobe/score.lua",
    ["mxprobe.regime"] = "lua/mxprobe/regime.lua",   -- DANE: the regime per MX
    ["mxprobe.text"] = "lua/mxprobe/text.lua",
  },
  install = {
    bin = { mxprobe = "bin/mxprobe" },
  },
}
