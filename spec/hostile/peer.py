#!/usr/bin/env python3
"""peer.py -- a scriptable misbehaving SMTP / DNS server for mxprobe's specs.

  peer.py smtp --listen 127.0.66.1:2525 --fault NAME [--cert F --key F] [--code N] [--delay S]
  peer.py dns  --listen 127.0.66.53:5300 --fault NAME [--a ADDR] [--count N] [--mx NAME]
  peer.py https --listen 127.0.66.200:443 --fault NAME [--cert F --key F] [--delay S]

Used only for faults real servers in the lab can't be configured to produce.
Listens on loopback only (127.0.0.0/8 or ::1; anything else is refused),
prints "ready" on stdout once listening, serves any number of connections
(one thread each) until killed. Python 3 standard library only.
SMTP peers log on stderr every TLS SNI they receive ("sni: 'name'"), the
client's end of every connection they accept ("client: 127.0.0.1:40312")
and every command line they read ("line: 'MAIL FROM:<a@b>'", Python's
ascii() of the line), so specs can compare the facts with what the server
saw.
Certificates: spec/hostile/certs/, made by spec/hostile/make-certs.sh;
normal.pem is used for STARTTLS unless a fault or --cert says otherwise.

SMTP faults (a mostly normal dialog that the fault bends; STARTTLS is
offered when a certificate is available):

  normal                      no fault: a well-behaved server (harness check)
  no-banner                   accept, never send anything
  drip-banner                 the banner, one byte per second
  endless-continuation        "220-" lines, forever
  huge-line                   a banner of one 1 MiB line
  nul-banner                  a NUL inside the banner (and EHLO greeting)
  ansi-banner                 ANSI CSI, OSC 8 / OSC 52, BEL, 8-bit CSI and
                              bidi overrides in the banner (and EHLO greeting)
  invalid-utf8-banner         invalid UTF-8 in the banner (and EHLO greeting)
  bad-code                    a banner whose code is not three digits
  code-change                 EHLO answered "250-..." then "354 ..."
  code-out-of-range           a banner with code --code (default 600; try 199)
  close-on-accept             accept, then close without a byte
  close-after-banner          banner, then close
  close-after-ehlo            EHLO answered, then close
  close-after-starttls-220    "220" to STARTTLS, then close
  close-mid-handshake         "220" to STARTTLS, half a ServerHello, close
  close-after-rcpt            RCPT TO received, closed without an answer
  stall-mail-from             MAIL FROM received, never answered (held open)
  stall-rcpt                  MAIL FROM answered, the first RCPT TO never
                              answered (held open)
  421-banner, 421-ehlo, 421-starttls
                              421 at that step, then close
  554-banner                  "554 5.7.1" greeting (a block), then QUIT answered
  helo-only                   EHLO refused with 502, HELO accepted (no ESMTP)
  auth-required               outside RCPT answered 530 5.7.0 (authentication
                              required), postmaster accepted
  accept-any                  outside RCPT accepted, postmaster refused 550
  tls10                       STARTTLS offered, TLS 1.0 only (security level 0)
  all-hostile-banner          the ansi-banner text followed by a NUL, invalid
                              UTF-8 (\\xff\\xfe) and a CR, in the banner (and
                              EHLO greeting): every kind of hostile byte at once
  markup-banner               (reports, issue 11) HTML markup, a CSV formula
                              and perfdata syntax in the banner (and EHLO
                              greeting): <script>, onerror=, quotes, |, =, comma
  untrusted-root              a normal dialog whose TLS presents normal.pem
                              followed by the self-signed ca.pem: a chain that
                              ends in a root the client may not trust (probed
                              with another CA file: untrusted root, depth 1)
  454-starttls                STARTTLS answered 454, dialog goes on in clear
  starttls-plaintext-garbage  "220" to STARTTLS followed by plaintext junk,
                              and plaintext in answer to the ClientHello
  stall-handshake             "220" to STARTTLS, then never a TLS byte
  ehlo-10000-extensions       an EHLO reply of 10,000 extension lines
  pipelining-abuse            replies sent before their command
  close-after-tls             (TLS posture) the handshake completes, then the
                              first command inside TLS is met with a close
  plaintext-in-tls            (TLS posture) the handshake completes, then EHLO
                              inside TLS is answered in plaintext on the raw
                              socket (what a broken STARTTLS proxy does)
  refuse-ehlo-in-tls          (TLS posture) EHLO and HELO inside TLS answered
                              554 (in plaintext they are accepted)
  stall-in-tls                (TLS posture) the handshake completes, then no
                              answer inside TLS ever (held open)
  starttls-250                (TLS posture) STARTTLS answered "250", not
                              "220"; the dialog goes on in plaintext
  greylist-once               (repeat/greylist) the first outside RCPT from a
                              client address answered 450 4.7.1 (greylisted),
                              every later one accepted (250): an open relay
                              behind greylisting
  starttls-every-other        (repeat/greylist) STARTTLS offered on the 1st,
                              3rd, 5th ... connection only (a load balancer
                              with one node that lacks TLS)
  --greylist-once (any fault) (repeat/greylist) as the fault greylist-once,
                              with any other fault
  --open-relay (any fault)    the outside RCPT is accepted (250) too: an open
                              relay, e.g. behind broken TLS
  rcpt-452                    (hostshare) from the (N+1)th RCPT of a transaction
                              on, "452 4.5.3 Error: too many recipients"
                              (N = --count; MAIL FROM and RSET start a new
                              one); the banner comes 0.5 s late (so every
                              domain of a run is waiting by RCPT time)
  rcpt-421                    (hostshare) the (N+1)th RCPT of a connection is
                              answered "421 4.7.0", then the connection
                              closes; the banner 0.5 s late too
  slow-replies                the banner and every reply sent --delay seconds
                              (default 1.5) late: each phase in time, the
                              whole dialog not
  cert-nul-cn, cert-many-sans, chain-200, chain-wrong-order,
  unknown-critical-ext, rsa-16384
                              a normal dialog whose TLS presents the chain
                              spec/hostile/certs/<fault>.pem (key <fault>.key)
                              made by make-certs.sh; --cert/--key override

Closing is graceful (shutdown, then the client's bytes are drained until it
closes) so the client sees an orderly end of stream, never a race with RST.

DNS faults (UDP and TCP on the same port; unless noted a fault applies to
every question):

  normal            MX of D -> 10 mx.D (--mx NAME: 10 NAME); A of any name -> --a (default
                    127.0.66.1); AAAA and others -> NOERROR, no data
  wrong-id          the right answer with another message ID
  wrong-question    the right ID, answering another question
  truncated-no-tcp  TC bit over UDP; over TCP the query is read and the
                    connection closed
  compression-loop  an answer whose owner name is a pointer to itself
  many-mx           MX: TC over UDP, 1,000 MX records over TCP
  many-mx-udp       MX: 1,000 MX records in one large UDP datagram
  mx-cname-self     MX normal; the MX host's A/AAAA answered with a CNAME
                    chain that leads back to itself
  cname-loop        MX answered with a CNAME loop (D -> loop.D -> D)
  many-targets      MX answered with --count hosts (default 256), and the A of
                    any name with --count records cycling over --count/2
                    addresses 127.0.67.1, .2, ... (each listed twice; nothing
                    listens there: each connect is refused at once)
  hostile-names     MX answered with exchanges whose labels hold ESC/CSI,
                    NUL, BEL, invalid UTF-8 and dots; A answered normally
  servfail          RCODE SERVFAIL
  no-answer         silence (UDP and TCP)
  mta-sts           normal, and the TXT of any _mta-sts.D is "v=STSv1;
                    id=hostile1" (MTA-STS, issue 8)
  odd-addresses     (robustness, issue 12) A of any name: 0.0.0.0,
                    224.0.0.1, 255.255.255.255 and --a; AAAA: ::, ff02::1
                    and ::ffff:<--a> (only addresses that cannot leave
                    the machine)
  address-exchange  (robustness, issue 12) MX answered with the exchange
                    written as the address --a (labels 127.0.66.3.)

HTTPS faults (MTA-STS policy fetch, issue 8): TLS with normal.pem (names
mx.hostile.test and *.hostile.test, so mta-sts.hostile.test verifies), the
request read (its header section, at most 64 KiB), then:

  normal            200 text/plain, a valid enforce policy for mx.hostile.test
  endless-headers   "HTTP/1.1 200 OK" and header fields, forever
  huge-body         Content-Length: 10485760 and 10 MB of body
  huge-body-close   no Content-Length, 10 MB of body, then close
  cl-short          Content-Length: 1000, the 80-byte policy, then close
  cl-long           Content-Length: 20, then the whole policy
  chunk-overflow    chunked, a chunk size of 24 hex digits (overflows 64 bits)
  drip              the normal response, one byte every --delay seconds
  hostile-policy    200 text/plain, a policy with NULs, ANSI/OSC escapes, a
                    bidi override and invalid UTF-8 in its values, and a
                    header value of 8-bit bytes
"""
import argparse
import ipaddress
import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time

