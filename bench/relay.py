#!/usr/bin/env python3
"""bench/relay.py -- the 50 ms round-trip time of `make bench-bulk`.

This machine's kernel has no netem (`tc qdisc add dev lo root netem delay
25ms` -> "Specified qdisc kind is unknown"), so the delay the issue asks for
is added in user space instead: a TCP relay listening on loopback addresses
of the bench's range (127.0.60.0/22) that forwards each connection to one of
the lab's healthy Postfix services and holds every chunk of data DELAY ms in
each direction (default 25: a 50 ms round trip), in order. It connects from the
listener's own address (Postfix limits connections per client address). TCP semantics
are kept: bytes in order, nothing merged out of order, a half-close
(shutdown of one direction) is passed on after the same delay, a reset or
error closes both sides. The TCP handshake to the relay itself completes at
once, so the relay holds the server's first bytes one round trip more (what
the SYN / SYN-ACK would have cost).

"Greeting delay" listeners behave like postscreen in front of the server
(as the lab's 127.0.9.1 does, 6 s instead of 2): "220-" sent at once, the
server's own banner (the final "220 " line) after GREET seconds.

    relay.py MAPFILE [--delay-ms 25] [--greet 6] [--ready FILE]

MAPFILE: one listener a line, "LISTEN_ADDR UPSTREAM_ADDR [greet]". Loopback
only: any address outside 127.0.0.0/8 is refused. Runs until SIGTERM.
Writes "ready" to --ready once every listener is bound. Prints a line of
counters on stderr when it ends.
"""
import argparse
import asyncio
import ipaddress
import os
import signal
import sys
import time

CHUNK = 65536
GREETING = b"220-bench greeting delay (postscreen-style, bench/relay.py)\r\n"

stats = {"conns": 0, "chunks": 0, "bytes": 0, "errors": 0}


def loopback(addr):
    return ipaddress.ip_address(addr).is_loopback


async def pump(reader, writer, delay, on_error, first_extra=0.0, hold_until=None):
    """Copies reader to writer, each chunk delivered `delay` s after it was
    read (order kept); the first chunk also waits first_extra s and, when
    set, until hold_until (a loop time). Never raises: an error (a reset, a
    broken pipe) calls on_error(), which aborts both connections."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        first = True
        while True:
            due, data = await queue.get()
            if first:
                due += first_extra
                if hold_until is not None and due < hold_until:
                    due = hold_until
                first = False
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:          # EOF: half-close this direction
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                return
            writer.write(data)
            stats["chunks"] += 1
            stats["bytes"] += len(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        stats["errors"] += 1
        sender.cancel()
        on_error()


async def handle(cr, cw, listen, upstream, greet, delay, greet_s):
    stats["conns"] += 1
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        # from the listener's own address: Postfix counts connections per
        # client address (smtpd_client_connection_count_limit, 50), and each
        # listener stands for one MX host's clients, not all of them at once
        ur, uw = await asyncio.open_connection(upstream, 25, local_addr=(listen, 0))
    except OSError:
        stats["errors"] += 1
        cw.transport.abort()
        return

    def abort():
        cw.transport.abort()
        uw.transport.abort()
    hold = None
    if greet:
        await asyncio.sleep(2 * delay)      # the handshake's round trip, then "220-"
        cw.write(GREETING)
        hold = t0 + greet_s
    await asyncio.gather(
        pump(ur, cw, delay, abort, first_extra=0 if greet else 2 * delay, hold_until=hold),
        pump(cr, uw, delay, abort))
    cw.close()
    uw.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mapfile")
    ap.add_argument("--delay-ms", type=float, default=25.0)
    ap.add_argument("--greet", type=float, default=6.0)
    ap.add_argument("--ready")
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0
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
                return lambda r, w: handle(r, w, ls, up, g, delay, a.greet)
            servers.append(await asyncio.start_server(factory(), listen, 25, backlog=1024,
                                                      reuse_address=True))
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ready\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
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
