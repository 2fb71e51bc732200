#!/usr/bin/env python3
"""Write the hand-made fuzz seeds: shapes no lab server sends.

    python3 fuzz/seeds/make-hand-seeds.py fuzz/corpus

Writes fuzz/corpus/smtp/hand-* (replies of hostile and odd servers, from
the list in issue 4) and fuzz/corpus/dns/hand-* (record types and header
shapes the capture zone cannot hold: TSIG, OPT twice, extended rcodes,
compression loops, SVCB/HTTPS, AMTRELAY, HIP, unknown types). The captured
seeds (capture-smtp.py, capture-dns.py) are the realistic base; these reach
the branches around them. Deterministic: the same files every run.
"""
import os
import struct
import sys

# ---- SMTP ------------------------------------------------------------------

SMTP = {
    "banner-postscreen": b"220-mx.example.test ESMTP Postfix\r\n",
    "banner-postscreen-full": b"220-mx.example.test ESMTP Postfix\r\n"
                              b"220 mx.example.test ESMTP Postfix\r\n",
    "banner-bare-lf": b"220 mx.example.test ESMTP Exim 4.96 Sat, 28 Nov 2026 10:00:00 +0000\n",
    "banner-code-only": b"220\r\n",
    "banner-code-dash-only": b"220-\r\n220 \r\n",
    "banner-421": b"421 4.3.2 Service not available, closing transmission channel\r\n",
    "banner-554-multi": b"554-mx.example.test\r\n554-Your address is listed at\r\n"
                        b"554 zen.spamhaus.example\r\n",
    "banner-1xx": b"199 odd greeting\r\n",
    "banner-6xx": b"600 no such class\r\n",
    "banner-two-digits": b"22 short code\r\n",
    "banner-letters": b"2x0 not a code\r\n",
    "banner-no-space": b"220mx.example.test\r\n",
    "banner-nul": b"220 mx.example.test\x00 ESMTP\r\n",
    "banner-ansi": b"220 mx.example.test \x1b[31mESMTP\x1b[0m \x1b]0;pwned\x07\r\n",
    "banner-bad-utf8": b"220 mx.example.test \xc3\x28 \xff\xfe ESMTP\r\n",
    "banner-utf8": b"220 mx.example.test ESMTP \xe2\x9c\x89 Postfix\r\n",
    "banner-cr-only": b"220 mx.example.test ESMTP\r",
    "banner-partial": b"220 mx.examp",
    "banner-crcrlf": b"220 mx.example.test ESMTP\r\r\n",
    "code-changes": b"250-mx.example.test\r\n354 go ahead\r\n",
    "code-changes-class": b"250-mx.example.test\r\n550 no\r\n",
    "ehlo-many": b"".join(b"250-X-EXT%d\r\n" % i for i in range(20)) + b"250 DSN\r\n",
    "ehlo-auth": b"250-mx.example.test\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n"
                 b"250-SIZE\r\n250-REQUIRETLS\r\n250 SMTPUTF8\r\n",
    "continuation-endless": b"220-wait\r\n" * 24,
    "long-line": b"250 " + b"x" * 200 + b"\r\n",
    "starttls-454": b"454 4.7.0 TLS not available due to local problem\r\n",
    "starttls-garbage": b"220 2.0.0 Ready to start TLS\r\n\x16\x03\x01\x00\x05hello",
    "pipelined-early": b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                       b"250 2.0.0 Ok: queued as 4XyZ\r\n221 2.0.0 Bye\r\n",
    "crlf-only": b"\r\n",
    "empty-lines": b"\n\n\n",
}

# ---- DNS -------------------------------------------------------------------


def name(n):
    if n in (".", ""):
        return b"\0"
    return b"".join(bytes([len(l)]) + l.encode() for l in n.rstrip(".").split(".")) + b"\0"


def rr(owner, rtype, rdata, cls=1, ttl=300):
    o = owner if isinstance(owner, bytes) else name(owner)
    return o + struct.pack(">HHIH", rtype, cls, ttl, len(rdata)) + rdata


def msg(qname="example.test", qtype=15, an=(), ns=(), ar=(), flags=0x8180, qid=0x1234,
        qd=None):
    q = name(qname) + struct.pack(">HH", qtype, 1) if qd is None else qd
    nq = 1 if q else 0
    return (struct.pack(">HHHHHH", qid, flags, nq, len(an), len(ns), len(ar)) + q +
            b"".join(an) + b"".join(ns) + b"".join(ar))


PTR = b"\xc0\x0c"        # the question name
OPT = rr(b"\0", 41, b"", cls=1232, ttl=0x00008000)


def opt(ext_rcode=0, version=0, do=True, udp=1232, options=b""):
    return rr(b"\0", 41, options, cls=udp,
              ttl=(ext_rcode << 24) | (version << 16) | (0x8000 if do else 0))