HOLD = 60          # seconds a stalling fault holds a connection at most
IO_TIMEOUT = 30    # seconds any one peer-side socket operation may block
HERE = os.path.dirname(os.path.abspath(__file__))
CERT_FAULTS = ("cert-nul-cn", "cert-many-sans", "chain-200", "chain-wrong-order",
               "unknown-critical-ext", "rsa-16384")
SMTP_FAULTS = ("normal", "no-banner", "drip-banner", "endless-continuation", "huge-line",
               "nul-banner", "ansi-banner", "invalid-utf8-banner", "bad-code", "code-change",
               "code-out-of-range", "close-on-accept", "close-after-banner", "close-after-ehlo",
               "close-after-starttls-220", "close-mid-handshake", "close-after-rcpt",
               "stall-mail-from", "stall-rcpt",
               "421-banner", "421-ehlo", "421-starttls", "454-starttls",
               "starttls-plaintext-garbage", "stall-handshake", "ehlo-10000-extensions",
               "pipelining-abuse", "slow-replies",
               "554-banner", "helo-only", "auth-required", "accept-any", "tls10",
               "all-hostile-banner", "untrusted-root",
               "markup-banner",  # reports (issue 11)
               # TLS posture: the session after the handshake
               "close-after-tls", "plaintext-in-tls", "refuse-ehlo-in-tls", "stall-in-tls",
               "starttls-250",
               "greylist-once", "starttls-every-other",  # repeat/greylist
               "rcpt-452", "rcpt-421") + CERT_FAULTS  # hostshare
