#!/usr/bin/env python3
"""bench/relay.py -- the 50 ms round-trip time of `make bench-bulk`.

This machine's kernel has no netem (`tc qdisc add dev lo root netem delay
25ms` -> "Specified qdisc kind is unknown"), so the delay the issue asks for
is added in user space instead: a TCP relay listening on loopback addresses
of the bench's range (127.0.60.0/22) that forwards each connection to one of
the lab's healthy Postfix services and holds every chunk of data DELAY ms in
each direction (default 25: a 50 ms round trip), in order. It connects
from the listener's own address (Postfix limits connections per client
address). TCP semantics are kept: bytes in order, a half-close (shutdown
of one direction) is passed on after the same delay, a reset or error on
one side aborts the other once what was queued for it is delivered. The
TCP handshake to the relay itself completes at once, so the relay holds
the server's first bytes one round trip more (what the SYN / SYN-ACK would
have cost). No flow control beyond the kernel's buffers: SMTP replies and
commands are small. asyncio protocols and one timer per direction (not
streams): the relay shares the machine's two cores with client and servers.

"Greeting delay" listeners behave like postscreen in front of the server
(as the lab's 127.0.9.1 does, 6 s instead of 2): "220-" sent one round trip
after the connect, the server's own banner (the final "220 " line) GREET
seconds after it.

    relay.py MAPFILE [--delay-ms 25] [--greet 6] [--ready FILE]

MAPFILE: one listener a line, "LISTEN_ADDR UPSTREAM_ADDR [greet]". Loopback
only: any address outside 127.0.0.0/8 is refused. Runs until SIGTERM.
Writes "ready" to --ready once every listener is bound. Prints a line of
counters on stderr when it ends.
"""
import argparse
import asyncio
import collections
import ipaddress
import os
import signal
import sys
import time

GREETING = b"220-bench greeting delay (postscreen-style, bench/relay.py)\r\n"

stats = {"conns": 0, "chunks": 0, "bytes": 0, "errors": 0}


def loopback(addr):
    return ipaddress.ip_address(addr).is_loopback


class Direction:
    """One direction of a relayed connection: chunks written to `dst`
    (a transport) `delay` s after they were read, in order; EOF as a
    half-close, CLOSE (the source went away) as a close or an abort."""

    def __init__(self, loop, delay, first_extra=0.0, hold_until=None):
        self.loop, self.delay = loop, delay
        self.first_extra, self.hold_until = first_extra, hold_until
        self.dst = None
        self.queue = collections.deque()
        self.timer = None
        self.first = True
        self.eof_sent = False
        self.on_eof = None

    def push(self, item):
        due = self.loop.time() + self.delay
        if self.first:
            self.first = False
            due += self.first_extra
            if self.hold_until is not None and due < self.hold_until:
                due = self.hold_until
        elif self.queue and due < self.queue[-1][0]:
            due = self.queue[-1][0]        # never before what is already waiting
        self.queue.append((due, item))
        self.arm()

    def arm(self):
        if self.timer is None and self.queue and self.dst is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def attach(self, dst):
        self.dst = dst
        self.arm()

    def flush(self):
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, item = self.queue.popleft()
            if self.dst.is_closing():
                self.queue.clear()
                return
            if item is EOF:
                if self.dst.can_write_eof():
                    self.dst.write_eof()
                self.eof_sent = True
                if self.on_eof:
                    self.on_eof()
            elif item is CLOSE:
                self.dst.abort()
            else:
                self.dst.write(item)
                stats["chunks"] += 1
                stats["bytes"] += len(item)
        self.arm()


EOF = object()
CLOSE = object()


class Side(asyncio.Protocol):
    """One socket of a relayed connection; what it reads goes to `out`."""

    def __init__(self, conn, out):
        self.conn, self.out = conn, out
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.out.push(data)

    def eof_received(self):
        self.out.push(EOF)
        return True                        # keep the other direction open

    def connection_lost(self, exc):
        if exc is not None:
            stats["errors"] += 1
            self.out.push(CLOSE)
        self.conn.lost(self)


class Conn:
    """A client connection to a listener and its connection upstream."""

    def __init__(self, loop, listen, upstream, greet, delay, greet_s):
        self.loop = loop
        t0 = loop.time()
        # the server's first bytes wait one round trip more (the handshake
        # the relay's own accept did not cost), or, behind a greeting delay,
        # until greet_s after the connect
        self.down = Direction(loop, delay, 0.0 if greet else 2 * delay, t0 + greet_s if greet else None)
        self.up = Direction(loop, delay)
        self.down.on_eof = self.up.on_eof = self.maybe_close
        self.client = Side(self, self.up)
        self.server = None
        self.greet, self.delay = greet, delay
        self.listen, self.upstream = listen, upstream
        self.closed = False

    def start(self):
        stats["conns"] += 1
        if self.greet:
            self.loop.call_later(2 * self.delay, self.greeting)
        self.loop.create_task(self.connect())

    def greeting(self):
        if not self.client.transport.is_closing():
            self.client.transport.write(GREETING)

    async def connect(self):
        try:
            # from the listener's own address: Postfix counts connections
            # per client address (smtpd_client_connection_count_limit, 50),
            # and each listener stands for one MX host's clients
            _, self.server = await self.loop.create_connection(
                lambda: Side(self, self.down), self.upstream, 25, local_addr=(self.listen, 0))
        except OSError:
            stats["errors"] += 1
            self.client.transport.abort()
            return
        self.down.attach(self.client.transport)
        self.up.attach(self.server.transport)

    def maybe_close(self):
        if self.down.eof_sent and self.up.eof_sent:
            self.close()

    def lost(self, side):
        # one socket is gone: the other ends once what is queued for it went
        other = self.server if side is self.client else self.client
        if other is None or other.transport is None:
            return
        (self.down if other is self.client else self.up).push(CLOSE)

    def close(self):
        if not self.closed:
            self.closed = True
            for s in (self.client, self.server):
                if s is not None and s.transport is not None:
                    s.transport.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mapfile")
    ap.add_argument("--delay-ms", type=float, default=25.0)
    ap.add_argument("--greet", type=float, default=6.0)
    ap.add_argument("--ready")
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0
    loop = asyncio.get_running_loop()
    servers = []
    with open(a.mapfile) as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            listen, upstream = parts[0], parts[1]
            greet = len(parts) > 2 and parts[2] == "greet"
            if not (loopback(listen) and loopback(upstream)):
                sys.exit(f"relay: {listen} -> {upstream}: loopback addresses only")

            def factory(ls=listen, up=upstream, g=greet):
                def make():
                    c = Conn(loop, ls, up, g, delay, a.greet)
                    loop.call_soon(c.start)
                    return c.client
                return make
            servers.append(await loop.create_server(factory(), listen, 25, backlog=1024, reuse_address=True))
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ready\n")
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    t0 = time.time()
    await stop.wait()
    for s in servers:
        s.close()
    print("relay: %d connections, %d chunks, %d bytes, %d resets/errors in %.0f s" % (
        stats["conns"], stats["chunks"], stats["bytes"], stats["errors"], time.time() - t0), file=sys.stderr)
    sys.stderr.flush()
    os._exit(0)   # the connections still open end with the process


if __name__ == "__main__":
    asyncio.run(main())
