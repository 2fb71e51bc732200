#!/usr/bin/env python3
"""Capture real SMTP replies as fuzz seeds for fuzz-smtp.

    python3 fuzz/seeds/capture-smtp.py HOST PORT OUTDIR [NAME=PORT ...]

Runs a few short sessions against a Postfix (the lab's, or any local one)
and writes the exact bytes the server sent: one file per reply
(OUTDIR/<session>-<step>), one per pipelined batch of replies read in one
go, and one per whole session (all server bytes, reply after reply). Never
sends DATA. The sender addresses greylist@, throttle@ and spam@example.net
produce 451, 421 and 554 when the server has the matching access map (the
capture setup in fuzz/README.md has it); any other server answers them
with its own reply, which is a seed as good. Each extra NAME=PORT is a
server that refuses the client at connect (a 421 or 554 greeting): its
greeting and what it answers to EHLO, MAIL and QUIT are saved as NAME-*.
"""
import os
import re
import socket
import ssl
import sys

SEEN = set()   # a reply already saved is not saved again under another name


class Session:
    def __init__(self, host, port, outdir, name):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.outdir, self.name = outdir, name
        self.all = b""
        self.step = 0
        self.closed = False

    def read_reply(self, count=1):
        """Read until `count` complete replies have arrived."""
        buf = b""
        while True:
            if count_replies(buf) >= count:
                return buf
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return buf
            buf += chunk

    def save(self, label, data):
        self.step += 1
        self.all += data
        if data in SEEN:
            return
        SEEN.add(data)
        path = os.path.join(self.outdir, "%s-%02d-%s" % (self.name, self.step, label))
        with open(path, "wb") as f:
            f.write(data)

    def cmd(self, label, line, count=1):
        """Send line, save the replies; after the server closed, nothing."""
        if self.closed:
            return b""
        try:
            self.sock.sendall(line)
        except OSError:
            self.closed = True
            return b""
        data = self.read_reply(count)
        if data:
            self.save(label, data)
        return data

    def close(self):
        if self.all and self.all not in SEEN:
            SEEN.add(self.all)
            with open(os.path.join(self.outdir, self.name + "-session"), "wb") as f:
                f.write(self.all)
        self.sock.close()


def count_replies(buf):
    """Replies in buf: lines whose code is followed by a space or the line end."""
    return sum(1 for line in buf.split(b"\n")[:-1]
               if re.match(rb"^\d{3}(?: |\r?$)", line))


def main():
    host, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    helo = b"EHLO probe.example.net\r\n"

    # banner, EHLO, STARTTLS, EHLO over TLS, QUIT
    s = Session(host, port, outdir, "starttls")
    s.save("banner", s.read_reply())
    s.cmd("ehlo", helo)
    if s.cmd("starttls", b"STARTTLS\r\n").startswith(b"220"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.sock = ctx.wrap_socket(s.sock)
        s.cmd("ehlo-tls", helo)
        s.cmd("quit", b"QUIT\r\n")
    s.close()

    # the envelope: relay test, unknown user, RSET, NOOP, VRFY, QUIT
    s = Session(host, port, outdir, "envelope")
    s.save("banner", s.read_reply())
    s.cmd("ehlo", helo)
    s.cmd("mail", b"MAIL FROM:<probe@example.net>\r\n")
    s.cmd("rcpt-relay", b"RCPT TO:<someone@elsewhere.example>\r\n")
    s.cmd("rcpt-unknown", b"RCPT TO:<nobody-here@mx.example.test>\r\n")
    s.cmd("rset", b"RSET\r\n")
    s.cmd("noop", b"NOOP\r\n")
    s.cmd("vrfy", b"VRFY postmaster\r\n")
    s.cmd("quit", b"QUIT\r\n")
    s.close()

    # errors: unknown command, MAIL before EHLO, bad HELO, syntax
    s = Session(host, port, outdir, "errors")
    s.save("banner", s.read_reply())
    s.cmd("unknown", b"FOO bar\r\n")
    s.cmd("mail-first", b"MAIL FROM:<probe@example.net>\r\n")
    s.cmd("helo-empty", b"HELO\r\n")
    s.cmd("ehlo-bad", b"EHLO bad_host!name\r\n")
    s.cmd("ehlo", helo)
    s.cmd("rcpt-first", b"RCPT TO:<postmaster@mx.example.test>\r\n")
    s.cmd("mail-nonfqdn", b"MAIL FROM:<probe@localhost>\r\n")
    s.cmd("rcpt-nonfqdn", b"RCPT TO:<postmaster@mx.example.test>\r\n")
    s.cmd("mail-nested", b"MAIL FROM:<probe@example.net>\r\n")
    s.cmd("rset", b"RSET\r\n")
    s.cmd("starttls-args", b"STARTTLS now\r\n")
    s.cmd("quit", b"QUIT\r\n")
    s.close()

    # access-map answers: 451 greylisting, 554 rejection, 421 and close
    s = Session(host, port, outdir, "policy")
    s.save("banner", s.read_reply())
    s.cmd("ehlo", helo)
    s.cmd("mail-greylist", b"MAIL FROM:<greylist@example.net>\r\n")
    s.cmd("rcpt-greylist", b"RCPT TO:<postmaster@mx.example.test>\r\n")
    s.cmd("rset", b"RSET\r\n")
    s.cmd("mail-spam", b"MAIL FROM:<spam@example.net>\r\n")
    s.cmd("rcpt-spam", b"RCPT TO:<postmaster@mx.example.test>\r\n")
    s.cmd("rset", b"RSET\r\n")
    s.cmd("mail-throttle", b"MAIL FROM:<throttle@example.net>\r\n")
    s.cmd("rcpt-throttle", b"RCPT TO:<postmaster@mx.example.test>\r\n")
    s.close()

    # pipelining: several commands in one write, the replies read as one buffer
    s = Session(host, port, outdir, "pipelined")
    s.save("banner", s.read_reply())
    s.cmd("batch", helo + b"MAIL FROM:<probe@example.net>\r\n"
          b"RCPT TO:<postmaster@mx.example.test>\r\n"
          b"RCPT TO:<someone@elsewhere.example>\r\nRSET\r\nQUIT\r\n", count=6)
    s.close()

    for extra in sys.argv[4:]:
        name, _, p = extra.partition("=")
        s = Session(host, int(p), outdir, name)
        s.save("banner", s.read_reply())
        s.cmd("ehlo", helo)
        s.cmd("mail", b"MAIL FROM:<probe@example.net>\r\n")
        s.cmd("quit", b"QUIT\r\n")
        s.close()


if __name__ == "__main__":
    main()