DNS_FAULTS = ("normal", "wrong-id", "wrong-question", "truncated-no-tcp", "compression-loop",
              "many-mx", "many-mx-udp", "mx-cname-self", "cname-loop", "hostile-names",
              "many-targets", "servfail", "no-answer", "mta-sts",
              "odd-addresses", "address-exchange")  # robustness (issue 12)
HTTPS_FAULTS = ("normal", "endless-headers", "huge-body", "huge-body-close", "cl-short", "cl-long",
                "chunk-overflow", "drip", "hostile-policy")


def die(msg):
    sys.stderr.write("peer.py: " + msg + "\n")
    sys.exit(2)


def parse_listen(spec):
    """'127.0.66.1:2525' or '[::1]:2525' -> (family, addr, port); loopback only."""
    if spec.startswith("["):
        addr, sep, port = spec[1:].partition("]:")
    else:
        addr, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        die("--listen wants ADDR:PORT or [V6]:PORT, got " + spec)
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        die("not an IP address: " + addr)
    if not ip.is_loopback:
        die("refusing to listen on %s: loopback only (127.0.0.0/8, ::1)" % addr)
    port = int(port)
    if not 0 < port < 65536:
        die("port out of range: %d" % port)
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip), port


def spawn(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def hold(sock, seconds=HOLD):
    """Reads and discards until the client closes (or `seconds` pass)."""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            sock.settimeout(max(0.1, end - time.monotonic()))
            if not sock.recv(65536):
                return
    except (OSError, ValueError):
        return


def graceful_close(sock):
    """Orderly end of stream: FIN first, drain what the client still sends
    (so the kernel never answers it with RST), then close."""
    raw = sock
    if isinstance(sock, ssl.SSLSocket):
        try:
            raw = sock.unwrap()
        except (OSError, ValueError):
            raw = sock
    try:
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    hold(raw, 10)
    try:
        raw.close()
    except OSError:
        pass


# ---------------------------------------------------------------- SMTP ----

class Closed(Exception):
    pass


class Conn:
    """A line-oriented connection that can switch to TLS."""

    def __init__(self, sock, delay=0):
        self.sock = sock
        self.buf = b""
        self.delay = delay     # seconds before each reply (slow-replies)

    def send(self, data):
        if self.delay:
            time.sleep(self.delay)
        try:
            self.sock.sendall(data)
        except (OSError, ValueError):
            raise Closed()

    def readline(self, limit=8192):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise Closed()
            try:
                data = self.sock.recv(4096)
            except (OSError, ValueError):
                raise Closed()
            if not data:
                raise Closed()
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")


HOSTILE_TEXT = {
    "nul-banner": b"hostile.test ESMTP \x00 after a NUL\x00",
    "ansi-banner": (b"hostile.test \x1b[2J\x1b[H\x1b[31;1mRED\x1b[0m "
                    b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ "
                    b"\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b]0;title\x07 bell\x07 "
                    b"\xc2\x9b31m8bit-CSI \xe2\x80\xaeesrever\xe2\x80\xac \r\x08\x7f"),
    "all-hostile-banner": (b"hostile.test \x1b[2J\x1b[31;1mRED\x1b[0m \x1b]0;title\x07 "
                           b"\xc2\x9b31m8bit-CSI \xe2\x80\xaeesrever\xe2\x80\xac "
                           b"nul:\x00: bad:\xff\xfe: cr:\rX"),
    # reports (issue 11): what an HTML, CSV or monitoring report must not obey
    "markup-banner": (b"=cmd|' /C calc'!A0 <script>alert(1)</script><img src=x onerror=\"alert(2)\"> "
                      b"</td></tr></table><!-- a,b;c 'q' | x=y -->& &amp; @SUM(1+1)"),
    "invalid-utf8-banner": (b"hostile.test \xff\xfe \xc3\x28 \xc0\xaf \xed\xa0\x80 "
                            b"\xf4\x90\x80\x80 \xe2\x82 truncated"),
}

CRLF = b"\r\n"


class Smtp:
    def __init__(self, fault, ctx, code, delay, open_relay=False, greylist_once=False, count=256):
        self.count = count      # hostshare: rcpt-452 / rcpt-421 limit
        self.open_relay = open_relay
        self.greylist_once = greylist_once or fault == "greylist-once"   # repeat/greylist
        self.fault = fault
        self.ctx = ctx          # ssl.SSLContext or None
        self.code = code
        self.delay = delay if fault == "slow-replies" else 0
        # repeat/greylist: client addresses greylisted once; connections seen
        self.lock = threading.Lock()
        self.greylisted = set()
        self.connections = 0

    # -- one connection --------------------------------------------------
    def serve(self, sock, peer):
        log("client: %s" % endpoint(peer))
        sock.settimeout(IO_TIMEOUT)
        c = Conn(sock, self.delay)
        with self.lock:             # repeat/greylist
            self.connections += 1
            c.number = self.connections
        c.client = peer[0]
        try:
            self.session(c)
        except Closed:
            pass
        except Exception as e:   # a peer bug must not kill the listener
            sys.stderr.write("peer.py: %s: %r\n" % (self.fault, e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def rcpt_over(self, c):
        """hostshare: counts one RCPT; True past the --count limit (per
        transaction for rcpt-452, per connection for rcpt-421)."""
        if self.fault == "rcpt-421":
            c.all_rcpts = getattr(c, "all_rcpts", 0) + 1
            return c.all_rcpts > self.count
        c.rcpts = getattr(c, "rcpts", 0) + 1
        return c.rcpts > self.count

    def greeting(self):
        return HOSTILE_TEXT.get(self.fault, b"hostile.test ESMTP mxprobe hostile peer")

    def ehlo_reply(self, tls, c=None):
        exts = [b"PIPELINING", b"SIZE 10240000", b"8BITMIME"]
        # repeat/greylist: no STARTTLS on the 2nd, 4th ... connection
        every_other = self.fault == "starttls-every-other" and c is not None and c.number % 2 == 0
        if self.ctx is not None and not tls and not every_other:
            exts.append(b"STARTTLS")
        lines = [self.greeting()] + exts
        return b"".join(b"250" + (b" " if i == len(lines) - 1 else b"-") + l + CRLF
                        for i, l in enumerate(lines))

    def session(self, c):
        f = self.fault
        if f == "no-banner":
            hold(c.sock)
            return
        if f == "close-on-accept":
            graceful_close(c.sock)
            return
        if f == "drip-banner":
            for b in b"220 hostile.test drip-fed banner" + CRLF:
                c.send(bytes([b]))
                time.sleep(1)
            hold(c.sock)
            return
        if f == "endless-continuation":
            n = 0
            while True:
                c.send(b"".join(b"220-hostile.test endless continuation %d\r\n" % (n + i)
                                for i in range(100)))
                n += 100
        if f == "huge-line":
            c.send(b"220 " + b"A" * (1 << 20) + CRLF)
            hold(c.sock)
            return
        if f == "bad-code":
            c.send(b"2X0 hostile.test the code is not three digits" + CRLF)
            hold(c.sock)
            return
        if f == "code-out-of-range":
            c.send(b"%d hostile.test code out of range" % self.code + CRLF)
            hold(c.sock)
            return
        if f == "421-banner":
            c.send(b"421 4.3.2 hostile.test too busy, try again later" + CRLF)
            graceful_close(c.sock)
            return
        if f == "554-banner":
            c.send(b"554 5.7.1 hostile.test: your address is blocked" + CRLF)
            self.dialog(c)
            return
        if f in ("rcpt-452", "rcpt-421"):
            time.sleep(0.5)     # hostshare: every domain of a run waits by RCPT time
        if f == "pipelining-abuse":
            # the EHLO answer arrives with the banner, before EHLO was sent
            c.send(b"220 hostile.test ESMTP" + CRLF + b"250-early.hostile.test\r\n250 EARLY" + CRLF)
        else:
            c.send(b"220 " + self.greeting() + CRLF)
        if f == "close-after-banner":
            graceful_close(c.sock)
            return
        self.dialog(c)

    def dialog(self, c):
        f = self.fault
        tls = False
        while True:
            line = c.readline()
            log("line: %s" % ascii(line.decode("latin-1")))
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            if tls and f == "close-after-tls":
                graceful_close(c.sock)
                return
            if tls and f == "stall-in-tls":
                hold(c.sock)
                return
            if tls and f == "plaintext-in-tls" and verb in (b"EHLO", b"HELO"):
                # bytes on the raw socket, outside any TLS record
                os.write(c.sock.fileno(), b"250 hostile.test plaintext inside TLS" + CRLF)
                hold(c.sock)
                return
            if tls and f == "refuse-ehlo-in-tls" and verb in (b"EHLO", b"HELO"):
                c.send(b"554 5.7.1 hostile.test: no %s for you inside TLS" % verb + CRLF)
                continue
            if verb in (b"EHLO", b"HELO"):
                if f == "421-ehlo":
                    c.send(b"421 4.7.0 hostile.test closing: too many connections" + CRLF)
                    graceful_close(c.sock)
                    return
                if f == "ehlo-10000-extensions":
                    c.send(b"250-hostile.test\r\n"
                           + b"".join(b"250-X-HOSTILE-EXTENSION-%05d\r\n" % i for i in range(10000))
                           + b"250 8BITMIME" + CRLF)
                    continue
                if f == "code-change":
                    c.send(b"250-hostile.test\r\n250-PIPELINING\r\n354 Start mail input" + CRLF)
                    continue
                if verb == b"HELO":
                    c.send(b"250 hostile.test" + CRLF)
                    continue
                if f == "helo-only":
                    c.send(b"502 5.5.2 Error: command not recognized" + CRLF)
                    continue
                reply = self.ehlo_reply(tls, c)
                if f == "pipelining-abuse":
                    reply += b"250 2.1.0 Sender ok (before MAIL FROM)" + CRLF
                c.send(reply)
                if f == "close-after-ehlo":
                    graceful_close(c.sock)
                    return
            elif verb == b"STARTTLS" and not tls:
                if f == "421-starttls":
                    c.send(b"421 4.7.0 hostile.test too busy for TLS, try later" + CRLF)
                    graceful_close(c.sock)
                    return
                if f == "starttls-250":
                    c.send(b"250 2.0.0 hostile.test STARTTLS ok, go ahead" + CRLF)
                    continue
                if f == "454-starttls" or self.ctx is None:
                    c.send(b"454 4.7.0 TLS not available due to local problem" + CRLF)
                    continue
                if f == "starttls-plaintext-garbage":
                    c.send(b"220 2.0.0 Ready to start TLS\r\nthis is not TLS: plaintext garbage\r\n")
                    try:
                        c.sock.recv(65536)     # the ClientHello
                    except OSError:
                        return
                    c.send(b"500 5.5.2 what is this binary junk?" + CRLF)
                    hold(c.sock)
                    return
                c.send(b"220 2.0.0 Ready to start TLS" + CRLF)
                if f == "close-after-starttls-220":
                    graceful_close(c.sock)
                    return
                if f == "stall-handshake":
                    hold(c.sock)
                    return
                if f == "close-mid-handshake":
                    try:
                        c.sock.recv(65536)     # the ClientHello
                    except OSError:
                        return
                    # a handshake record header promising 80 bytes, 4 of them
                    c.send(b"\x16\x03\x03\x00\x50\x02\x00\x00\x4c")
                    graceful_close(c.sock)
                    return
                try:
                    c.sock = self.ctx.wrap_socket(c.sock, server_side=True)
                except (OSError, ValueError, ssl.SSLError):
                    return
                c.buf = b""
                tls = True
            elif verb == b"MAIL":
                if f == "stall-mail-from":
                    hold(c.sock)
                    return
                c.rcpts = 0             # hostshare: RCPTs of this transaction
                c.send(b"250 2.1.0 Ok" + CRLF)
            elif verb == b"RCPT" and f in ("rcpt-452", "rcpt-421") and self.rcpt_over(c):
                # hostshare: a server's limit of recipients per transaction
                # (452), or one that throws us out in the middle (421)
                if f == "rcpt-452":
                    c.send(b"452 4.5.3 Error: too many recipients" + CRLF)
                    continue
                c.send(b"421 4.7.0 hostile.test closing: too many recipients from you" + CRLF)
                graceful_close(c.sock)
                return
            elif verb == b"RCPT":
                if f == "stall-rcpt":
                    hold(c.sock)
                    return
                if f == "close-after-rcpt":
                    graceful_close(c.sock)
                    return
                postmaster = b"postmaster@" in line.lower()
                first = False
                if self.greylist_once and not postmaster:   # repeat/greylist
                    with self.lock:
                        first = c.client not in self.greylisted
                        self.greylisted.add(c.client)
                if f == "auth-required" and not postmaster:
                    c.send(b"530 5.7.0 Authentication required" + CRLF)
                elif first:
                    c.send(b"450 4.7.1 Greylisted, please try again later" + CRLF)
                elif self.greylist_once and not postmaster:
                    c.send(b"250 2.1.5 Ok" + CRLF)
                elif self.open_relay:
                    c.send(b"250 2.1.5 Ok" + CRLF)
                elif f == "accept-any":
                    c.send(b"550 5.1.1 User unknown" + CRLF if postmaster else b"250 2.1.5 Ok" + CRLF)
                elif postmaster:
                    c.send(b"250 2.1.5 Ok" + CRLF)
                else:
                    c.send(b"554 5.7.1 Relay access denied" + CRLF)
            elif verb == b"RSET" or verb == b"NOOP":
                c.rcpts = 0             # hostshare
                c.send(b"250 2.0.0 Ok" + CRLF)
            elif verb == b"QUIT":
                c.send(b"221 2.0.0 Bye" + CRLF)
                graceful_close(c.sock)
                return
            elif verb == b"DATA":
                # mxprobe promises never to send DATA: make it loud
                sys.stderr.write("peer.py: DATA received\n")
                c.send(b"554 5.5.1 DATA is never expected from mxprobe" + CRLF)
            else:
                c.send(b"502 5.5.2 Error: command not recognized" + CRLF)


LOG_LOCK = threading.Lock()


def log(msg):
    """One whole line on stderr (specs read it), never interleaved."""
    with LOG_LOCK:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def endpoint(peer):
    """('127.0.0.1', 40312) -> '127.0.0.1:40312'; IPv6 as '[::1]:40312'."""
    addr, port = peer[0], peer[1]
    return ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, port)


def log_sni(sslsock, name, ctx):
    """Every SNI a client sends goes to stderr (specs read it): "sni: NAME"."""
    log("sni: %s" % ("(none)" if name is None else ascii(name)))
    return None


def smtp_main(args):
    if args.fault not in SMTP_FAULTS:
        die("unknown SMTP fault %r (one of: %s)" % (args.fault, " ".join(SMTP_FAULTS)))
    cert, key = args.cert, args.key
    if args.fault in CERT_FAULTS and not cert:
        cert = os.path.join(HERE, "certs", args.fault + ".pem")
        key = os.path.join(HERE, "certs", args.fault + ".key")
    if not cert:
        default = os.path.join(HERE, "certs", "normal.pem")
        if os.path.exists(default):
            cert, key = default, os.path.join(HERE, "certs", "normal.key")
    chain_tmp = None
    if args.fault == "untrusted-root" and not args.cert:
        # the leaf, then the self-signed root itself (servers that send it)
        fd, chain_tmp = tempfile.mkstemp(suffix=".pem", prefix="peer-untrusted-root-")
        with os.fdopen(fd, "wb") as out:
            for part in ("normal.pem", "ca.pem"):
                with open(os.path.join(HERE, "certs", part), "rb") as inp:
                    out.write(inp.read())
        cert, key = chain_tmp, os.path.join(HERE, "certs", "normal.key")
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if args.fault == "tls10":
            # OpenSSL 3 refuses TLS 1.0 below security level 0
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
        try:
            ctx.load_cert_chain(cert, key or cert)
        finally:
            if chain_tmp:
                os.unlink(chain_tmp)
        ctx.sni_callback = log_sni
    family, addr, port = parse_listen(args.listen)
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((addr, port))
    except OSError as e:
        die("cannot listen on %s: %s" % (args.listen, e))
    srv.listen(128)
    print("ready", flush=True)
    smtp = Smtp(args.fault, ctx, args.code, args.delay, args.open_relay, args.greylist_once, args.count)
    while True:
        conn, peer = srv.accept()
        spawn(smtp.serve, conn, peer)


# ----------------------------------------------------------------- DNS ----

T_A, T_CNAME, T_MX, T_TXT, T_AAAA = 1, 5, 15, 16, 28


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def parse_query(data):
    """-> (id, flags, question bytes, qname str, qtype) or None."""
    if len(data) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", data[:6])
    if qd != 1:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(data):
            return None
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n > 63:
            return None
        labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 4 > len(data):
        return None
    qtype, _ = struct.unpack("!HH", data[pos:pos + 4])
    return qid, flags, data[12:pos + 4], ".".join(labels), qtype


def rr(owner, rtype, rdata, ttl=300):
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


QNAME_PTR = b"\xc0\x0c"   # compression pointer to the question's name


class Dns:
    def __init__(self, fault, a_addr, count=256, mx=None):
        self.mx = mx            # hostshare: the one MX host of every domain
        self.fault = fault
        self.count = count
        self.a = socket.inet_aton(a_addr)

    def message(self, qid, qflags, question, answers, rcode=0, tc=False, aa=True):
        rd = qflags & 0x0100
        flags = 0x8000 | (0x0400 if aa else 0) | (0x0200 if tc else 0) | rd | 0x0080 | rcode
        return struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + question + b"".join(answers)

    def normal_answers(self, qname, qtype):
        if qtype == T_MX:
            # hostshare: --mx NAME gives every domain that one MX host
            return [rr(QNAME_PTR, T_MX, struct.pack("!H", 10) + encode_name(self.mx or "mx." + qname))]
        if qtype == T_A:
            return [rr(QNAME_PTR, T_A, self.a)]
        return []

    def answer(self, data, transport):
        """-> bytes to send, or None for silence, or "close"."""
        q = parse_query(data)
        if q is None:
            return None
        qid, qflags, question, qname, qtype = q
        f = self.fault
        if f == "no-answer":
            return None
        if f == "truncated-no-tcp":
            return "close" if transport == "tcp" else self.message(qid, qflags, question, [], tc=True)
        if f == "servfail":
            return self.message(qid, qflags, question, [], rcode=2, aa=False)
        if f == "wrong-id":
            return self.message(qid ^ 0x5a5a, qflags, question, self.normal_answers(qname, qtype))
        if f == "wrong-question":
            other = encode_name("evil.example") + question[-4:]
            return self.message(qid, qflags, other, [rr(QNAME_PTR, T_A, self.a)] if qtype == T_A else
                                [rr(QNAME_PTR, T_MX, b"\x00\x0a" + encode_name("mx.evil.example"))])
        if f == "compression-loop":
            # the answer's owner name is a pointer to its own offset
            off = 12 + len(question)
            return self.message(qid, qflags, question,
                                [struct.pack("!H", 0xC000 | off) + struct.pack("!HHIH", qtype, 1, 300, 4)
                                 + b"\x7f\x00\x42\x01"])
        if f in ("many-mx", "many-mx-udp") and qtype == T_MX:
            if f == "many-mx" and transport == "udp":
                return self.message(qid, qflags, question, [], tc=True)
            # mxNNNN + pointer to the question name: 23 bytes a record
            answers = [rr(QNAME_PTR, T_MX, struct.pack("!H", i % 50)
                          + bytes([6]) + b"mx%04d" % i + QNAME_PTR) for i in range(1000)]
            return self.message(qid, qflags, question, answers)
        if f == "cname-loop" and qtype == T_MX:
            loop = encode_name("loop." + qname)
            return self.message(qid, qflags, question, [
                rr(QNAME_PTR, T_CNAME, loop),
                rr(loop, T_CNAME, QNAME_PTR),
            ])
        if f == "many-targets" and qtype in (T_MX, T_A):
            if qtype == T_MX:
                answers = [rr(QNAME_PTR, T_MX, struct.pack("!H", 10) + encode_name("h%03d.%s" % (i, qname)))
                           for i in range(self.count)]
            else:
                distinct = max(1, min(250, self.count // 2))
                answers = [rr(QNAME_PTR, T_A, bytes([127, 0, 67, 1 + i % distinct]))
                           for i in range(self.count)]
            return self.message(qid, qflags, question, answers)
        if f == "hostile-names" and qtype == T_MX:
            labels = [b"\x1b[2J\x1b]52;c;eA==\x07", b"nul\x00here", b"\xff\xfe\xc3\x28",
                      b"dot.inside", b"bell\x07\x1b]8;;x\x1b\\"]
            return self.message(qid, qflags, question, [
                rr(QNAME_PTR, T_MX, struct.pack("!H", 10 + i) + bytes([len(l)]) + l + QNAME_PTR)
                for i, l in enumerate(labels)])
        if f == "mta-sts" and qtype == T_TXT and qname.lower().startswith("_mta-sts."):
            txt = b"v=STSv1; id=hostile1"
            return self.message(qid, qflags, question, [rr(QNAME_PTR, T_TXT, bytes([len(txt)]) + txt)])
        if f == "mx-cname-self" and qtype in (T_A, T_AAAA):
            alias = encode_name("alias." + qname)
            return self.message(qid, qflags, question, [
                rr(QNAME_PTR, T_CNAME, alias),
                rr(alias, T_CNAME, QNAME_PTR),
            ])
        # robustness (issue 12): addresses that must never be connected to
        if f == "odd-addresses" and qtype == T_A:
            return self.message(qid, qflags, question, [
                rr(QNAME_PTR, T_A, socket.inet_aton(a))
                for a in ("0.0.0.0", "224.0.0.1", "255.255.255.255")] + [rr(QNAME_PTR, T_A, self.a)])
        if f == "odd-addresses" and qtype == T_AAAA:
            mapped = "::ffff:" + socket.inet_ntoa(self.a)
            return self.message(qid, qflags, question, [
                rr(QNAME_PTR, T_AAAA, socket.inet_pton(socket.AF_INET6, a)) for a in ("::", "ff02::1", mapped)])
        if f == "address-exchange" and qtype == T_MX:
            return self.message(qid, qflags, question, [
                rr(QNAME_PTR, T_MX, struct.pack("!H", 10) + encode_name(socket.inet_ntoa(self.a)))])
        return self.message(qid, qflags, question, self.normal_answers(qname, qtype))

    def serve_udp(self, sock):
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                continue
            out = self.answer(data, "udp")
            if isinstance(out, bytes):
                try:
                    sock.sendto(out, peer)
                except OSError as e:
                    sys.stderr.write("peer.py: sendto: %s\n" % e)

    def serve_tcp_conn(self, conn):
        conn.settimeout(IO_TIMEOUT)
        try:
            while True:
                head = b""
                while len(head) < 2:
                    d = conn.recv(2 - len(head))
                    if not d:
                        return
                    head += d
                n = struct.unpack("!H", head)[0]
                data = b""
                while len(data) < n:
                    d = conn.recv(n - len(data))
                    if not d:
                        return
                    data += d
                out = self.answer(data, "tcp")
                if out == "close":
                    graceful_close(conn)
                    return
                if out is None:
                    hold(conn)
                    return
                conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def serve_tcp(self, srv):
        while True:
            conn, _ = srv.accept()
            spawn(self.serve_tcp_conn, conn)


def dns_main(args):
    if args.fault not in DNS_FAULTS:
        die("unknown DNS fault %r (one of: %s)" % (args.fault, " ".join(DNS_FAULTS)))
    family, addr, port = parse_listen(args.listen)
    try:
        ip = ipaddress.ip_address(args.a)
    except ValueError:
        die("--a wants an IPv4 address")
    if ip.version != 4:
        die("--a wants an IPv4 address")
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        udp.bind((addr, port))
        tcp.bind((addr, port))
    except OSError as e:
        die("cannot listen on %s: %s" % (args.listen, e))
    tcp.listen(64)
    d = Dns(args.fault, args.a, args.count, args.mx)
    spawn(d.serve_udp, udp)
    spawn(d.serve_tcp, tcp)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


# ------------------------------------------------ HTTPS (MTA-STS, issue 8) ----

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.hostile.test\r\nmax_age: 86400\r\n"
HOSTILE_POLICY = (b"version: STSv1\r\nmode: enforce\x00\r\n"
                  b"mx: mx.hostile.test\x00.evil.example\r\n"
                  b"mx: \x1b[2J\x1b]52;c;ZWNobyBwd25lZA==\x07x.hostile.test\r\n"
                  b"mx: \xe2\x80\xaeevil\xe2\x80\xac.hostile.test\r\n"
                  b"max_age: \x1b]8;;https://evil.example/\x1b\\86400\r\n"
                  b"\xff\xfe\xc3\x28: \x1b[31mjunk\r\n")


def http_head(status, fields):
    return ("HTTP/1.1 %s\r\n" % status).encode() + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


class Https:
    def __init__(self, fault, ctx, delay):
        self.fault = fault
        self.ctx = ctx
        self.delay = delay

    def serve(self, sock, peer):
        log("client: %s" % endpoint(peer))
        sock.settimeout(IO_TIMEOUT)
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True)
        except (OSError, ValueError) as e:
            log("tls: %s" % e)
            sock.close()
            return
        try:
            req = b""
            while b"\r\n\r\n" not in req and len(req) < 65536:
                d = tls.recv(4096)
                if not d:
                    return
                req += d
            log("request: %s" % ascii(req.split(b"\r\n")[0]))
            self.respond(tls)
            graceful_close(tls)
        except (OSError, ValueError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def respond(self, c):
        f = self.fault
        plain = [b"Content-Type: text/plain", b"Connection: close"]
        if f == "normal":
            c.sendall(http_head("200 OK", plain + [b"Content-Length: %d" % len(POLICY)]) + POLICY)
        elif f == "endless-headers":
            c.sendall(b"HTTP/1.1 200 OK\r\n")
            end = time.monotonic() + HOLD
            i = 0
            while time.monotonic() < end:
                c.sendall(b"X-Filler-%d: %s\r\n" % (i, b"a" * 100))
                i += 1
        elif f in ("huge-body", "huge-body-close"):
            fields = plain + ([b"Content-Length: 10485760"] if f == "huge-body" else [])
            c.sendall(http_head("200 OK", fields))
            block = (b"padding: " + b"x" * 1013 + b"\r\n") * 64   # 64 KiB
            for _ in range(160):                                     # 10 MiB
                c.sendall(block)
        elif f == "cl-short":
            c.sendall(http_head("200 OK", plain + [b"Content-Length: 1000"]) + POLICY)
        elif f == "cl-long":
            c.sendall(http_head("200 OK", plain + [b"Content-Length: 20"]) + POLICY)
        elif f == "chunk-overflow":
            c.sendall(http_head("200 OK", plain + [b"Transfer-Encoding: chunked"])
                      + b"ffffffffffffffffffffffff\r\n" + POLICY)
        elif f == "drip":
            for b in http_head("200 OK", plain + [b"Content-Length: %d" % len(POLICY)]) + POLICY:
                c.sendall(bytes([b]))
                time.sleep(self.delay)
        elif f == "hostile-policy":
            c.sendall(http_head("200 OK", plain + [b"X-Evil: \xff\xfe\xc3\x28 \xe2\x80\xae",
                                                   b"Content-Length: %d" % len(HOSTILE_POLICY)])
                      + HOSTILE_POLICY)


def https_main(args):
    if args.fault not in HTTPS_FAULTS:
        die("unknown HTTPS fault %r (one of: %s)" % (args.fault, " ".join(HTTPS_FAULTS)))
    cert = args.cert or os.path.join(HERE, "certs", "normal.pem")
    key = args.key or os.path.join(HERE, "certs", "normal.key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = log_sni
    family, addr, port = parse_listen(args.listen)
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((addr, port))
    except OSError as e:
        die("cannot listen on %s: %s" % (args.listen, e))
    srv.listen(64)
    print("ready", flush=True)
    h = Https(args.fault, ctx, args.delay)
    while True:
        conn, peer = srv.accept()
        spawn(h.serve, conn, peer)


def main():
    p = argparse.ArgumentParser(prog="peer.py", description="mxprobe's hostile peer (loopback only)")
    p.add_argument("mode", choices=("smtp", "dns", "https"))
    p.add_argument("--listen", required=True, help="ADDR:PORT on loopback")
    p.add_argument("--fault", default="normal")
    p.add_argument("--cert", help="SMTP: PEM chain for STARTTLS (leaf first)")
    p.add_argument("--key", help="SMTP: PEM key of the leaf")
    p.add_argument("--code", type=int, default=600, help="SMTP code-out-of-range: the code sent")
    p.add_argument("--delay", type=float, default=1.5, help="SMTP slow-replies: seconds per reply")
    p.add_argument("--open-relay", action="store_true", help="SMTP: accept the outside RCPT too")
    p.add_argument("--greylist-once", action="store_true",
                   help="SMTP: 450 to the first outside RCPT of a client address, 250 later")  # repeat/greylist
    p.add_argument("--count", type=int, default=256, help="DNS many-targets: MX hosts and A records; SMTP rcpt-452/rcpt-421: the RCPT limit")
    p.add_argument("--a", default="127.0.66.1", help="DNS: address of every A answer")
    p.add_argument("--mx", help="DNS normal: every domain's MX host (hostshare; default mx.DOMAIN)")
    args = p.parse_args()
    try:
        if args.mode == "smtp":
            smtp_main(args)
        elif args.mode == "https":
            https_main(args)
        else:
            dns_main(args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
