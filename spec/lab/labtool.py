#!/usr/bin/env python3
"""Small helpers of the mxprobe lab (spec/lab/lab.sh); standard library only.

  labtool.py portcheck ENDPOINT...        can every endpoint be bound?
  labtool.py blackhole ADDR PORT PIDFILE  listener whose connects time out
  labtool.py wait SECONDS CHECK...        until every server answers
  labtool.py check STATE                  talk to every scenario, print a table

ENDPOINT is tcp:ADDR:PORT or udp:ADDR:PORT (ADDR may be [::1]).
CHECK is smtp:ADDR:PORT (a complete 220 greeting), dns:ADDR:NAME:TYPE (an
answer), dnsad:ADDR:NAME:TYPE (an answer with the AD bit set) or
https:ADDR:PORT:NAME (a TLS handshake with SNI NAME, then an HTTP status
line to a GET of the MTA-STS policy; the certificate is not checked here).
Everything stays on loopback: addresses outside 127.0.0.0/8 and ::1 are refused.
"""

import ipaddress
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time


def loopback(addr):
    if not ipaddress.ip_address(addr).is_loopback:
        sys.exit(f"labtool: {addr} is not a loopback address")
    return addr


def split_hostport(text):
    """'127.0.0.1:25' or '[::1]:25' -> (addr, rest)."""
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]:")
    else:
        addr, _, rest = text.partition(":")
    return loopback(addr), rest


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


# ---------------------------------------------------------------- portcheck

def portcheck(endpoints):
    busy = []
    for ep in endpoints:
        proto, _, rest = ep.partition(":")
        addr, port = split_hostport(rest)
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(family(addr), kind)
        try:
            if kind == socket.SOCK_STREAM:
                # a TIME_WAIT left by an earlier run is not "taken"
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, int(port)))
            if kind == socket.SOCK_STREAM:
                s.listen(1)
        except OSError as e:
            busy.append(f"{ep} ({e.strerror})")
        finally:
            s.close()
    for b in busy:
        print(b)
    return 1 if busy else 0


# ---------------------------------------------------------------- blackhole

def blackhole(addr, port, pidfile):
    """Listen with a backlog of 0 and never accept; fill the accept queue
    with our own connections, so the kernel drops every further SYN and a
    client's connect times out (rather than being refused)."""
    loopback(addr)
    port = int(port)
    os.setsid()
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(0)
    fillers = []
    for _ in range(2):
        c = socket.socket(family(addr), socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex((addr, port))
        fillers.append(c)
    time.sleep(0.2)
    # The proof: a further connect must time out, not be refused or accepted.
    probe = socket.socket(family(addr), socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect((addr, port))
        sys.exit("labtool blackhole: a connect succeeded; the accept queue is not full")
    except socket.timeout:
        pass
    except OSError as e:
        sys.exit(f"labtool blackhole: probe connect failed with {e.strerror}, not a timeout")
    finally:
        probe.close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    tmp = pidfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(tmp, pidfile)
    print(f"blackhole on {addr}:{port}, pid {os.getpid()}", flush=True)
    while True:
        signal.pause()


# ---------------------------------------------------------------- DNS

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
         "DS": 43, "DNSKEY": 48, "TLSA": 52}


def dns_query(server, name, qtype, timeout=1.0):
    """One UDP query with RD, AD and DO set; returns (rcode, ad, ancount)."""
    qid = int.from_bytes(os.urandom(2), "big")
    q = struct.pack(">HHHHHH", qid, 0x0120, 1, 0, 0, 1)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", TYPES[qtype], 1)
    q += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)  # OPT, DO
    s = socket.socket(family(server), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (server, 53))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            r, _ = s.recvfrom(65535)
            if len(r) >= 12 and struct.unpack(">H", r[:2])[0] == qid:
                break
    finally:
        s.close()
    _, flags, _, an, _, _ = struct.unpack(">HHHHHH", r[:12])
    return flags & 0xF, bool(flags & 0x20), an


# ---------------------------------------------------------------- SMTP

