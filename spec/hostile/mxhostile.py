#!/usr/bin/env python3
"""mxhostile: a scriptable misbehaving SMTP / DNS server for mxprobe's specs.

Used only for faults that real servers in the lab can't be configured to
produce. Listens on loopback only (127.0.0.0/8 or ::1), prints "ready" once
listening, serves until killed.

  mxhostile.py smtp ADDR PORT FAULT [CERT KEY]
  mxhostile.py dns  ADDR PORT FAULT

Python standard library only.
"""
import ipaddress
import socket
import ssl
import struct
import sys
import threading
import time

HOLD = 30  # seconds a stalling fault holds a connection open


def loopback_only(addr):
    if not ipaddress.ip_address(addr).is_loopback:
        sys.exit("mxhostile: refusing to listen on non-loopback address " + addr)


# ---------------------------------------------------------------- SMTP ----

def readline(conn, limit=4096):
    """Reads one command line (bytes) or None at EOF."""
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        try:
            c = conn.recv(1)
        except (OSError, ssl.SSLError):
            return None
        if not c:
            return None
        buf += c
    return buf


def hold(conn):
    time.sleep(HOLD)


EHLO_OK = b"250-hostile.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"


def dialog(conn, fault, ctx, banner=b"220 hostile.test ESMTP\r\n"):
    """A mostly normal dialog whose replies the fault bends."""
    conn.sendall(banner)
    if fault == "close-after-banner":
        return
    tls = None
    while True:
        line = readline(tls or conn)
        if line is None:
            return
        cmd = line.strip().upper()
        out = tls or conn
        if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
            if fault == "close-after-ehlo":
                return
            if fault == "421-ehlo":
                out.sendall(b"421 4.3.2 hostile.test shutting down\r\n")
                return
            if fault == "ehlo-10000-extensions":
                out.sendall(b"250-hostile.test\r\n" +
                            b"".join(b"250-X-EXT%d\r\n" % i for i in range(10000)) + b"250 OK\r\n")
                continue
            if fault == "code-change":
                out.sendall(b"250-hostile.test\r\n354 STARTTLS\r\n")
                continue
            out.sendall(EHLO_OK)
        elif cmd == b"STARTTLS":
            if fault == "421-starttls":
                out.sendall(b"421 4.7.0 hostile.test too busy, try later\r\n")
                return
            if fault == "454-starttls":
                out.sendall(b"454 4.7.0 TLS not available due to local problem\r\n")
                continue
            if fault == "close-after-starttls-220":
                out.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                return
            if fault == "starttls-plaintext-garbage":
                out.sendall(b"220 2.0.0 Ready to start TLS\r\nGARBAGE GARBAGE GARBAGE\r\n")
                hold(conn)
                return
            if fault == "stall-handshake":
                out.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                hold(conn)
                return
            if fault == "close-mid-handshake":
                out.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                conn.recv(100)          # part of the ClientHello
                return
            out.sendall(b"220 2.0.0 Ready to start TLS\r\n")
            if ctx is None:
                return
            try:
                tls = ctx.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                return
        elif cmd.startswith(b"MAIL"):
            out.sendall(b"250 2.1.0 Ok\r\n")
        elif cmd.startswith(b"RCPT"):
            if fault == "close-after-rcpt":
                return
            out.sendall(b"554 5.7.1 Relay access denied\r\n")
        elif cmd == b"RSET":
            out.sendall(b"250 2.0.0 Ok\r\n")
        elif cmd == b"QUIT":
            out.sendall(b"221 2.0.0 Bye\r\n")
            return
        elif cmd.startswith(b"DATA"):
            # mxprobe must never get here: make it loud in the facts
            out.sendall(b"554 5.5.1 DATA received: mxprobe broke its promise\r\n")
        else:
            out.sendall(b"502 5.5.2 Error: command not recognized\r\n")


BANNERS = {
    "nul-banner": b"220 hostile.test \x00 ESMTP\r\n",
    "ansi-banner": (b"220 hostile.test \x1b[2J\x1b[31mRED\x1b[0m \x1b]8;;http://evil.example/\x07link"
                    b"\x1b]8;;\x07 \x1b]52;c;ZWNobyBwd25lZA==\x07 \x07\x9b31m ESMTP\r\n"),
    "invalid-utf8-banner": b"220 hostile.test \xff\xfe\xc3\x28 \xed\xa0\x80 ESMTP\r\n",
    "bad-code": b"22 hostile.test ESMTP\r\n",
    "code-out-of-range": b"600 hostile.test ESMTP\r\n",
    "421-banner": b"421 4.3.2 hostile.test Service not available, closing channel\r\n",
}