def svcparams():
    alpn = b"\x02h2\x08http/1.1"
    return (struct.pack(">HH", 1, len(alpn)) + alpn +          # alpn
            struct.pack(">HH", 3, 2) + struct.pack(">H", 8443) +  # port
            struct.pack(">HH", 4, 4) + bytes([192, 0, 2, 1]) +    # ipv4hint
            struct.pack(">HH", 6, 16) + bytes(15) + b"\x01")      # ipv6hint


def tsig(mac=b"\x11" * 32):
    """algorithm, 48-bit time signed, fudge, MAC, original id, error, other"""
    t = 1795863253
    return (name("hmac-sha256") + struct.pack(">HIHH", t >> 32, t & 0xffffffff, 300, len(mac)) +
            mac + struct.pack(">HHH", 0x1234, 0, 0))


DNS = {
    "mx-opt": msg(an=[rr(PTR, 15, b"\x00\x0a" + name("mx.example.test"))], ar=[OPT]),
    "mx-compressed-exchange": msg(an=[rr(PTR, 15, b"\x00\x0a\x02mx" + PTR)]),
    "mx-short-rdata": msg(an=[rr(PTR, 15, b"\x00")]),
    "mx-empty-rdata": msg(an=[rr(PTR, 15, b"")]),
    "mx-rdlength-long": msg(an=[rr(PTR, 15, b"\x00\x0a" + name("mx.example.test") + b"\0\0")]),
    "mx-null": msg(an=[rr(PTR, 15, b"\x00\x00\x00")]),
    "a-wrong-size": msg(qtype=1, an=[rr(PTR, 1, b"\x7f\x00\x00")]),
    "aaaa": msg(qtype=28, an=[rr(PTR, 28, bytes(15) + b"\x01")]),
    "txt-empty-rdata": msg(qtype=16, an=[rr(PTR, 16, b"")]),
    "txt-empty-string": msg(qtype=16, an=[rr(PTR, 16, b"\x00")]),
    "txt-overrun": msg(qtype=16, an=[rr(PTR, 16, b"\x05abc")]),
    "txt-many": msg(qtype=16, an=[rr(PTR, 16, b"".join(bytes([255]) + b"t" * 255 for _ in range(5)))]),
    "tlsa-empty-data": msg(qtype=52, an=[rr(PTR, 52, b"\x03\x01\x01")]),
    "tlsa-short": msg(qtype=52, an=[rr(PTR, 52, b"\x03\x01")]),
    "soa-short": msg(qtype=6, an=[rr(PTR, 6, name("ns1.example.test") + name("h.example.test") + b"\0" * 16)]),
    "cname-root": msg(qtype=5, an=[rr(PTR, 5, b"\0")]),
    "opt-twice": msg(ar=[OPT, OPT]),
    "opt-badvers": msg(ar=[opt(ext_rcode=1, version=1)], flags=0x8180),
    "opt-badcookie": msg(ar=[opt(ext_rcode=1, options=struct.pack(">HH", 10, 8) + b"cookie!!")],
                         flags=0x8187),
    "opt-in-answer": msg(an=[OPT]),
    "opt-options": msg(ar=[opt(options=struct.pack(">HH", 15, 6) + b"\x00\x12oops" +
                               struct.pack(">HH", 8, 8) + b"\x00\x01\x18\x00\xc0\x00\x02\x00")]),
    "tsig": msg(ar=[rr(name("key.example.test"), 250, tsig(), cls=255, ttl=0)]),
    "tsig-twice": msg(ar=[rr(name("key.example.test"), 250, tsig(), cls=255, ttl=0)] * 2),
    "tkey": msg(ar=[rr(name("key.example.test"), 249, name("gss-tsig") + bytes(16), cls=255)]),
    "svcb": msg(qtype=64, an=[rr(PTR, 64, b"\x00\x01" + name("svc.example.test") + svcparams())]),
    "https-alias": msg(qtype=65, an=[rr(PTR, 65, b"\x00\x00" + name("pool.example.test"))]),
    "https-bad-params": msg(qtype=65, an=[rr(PTR, 65, b"\x00\x01\x00" + b"\x00\x01\x00\x09\x02h2")]),
    "amtrelay": msg(qtype=260, an=[rr(PTR, 260, b"\x0a\x83" + name("relay.example.test")),
                                   rr(PTR, 260, b"\x0a\x01" + bytes([192, 0, 2, 7])),
                                   rr(PTR, 260, b"\x0a\x02" + bytes(16))]),
    "hip": msg(qtype=55, an=[rr(PTR, 55, b"\x10\x02\x00\x08" + bytes(range(16)) +
                                b"\x01\x02\x03\x04\x05\x06\x07\x08" + name("rvs.example.test"))]),
    "zonemd": msg(qtype=63, an=[rr(PTR, 63, struct.pack(">IBB", 2026112801, 1, 1) + bytes(48))]),
    "nsec": msg(qtype=47, an=[rr(PTR, 47, name("next.example.test") + b"\x00\x06\x40\x01\x00\x00\x00\x03"
                                  b"\x01\x01\x40")]),
    "nsec-bad-bitmap": msg(qtype=47, an=[rr(PTR, 47, name("next.example.test") + b"\x00\x40" + bytes(3))]),
    "sig-key-nxt": msg(qtype=24, an=[rr(PTR, 24, b"\x00\x01\x05\x02" + bytes(12) + name("example.test") + bytes(20)),
                                     rr(PTR, 25, b"\x01\x00\x03\x05" + bytes(20)),
                                     rr(PTR, 30, name("next.example.test") + b"\x40\x01")]),
    "gpos-a6-nsap": msg(qtype=27, an=[rr(PTR, 27, b"\x05-32.6\x0482.5\x011"),
                                      rr(PTR, 38, b"\x40" + bytes(8) + name("pfx.example.test")),
                                      rr(PTR, 22, bytes(20)), rr(PTR, 23, name("nsap.example.test"))]),
    "null-atma-sink": msg(qtype=10, an=[rr(PTR, 10, b"anything"), rr(PTR, 34, b"\x01" + b"123"),
                                        rr(PTR, 40, b"\x01\x02abc")]),
    "unknown-types": msg(qtype=65280, an=[rr(PTR, 65280, b"\xde\xad\xbe\xef"),
                                          rr(PTR, 0, b""), rr(PTR, 65535, bytes(300))]),
    "class-chaos": msg(qtype=16, an=[rr(PTR, 16, b"\x0cunbound 1.17", cls=3)]),
    "class-unknown": msg(an=[rr(PTR, 15, b"\x00\x0a\x00", cls=4242)]),
    "rcodes": msg(flags=0x8185, ns=[rr(name("example.test"), 6, name("ns") + name("h") + bytes(20))]),
    "opcode-notify": msg(flags=0xa400, qtype=6),
    "opcode-update": msg(flags=0xa800, qtype=6),
    "opcode-unknown": msg(flags=0xf800),
    "no-question": msg(qd=b"", an=[rr(name("example.test"), 15, b"\x00\x0a\x00")]),
    "two-questions": struct.pack(">HHHHHH", 1, 0x8180, 2, 0, 0, 0) +
                     name("a.example.test") + b"\x00\x0f\x00\x01" +
                     name("b.example.test") + b"\x00\x01\x00\x01",
    "header-only": struct.pack(">HHHHHH", 1, 0x8180, 0, 0, 0, 0),
    "short-header": b"\x12\x34\x81\x80\x00\x01",
    "counts-lie": struct.pack(">HHHHHH", 1, 0x8180, 1, 3, 0, 0) + name("example.test") + b"\x00\x0f\x00\x01",
    "counts-huge": struct.pack(">HHHHHH", 1, 0x8180, 1, 65535, 65535, 65535),
    "trailing-bytes": msg(an=[rr(PTR, 15, b"\x00\x0a\x00")]) + b"garbage after the last record",
    "compression-loop": bytes.fromhex("000181800001000000000000016" "1c00c000f0001"),
    "pointer-loop": bytes.fromhex("00028180000100000000" "0000c00c000f0001"),
    "pointer-forward": msg(qd=b"\xc0\x20\x00\x0f\x00\x01" + bytes(14) + name("example.test")),
    "pointer-past-end": bytes.fromhex("000381800001000100000000076578616d706c6504746573740000"
                                      "0f0001c00c000f00010000012c0004000affff"),
    "label-64": msg(qd=b"\x40" + b"a" * 64 + b"\x00\x00\x0f\x00\x01"),
    "name-255": msg(qd=b"".join(b"\x3f" + b"b" * 63 for _ in range(4)) + b"\x00\x00\x0f\x00\x01"),
    "label-extended": msg(qd=b"\x41\x00\x00\x0f\x00\x01"),
    "name-escapes": msg(an=[rr(PTR, 15, b"\x00\x0a" + b"\x05a.b\\\x00\x04\xff\x20\"(\x07example\x04test\x00")]),
    "name-uppercase": msg(qname="MX.Example.TEST", an=[rr(PTR, 15, b"\x00\x0a" + name("MAIL.EXAMPLE.TEST"))]),
    "truncated-answer": msg(an=[rr(PTR, 15, b"\x00\x0a" + name("mx.example.test"))])[:-5],
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus"
    for sub, seeds in (("smtp", SMTP), ("dns", DNS)):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for label, data in seeds.items():
            with open(os.path.join(out, sub, "hand-" + label), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