class Smtp:
    """A plain SMTP conversation with deadlines; keeps a transcript."""

    def __init__(self, addr, port=25, timeout=10.0):
        self.s = socket.create_connection((addr, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.start = time.monotonic()
        self.first_byte = None

    def reply(self):
        """Read one complete (possibly multi-line) reply: (code, [lines])."""
        lines = []
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no complete reply")
                self.s.settimeout(left)
                data = self.s.recv(4096)
                if not data:
                    raise ConnectionError("connection closed")
                if self.first_byte is None:
                    self.first_byte = time.monotonic() - self.start
                self.buf += data
            line, _, self.buf = self.buf.partition(b"\n")
            line = line.rstrip(b"\r").decode("latin-1")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.s.close()


def banner_ok(addr, port, deadline):
    last = "deadline"
    while time.monotonic() < deadline:
        try:
            c = Smtp(addr, port, timeout=max(0.5, deadline - time.monotonic()))
            try:
                code, _ = c.reply()
                if code == 220:
                    c.cmd("QUIT")
                    return True, "220"
                return False, f"greeting {code}"
            finally:
                c.close()
        except (OSError, TimeoutError, ConnectionError) as e:
            last = str(e)
        time.sleep(0.2)
    return False, last


def https_ok(addr, port, name, deadline):
    """MTA-STS (issue 8): nginx answers an HTTP request over TLS for name."""
    last = "deadline"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((addr, port), timeout=1.0) as raw:
                with ctx.wrap_socket(raw, server_hostname=name) as s:
                    s.sendall(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {name}\r\n"
                              "Connection: close\r\n\r\n".encode())
                    head = s.recv(64)
                    if head.startswith(b"HTTP/1.1 "):
                        return True, head.split(b"\r\n")[0].decode("latin-1")
                    last = f"not HTTP: {head!r}"
        except (OSError, TimeoutError, ssl.SSLError) as e:
            last = str(e)
        time.sleep(0.2)
    return False, last


def dns_ok(server, name, qtype, need_ad, deadline):
    last = "deadline"
    while time.monotonic() < deadline:
        try:
            rcode, ad, an = dns_query(server, name, qtype)
            if rcode == 0 and an > 0 and (ad or not need_ad):
                return True, "ok"
            last = f"rcode {rcode} answers {an} ad {ad}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    return False, last


def wait(seconds, checks):
    deadline = time.monotonic() + float(seconds)
    results = {}

    def run(check):
        kind, _, rest = check.partition(":")
        if kind == "smtp":
            addr, port = split_hostport(rest)
            results[check] = banner_ok(addr, int(port), deadline)
        elif kind == "https":
            addr, rest2 = split_hostport(rest)
            port, _, name = rest2.partition(":")
            results[check] = https_ok(addr, int(port), name, deadline)
        else:
            addr, rest2 = split_hostport(rest)
            name, _, qtype = rest2.partition(":")
            results[check] = dns_ok(addr, name, qtype, kind == "dnsad", deadline)

    threads = [threading.Thread(target=run, args=(c,)) for c in checks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [f"{c}: {results[c][1]}" for c in checks if not results[c][0]]
    for b in bad:
        print(b)
    return 1 if bad else 0


# ---------------------------------------------------------------- check

# (domain, address, certificate name to verify) of every SMTP scenario
SCENARIOS = [
    ("good", "127.0.1.1", "mx1.good.example.test"),
    ("good", "127.0.1.2", "mx2.good.example.test"),
    ("expired", "127.0.2.1", "mx.expired.example.test"),
    ("wrongname", "127.0.3.1", "mx.wrongname.example.test"),
    ("selfsigned", "127.0.4.1", "mx.selfsigned.example.test"),
    ("incomplete", "127.0.5.1", "mx.incomplete.example.test"),
    ("notls", "127.0.6.1", "mx.notls.example.test"),
    ("openrelay", "127.0.7.1", "mx.openrelay.example.test"),
    ("greylist", "127.0.8.1", "mx.greylist.example.test"),
    ("postscreen", "127.0.9.1", "mx.postscreen.example.test"),
    ("slowbanner", "127.0.10.1", "mx.slowbanner.example.test"),
    ("closed", "127.0.11.1", "mx.closed.example.test"),
    ("blackhole", "127.0.12.1", "mx.blackhole.example.test"),
    ("implicit", "127.0.13.1", "implicit.example.test"),
    ("expiring", "127.0.14.1", "mx.expiring.example.test"),
    ("weakkey", "127.0.15.1", "mx.weakkey.example.test"),
    ("helo", "127.0.16.1", "mx.helo.example.test"),
    ("tls12", "127.0.17.1", "mx.tls12.example.test"),
    ("v6only", "::1", "mx.v6only.example.test"),
    # TLS posture
    ("tlsold", "127.0.40.1", "mx.tlsold.example.test"),
    ("tls13", "127.0.40.2", "mx.tls13.example.test"),
    ("rdnsbad", "127.0.40.3", "mx.rdnsbad.example.test"),
    ("rdnstwo", "127.0.40.4", "mx.rdnstwo.example.test"),
    # DANE: the shared server, the pinned self-signed and expired leaves
    ("dane-ee", "127.0.20.1", "mx.dane-ee.example.test"),
    ("dane-selfsigned", "127.0.20.2", "mx.dane-selfsigned.example.test"),
    ("dane-expired", "127.0.20.3", "mx.dane-expired.example.test"),
    ("dane-sni", "127.0.20.4", "mx.dane-sni.example.test"),
]


def s_client(addr, name, cafile, seclevel0=False):
    """openssl s_client -starttls smtp: (protocol, verify result, #certs, leaf CN, notAfter)."""
    host = f"[{addr}]:25" if ":" in addr else f"{addr}:25"
    cmd = ["openssl", "s_client", "-starttls", "smtp", "-name", "check.lab.test",
           "-connect", host, "-CAfile", cafile, "-verify_hostname", name, "-showcerts"]
    if seclevel0:
        cmd += ["-cipher", "DEFAULT:@SECLEVEL=0"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    out = p.stdout + p.stderr
    proto = re.search(r"(?:New|Protocol).*?(TLSv[0-9.]+)", out)
    verify = re.search(r"Verify return code: (\d+) \(([^)]*)\)", out)
    ncert = out.count("-----BEGIN CERTIFICATE-----")
    leaf = re.search(r"^ ?0 s:.*?CN ?= ?([^,/\n]+)", out, re.M)
    after = re.search(r"NotAfter: (.*)", out)
    if not verify:
        err = re.search(r"error:[0-9A-F]+:[^:]*:[^:]*:([^\n]*)", out)
        return None, "handshake failed" + (f": {err.group(1)}" if err else ""), 0, None, None
    return (proto.group(1) if proto else "?", f"{verify.group(1)} {verify.group(2)}",
            ncert, leaf.group(1).strip() if leaf else "?", after.group(1).strip() if after else "?")


def check_one(domain, addr, name, cafile):
    row = {"domain": domain, "addr": addr}
    try:
        c = Smtp(addr, 25, timeout=6)
    except socket.timeout:
        row["connect"] = "timeout"
        return row
    except OSError as e:
        row["connect"] = e.strerror.lower() if e.strerror else str(e)
        return row
    row["connect"] = "ok"
    try:
        code, lines = c.reply()
        row["banner"] = f"{code} ({len(lines)} line{'s' if len(lines) > 1 else ''}, " \
                        f"first byte {c.first_byte:.1f}s, last {time.monotonic() - c.start:.1f}s)"
        code, lines = c.cmd("EHLO check.lab.test")
        row["ehlo"] = str(code)
        row["starttls"] = "yes" if any(l[4:].upper().startswith("STARTTLS") for l in lines) else "no"
        if code == 250:
            row["mail"] = str(c.cmd("MAIL FROM:<check@lab-sender.test>")[0])
            r = c.cmd("RCPT TO:<x@relay-target.invalid>")
            row["rcpt_ext"] = f"{r[0]} {r[1][-1][4:]}"
            r = c.cmd(f"RCPT TO:<postmaster@{domain}.example.test>")
            row["rcpt_pm"] = f"{r[0]} {r[1][-1][4:]}"
            row["rset"] = str(c.cmd("RSET")[0])
        else:
            row["ehlo"] = f"{code} {lines[-1][4:]}"
        row["quit"] = str(c.cmd("QUIT")[0])
    except (OSError, TimeoutError, ConnectionError) as e:
        row["error"] = str(e)
    finally:
        c.close()
    if row.get("starttls") == "yes":
        tls = s_client(addr, name, cafile)
        if tls[0] is None:
            row["tls_default"] = tls[1]
            tls = s_client(addr, name, cafile, seclevel0=True)
        row["tls"] = tls
    return row


def check(state):
    cafile = os.path.join(state, "ca", "root.pem")
    rows = [None] * len(SCENARIOS)

    def run(i, sc):
        rows[i] = check_one(*sc, cafile)

    threads = [threading.Thread(target=run, args=(i, sc)) for i, sc in enumerate(SCENARIOS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("| scenario | address | connect | banner | EHLO | STARTTLS | TLS | verify (chain sent) | leaf CN, notAfter | MAIL | RCPT external | RCPT postmaster |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tls = r.get("tls")
        if tls:
            pre = f"{r['tls_default']}; at SECLEVEL=0: " if "tls_default" in r else ""
            tlscol, vcol, leafcol = tls[0], f"{pre}{tls[1]} ({tls[2]} cert{'s' if tls[2] != 1 else ''})", f"{tls[3]}, {tls[4]}"
        else:
            tlscol = vcol = leafcol = "-"
        print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["domain"], r["addr"], r["connect"], r.get("banner", "-"), r.get("ehlo", "-"),
            r.get("starttls", "-"), tlscol, vcol, leafcol, r.get("mail", "-"),
            r.get("rcpt_ext", "-"), r.get("rcpt_pm", "-")))
    print()
    print("| query (resolver 127.0.53.53) | type | rcode | AD | answers |")
    print("|---|---|---|---|---|")
    rc = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}
    for name, qtype in [("good", "MX"), ("nullmx", "MX"), ("implicit", "MX"), ("implicit", "A"),
                        ("nxdomain", "MX"), ("v6only", "MX"), ("mx.v6only", "AAAA"),
                        ("mxcname", "MX"), ("alias.mxcname", "A"), ("dangling", "MX"),
                        ("mx.missing", "A"), ("noaddr", "MX"), ("mx.noaddr", "A"),
                        ("samehost", "MX"), ("_25._tcp.mx1.good", "TLSA"),
                        # DANE: secure, bogus (damaged RRSIG), bogus zone, unsigned zone
                        ("_25._tcp.mx.dane-ee", "TLSA"), ("_25._tcp.mx.dane-bogus", "TLSA"),
                        ("mx.bogus", "A"), ("_25._tcp.mx.unsigned", "TLSA")]:
        try:
            code, ad, an = dns_query("127.0.53.53", f"{name}.example.test", qtype, timeout=3)
            print(f"| {name}.example.test | {qtype} | {rc.get(code, code)} | {'ad' if ad else '-'} | {an} |")
        except OSError as e:
            print(f"| {name}.example.test | {qtype} | {e} | | |")
    for name in ["1.1.0.127.in-addr.arpa", "1.99.0.127.in-addr.arpa"]:
        code, ad, an = dns_query("127.0.53.53", name, "PTR", timeout=3)
        print(f"| {name} | PTR | {rc.get(code, code)} | {'ad' if ad else '-'} | {an} |")
    code, ad, an = dns_query("127.0.53.53", "example.com", "A", timeout=3)
    print(f"| example.com (outside the lab) | A | {rc.get(code, code)} | {'ad' if ad else '-'} | {an} |")
    print()
    check_mta_sts(cafile)
    return 0


# MTA-STS (issue 8): every policy scenario served by the lab's nginx
STS_SCENARIOS = ["sts-enforce", "sts-testing", "sts-none", "sts-notlisted", "sts-wildcard",
                 "sts-deep", "sts-expired", "sts-invalid", "sts-404", "sts-redirect", "sts-ctype",
                 "sts-big", "sts-badcert", "sts-twotxt", "sts-badid", "sts-notxt"]


def https_get(addr, name, cafile):
    """(verify, status line, content-type, body bytes) of the policy URL."""
    verify = "ok"
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((addr, 443), timeout=3) as raw:
            with ctx.wrap_socket(raw, server_hostname=name):
                pass
    except ssl.SSLCertVerificationError as e:
        verify = e.verify_message
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((addr, 443), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {name}\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    ctype = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("content-type:")), "-")
    return verify, lines[0], ctype, len(body)


def check_mta_sts(cafile):
    print("| MTA-STS policy (127.0.30.1:443, SNI) | verify | status | Content-Type | body bytes |")
    print("|---|---|---|---|---|")
    for d in STS_SCENARIOS:
        name = f"mta-sts.{d}.example.test"
        try:
            v, status, ctype, n = https_get("127.0.30.1", name, cafile)
            print(f"| {name} | {v} | {status} | {ctype} | {n} |")
        except OSError as e:
            print(f"| {name} | {e} | | | |")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "portcheck":
        return portcheck(args)
    if cmd == "blackhole" and len(args) == 3:
        return blackhole(*args)
    if cmd == "wait" and args:
        return wait(args[0], args[1:])
    if cmd == "check" and len(args) == 1:
        return check(args[0])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
