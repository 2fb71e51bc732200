#!/usr/bin/env python3
"""bench/bulk.py -- `make bench-bulk` (issue 10 part 5): thousands of domains,
side by side with a floor and a peer baseline, one table.

What it builds (all on this machine, loopback only):
  - bulk.test., a generated zone of BENCH_BULK_DOMAINS (10,000) domains
    d000001.bulk.test ..., one MX each, served by the lab's NSD and resolved
    through its validating Unbound (spec/lab/lab.sh, LAB_EXTRA_ZONES; the
    zone is not signed: answers are insecure);
  - their MX addresses: BENCH_BULK_ADDRS (200) listeners 127.0.60.N and
    BENCH_BULK_SLOW_ADDRS (50) listeners 127.0.62.N of bench/relay.py, each
    forwarding to one of the lab's five healthy Postfix services (127.0.1.1,
    127.0.1.2, 127.0.13.1, 127.0.14.1, 127.0.17.1) and adding 25 ms each way
    (a 50 ms round trip: no netem on this kernel, see relay.py). Every 20th
    domain (5%) has its MX on a 127.0.62.N listener, which greets
    postscreen-style: "220-" at once, the final "220 " after 6 s. The
    certificates name the lab's MX hosts, not mx-N.bulk.test: every chain is
    decoded and verified and fails on the name; postmaster@dN.bulk.test is
    refused (not a Postfix destination): the dialog is the full one.

What it measures (each a separate process; CPU = user+sys of that process
from wait4, peak RSS = its ru_maxrss):
  1. mxprobe -f (the 10,000) --format jsonl -o FILE --concurrency
     BENCH_BULK_CONC (512), default --per-address 2: wall, CPU, RSS, probes/s;
  2. mxprobe --concurrency 16 over BENCH_BULK_TPUT (800) domains of the fast
     addresses, against 16 floor clients (bench/floor.c, one process each,
     in parallel, over the same addresses): probes/s, CPU per probe;
  3. per-event loop CPU with BENCH_BULK_IDLE (10,000) probes of the lab's
     blackhole in flight against none (bench/bench.lua worker idle);
  4. start-up: mxprobe --version against lua5.4 -e 'require "cjson"'
     (hyperfine when installed, else a loop);
  5. peak RSS for BENCH_BULK_RSS_QUERIES (100,000) queries streamed to a
     jsonl file: names under bulk.test that do not exist (NXDOMAIN: DNS
     only, no SMTP), --concurrency 256;
  6. the peer baseline: bench/peer-loop.sh (posttls-finger + swaks per
     domain) over BENCH_BULK_PEER (50) of the domains, extrapolated.
Numbers are printed, not asserted; the exit status is 1 only when a run
broke (a process failed, lines missing, the lab did not start).

Knobs (environment): BENCH_BULK_DOMAINS, BENCH_BULK_ADDRS, BENCH_BULK_SLOW_ADDRS,
BENCH_BULK_CONC, BENCH_BULK_PER_ADDRESS (2), BENCH_BULK_TPUT, BENCH_BULK_IDLE,
BENCH_BULK_IDLE_RUNS (5), BENCH_BULK_RSS_QUERIES, BENCH_BULK_PEER,
BENCH_BULK_DELAY_MS (25), BENCH_BULK_GREET (6), BENCH_BULK_WORKERS (0: mxprobe's
default, one worker process per core; 1: all in one process), BENCH_BULK_ARGS (more
mxprobe options, split on spaces); 0 skips a part (DOMAINS,
TPUT, IDLE, RSS_QUERIES, PEER). Paths: LUA (lua5.4), BENCH_FLOOR
(build/bench/floor), BUILD (build).
"""
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "spec", "lab")
CA = os.path.join(LAB, "state", "ca", "root.pem")
RESOLVER = "127.0.53.53"
ZONE = "bulk.test"
UPSTREAMS = ["127.0.1.1", "127.0.1.2", "127.0.13.1", "127.0.14.1", "127.0.17.1"]


