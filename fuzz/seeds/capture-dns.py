#!/usr/bin/env python3
"""Capture real DNS answers as fuzz seeds for fuzz-dns.

    python3 fuzz/seeds/capture-dns.py SERVER PORT OUTDIR PREFIX [DOMAIN]

Asks SERVER (the lab resolver 127.0.53.53 port 53, or any resolver or
authoritative server for DOMAIN, default example.test) the questions
mxprobe asks, and a few more, and writes each answer's wire bytes to
OUTDIR/PREFIX-<label> (over TCP the length prefix is removed). Queries
carry EDNS with the DO bit unless the label says "noedns", so a signed
zone gives RRSIG, NSEC3 and DNSKEY records too; "udp512" asks with a
512-byte buffer and no EDNS, which a large answer meets with TC=1.
The names are those of the capture zone fuzz/seeds/example.test.zone
(rr.DOMAIN holds one record set of each of 31 other types); the answers
for names another zone lacks are NXDOMAIN answers, also worth keeping.
"""
import os
import random
import socket
import struct
import sys

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
         "AAAA": 28, "DS": 43, "RRSIG": 46, "DNSKEY": 48, "NSEC3PARAM": 51,
         "TLSA": 52, "ANY": 255, "CAA": 257}
# the other types at rr.DOMAIN: each has its own rdata layout in ldns
RR_TYPES = {"WKS": 11, "HINFO": 13, "MINFO": 14, "RP": 17, "AFSDB": 18,
            "X25": 19, "ISDN": 20, "RT": 21, "PX": 26, "LOC": 29, "SRV": 33,
            "NAPTR": 35, "KX": 36, "CERT": 37, "DNAME": 39, "APL": 42,
            "SSHFP": 44, "IPSECKEY": 45, "DHCID": 49, "SMIMEA": 53, "CDS": 59,
            "OPENPGPKEY": 61, "CSYNC": 62, "SPF": 99, "NID": 104, "L32": 105,
            "L64": 106, "LP": 107, "EUI48": 108, "EUI64": 109, "URI": 256}
TYPES.update(RR_TYPES)


def qname(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(name, qtype, edns=1232, do=True, rd=True):
    qid = random.randrange(65536)
    flags = 0x0100 if rd else 0
    ar = 1 if edns else 0
    msg = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, ar)
    msg += qname(name) + struct.pack(">HH", TYPES[qtype], 1)
    if edns:
        msg += b"\0" + struct.pack(">HHIH", 41, edns, 0x8000 if do else 0, 0)
    return msg


def ask(server, port, msg, tcp):
    if tcp:
        with socket.create_connection((server, port), timeout=5) as s:
            s.sendall(struct.pack(">H", len(msg)) + msg)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf[2:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(msg, (server, port))
        return s.recv(65536)


def main():
    server, port, outdir, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dom = sys.argv[5] if len(sys.argv) > 5 else "example.test"
    os.makedirs(outdir, exist_ok=True)
    asks = [
        ("mx", dom, "MX", {}),
        ("mx-noedns", dom, "MX", {"edns": 0}),
        ("a", "mx." + dom, "A", {}),
        ("aaaa", "mx." + dom, "AAAA", {}),
        ("cname-a", "mx2." + dom, "A", {}),
        ("cname-mx", "alias." + dom, "MX", {}),
        ("cname-loop", "a.loop." + dom, "A", {}),
        ("mx-loop", "loop." + dom, "MX", {}),
        ("null-mx", "null." + dom, "MX", {}),
        ("txt-spf", dom, "TXT", {}),
        ("txt-long", "long." + dom, "TXT", {}),
        ("txt-dmarc", "_dmarc." + dom, "TXT", {}),
        ("txt-mtasts", "_mta-sts." + dom, "TXT", {}),
        ("tlsa", "_25._tcp.mx." + dom, "TLSA", {}),
        ("tlsa-none", "_25._tcp.nomx." + dom, "TLSA", {}),
        ("nodata-mx", "nomx." + dom, "MX", {}),
        ("nxdomain", "nonexistent." + dom, "MX", {}),
        ("nxdomain-noedns", "nonexistent." + dom, "A", {"edns": 0}),
        ("soa", dom, "SOA", {}),
        ("ns", dom, "NS", {}),
        ("dnskey", dom, "DNSKEY", {}),
        ("nsec3param", dom, "NSEC3PARAM", {}),
        ("caa-nodata", dom, "CAA", {}),
        ("ptr", "25.0.0.127.in-addr.arpa", "PTR", {}),
        ("ptr-nxdomain", "99.0.0.127.in-addr.arpa", "PTR", {}),
        ("many-mx-udp512", "many." + dom, "MX", {"edns": 0}),
        ("many-mx-tcp", "many." + dom, "MX", {"tcp": True}),
        ("many-mx-edns", "many." + dom, "MX", {}),
        ("any", dom, "ANY", {"tcp": True}),
        ("norecurse", dom, "MX", {"rd": False}),
    ] + [("rr-" + t.lower(), "rr." + dom, t, {}) for t in RR_TYPES]
    for label, name, qtype, o in asks:
        msg = query(name, qtype, edns=o.get("edns", 1232), rd=o.get("rd", True))
        try:
            wire = ask(server, port, msg, o.get("tcp", False))
        except OSError as e:
            print("%s: %s %s: %s" % (label, name, qtype, e), file=sys.stderr)
            continue
        with open(os.path.join(outdir, "%s-%s" % (prefix, label)), "wb") as f:
            f.write(wire)


if __name__ == "__main__":
    main()