def smtp_session(conn, fault, ctx):
    try:
        if fault == "no-banner":
            hold(conn)
        elif fault == "drip-banner":
            for b in b"220 hostile.test ESMTP drip drip drip drip\r\n":
                conn.sendall(bytes([b]))
                time.sleep(1)
        elif fault == "endless-continuation":
            while True:
                conn.sendall(b"220-hostile.test endless greeting line\r\n" * 64)
                time.sleep(0.01)
        elif fault == "huge-line":
            conn.sendall(b"220 " + b"x" * (1024 * 1024) + b"\r\n")
            hold(conn)
        elif fault == "pipelining-abuse":
            # answers to commands not yet sent, right behind the banner
            dialog(conn, fault, ctx, banner=b"220 hostile.test ESMTP\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n")
        elif fault in BANNERS:
            dialog(conn, fault, ctx, banner=BANNERS[fault])
        else:
            dialog(conn, fault, ctx)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def serve_smtp(addr, port, fault, cert=None, key=None):
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=smtp_session, args=(conn, fault, ctx), daemon=True).start()


# ----------------------------------------------------------------- DNS ----

def parse_question(msg):
    """(id, qname bytes in wire form, qtype) of a query; raises on garbage."""
    qid, _flags, qd = struct.unpack("!HHH", msg[:6])
    pos = 12
    while msg[pos] != 0:
        pos += 1 + msg[pos]
    qname = msg[12:pos + 1]
    qtype, = struct.unpack("!H", msg[pos + 1:pos + 3])
    return qid, qname, qtype


def name(text):
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".") if p) + b"\0"


def rr(owner, rtype, rdata, ttl=60):
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


A, MX, CNAME, AAAA = 1, 15, 5, 28
QNAME_PTR = b"\xc0\x0c"   # compression pointer to the question name


def answer(query, fault):
    """The bytes to send back (None: stay silent) and whether TC is set."""
    qid, qname, qtype = parse_question(query)
    flags = 0x8180            # QR RD RA, NOERROR
    ans = []
    question = qname
    if fault == "no-answer":
        return None
    if fault == "servfail":
        flags = 0x8182
    elif fault == "wrong-id":
        qid ^= 0x5555
    elif fault == "wrong-question":
        question = name("other.test")
    elif fault == "truncated-no-tcp":
        flags |= 0x0200
    elif fault == "compression-loop" and qtype == MX:
        # the answer's owner name is a compression pointer to itself
        head = struct.pack("!HHHHHH", qid, flags, 1, 1, 0, 0) + question + struct.pack("!HH", qtype, 1)
        owner = struct.pack("!H", 0xC000 | len(head))
        return head + rr(owner, MX, struct.pack("!H", 10) + owner), False
    elif fault == "many-mx" and qtype == MX:
        for i in range(1000):
            ans.append(rr(QNAME_PTR, MX, struct.pack("!H", i) + name("mx%d.h.test" % i)))
    elif fault == "mx-cname-self" and qtype == MX:
        ans.append(rr(QNAME_PTR, CNAME, name("loop1.h.test")))
        ans.append(rr(name("loop1.h.test"), CNAME, name("loop2.h.test")))
        ans.append(rr(name("loop2.h.test"), CNAME, qname))
    elif qtype == MX:
        ans.append(rr(QNAME_PTR, MX, struct.pack("!H", 10) + name("mx.h.test")))
    elif qtype == A:
        ans.append(rr(QNAME_PTR, A, socket.inet_aton("127.0.66.1")))
    msg = struct.pack("!HHHHHH", qid, flags, 1, len(ans), 0, 0) + question + struct.pack("!HH", qtype, 1)
    return msg + b"".join(ans), bool(flags & 0x0200)


def serve_dns_udp(sock, fault):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            res = answer(data, fault)
        except (IndexError, struct.error):
            continue
        if res is None:
            continue
        msg, _ = res
        if len(msg) > 512 and fault == "many-mx":
            # too big for UDP: send the header only, truncated (TC), as servers do
            msg = msg[:2] + struct.pack("!H", 0x8380) + struct.pack("!HHHH", 1, 0, 0, 0) + \
                msg[12:12 + len(parse_question(data)[1]) + 4]
        sock.sendto(msg, peer)


def serve_dns_tcp(srv, fault):
    while True:
        conn, _ = srv.accept()
        try:
            conn.settimeout(5)
            ln = struct.unpack("!H", conn.recv(2))[0]
            data = b""
            while len(data) < ln:
                chunk = conn.recv(ln - len(data))
                if not chunk:
                    break
                data += chunk
            res = answer(data, fault)
            if res is not None:
                conn.sendall(struct.pack("!H", len(res[0])) + res[0])
        except (OSError, struct.error, IndexError):
            pass
        finally:
            conn.close()


def serve_dns(addr, port, fault):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    if fault != "truncated-no-tcp":
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((addr, port))
        tcp.listen(16)
        threading.Thread(target=serve_dns_tcp, args=(tcp, fault), daemon=True).start()
    print("ready", flush=True)
    serve_dns_udp(udp, fault)


def main(argv):
    if len(argv) < 5:
        sys.exit(__doc__)
    kind, addr, port, fault = argv[1], argv[2], int(argv[3]), argv[4]
    loopback_only(addr)
    if kind == "smtp":
        serve_smtp(addr, port, fault, *(argv[5:7]))
    elif kind == "dns":
        serve_dns(addr, port, fault)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        pass