def knob(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


K = {
    "domains": knob("BENCH_BULK_DOMAINS", 10000),
    "addrs": knob("BENCH_BULK_ADDRS", 200),
    "slow_addrs": knob("BENCH_BULK_SLOW_ADDRS", 50),
    "conc": knob("BENCH_BULK_CONC", 512),
    "per_address": knob("BENCH_BULK_PER_ADDRESS", 2),
    "tput": knob("BENCH_BULK_TPUT", 800),
    "idle": knob("BENCH_BULK_IDLE", 10000),
    "idle_runs": knob("BENCH_BULK_IDLE_RUNS", 5),
    "rss_queries": knob("BENCH_BULK_RSS_QUERIES", 100000),
    "peer": knob("BENCH_BULK_PEER", 50),
    "delay_ms": knob("BENCH_BULK_DELAY_MS", 25),
    "greet": knob("BENCH_BULK_GREET", 6),
    "workers": knob("BENCH_BULK_WORKERS", 0),
}
# more mxprobe options for every run (e.g. "--no-tls-versions": what the
# probe costs without the four extra STARTTLS dialogs of tls_versions)
EXTRA_ARGS = os.environ.get("BENCH_BULK_ARGS", "").split()
LUA = os.environ.get("LUA") or "lua5.4"
BUILD = os.path.join(ROOT, os.environ.get("BUILD") or "build")
OUT = os.path.join(BUILD, "bench", "bulk")
FLOOR = os.environ.get("BENCH_FLOOR") or os.path.join(BUILD, "bench", "floor")
ENV = dict(os.environ, LUA_PATH="%s/lua/?.lua;%s/lua/?/init.lua;;" % (ROOT, ROOT),
           LUA_CPATH="%s/?.so;;" % BUILD)
for k in ("LUA_PATH_5_4", "LUA_CPATH_5_4"):
    ENV.pop(k, None)

failures = []


def say(msg):
    print("bench-bulk: " + msg, file=sys.stderr, flush=True)


def broke(what):
    failures.append(what)
    say("FAILED: " + what)


# ------------------------------------------------------------------ the data

def normal_addr(n):      # n from 1
    return "127.0.60.%d" % n


def slow_addr(n):
    return "127.0.62.%d" % n


def domain(i):
    return "d%06d.%s" % (i, ZONE)


def is_slow(i):
    return i % 20 == 0


def mx_of(i):
    """(mx name, address) of domain i."""
    if is_slow(i) and K["slow_addrs"] > 0:
        n = (i // 20) % K["slow_addrs"] + 1
        return "mxs-%d.%s" % (n, ZONE), slow_addr(n)
    n = i % K["addrs"] + 1
    return "mx-%d.%s" % (n, ZONE), normal_addr(n)


def generate():
    os.makedirs(OUT, exist_ok=True)
    if K["addrs"] < 1 or K["addrs"] > 254 or K["slow_addrs"] > 254:
        sys.exit("bench-bulk: BENCH_BULK_ADDRS must be 1..254, BENCH_BULK_SLOW_ADDRS 0..254")
    n = max(K["domains"], 2 * K["tput"], K["peer"])   # enough domains on fast addresses for the c16 run
    zone = os.path.join(OUT, "bulk.test.zone")
    with open(zone, "w") as z:
        z.write("; generated by bench/bulk.py: %d domains\n$ORIGIN %s.\n$TTL 300\n" % (n, ZONE))
        z.write("@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n@ NS ns\nns A 127.0.53.1\n" % (ZONE, ZONE))
        for a in range(1, K["addrs"] + 1):
            z.write("mx-%d A %s\n" % (a, normal_addr(a)))
        for a in range(1, K["slow_addrs"] + 1):
            z.write("mxs-%d A %s\n" % (a, slow_addr(a)))
        for i in range(1, n + 1):
            z.write("%s. MX 10 %s.\n" % (domain(i), mx_of(i)[0]))
    with open(os.path.join(OUT, "relay.map"), "w") as m:
        for a in range(1, K["addrs"] + 1):
            m.write("%s %s\n" % (normal_addr(a), UPSTREAMS[a % len(UPSTREAMS)]))
        for a in range(1, K["slow_addrs"] + 1):
            m.write("%s %s greet\n" % (slow_addr(a), UPSTREAMS[a % len(UPSTREAMS)]))
    with open(os.path.join(OUT, "domains.txt"), "w") as f:
        for i in range(1, K["domains"] + 1):
            f.write(domain(i) + "\n")
    # the throughput run and the peer sample: domains on the fast addresses
    fast = [i for i in range(1, n + 1) if not is_slow(i)]
    with open(os.path.join(OUT, "tput.txt"), "w") as f:
        for i in fast[:K["tput"]]:
            f.write(domain(i) + "\n")
    with open(os.path.join(OUT, "peer.txt"), "w") as f:
        step = max(1, K["domains"] // max(K["peer"], 1))
        for i in range(1, K["peer"] * step + 1, step):   # the 5% slow ones included, as in the list
            f.write(domain(i) + "\n")
    with open(os.path.join(OUT, "nx.txt"), "w") as f:
        for i in range(1, K["rss_queries"] + 1):
            f.write("nx%07d.%s\n" % (i, ZONE))
    return zone


# ------------------------------------------------------------------ processes

LAST_SPLIT = [None]   # (own CPU s, reaped children's CPU s) of the last run()


def proc_cpu_split(pid):
    """(user+sys of pid itself, of its reaped children) in s, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(v[11]) + int(v[12])) / tick, (int(v[13]) + int(v[14])) / tick
    except (OSError, IndexError, ValueError):
        return None


def run(cmd, stdout=None, nofile=None, env=None, timeout=900):
    """Runs cmd; returns (status, wall s, cpu s, maxrss KiB, stdout text)."""
    outf = open(stdout or os.devnull, "w")
    errpath = os.path.join(OUT, "last.stderr")
    errf = open(errpath, "w")

    def pre():
        if nofile:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            want = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=outf, stderr=errf, env=env or ENV, cwd=ROOT, preexec_fn=pre)
    deadline = t0 + timeout
    while True:
        # ended: its own CPU and its reaped children's (the --workers
        # processes) read apart from /proc before it is reaped
        if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            LAST_SPLIT[0] = proc_cpu_split(p.pid)
            pid, status, ru = os.wait4(p.pid, 0)
            break
        if time.monotonic() > deadline:
            p.kill()
            LAST_SPLIT[0] = None
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.02)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    outf.close()
    errf.close()
    text = open(stdout).read() if stdout else ""
    if p.returncode not in (0, 1, 2):
        say("%s: status %d; stderr:\n%s" % (" ".join(cmd[:4]), p.returncode, open(errpath).read()[-2000:]))
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, text


def mxprobe_cmd(listfile, outfile, conc, per_address=None, share=True, versions=True):
    cmd = [LUA, "bin/mxprobe", "-f", listfile, "--format", "jsonl", "-o", outfile, "--no-progress",
           "--resolver", RESOLVER, "--ca-file", CA, "--ehlo-name", "bench.mxprobe.test",
           "--concurrency", str(conc)]
    if not share:
        cmd += ["--no-share-hosts"]   # hostshare: one full dialog per domain, as the floor does
    if not versions:
        cmd += ["--no-tls-versions"]  # the floor's dialog: one STARTTLS, not four more for the versions
    if per_address:
        cmd += ["--per-address", str(per_address)]
    if K["workers"]:
        cmd += ["--workers", str(K["workers"])]
    return cmd + EXTRA_ARGS


def jsonl_stats(path):
    """lines, targets probed, targets whose dialog completed, verdicts."""
    lines = targets = complete = 0
    verdicts = {}
    with open(path) as f:
        for line in f:
            lines += 1
            doc = json.loads(line)
            v = doc.get("verdict")
            verdicts[v] = verdicts.get(v, 0) + 1
            facts = doc.get("facts") or {}
            for t in facts.get("targets") or []:
                targets += 1
                smtp = t.get("smtp") or {}
                if smtp.get("status") == "complete":
                    complete += 1
    return lines, targets, complete, verdicts


RELAY_PID = [None]
TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """(busy s, total s) of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / TICK, sum(v) / TICK


def relay_cpu():
    try:
        with open("/proc/%d/stat" % RELAY_PID[0]) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / TICK
    except (OSError, TypeError, IndexError, ValueError):
        return 0.0


def bulk_run(listfile, n, conc, label, per_address=None, share=True, versions=True):
    out = os.path.join(OUT, label + ".jsonl")
    if os.path.exists(out):
        os.remove(out)
    say("%s: %d queries, concurrency %d" % (label, n, conc))
    m0, r0 = machine_cpu(), relay_cpu()
    st, wall, cpu, rss, _ = run(mxprobe_cmd(listfile, out, conc, per_address, share, versions), nofile=conc * 4 + 256, timeout=1800)
    m1, r1 = machine_cpu(), relay_cpu()
    busy = (m1[0] - m0[0]) / max(m1[1] - m0[1], 1e-9)
    lines, targets, complete, verdicts = jsonl_stats(out) if os.path.exists(out) else (0, 0, 0, {})
    if st not in (0, 1, 2) or lines != n:
        broke("%s: status %d, %d of %d lines" % (label, st, lines, n))
    split = LAST_SPLIT[0] or (float("nan"), float("nan"))
    say("%s: %.1f s wall, %.1f s CPU (coordinator %.2f s = %.0f us/domain, workers %.2f s = %.0f us/domain),"
        " %d KiB, %d lines, %d/%d targets complete, %s"
        % (label, wall, cpu, split[0], split[0] / max(n, 1) * 1e6, split[1], split[1] / max(n, 1) * 1e6,
           rss, lines, complete, targets, verdicts))
    return {"wall": wall, "cpu": cpu, "own": split[0], "children": split[1], "rss": rss, "lines": lines,
            "targets": targets,
            "complete": complete, "verdicts": verdicts, "busy": busy, "machine": m1[0] - m0[0],
            "relay": r1 - r0}


def floors(n_total, clients):
    """clients floor processes in parallel, n_total probes in all, each over
    the fast addresses from its own offset; (wall, cpu sum, probes, complete)."""
    per = max(1, n_total // clients)
    procs = []
    t0 = time.monotonic()
    for c in range(clients):
        tf = os.path.join(OUT, "floor-targets-%d.txt" % c)
        with open(tf, "w") as f:
            for k in range(K["addrs"]):
                a = (k + c * K["addrs"] // clients) % K["addrs"] + 1
                # a domain whose MX is mx-a: i % addrs + 1 == a
                f.write("%s mx-%d.%s %s\n" % (normal_addr(a), a, ZONE, domain(a - 1 if a > 1 else K["addrs"])))
        outp = os.path.join(OUT, "floor-%d.out" % c)
        procs.append((subprocess.Popen([FLOOR, "-n", str(per), "-c", CA, tf], stdout=open(outp, "w"),
                                       stderr=subprocess.DEVNULL, cwd=ROOT), outp))
    cpu = probes = complete = 0
    for p, outp in procs:
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu += ru.ru_utime + ru.ru_stime
        r = dict(kv.split("=", 1) for kv in open(outp).read().split()[1:] if "=" in kv)
        probes += int(r.get("probes", 0))
        complete += int(r.get("complete", 0))
    wall = time.monotonic() - t0
    if complete != probes or probes != per * clients:
        broke("floor: %d of %d probes complete" % (complete, per * clients))
    say("floor x%d: %d probes, %.1f s wall, %.2f s CPU" % (clients, probes, wall, cpu))
    return {"wall": wall, "cpu": cpu, "probes": probes, "complete": complete}


# mxprobe fits its concurrency to the open-file limit at 8 descriptors a
# query (run.lua FDS_PER_QUERY, FD_RESERVE): the limit n idle probes and
# the 64 active ones need, and its inverse
def idle_nofile(n):
    return 8 * (n + 64) + 1024


def idle_fit(nofile):
    return (nofile - 1024) // 8 - 64


def idle_run(n):
    cmd = [LUA, "bench/bench.lua", "worker", "idle", "ca=" + CA, "idle=%d" % n, "active=60", "conc=2"]
    out = os.path.join(OUT, "idle.out")
    # with fewer, the 60 active probes would queue behind the idle ones for
    # their whole 120 s
    st, wall, _, rss, text = run(cmd, stdout=out, nofile=idle_nofile(n), timeout=300)
    line = next((ln for ln in text.splitlines() if ln.startswith("RESULT ")), None)
    if st != 0 or not line:
        broke("idle %d: status %d, no result" % (n, st))
        return None
    r = dict(kv.split("=", 1) for kv in line.split()[1:])
    if r.get("idle_done") != "0" or r.get("complete") != r.get("targets"):
        broke("idle %d: %s" % (n, line))
        return None
    return {"event": float(r.get("cpu_us_per_event", "nan")), "probe": float(r["cpu_us_per_probe"]),
            "rss": int(r.get("rss_kib", -1)), "wall": wall}


def startup():
    bare = [LUA, "-e", 'require "cjson"']
    ver = [LUA, "bin/mxprobe", "--version"]
    helpc = [LUA, "bin/mxprobe", "--help"]
    if shutil.which("hyperfine"):
        js = os.path.join(OUT, "hyperfine.json")
        q = lambda c: " ".join("'%s'" % a if " " in a or '"' in a else a for a in c)  # noqa: E731
        subprocess.run(["hyperfine", "-N", "-w", "10", "-r", "200", "--export-json", js, q(bare), q(ver), q(helpc)],
                       env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        try:
            res = json.load(open(js))["results"]
            return [r["median"] * 1000 for r in res] + ["hyperfine -N, median of 200"]
        except (OSError, ValueError, KeyError, IndexError):
            pass

    def med(cmd):
        ts = []
        for _ in range(100):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1000
    return [med(bare), med(ver), med(helpc), "a loop, median of 100"]


def peer(n):
    out = os.path.join(OUT, "peer.out")
    cmd = ["sh", "bench/peer-loop.sh", RESOLVER, CA, os.path.join(LAB, "state", "postfix"),
           os.path.join(OUT, "peer.txt")]
    st, wall, cpu, rss, text = run(cmd, stdout=out, timeout=900)
    rows = [ln.split() for ln in text.splitlines() if ln.strip()]
    ok = sum(1 for r in rows if len(r) >= 4 and r[2] != "tls=none" and r[3] != "relay=none")
    if st != 0 or len(rows) != n:
        broke("peer loop: status %d, %d of %d domains" % (st, len(rows), n))
    say("peer loop: %d domains (%d with a TLS verdict and a relay answer), %.1f s wall, %.1f s CPU"
        % (len(rows), ok, wall, cpu))
    return {"wall": wall, "cpu": cpu, "rss": rss, "n": len(rows), "ok": ok}


# ------------------------------------------------------------------ the lab

class Lab:
    def __init__(self, zone):
        self.zone = zone
        self.relay = None

    def __enter__(self):
        env = dict(os.environ, LAB_EXTRA_ZONES="%s=%s" % (ZONE, self.zone))
        log = os.path.join(OUT, "lab-up.log")
        with open(log, "w") as lf:
            if subprocess.run(["sh", os.path.join(LAB, "lab.sh"), "up"], env=env, stdout=lf, stderr=lf,
                              check=False).returncode != 0:
                sys.stderr.write(open(log).read())
                sys.exit("bench-bulk: lab up failed")
        ready = os.path.join(OUT, "relay.ready")
        if os.path.exists(ready):
            os.remove(ready)
        self.relay_log = os.path.join(OUT, "relay.log")
        self.relay = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "relay.py"),
                                       os.path.join(OUT, "relay.map"), "--delay-ms", str(K["delay_ms"]),
                                       "--greet", str(K["greet"]), "--ready", ready],
                                      stdout=subprocess.DEVNULL, stderr=open(self.relay_log, "w"),
                                      preexec_fn=lambda: resource.setrlimit(
                                          resource.RLIMIT_NOFILE, (16384, max(16384, resource.getrlimit(
                                              resource.RLIMIT_NOFILE)[1]))))
        RELAY_PID[0] = self.relay.pid
        for _ in range(200):
            if os.path.exists(ready) or self.relay.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(ready):
            self.__exit__(None, None, None)
            sys.exit("bench-bulk: the relay did not start:\n" + open(self.relay_log).read())
        return self

    def __exit__(self, *exc):
        self.stop_relay()
        subprocess.run(["sh", os.path.join(LAB, "lab.sh"), "down"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)

    def stop_relay(self):
        if self.relay and self.relay.poll() is None:
            self.relay.send_signal(signal.SIGTERM)
            try:
                self.relay.wait(10)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait()


# ------------------------------------------------------------------ the table

def main():
    t_start = time.time()
    # the lab's daemons and every run inherit it: Unbound's 8,192 outgoing
    # sockets, 10,000 idle probes
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    zone = generate()
    R = {}
    R["startup"] = startup()           # no lab needed
    with Lab(zone) as lab:
        # warm-up: smtpd processes, the resolver; not measured
        if K["tput"]:
            with open(os.path.join(OUT, "tput.txt")) as src, open(os.path.join(OUT, "warmup.txt"), "w") as dst:
                dst.writelines(src.readlines()[:50])
            bulk_run(os.path.join(OUT, "warmup.txt"), min(K["tput"], 50), 16, "warmup", share=False)
        if K["tput"]:
            # the floor's dialog (no TLS-version dialogs, no sharing): the targets
            R["c16"] = bulk_run(os.path.join(OUT, "tput.txt"), K["tput"], 16, "concurrency-16", share=False,
                                versions=False)
            # and mxprobe's full probe (four more STARTTLS dialogs a target), for the record
            R["c16_full"] = bulk_run(os.path.join(OUT, "tput.txt"), K["tput"], 16, "concurrency-16-full",
                                     share=False)
            R["floor"] = floors(K["tput"], 16)
        if K["domains"]:
            R["bulk"] = bulk_run(os.path.join(OUT, "domains.txt"), K["domains"], K["conc"], "bulk",
                                 K["per_address"])
        if K["idle"]:
            # root raises the hard limit for the idle runs (they inherit it);
            # where it cannot (no CAP_SYS_RESOURCE, as on this VM: 20,000)
            # fewer idle probes fit
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            if hard != resource.RLIM_INFINITY and hard < idle_nofile(K["idle"]):
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (idle_nofile(K["idle"]),) * 2)
                except (ValueError, OSError):
                    fit = idle_fit(hard)
                    say("idle: the hard open-file limit %d (not raisable here) fits %d idle probes, not %d"
                        % (hard, fit, K["idle"]))
                    K["idle"] = fit
            zero, many = [], []
            for _ in range(K["idle_runs"]):
                a, b = idle_run(0), idle_run(K["idle"])
                if a:
                    zero.append(a)
                if b:
                    many.append(b)
            R["idle"] = (zero, many)
        if K["rss_queries"]:
            R["rss"] = bulk_run(os.path.join(OUT, "nx.txt"), K["rss_queries"], 256, "rss-100k")
        if K["peer"]:
            R["peer"] = peer(K["peer"])
        lab.stop_relay()
        with open(lab.relay_log) as f:
            relay_note = " ".join(ln.strip() for ln in f if ln.startswith("relay: "))
    table(R, time.time() - t_start, relay_note)
    return 1 if failures else 0


def fmt(x, f="%.1f"):
    return "-" if x is None else f % x


def table(R, secs, relay_note):
    rows = []

    def row(name, value, target, met):
        rows.append((name, value, target, "-" if met is None else ("met" if met else "NOT met")))

    b = R.get("bulk")
    if b:
        pps = b["lines"] / b["wall"]
        row("%d domains: wall" % K["domains"], "%.1f s" % b["wall"], "<= 60 s", b["wall"] <= 60)
        row("  CPU (user+sys), share of 2 cores", "%.1f s (%.0f%%)" % (b["cpu"], 100 * b["cpu"] / b["wall"] / 2),
            "", None)
        row("  the machine meanwhile: busy", "%.0f%% of %d cores" % (100 * b["busy"], os.cpu_count()), "", None)
        row("    CPU s: mxprobe / relay / rest (Postfix, DNS, other)", "%.1f / %.1f / %.1f" % (
            b["cpu"], b["relay"], b["machine"] - b["cpu"] - b["relay"]), "", None)
        row("    mxprobe CPU s: coordinator / workers", "%.1f / %.1f" % (b["own"], b["children"]), "", None)
        row("  peak RSS (c%d)" % K["conc"], "%.1f MiB" % (b["rss"] / 1024), "", None)
        row("  probes/s (domains)", "%.0f" % pps, ">= 167 (60 s)", pps >= 10000 / 60)
        row("  targets complete", "%d of %d" % (b["complete"], b["targets"]), "", None)
    c, f = R.get("c16"), R.get("floor")
    if c and f:
        cpp = c["cpu"] / max(c["targets"], 1) * 1e6
        fpp = f["cpu"] / max(f["probes"], 1) * 1e6
        row("client CPU per full probe: mxprobe c16", "%.0f us" % cpp, "", None)
        row("  of which: coordinator / workers", "%.0f / %.0f us" % (
            c["own"] / max(c["targets"], 1) * 1e6, c["children"] / max(c["targets"], 1) * 1e6), "", None)
        row("  16 floor clients (no DNS)", "%.0f us" % fpp, "", None)
        row("  mxprobe / floor", "%.2f x" % (cpp / fpp), "<= 1.1 x", cpp / fpp <= 1.1)
        tp, tf = c["targets"] / c["wall"], f["probes"] / f["wall"]
        row("throughput: mxprobe --concurrency 16", "%.1f probes/s" % tp, "", None)
        row("  16 floor clients in parallel", "%.1f probes/s" % tf, "", None)
        row("  mxprobe / floor", "%.2f x" % (tp / tf), ">= 0.9 x", tp / tf >= 0.9)
        full = R.get("c16_full")
        if full:
            fcpp = full["cpu"] / max(full["targets"], 1) * 1e6
            row("full probe, + 4 TLS-version dialogs: CPU", "%.0f us (%.2f x floor)" % (fcpp, fcpp / fpp), "", None)
            row("  throughput", "%.1f probes/s (%.2f x floor)" % (full["targets"] / full["wall"],
                full["targets"] / full["wall"] / tf), "", None)
    if R.get("idle"):
        zero, many = R["idle"]
        if zero and many:
            e0 = statistics.median(r["event"] for r in zero)
            en = statistics.median(r["event"] for r in many)
            p0 = statistics.median(r["probe"] for r in zero)
            pn = statistics.median(r["probe"] for r in many)
            row("per-event CPU, 0 in flight", "%.2f us (%.0f us/probe)" % (e0, p0), "", None)
            row("  %d in flight (blackhole%s)" % (K["idle"], "; the open-file limit's most" if K["idle"] < 10000 else ""), "%.2f us (%.0f us/probe)" % (en, pn), "", None)
            row("    RSS with them in flight", "%.1f MiB" % (statistics.median(r["rss"] for r in many) / 1024), "",
                None)
            row("  ratio (per event)", "%.2f x" % (en / e0), "0.75..1.25 x", 0.75 <= en / e0 <= 1.25)
    s = R.get("startup")
    if s:
        row("start-up: lua5.4 -e 'require \"cjson\"'", "%.2f ms" % s[0], "", None)
        row("  mxprobe --version", "%.2f ms" % s[1], "", None)
        row("  ratio", "%.2f x" % (s[1] / s[0]), "<= 3 x", s[1] / s[0] <= 3)
        row("  (mxprobe --help, for the record)", "%.2f ms" % s[2], "", None)
    r = R.get("rss")
    if r:
        row("peak RSS, %d queries -> jsonl file" % K["rss_queries"], "%.1f MiB" % (r["rss"] / 1024), "<= 64 MiB",
            r["rss"] / 1024 <= 64)
        row("  (NXDOMAIN names, c256: wall, CPU)", "%.1f s, %.1f s" % (r["wall"], r["cpu"]), "", None)
    p = R.get("peer")
    if p and p["n"]:
        k = K["domains"] or 10000
        row("peer: posttls-finger + swaks loop, %d domains" % p["n"], "%.1f s wall, %.1f s CPU" % (p["wall"], p["cpu"]),
            "", None)
        row("  extrapolated to %d domains" % k, "%.0f s wall (%.1f h), %.0f s CPU"
            % (p["wall"] / p["n"] * k, p["wall"] / p["n"] * k / 3600, p["cpu"] / p["n"] * k), "", None)
        if b:
            row("  mxprobe's run / the loop's (wall)", "%.3f x" % (b["wall"] / (p["wall"] / p["n"] * k)), "", None)

    print()
    print("mxprobe bench-bulk (issue 10): %d domains in zone %s. (lab NSD + validating Unbound),"
          % (K["domains"], ZONE))
    print("  MX on %d relay addresses 127.0.60.N + %d postscreen-style (%d s greeting) 127.0.62.N, 5%% of the domains"
          % (K["addrs"], K["slow_addrs"], K["greet"]))
    print("  50 ms RTT: NOT netem (this kernel has no sch_netem: \"Specified qdisc kind is unknown\"); bench/relay.py,")
    print("  a user-space TCP relay in front of the lab's 5 healthy Postfix services, holds every chunk %d ms each way"
          % K["delay_ms"])
    print("  mxprobe: --concurrency %d --per-address %d, -f, --format jsonl -o FILE; %s%s"
          % (K["conc"], K["per_address"],
             "--workers %d" % K["workers"] if K["workers"] else "--workers default (one per core)",
             "; " + " ".join(EXTRA_ARGS) if EXTRA_ARGS else ""))
    print("  hostshare: the bulk run shares each MX host's dialog (per worker); the concurrency-16 runs do not"
          " (--no-share-hosts),")
    print("  and the one compared with the floor also passes --no-tls-versions: the floor's dialog, one STARTTLS")
    print()
    w = max(len(x[0]) for x in rows) if rows else 10
    print("  %-*s  %-34s %-14s %s" % (w, "", "measured", "target", ""))
    for name, value, target, met in rows:
        print("  %-*s  %-34s %-14s %s" % (w, name, value, target, met if target else ""))
    print()
    print("  " + relay_note)
    print("bench-bulk: %d failed runs; %.0f s" % (len(failures), secs))


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench-bulk: must run as root (the lab listens on ports 25 and 53)")
    sys.exit(main())
