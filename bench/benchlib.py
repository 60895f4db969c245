#!/usr/bin/python3
"""Helpers for scripts/bench (Python 3 standard library only).

Every measurement subcommand appends its figures to one JSON state file (--state), which
`report` turns into bench/results/latest.md and latest.json. Subcommands:

  ports N                      N distinct free loopback TCP ports, one per line
  port-range N                 LOW-HIGH: N consecutive free loopback ports outside the ephemeral range
  event FILE EVENT FIELD       FIELD of the first JSON line in FILE whose "event" is EVENT (exit 1 if none yet)
  init STATE --mode M          start a new state file
  set STATE KEY.PATH JSON      store a value (dotted path; JSON or plain string)
  monitor OUT --root PID       sample, until stopped, the CPU used by processes outside the benchmark
  wait-quiet OUT --max-wait S  wait, bounded, until those samples show the other processes idle
  disturbed OUT --since T      exit 0 when other processes used the CPUs since T
  wrk STATE PATH KIND FILE     parse a wrk output file into paths.PATH.KIND
  iperf STATE PATH FILE        parse an iperf3 -J file into paths.PATH.iperf
  rss STATE KEY PID...         store VmRSS/VmHWM of each PID under porthole.KEY
  idle-conns STATE ...         hold N idle keep-alive visitor connections, measure RSS deltas
  tunnels STATE ...            register N HTTP tunnels (one client process each) on one relay
  reconnect STATE ...          poll an HTTP URL every 20 ms until 200, time since T0
  text-file FILE --mib N       write N MiB of deterministic English-like text (the compression row)
  compress-cpu STATE KEY ...   N requests of a text file with one Accept-Encoding on one connection:
                               the proxy's CPU seconds (its process tree) per MiB of text
  report STATE --md F --json F print the markdown report, write both files; exit 1 if a step failed
  compress-report STATE --md F --json F   the compression rows only (scripts/bench --compress)
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import resource
import selectors
import tempfile
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

MIB = 1024 * 1024


def _on_term(signum, _frame):
    # Turn SIGTERM into SystemExit so finally-blocks stop whatever this helper started.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


# ---------------------------------------------------------------------------------------------
# state file

def load(state):
    with open(state) as f:
        return json.load(f)


def save(state, data):
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, state)


def put(data, dotted, value):
    node = data
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def get(data, dotted, default=None):
    node = data
    for k in dotted.split("."):
        if not isinstance(node, dict) or k not in node:
            return default
        node = node[k]
    return node


def update(state, dotted, value):
    data = load(state)
    put(data, dotted, value)
    save(state, data)


def add_note(state, kind, text):
    data = load(state)
    data.setdefault(kind, []).append(text)
    save(state, data)


# ---------------------------------------------------------------------------------------------
# ports and events

def cmd_ports(a):
    socks = []
    try:
        for _ in range(a.n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cmd_port_range(a):
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        eph_low = 32768
    top = max(eph_low - a.n, 10000 + a.n)
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(10000, top)
        if all(_bindable(p) for p in range(low, low + a.n)):
            print(f"{low}-{low + a.n - 1}")
            return 0
    print("no free port range found", file=sys.stderr)
    return 1


def cmd_event(a):
    try:
        with open(a.file) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == a.event and a.field in ev:
                    print(ev[a.field])
                    return 0
    except OSError:
        pass
    return 1


# ---------------------------------------------------------------------------------------------
# /proc

def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def smaps_kib(pid, *fields):
    """The sum of these smaps_rollup fields, KiB; None when the process is gone."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(tuple(field + ":" for field in fields)):
                    total += int(line.split()[1])
    except OSError:
        return None
    return total


def private_kib(pid):
    """Private (unshared) resident memory, KiB, from smaps_rollup."""
    return smaps_kib(pid, "Private_Clean", "Private_Dirty")


def pss_kib(pid):
    """Proportional set size, KiB: shared pages divided among the processes that map them."""
    return smaps_kib(pid, "Pss")


def _proc_table():
    """{pid: (ppid, starttime_ticks, cpu_ticks)} for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                f_ = f.read().rsplit(")", 1)[1].split()
            out[int(d)] = (int(f_[1]), int(f_[19]), int(f_[11]) + int(f_[12]))
        except (OSError, IndexError, ValueError):
            pass
    return out


def _cpu_line():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), (v[7] if len(v) > 7 else 0)


def cmd_monitor(a):
    """Every INTERVAL s, append to OUT how much of the machine's CPU went to processes that are not
    part of this benchmark (not descendants of ROOT, not kernel threads), and the hypervisor's steal."""
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    prev = _proc_table()
    prev_cpu = _cpu_line()
    prev_t = time.monotonic()
    with open("/proc/uptime") as f:
        prev_up = float(f.read().split()[0])
    with open(a.out, "a", buffering=1) as out:
        while True:
            time.sleep(a.interval)
            now = _proc_table()
            cpu = _cpu_line()
            t = time.monotonic()
            with open("/proc/uptime") as f:
                up = float(f.read().split()[0])
            ours = {}

            def is_ours(pid, depth=0):
                if pid in ours:
                    return ours[pid]
                if pid == a.root:
                    r = True
                elif pid <= 2 or pid not in now or depth > 64:
                    r = False
                else:
                    r = is_ours(now[pid][0], depth + 1)
                ours[pid] = r
                return r

            other = 0
            for pid, (ppid, st, ticks) in now.items():
                if pid <= 2 or ppid == 2 or is_ours(pid):
                    continue
                p = prev.get(pid)
                if p and p[1] == st:
                    other += ticks - p[2]
                elif st >= prev_up * hz:  # started since the last sample
                    other += ticks
            span = max(t - prev_t, 1e-3)
            dtotal = max(cpu[0] - prev_cpu[0], 1)
            out.write(json.dumps({"t": round(time.time(), 3),
                                  "other": round(other / hz / (span * ncpu), 4),
                                  "steal": round((cpu[1] - prev_cpu[1]) / dtotal, 4)}) + "\n")
            prev, prev_cpu, prev_t, prev_up = now, cpu, t, up


def cmd_wait_quiet(a):
    """Wait (at most MAX_WAIT s, and at most BUDGET s over the whole run) until the monitor's
    last 2 s show other processes idle."""
    spent = 0.0
    if a.budget_file:
        try:
            with open(a.budget_file) as f:
                spent = float(f.read().strip() or 0)
        except (OSError, ValueError):
            spent = 0.0
    limit = max(0.0, min(a.max_wait, a.budget - spent)) if a.budget_file else a.max_wait
    t0 = time.monotonic()
    try:
        return _wait_quiet(a, limit, t0)
    finally:
        if a.budget_file:
            with open(a.budget_file, "w") as f:
                f.write(str(spent + time.monotonic() - t0))


def _wait_quiet(a, limit, t0):
    said = False
    while time.monotonic() - t0 < limit:
        try:
            with open(a.monitor) as f:
                last = [json.loads(x) for x in f.readlines()[-4:]]
        except (OSError, ValueError):
            last = []
        if len(last) == 4 and all(x["other"] < 0.03 for x in last) and all(x["t"] > time.time() - 3 for x in last):
            if said:
                print(f"  (waited {time.monotonic() - t0:.0f} s for other processes to leave the CPUs)", file=sys.stderr)
            return 0
        if not said and time.monotonic() - t0 > 1:
            print("  other processes are busy on the CPUs; waiting for them (bounded)", file=sys.stderr)
            said = True
        time.sleep(0.5)
    if limit > 0:
        print(f"  other processes still busy after {limit:.0f} s; measuring anyway", file=sys.stderr)
    return 0


def cmd_disturbed(a):
    """Exit 0 when, on average since SINCE, other processes used > 5% of the CPUs or the hypervisor
    stole > 15% of the CPU time."""
    deadline = time.time() + 1.5
    while True:  # wait for the sample that covers the end of the run
        try:
            with open(a.monitor) as f:
                samples = [json.loads(x) for x in f if x.strip()]
        except (OSError, ValueError):
            return 1
        if (samples and samples[-1]["t"] >= a.now) or time.time() > deadline:
            break
        time.sleep(0.1)
    sel = [x for x in samples if x["t"] > a.since]
    if not sel:
        return 1
    other = sum(x["other"] for x in sel) / len(sel)
    steal = sum(x["steal"] for x in sel) / len(sel)
    if other > 0.05 or steal > 0.15:
        print(f"  (other processes {other:.0%}, hypervisor steal {steal:.0%} during that run)", file=sys.stderr)
        return 0
    return 1


def _window(samples, t_end, seconds):
    """Mean of the monitor samples that fall inside [t_end - seconds, t_end + 0.5]."""
    sel = [x for x in samples if t_end - seconds <= x["t"] <= t_end + 0.5]
    if not sel:
        return None
    return {"other_cpu": round(sum(x["other"] for x in sel) / len(sel), 3),
            "steal": round(sum(x["steal"] for x in sel) / len(sel), 3), "samples": len(sel)}


def cmd_init(a):
    save(a.state, {"mode": a.mode, "paths": {}, "porthole": {}, "notes": [], "warnings": [],
                   "failures": [], "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")})


def cmd_set(a):
    try:
        value = json.loads(a.value)
    except ValueError:
        value = a.value
    if a.key in ("notes", "warnings", "failures"):
        add_note(a.state, a.key, value)
    else:
        update(a.state, a.key, value)


def cmd_rss(a):
    data = load(a.state)
    for label_pid in a.pids:
        label, _, pid = label_pid.partition("=")
        st = proc_status(int(pid))
        put(data, f"porthole.{a.key}.{label}", {"rss_kib": st.get("VmRSS"), "hwm_kib": st.get("VmHWM"),
                                                 "private_kib": private_kib(int(pid)),
                                                 "pss_kib": pss_kib(int(pid)),
                                                 "threads": st.get("Threads")})
    save(a.state, data)


# ---------------------------------------------------------------------------------------------
# wrk and iperf3 output

_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _dur(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _UNIT_S[m.group(2)] if m else None


def parse_wrk(text):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_s"] = float(m.group(2)) * _UNIT_S[m.group(3)]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", text, re.M)
        if m:
            v = _dur(m.group(1))
            r[f"p{pct}_ms"] = v * 1e3 if v is not None else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else \
        {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx_3xx"] = int(m.group(1)) if m else 0
    return r


HEADLINE = ("rps", "p50_ms", "p99_ms", "mib_per_s", "gbit_per_s")


def aggregate(samples):
    """Median of every numeric field over the rounds; min/max of the headline ones; error counts summed."""
    ok = [x for x in samples if "error" not in x]
    out = {"rounds": len(samples), "samples_ok": len(ok)}
    keys = sorted({k for x in ok for k, v in x.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("t_end", "attempt")})
    for k in keys:
        vals = [x[k] for x in ok if isinstance(x.get(k), (int, float))]
        if vals:
            out[k] = statistics.median(vals)
            if k in HEADLINE and len(vals) > 1:
                out.setdefault("min", {})[k] = min(vals)
                out.setdefault("max", {})[k] = max(vals)
    if any("socket_errors" in x for x in samples):
        out["socket_errors"] = {k: sum(x.get("socket_errors", {}).get(k, 0) for x in samples)
                                for k in ("connect", "read", "write", "timeout")}
    if not ok and samples:
        out["error"] = samples[-1].get("error", "no result")
    return out


def record_sample(a, r):
    """Store one sample (replacing the previous one when this is a retake) and the aggregate."""
    data = load(a.state)
    samples = get(data, f"paths.{a.path}.samples.{a.kind}", [])
    if a.attempt > 1 and samples:
        samples[-1]["superseded"] = True
        data.setdefault("retaken", []).append(f"{a.path} {a.kind}")
    samples.append(r)
    put(data, f"paths.{a.path}.samples.{a.kind}", samples)
    put(data, f"paths.{a.path}.{a.kind}", aggregate([x for x in samples if not x.get("superseded")]))
    return data


def cpu_per_request(before, after, requests):
    """CPU microseconds per request from two `cpu_ticks` snapshots ("NAME=TICKS ... machine=TICKS"):
    each process on the path, the path's processes together, the first of them (the public host:
    relay, nginx or sshd), and the whole machine (load generator and origin included)."""
    def parse(text):
        return [(k, int(v)) for k, _, v in (item.partition("=") for item in text.split())]
    start = dict(parse(before))
    us = 1e6 / os.sysconf("SC_CLK_TCK") / requests
    out, path = {}, []
    for name, ticks in parse(after):
        v = (ticks - start.get(name, ticks)) * us
        if name == "machine":
            out["cpu_machine_us"] = v
        else:
            out[f"cpu_us_{name}"] = v
            path.append(v)
    if path:
        out["cpu_path_us"] = sum(path)
        out["cpu_host_us"] = path[0]
    return out


def cmd_wrk(a):
    with open(a.file) as f:
        text = f.read()
    r = parse_wrk(text)
    r["command"] = a.command
    r["t_end"] = round(time.time(), 3)
    r["attempt"] = a.attempt
    if a.body_bytes and r.get("rps") is not None:
        r["mib_per_s"] = r["rps"] * a.body_bytes / MIB
    if a.cpu_before is not None and r.get("requests"):
        r.update(cpu_per_request(a.cpu_before, a.cpu_after, r["requests"]))
    if not r.get("rps") or not r.get("requests"):
        r["error"] = "wrk produced no requests"
    data = record_sample(a, r)
    if "error" in r:
        data["failures"].append(f"{a.path} {a.kind}: wrk produced no requests")
    errs = sum(r["socket_errors"].values())
    if r["non_2xx_3xx"] or errs:
        data["warnings"].append(f"{a.path} {a.kind}: {r['non_2xx_3xx']} non-2xx/3xx responses, socket errors "
                                + ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items()))
    save(a.state, data)
    print(f"  {a.path:<14} {a.kind:<8} " + (f"{r['rps']:.0f} req/s" if r.get("rps") else "no result")
          + (f", p50 {r['p50_ms']:.3f} ms" if r.get("p50_ms") is not None else "")
          + (f", {r['mib_per_s']:.0f} MiB/s" if r.get("mib_per_s") else "")
          + (f", non-2xx {r['non_2xx_3xx']}" if r["non_2xx_3xx"] else "")
          + (f", socket errors {errs}" if errs else ""), file=sys.stderr)


def cmd_iperf(a):
    a.kind = "iperf"
    r = {"command": a.command, "t_end": round(time.time(), 3), "attempt": a.attempt}
    try:
        with open(a.file) as f:
            doc = json.load(f)
        if doc.get("error"):
            r["error"] = doc["error"]
        else:
            end = doc["end"]
            r["gbit_per_s"] = end["sum_received"]["bits_per_second"] / 1e9
            r["sender_gbit_per_s"] = end["sum_sent"]["bits_per_second"] / 1e9
            r["retransmits"] = end["sum_sent"].get("retransmits")
            r["seconds"] = end["sum_received"].get("seconds")
    except (OSError, ValueError, KeyError) as e:
        r["error"] = f"unreadable iperf3 output: {e}"
    data = record_sample(a, r)
    if "error" in r:
        data["failures"].append(f"{a.path} iperf3: {r['error']}")
    save(a.state, data)
    print(f"  {a.path:<14} iperf3   " + (f"{r['gbit_per_s']:.2f} Gbit/s" if "gbit_per_s" in r else r["error"]),
          file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# idle visitor connections

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _one_idle(port, host, path, sem, timeout):
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = int(head.split(b" ", 2)[1])
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            if m:
                await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout)
            if status != 200:
                raise RuntimeError(f"status {status}")
            if re.search(rb"\r\nconnection:\s*close", head, re.I):
                raise RuntimeError("server closed the keep-alive connection")
        except BaseException:
            writer.close()
            raise
        return reader, writer


async def _idle_run(a, measure):
    sem = asyncio.Semaphore(a.concurrency)
    t0 = time.monotonic()
    results = await asyncio.gather(*(_one_idle(a.port, a.host, a.path, sem, 15) for _ in range(a.n)),
                                   return_exceptions=True)
    open_s = time.monotonic() - t0
    conns = [r for r in results if isinstance(r, tuple)]
    errors = [r for r in results if not isinstance(r, tuple)]
    try:
        await asyncio.sleep(a.settle)
        measured = measure()
        await asyncio.sleep(0)
        # Count only connections still open when memory was read: no EOF, nothing unexpected to read.
        alive = sum(1 for rd, w in conns if not rd.at_eof() and not w.is_closing() and not rd._buffer)
        return open_s, len(conns), errors, alive, measured
    finally:
        for _, w in conns:
            w.close()


def cmd_idle_conns(a):
    nofile = raise_nofile()
    n = min(a.n, nofile - 100)
    a.n = n
    if a.burst:
        # Every connection at once: the relay holds them all mid-request together, then idle.
        a.concurrency = n
    pids = {"relay": a.relay_pid, "client": a.client_pid}
    before = {k: proc_status(p)["VmRSS"] for k, p in pids.items()}
    before_priv = {k: private_kib(p) for k, p in pids.items()}

    def measure():
        return ({k: proc_status(p)["VmRSS"] for k, p in pids.items()},
                {k: private_kib(p) for k, p in pids.items()})

    open_s, opened, errors, alive, (after, after_priv) = asyncio.run(_idle_run(a, measure))
    r = {"requested": a.n, "opened": opened, "alive_at_measure": alive, "open_seconds": round(open_s, 3),
         "rss_before_kib": before, "rss_with_kib": after,
         "private_before_kib": before_priv, "private_with_kib": after_priv,
         "kib_per_conn": {k: (after[k] - before[k]) / max(alive, 1) for k in pids}}
    if errors:
        kinds = {}
        for e in errors:
            k = type(e).__name__ + (f": {e}" if str(e) else "")
            kinds[k] = kinds.get(k, 0) + 1
        r["errors"] = kinds
    r["concurrency"] = a.concurrency
    r["relay_hwm_kib"] = proc_status(a.relay_pid).get("VmHWM")
    r["settle_seconds"] = a.settle
    what = "idle connections after a burst" if a.burst else "idle connections"
    data = load(a.state)
    put(data, "porthole.idle_conns_burst" if a.burst else "porthole.idle_conns", r)
    if alive < a.n:
        data["failures" if alive == 0 else "warnings"].append(
            f"{what}: {alive} of {a.n} held open (errors: {r.get('errors', {})})")
    save(a.state, data)
    print(f"  {'burst' if a.burst else 'idle conns':<14} {alive}/{a.n} open in {open_s:.2f} s; "
          f"relay {r['kib_per_conn']['relay']:.2f} KiB/conn, "
          f"client {r['kib_per_conn']['client']:.2f} KiB/conn", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# many tunnels

def _stop_all(procs, grace=5.0):
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        left = deadline - time.monotonic()
        try:
            p.wait(timeout=max(left, 0.01))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def spawn_baseline(binary, n, batch):
    """Wall time to start N `porthole version` processes in the same batches and see them exit:
    what process creation alone costs on this machine, next to the tunnel figure."""
    t0 = time.monotonic()
    done = 0
    while done < n:
        k = min(batch, n - done)
        ps = [subprocess.Popen([binary, "version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL) for _ in range(k)]
        for p in ps:
            p.communicate()
        done += k
    return time.monotonic() - t0


def cmd_tunnels(a):
    nofile = raise_nofile()
    meminfo = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            meminfo[k] = int(v.split()[0])
    n = a.n
    notes = []
    # Each client needs a pipe here and ~9 sockets in the relay and in itself.
    fd_cap = (nofile - 200) // 10
    if n > fd_cap:
        notes.append(f"open-file limit {nofile} allows only {fd_cap} tunnels")
        n = fd_cap
    k = max(1, a.per_client)
    # The inspector is off: this measures registration, and a thousand inspectors would only
    # contend for ports.
    base = [a.bin, "--log-level", "warn"]
    common = ["--server", a.server, "--json", "--inspect=false"]
    confdir = tempfile.mkdtemp(prefix="porthole-tunnels-")
    procs = []
    wanted = {}  # pid -> ready events that make it done
    sel = selectors.DefaultSelector()
    bufs = {}
    ready_at = {}
    failed = {}
    relay_before = proc_status(a.relay_pid)["VmRSS"]
    cpu_before = cpu_seconds(a.relay_pid)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    try:
        def spawn(tunnels):
            if k == 1:
                cmd = base + ["http", str(a.target)] + common
            else:
                # One `porthole start` client opening `tunnels` tunnels in one session.
                conf = os.path.join(confdir, f"c{len(procs)}.toml")
                with open(conf, "w") as f:
                    for i in range(tunnels):
                        f.write(f'[tunnels.t{i}]\ntype = "http"\ntarget = {a.target}\n')
                cmd = base + ["start", "--all", "--config", conf] + common
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            os.set_blocking(p.stdout.fileno(), False)
            sel.register(p.stdout, selectors.EVENT_READ, p)
            bufs[p.pid] = b""
            wanted[p.pid] = tunnels
            procs.append(p)

        def tunnels_ready():
            return sum(wanted[pid] for pid in ready_at)

        def pump(until_ready):
            while len(ready_at) + len(failed) < until_ready and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.2):
                    p = key.data
                    chunk = p.stdout.read()
                    if chunk:
                        bufs[p.pid] += chunk
                        if p.pid not in ready_at and bufs[p.pid].count(b'"event":"ready"') >= wanted[p.pid]:
                            ready_at[p.pid] = time.monotonic() - t0
                            sel.unregister(p.stdout)
                    else:  # EOF: the client exited
                        sel.unregister(p.stdout)
                        if p.pid not in ready_at:
                            failed[p.pid] = bufs[p.pid].decode(errors="replace")[-200:]

        spawned = 0
        est_private = None
        clients = (n + k - 1) // k
        while spawned < clients and time.monotonic() < deadline:
            batch = min(a.batch, clients - spawned)
            for i in range(batch):
                spawn(min(k, n - (spawned + i) * k))
            spawned += batch
            pump(spawned)
            if est_private is None and ready_at:
                # Memory guard: stop early rather than push the machine into swap/OOM.
                pid = next(iter(ready_at))
                est_private = private_kib(pid) or 4096
                limit = int(meminfo.get("MemAvailable", 0) * 0.5 / max(est_private, 1))
                if limit < n:
                    notes.append(f"memory allows about {limit} client processes "
                                 f"({est_private} KiB private each); measured {max(limit, spawned)}")
                    n = max(limit, spawned)
        wall = time.monotonic() - t0
        time.sleep(0.2)
        relay_after = proc_status(a.relay_pid)
        cpu_after = cpu_seconds(a.relay_pid)
        relay_priv = private_kib(a.relay_pid)
        ok = tunnels_ready()
        r = {"requested": a.n, "attempted": len(procs), "ready": ok, "failed": len(failed),
             "per_client": k, "clients": len(procs),
             "batch": a.batch, "wall_seconds": round(wall, 3), "t_end": round(time.time(), 3),
             "relay_rss_before_kib": relay_before, "relay_rss_kib": relay_after["VmRSS"],
             "relay_private_kib": relay_priv,
             "relay_kib_per_tunnel": (relay_after["VmRSS"] - relay_before) / max(ok, 1),
             "relay_cpu_seconds": round(cpu_after - cpu_before, 3),
             "client_private_kib_estimate": est_private,
             "notes": notes}
        data = load(a.state)
        key = "porthole.tunnels" if k == 1 else "porthole.tunnels_multi"
        put(data, key, r)
        if ok < a.n:
            data["warnings" if ok else "failures"].append(
                f"tunnels: {ok} of {a.n} requested tunnels became ready"
                + (f" ({len(failed)} clients exited; last output: {next(iter(failed.values()))!r})" if failed else "")
                + ("; " + "; ".join(notes) if notes else ""))
        save(a.state, data)
        print(f"  tunnels        {ok}/{a.n} ready ({len(procs)} clients) in {wall:.2f} s; relay RSS {relay_after['VmRSS'] / 1024:.1f} MiB, "
              f"relay CPU {cpu_after - cpu_before:.2f} s", file=sys.stderr)
    finally:
        _stop_all(procs)
        sel.close()
        shutil.rmtree(confdir, ignore_errors=True)
    # After the clients are gone, so it does not compete with them.
    if k == 1:
        update(a.state, "porthole.tunnels.spawn_baseline_seconds", round(spawn_baseline(a.bin, len(procs), a.batch), 3))


# ---------------------------------------------------------------------------------------------
# reconnect

def _http_ok(port, host, path, timeout):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                head += chunk
            return head.split(b" ", 2)[1] == b"200"
    except (OSError, IndexError):
        return False


def cmd_reconnect(a):
    # T0 is bash's $EPOCHREALTIME taken just before the relay was started again.
    attempts = 0
    while True:
        attempts += 1
        if _http_ok(a.port, a.host, a.path, 1.0):
            elapsed = time.time() - a.t0
            break
        if time.time() - a.t0 > a.timeout:
            elapsed = None
            break
        time.sleep(0.02)
    backoff = None
    if a.client_out:  # the client reports the back-off it chose in its "reconnecting" event
        try:
            with open(a.client_out) as f:
                for line in f:
                    if '"reconnecting"' in line:
                        try:
                            backoff = json.loads(line).get("delay_ms", backoff)
                        except ValueError:
                            pass
        except OSError:
            pass
    data = load(a.state)
    trials = get(data, "porthole.reconnect.trials", [])
    trials.append({"ms": round(elapsed * 1e3, 1) if elapsed is not None else None, "polls": attempts,
                   "relay_down_ms": a.down_ms, "client_backoff_ms": backoff})
    put(data, "porthole.reconnect.trials", trials)
    ok = [t["ms"] for t in trials if t["ms"] is not None]
    put(data, "porthole.reconnect.median_ms", sorted(ok)[len(ok) // 2] if ok else None)
    put(data, "porthole.reconnect.max_ms", max(ok) if ok else None)
    if elapsed is None:
        data["failures"].append(f"reconnect: no 200 within {a.timeout} s of the relay restart")
    save(a.state, data)
    print(f"  reconnect      " + (f"{elapsed * 1e3:.0f} ms from relay start to first 200 ({attempts} polls)"
                                  if elapsed is not None else "timed out"), file=sys.stderr)
    return 0 if elapsed is not None else 1



# ---------------------------------------------------------------------------------------------
# cluster: two relays sharing a redis-server; the added latency of the inter-relay hop, and the
# time from kill -9 of the relay holding a tunnel to its first request served through the other

def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _latencies(port, host, path, n):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        out.append((time.perf_counter() - t) * 1e6)
        if r.status != 200:
            raise RuntimeError(f"status {r.status} from port {port}")
    conn.close()
    out.sort()
    return out


def cmd_cluster(a):
    work = tempfile.mkdtemp(prefix="porthole-cluster-")
    procs = {}

    def spawn(name, args):
        out = open(os.path.join(work, name + ".log"), "w")
        procs[name] = subprocess.Popen([str(x) for x in args], stdout=out, stderr=subprocess.STDOUT)
        return procs[name]

    def wait_port(port, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    redis_port, = _free_ports(1)
    spawn("redis", ["redis-server", "--port", redis_port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", work])
    if not wait_port(redis_port):
        raise RuntimeError("redis-server did not start")
    secret = os.path.join(work, "cluster.key")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(secret, 0o600)
    relays = {}

    def start_relay(node):
        if node not in relays:
            http, ctl, link = _free_ports(3)
            cfg = os.path.join(work, node + ".toml")
            with open(cfg, "w") as f:
                f.write(f'cluster = {{ redis = "redis://127.0.0.1:{redis_port}/0", node_id = "{node}", '
                        f'advertise = "127.0.0.1:{link}", secret_file = "{secret}" }}\n')
            relays[node] = {"http": http, "ctl": ctl, "cfg": cfg}
        r = relays[node]
        spawn(node, [a.bin, "--log-level", "warn", "server", "--threads", "1",
                     "--domain", "localhost", "--http-addr", f"127.0.0.1:{r['http']}", "--control-addr", f"127.0.0.1:{r['ctl']}",
                     "--tcp-ports", "%d-%d" % tuple(_free_ports(1) * 2), "--config", r["cfg"]])
        if not (wait_port(r["http"]) and wait_port(r["ctl"])):
            raise RuntimeError(f"relay {node} did not start")

    result = {"requests": a.requests}
    try:
        for node in ("relay-a", "relay-b"):
            start_relay(node)
        servers = ",".join(f"127.0.0.1:{relays[n]['ctl']}" for n in ("relay-a", "relay-b"))
        spawn("client", [a.bin, "--log-level", "warn", "http", a.origin_port, "--server", servers,
                         "--json", "--inspect=false", "--subdomain", "hop"])
        host = "hop.localhost"
        end = time.time() + 10
        while not (_http_ok(relays["relay-b"]["http"], host, a.path, 1.0)
                   and _http_ok(relays["relay-a"]["http"], host, a.path, 1.0)):
            if time.time() > end:
                raise RuntimeError("the tunnel was not served by both relays")
            time.sleep(0.05)
        # Warm both paths, then alternate rounds: through the relay holding the tunnel, and
        # through the other one (the hop).
        _latencies(relays["relay-a"]["http"], host, a.path, 200)
        _latencies(relays["relay-b"]["http"], host, a.path, 200)
        direct, hop = [], []
        for _ in range(3):
            direct += _latencies(relays["relay-a"]["http"], host, a.path, a.requests // 3)
            hop += _latencies(relays["relay-b"]["http"], host, a.path, a.requests // 3)
        direct.sort()
        hop.sort()
        q = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p))]
        result.update({
            "direct_median_us": round(q(direct, 0.5), 1), "direct_p99_us": round(q(direct, 0.99), 1),
            "hop_median_us": round(q(hop, 0.5), 1), "hop_p99_us": round(q(hop, 0.99), 1),
        })
        result["hop_added_median_us"] = round(result["hop_median_us"] - result["direct_median_us"], 1)
        # Failover: kill -9 the relay holding the tunnel; poll the other until it serves again.
        # Then start the killed one again, and the next trial kills the other.
        trials = []
        holder, other = "relay-a", "relay-b"
        for _ in range(a.trials):
            procs[holder].kill()
            t0 = time.time()
            procs[holder].wait()
            served = None
            while time.time() - t0 < 15:
                if _http_ok(relays[other]["http"], host, a.path, 1.0):
                    served = (time.time() - t0) * 1e3
                    break
                time.sleep(0.01)
            trials.append(round(served, 1) if served is not None else None)
            start_relay(holder)
            end = time.time() + 10
            while not _http_ok(relays[holder]["http"], host, a.path, 1.0) and time.time() < end:
                time.sleep(0.05)
            holder, other = other, holder
        result["failover_ms"] = trials
        ok = [t for t in trials if t is not None]
        result["failover_max_ms"] = max(ok) if ok else None
    finally:
        _stop_all(list(procs.values()))
    data = load(a.state)
    put(data, "porthole.cluster", result)
    if any(t is None for t in result.get("failover_ms", [None])):
        data["failures"].append("cluster: a tunnel was not served again after its relay was killed")
    save(a.state, data)
    print(f"  cluster        hop +{result.get('hop_added_median_us')} us median; "
          f"failover {result.get('failover_ms')} ms", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# offload: a static site's requests that still reach a tunnel's local service with --cache

def _static_site(root, pages, images):
    """A static site as a site generator leaves it: HTML pages (revalidated on every request),
    fingerprinted CSS, JS and fonts (immutable for a year), and images with no Cache-Control at
    all (heuristic freshness from Last-Modified, a month old)."""
    files = {}
    for i in range(pages):
        files[f"/page{i}.html"] = 2000 + 300 * (i % 7)
    for name, size in (("/assets/app.3f9a1c.css", 40000), ("/assets/app.8d21be.js", 120000),
                       ("/assets/vendor.c0ffee.js", 300000), ("/assets/inter.5b7e2a.woff2", 90000)):
        files[name] = size
    for i in range(images):
        files[f"/images/photo{i}.jpg"] = 20000 + 1000 * (i % 50)
    month_ago = time.time() - 30 * 86400
    for path, size in files.items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(bytes((i * 31 + size) % 251 for i in range(size)))
        os.utime(full, (month_ago, month_ago))
    return files


def _zipf_pick(rng, n, s=1.1):
    weights = [1 / (k + 1) ** s for k in range(n)]
    return rng.choices(range(n), weights)[0]


def cmd_offload(a):
    import http.client
    import http.server
    import threading
    root = tempfile.mkdtemp(prefix="porthole-offload-")
    files = _static_site(root, a.pages, a.images)
    counts = {}
    lock = threading.Lock()

    class Origin(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args, **kw):
            super().__init__(*args, directory=root, **kw)

        def log_message(self, *args):
            pass

        def end_headers(self):
            if self.path.endswith(".html"):
                self.send_header("Cache-Control", "public, max-age=0, must-revalidate")
            elif self.path.startswith("/assets/"):
                self.send_header("Cache-Control", "public, max-age=31536000, immutable")
            super().end_headers()

        def send_response(self, code, message=None):
            host = self.headers.get("Host", "").split(":")[0]
            size = files.get(self.path, 0) if code == 200 else 0
            with lock:
                c = counts.setdefault(host, {"requests": 0, "bytes": 0, "not_modified": 0})
                c["requests"] += 1
                c["bytes"] += size
                c["not_modified"] += code == 304
            super().send_response(code, message)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.origin_port), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page_count, image_count = a.pages, a.images
    assets = [p for p in files if p.startswith("/assets/")]
    visitors = {}
    failures = []
    try:
        for host in (a.plain_host, a.cached_host):
            rng = random.Random(20261207)  # the same visits through both tunnels
            conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
            n = 0
            for _ in range(a.visits):
                page = f"/page{_zipf_pick(rng, page_count)}.html"
                images = {f"/images/photo{_zipf_pick(rng, image_count)}.jpg" for _ in range(4)}
                for path in [page] + assets + sorted(images):
                    conn.request("GET", path, headers={"Host": host})
                    r = conn.getresponse()
                    body = r.read()
                    n += 1
                    if r.status != 200 or len(body) != files[path]:
                        failures.append(f"offload: {host}{path} answered {r.status}, {len(body)} bytes")
                        break
            conn.close()
            visitors[host] = n
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)
    plain = counts.get(a.plain_host.split(":")[0], {"requests": 0, "bytes": 0, "not_modified": 0})
    cached = counts.get(a.cached_host.split(":")[0], {"requests": 0, "bytes": 0, "not_modified": 0})
    result = {"visits": a.visits, "requests": visitors.get(a.cached_host, 0),
              "origin_requests_plain": plain["requests"], "origin_requests_cached": cached["requests"],
              "origin_bytes_plain": plain["bytes"], "origin_bytes_cached": cached["bytes"],
              "origin_304_cached": cached["not_modified"],
              "requests_offloaded_pct": round(100 * (1 - cached["requests"] / plain["requests"]), 1)
              if plain["requests"] else None,
              "bytes_offloaded_pct": round(100 * (1 - cached["bytes"] / plain["bytes"]), 1)
              if plain["bytes"] else None}
    data = load(a.state)
    put(data, "porthole.offload", result)
    data["failures"].extend(failures[:3])
    save(a.state, data)
    print(f"  offload        {result['origin_requests_cached']} of {result['requests']} requests reached the "
          f"service with --cache, {result['origin_requests_plain']} without", file=sys.stderr)
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------
# report

PATHS = [("direct", "direct"), ("porthole", "porthole"), ("porthole_noinspect", "porthole --inspect=false"),
         ("porthole_group", "porthole group of 2 (--inspect=false)"), ("porthole_tls", "porthole TLS"), ("ssh", "ssh -R"),
         ("nginx", "nginx (1 worker)"), ("nginx_auto", "nginx (auto)"),
         ("porthole_proxy", "porthole proxy (one hop)"), ("haproxy", "HAProxy (nbthread 1)"),
         ("porthole_proxy_t2", "porthole proxy --threads 2"), ("haproxy_t2", "HAProxy (nbthread 2)"),
         ("caddy", "Caddy (GOMAXPROCS=1)"), ("porthole_cached", "porthole server, site cache"),
         ("nginx_cached", "nginx proxy_cache (1 worker)"), ("varnish", "Varnish (1 thread pool)")]
LABEL = dict(PATHS)
RATIOS = [("porthole/direct", "porthole", "direct"), ("porthole/nginx", "porthole", "nginx"),
          ("porthole/nginx auto", "porthole", "nginx_auto"), ("porthole/ssh", "porthole", "ssh"),
          ("porthole TLS/ssh", "porthole_tls", "ssh"),
          ("porthole --inspect=false/nginx", "porthole_noinspect", "nginx"),
          ("group of 2/1 client", "porthole_group", "porthole_noinspect")]
ONE_HOP_RATIOS = [("proxy/nginx", "porthole_proxy", "nginx"), ("proxy/nginx auto", "porthole_proxy", "nginx_auto"),
                  ("proxy/HAProxy", "porthole_proxy", "haproxy"), ("proxy/Caddy", "porthole_proxy", "caddy")]
THREADS_RATIOS = [("threads 2/threads 1", "porthole_proxy_t2", "porthole_proxy"),
                  ("threads 2/nginx auto", "porthole_proxy_t2", "nginx_auto"),
                  ("threads 2/HAProxy nbthread 2", "porthole_proxy_t2", "haproxy_t2")]
CACHED_RATIOS = [("cached porthole/nginx", "porthole_cached", "nginx_cached"),
                 ("cached porthole/Varnish", "porthole_cached", "varnish")]
# The report's tables: the tunnels against ssh -R and nginx, then the one-hop reverse proxies.
TABLES = [
    ("Tunnels", ["direct", "porthole", "porthole_noinspect", "porthole_group", "porthole_tls", "ssh", "nginx", "nginx_auto"], RATIOS),
    ("One-hop reverse proxies (no tunnel client): porthole proxy = the relay proxying straight to the origin",
     ["direct", "porthole_proxy", "nginx", "nginx_auto", "haproxy", "caddy"], ONE_HOP_RATIOS),
    ("Two cores: the one-hop proxies with two event loops, workers or threads each",
     ["direct", "porthole_proxy", "porthole_proxy_t2", "nginx_auto", "haproxy_t2"], THREADS_RATIOS),
    ("Cached responses: each cache in front of the same origin, every request after the first a hit",
     ["direct", "porthole_cached", "nginx_cached", "varnish"], CACHED_RATIOS),
]


def machine_info():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    os_name = None
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass

    def ver(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    return {"nproc": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(), "os": os_name,
            "mem_total_mib": mem, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "tools": {"wrk": ver(["wrk", "--version"]), "iperf3": ver(["iperf3", "--version"]),
                      "nginx": ver(["nginx", "-v"]), "ssh": ver(["ssh", "-V"]),
                      "haproxy": ver(["haproxy", "-v"]), "caddy": ver(["caddy", "version"]),
                      "varnish": ver(["/usr/sbin/varnishd", "-V"])}}


def fmt(v, digits=0):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return f"{v:,.{digits}f}"


FIGURES = [
    # key, label, source, digits, higher_is_better
    ("rps_c64", "HTTP req/s, 1 KiB, 64 conns", ("c64", "rps"), 0, True),
    ("p50_c64_ms", "  p50 latency at 64 conns (ms)", ("c64", "p50_ms"), 3, False),
    ("p99_c64_ms", "  p99 latency at 64 conns (ms)", ("c64", "p99_ms"), 3, False),
    ("cpu_path_us", "  CPU per request at 64 conns: tunnel or proxy processes (µs)", ("c64", "cpu_path_us"), 1, False),
    ("cpu_host_us", "    of which the public host: relay, proxy, sshd (µs)", ("c64", "cpu_host_us"), 1, False),
    ("cpu_machine_us", "    whole machine, load generator and origin included (µs)", ("c64", "cpu_machine_us"), 1, False),
    ("p50_c1_ms", "p50 latency, 1 conn (ms)", ("c1", "p50_ms"), 3, False),
    ("added_p50_c1_ms", "  added p50 vs direct, 1 conn (ms)", None, 3, False),
    ("p99_c1_ms", "  p99 latency, 1 conn (ms)", ("c1", "p99_ms"), 3, False),
    ("p50_c1pin_ms", "p50 latency, 1 conn, all on CPU 0 (ms)", ("c1pin", "p50_ms"), 3, False),
    ("added_p50_c1pin_ms", "  added p50 vs direct, all on CPU 0 (ms)", None, 3, False),
    ("p99_c1pin_ms", "  p99 latency, 1 conn, all on CPU 0 (ms)", ("c1pin", "p99_ms"), 3, False),
    ("download_mib_s", "1 MiB download, 4 conns (MiB/s)", ("big", "mib_per_s"), 0, True),
    ("tcp_gbit_s", "TCP single stream, iperf3 (Gbit/s)", ("iperf", "gbit_per_s"), 2, True),
]


def figures(data):
    """{path: {figure_key: value or str}}"""
    out = {}
    for p, _ in PATHS:
        src = data["paths"].get(p)
        row = {}
        for key, _, source, _, _ in FIGURES:
            if source is None:
                continue
            if src is None:
                row[key] = None
                continue
            if isinstance(src.get("skipped"), str):
                row[key] = "n/a"
                continue
            part = src.get(source[0])
            if isinstance(part, str):           # e.g. "not applicable"
                row[key] = part
            elif isinstance(part, dict):
                row[key] = part.get(source[1])
            else:
                row[key] = None
        out[p] = row
    for key, _, source, _, _ in FIGURES:
        if source is None and key.startswith("added_"):
            base = key[len("added_"):]
            direct = out.get("direct", {}).get(base)
            for p in out:
                v = out[p].get(base)
                ok = isinstance(v, float) and isinstance(direct, float) and p != "direct"
                out[p][key] = (v - direct) if ok else None
    return out


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return a / b
    return None


def targets(data, figs):
    pt = figs["porthole"]
    ph = data["porthole"]
    t = []

    def add(name, value, goal, met, unit="", comment="", status=None):
        if status is None:
            status = ("not measured at this size" if value is not None else "not measured") if met is None \
                else ("met" if met else "short")
        t.append({"target": name, "goal": goal, "measured": value, "unit": unit, "comment": comment,
                  "status": status})

    def cpu_context(fig):
        # Where the CPUs are all busy, req/s follows the machine's CPU per request.
        if not isinstance(fig.get("cpu_path_us"), float) or not isinstance(figs["nginx"].get("cpu_path_us"), float):
            return ""
        return (f"; CPU per request: relay {fig['cpu_host_us']:.1f} + client "
                f"{fig['cpu_path_us'] - fig['cpu_host_us']:.1f} µs vs nginx {figs['nginx']['cpu_path_us']:.1f} µs")

    r = ratio(pt.get("rps_c64"), figs["nginx"].get("rps_c64"))
    add("HTTP req/s vs nginx one-hop (1 worker)", r, "≥ 1.0×", None if r is None else r >= 1.0, "×",
        f"{fmt(pt.get('rps_c64'))} vs {fmt(figs['nginx'].get('rps_c64'))} req/s" + cpu_context(pt))
    ni = figs.get("porthole_noinspect", {})
    r = ratio(ni.get("rps_c64"), figs["nginx"].get("rps_c64"))
    if r is not None:
        add("HTTP req/s vs nginx one-hop (1 worker), porthole --inspect=false", r, "≥ 1.0×", r >= 1.0, "×",
            f"{fmt(ni.get('rps_c64'))} vs {fmt(figs['nginx'].get('rps_c64'))} req/s" + cpu_context(ni))
    r2 = ratio(pt.get("rps_c64"), figs["nginx_auto"].get("rps_c64"))
    if r2 is not None:
        add("HTTP req/s vs nginx one-hop (worker_processes auto)", r2, "≥ 1.0×", r2 >= 1.0, "×",
            f"{fmt(pt.get('rps_c64'))} vs {fmt(figs['nginx_auto'].get('rps_c64'))} req/s")
    r = ratio(pt.get("rps_c64"), figs["ssh"].get("rps_c64"))
    add("HTTP req/s vs ssh -R, porthole plaintext", r, "≥ 5×", None if r is None else r >= 5.0, "×",
        f"{fmt(pt.get('rps_c64'))} vs {fmt(figs['ssh'].get('rps_c64'))} req/s")
    tl = figs.get("porthole_tls", {})
    r = ratio(tl.get("rps_c64"), figs["ssh"].get("rps_c64"))
    if r is not None:
        add("HTTP req/s vs ssh -R, porthole over TLS (both encrypted)", r, "≥ 5×", r >= 5.0, "×",
            f"{fmt(tl.get('rps_c64'))} vs {fmt(figs['ssh'].get('rps_c64'))} req/s")
    r = ratio(pt.get("tcp_gbit_s"), figs["direct"].get("tcp_gbit_s"))
    add("single-stream TCP vs direct", r, "≥ 0.5×", None if r is None else r >= 0.5, "×",
        f"{fmt(pt.get('tcp_gbit_s'), 2)} vs {fmt(figs['direct'].get('tcp_gbit_s'), 2)} Gbit/s")
    r = ratio(tl.get("tcp_gbit_s"), figs["direct"].get("tcp_gbit_s"))
    if r is not None:
        add("single-stream TCP vs direct, porthole over TLS", r, "≥ 0.25×", r >= 0.25, "×",
            f"{fmt(tl.get('tcp_gbit_s'), 2)} vs {fmt(figs['direct'].get('tcp_gbit_s'), 2)} Gbit/s")
    for key, how, fig in (("added_p50_c1pin_ms", "all on CPU 0", pt), ("added_p50_c1_ms", "unpinned", pt),
                          ("added_p50_c1pin_ms", "all on CPU 0, --inspect=false", ni)):
        a_pt, a_ng = fig.get(key), figs["nginx"].get(key)
        if a_pt is None and a_ng is None:
            continue
        r = ratio(a_pt, a_ng) if isinstance(a_ng, float) and a_ng > 0 else None
        add(f"added p50 latency at 1 connection vs what nginx adds ({how})", r, "≤ 2×",
            None if r is None else r <= 2.0, "×",
            f"{a_pt:+.3f} ms vs {a_ng:+.3f} ms" if isinstance(a_pt, float) and isinstance(a_ng, float) else "",
            "no ratio: nginx adds nothing measurable" if isinstance(a_ng, float) and a_ng <= 0 else None)
    idle = get(ph, "rss_idle.relay.rss_kib")
    priv = get(ph, "rss_idle.relay.private_kib")
    add("relay RSS idle (1 HTTP + 1 TCP tunnel)", idle * 1024 / 1e6 if idle else None, "≤ 10 MB",
        None if idle is None else idle * 1024 <= 10e6, "MB",
        f"of which {priv / 1024:.1f} MiB private; the rest is shared libraries" if priv else "")
    kpc = get(ph, "idle_conns.kib_per_conn.relay")
    n_idle = get(ph, "idle_conns.alive_at_measure")
    add(f"relay memory per idle visitor connection ({fmt(n_idle)} held)", kpc, "≤ 4 KiB",
        None if kpc is None else kpc <= 4.0, "KiB",
        f"client adds {get(ph, 'idle_conns.kib_per_conn.client'):.1f} KiB per connection" if kpc is not None else "")
    kpb = get(ph, "idle_conns_burst.kib_per_conn.relay")
    if kpb is not None:
        n_burst = get(ph, "idle_conns_burst.alive_at_measure")
        add(f"relay memory per idle visitor connection after a burst ({fmt(n_burst)} opened at once)", kpb,
            "≤ 4 KiB", kpb <= 4.0, "KiB",
            f"client adds {get(ph, 'idle_conns_burst.kib_per_conn.client'):.1f} KiB per connection")
    tn = get(ph, "tunnels_multi") or get(ph, "tunnels")
    if tn:
        n = tn["ready"]
        full = n >= 1000
        one_each = get(ph, "tunnels")
        add(f"{fmt(n)} tunnels: wall time until all are ready ({fmt(tn.get('clients'))} clients)",
            tn["wall_seconds"], "≤ 2 s for 1,000",
            (tn["wall_seconds"] <= 2.0) if full else None, "s",
            f"relay CPU {tn['relay_cpu_seconds']:.2f} s"
            + (f"; with one client process per tunnel {one_each['wall_seconds']:.2f} s, of which starting "
               f"{fmt(one_each['ready'])} bare processes takes {fmt(one_each.get('spawn_baseline_seconds'), 2)} s"
               if one_each and one_each is not tn else ""))
        add(f"{fmt(n)} tunnels: relay RSS", tn["relay_rss_kib"] * 1024 / 1e6, "≤ 50 MB for 1,000",
            (tn["relay_rss_kib"] * 1024 <= 50e6) if full else None, "MB",
            f"{tn['relay_kib_per_tunnel']:.1f} KiB per tunnel (each client keeps a pool of data connections)")
    rc = get(ph, "reconnect.max_ms")
    trials = get(ph, "reconnect.trials", [])
    downs = [x["relay_down_ms"] for x in trials if x.get("relay_down_ms") is not None]
    backs = [x["client_backoff_ms"] for x in trials if x.get("client_backoff_ms") is not None]
    ctx = []
    if downs:
        ctx.append(f"the old relay took ≤ {max(downs):.0f} ms to exit")
    if backs:
        ctx.append(f"the client's back-off before retrying was {min(backs):.0f}–{max(backs):.0f} ms")
    add("reconnect: relay start → first 200 (worst of trials)", rc, "≤ 1 s", None if rc is None else rc <= 1000, "ms",
        "; ".join(ctx))

    host = pt.get("cpu_host_us")
    add("tunnel path: relay CPU per request at 64 conns (today's 19–22 µs or better)",
        host if isinstance(host, float) else None, "≤ 22 µs", host <= 22.0 if isinstance(host, float) else None, "µs",
        f"--inspect=false: relay {ni['cpu_host_us']:.1f} µs" if isinstance(ni.get("cpu_host_us"), float) else "")

    # A tunnel group of 2 clients against one client with the same flags.
    gp = figs.get("porthole_group", {})
    r = ratio(gp.get("rps_c64"), ni.get("rps_c64"))
    add("tunnel group: HTTP req/s, 64 conns, 2 clients vs 1 (both --inspect=false)", r, "≥ 1.0×",
        None if r is None else r >= 1.0, "×", f"{fmt(gp.get('rps_c64'))} vs {fmt(ni.get('rps_c64'))} req/s")

    # One hop: the relay as a reverse proxy (porthole proxy) against nginx (1 worker) and HAProxy.
    pp, ng, hp = figs.get("porthole_proxy", {}), figs["nginx"], figs.get("haproxy", {})
    for peer, name in ((ng, "nginx (1 worker)"), (hp, "HAProxy (nbthread 1)")):
        r = ratio(pp.get("rps_c64"), peer.get("rps_c64"))
        add(f"one hop: HTTP req/s, 1 KiB, 64 conns, porthole proxy vs {name}", r, "≥ 1.0×",
            None if r is None else r >= 1.0, "×", f"{fmt(pp.get('rps_c64'))} vs {fmt(peer.get('rps_c64'))} req/s")
    c_pp, c_ng = pp.get("cpu_path_us"), ng.get("cpu_path_us")
    r = ratio(c_pp, c_ng)
    add("one hop: CPU per request at 64 conns, porthole proxy vs nginx (1 worker)", r, "≤ 1.0×",
        None if r is None else r <= 1.0, "×",
        f"{c_pp:.1f} vs {c_ng:.1f} µs" + (f"; HAProxy {hp['cpu_path_us']:.1f} µs"
                                          if isinstance(hp.get("cpu_path_us"), float) else "")
        if isinstance(c_pp, float) and isinstance(c_ng, float) else "")
    for key, how in (("added_p50_c1pin_ms", "all on CPU 0"), ("added_p50_c1_ms", "unpinned")):
        a_pp, a_ng = pp.get(key), ng.get(key)
        if not isinstance(a_pp, float) or not isinstance(a_ng, float):
            add(f"one hop: added p50 at 1 connection vs nginx's ({how})", None, "≤ 1.0×", None, "×")
            continue
        r = ratio(a_pp, a_ng) if a_ng > 0 else None
        add(f"one hop: added p50 at 1 connection vs nginx's ({how})", r, "≤ 1.0×", a_pp <= a_ng, "×",
            f"{a_pp * 1e3:+.0f} µs vs {a_ng * 1e3:+.0f} µs"
            + (f"; HAProxy {hp[key] * 1e3:+.0f} µs" if isinstance(hp.get(key), float) else "")
            + ("; judged on the pinned row: unpinned, cross-CPU wake-ups dominate" if key == "added_p50_c1_ms" else ""))

    # Two event loops: the work per request stays what it is at one, and req/s meets the peers'
    # two workers or threads on the same two cores.
    p2, na, h2 = figs.get("porthole_proxy_t2", {}), figs.get("nginx_auto", {}), figs.get("haproxy_t2", {})
    c1, c2 = pp.get("cpu_path_us"), p2.get("cpu_path_us")
    r = ratio(c2, c1)
    add("threads: CPU per request at 64 conns, porthole proxy --threads 2 vs --threads 1", r, "≤ 1.05×",
        None if r is None else r <= 1.05, "×",
        f"{c2:.1f} vs {c1:.1f} µs" if isinstance(c1, float) and isinstance(c2, float) else "")
    for peer, name in ((na, "nginx (worker_processes auto = 2)"), (h2, "HAProxy (nbthread 2)")):
        r = ratio(p2.get("rps_c64"), peer.get("rps_c64"))
        add(f"threads: HTTP req/s, 1 KiB, 64 conns, porthole proxy --threads 2 vs {name}", r, "≥ 1.0×",
            None if r is None else r >= 1.0, "×", f"{fmt(p2.get('rps_c64'))} vs {fmt(peer.get('rps_c64'))} req/s")
    return t


def interference(data, monitor_file):
    """CPU taken by other processes and by the hypervisor (steal) while each run was going on."""
    monitor = []
    try:
        with open(monitor_file) as f:
            for line in f:
                try:
                    monitor.append(json.loads(line))
                except ValueError:
                    pass
    except (OSError, TypeError):
        return {}, None, []
    per_path, warnings = {}, []
    for p, _ in PATHS:
        hit = []
        for kind, samples in ((data["paths"].get(p) or {}).get("samples") or {}).items():
            live = [r for r in samples if not r.get("superseded") and "t_end" in r]
            for i, r in enumerate(live):
                secs = r.get("duration_s") or r.get("seconds") or 1.0
                w = _window(monitor, r["t_end"], secs)
                if w is None:
                    continue
                r["interference"] = w
                cur = per_path.setdefault(p, {"other_cpu": 0.0, "steal": 0.0})
                cur["other_cpu"] = max(cur["other_cpu"], w["other_cpu"])
                cur["steal"] = max(cur["steal"], w["steal"])
                why = []
                if w["other_cpu"] > 0.05:
                    why.append(f"other processes {w['other_cpu']:.0%}")
                if w["steal"] > 0.10:
                    why.append(f"steal {w['steal']:.0%}")
                if why:
                    hit.append(f"{kind}{f' round {i + 1}' if len(live) > 1 else ''} ({', '.join(why)})")
        if hit:
            warnings.append(f"{p}: CPU taken from the benchmark during " + "; ".join(hit)
                            + (" — medians over the rounds dampen single disturbed runs"
                               if get(data, "settings.rounds", 1) > 1 else " — these figures may be skewed"))
    tn = get(data, "porthole.tunnels")
    if tn and "t_end" in tn:
        w = _window(monitor, tn["t_end"], tn["wall_seconds"] + 0.5)
        if w:
            tn["interference"] = w
            if w["other_cpu"] > 0.05 or w["steal"] > 0.05:
                warnings.append(f"tunnels: other processes used {w['other_cpu']:.0%} of the CPUs and the hypervisor "
                                f"stole {w['steal']:.0%} during the run")
    overall = None
    if monitor:
        overall = {"other_cpu": round(sum(x["other"] for x in monitor) / len(monitor), 3),
                   "steal": round(sum(x["steal"] for x in monitor) / len(monitor), 3),
                   "other_cpu_max": max(x["other"] for x in monitor), "samples": len(monitor)}
    return per_path, overall, warnings


def cmd_report(a):
    data = load(a.state)
    info = machine_info()
    per_path_load, overall_load, load_warnings = interference(data, a.monitor)
    data["warnings"] = load_warnings + data.get("warnings", [])
    figs = figures(data)
    ph = data["porthole"]
    ratios = {}
    for key, _, _, _, _ in FIGURES:
        ratios[key] = {name: ratio(figs[a_].get(key), figs[b_].get(key)) for name, a_, b_ in RATIOS + ONE_HOP_RATIOS + THREADS_RATIOS + CACHED_RATIOS}
    tg = targets(data, figs)
    smoke = data.get("mode") == "smoke"

    L = []
    L.append(f"# porthole benchmark{' (SMOKE RUN: 1-second runs, not representative)' if smoke else ''}")
    L.append("")
    L.append(f"{info['date']} · {info['nproc']} CPUs, {info['cpu_model']} · {info['mem_total_mib']} MiB · "
             f"Linux {info['kernel']} · {info['os']}")
    b = data.get("build") or {}
    if b:
        L.append("")
        L.append(f"{b.get('version')} · commit {b.get('git_commit')} · binary sha256 {b.get('sha256')}…"
                 + (f" · relay threads: {get(data, 'porthole.rss_peak.relay.threads')}"
                    if get(data, 'porthole.rss_peak.relay.threads') else ""))
    L.append("")
    L.append("Everything on loopback; load generator, origin, tunnel and proxy share the same CPUs."
             + (f" Other processes used {overall_load['other_cpu']:.1%} of the CPUs on average during the run"
                f" (peak {overall_load['other_cpu_max']:.0%} in a half-second sample); hypervisor steal"
                f" {overall_load['steal']:.1%}." if overall_load else ""))
    L.append("")
    for title, keys, table_ratios in TABLES:
        L.append(f"**{title}**")
        L.append("")
        L.append("| figure | " + " | ".join(LABEL[p] for p in keys) + " | "
                 + " | ".join(n for n, _, _ in table_ratios) + " |")
        L.append("|---|" + "---:|" * (len(keys) + len(table_ratios)))
        for key, label, _, digits, _ in FIGURES:
            cells = [fmt(figs[p].get(key), digits) for p in keys]
            rr = ratios[key]
            cells += [fmt(rr[n], 2) + ("×" if rr[n] is not None else "") for n, _, _ in table_ratios]
            L.append(f"| {label} | " + " | ".join(cells) + " |")
        if per_path_load:
            for k, label in (("other_cpu", "other processes' CPU during the runs (worst run)"),
                             ("steal", "hypervisor steal during the runs (worst run)")):
                cells = [f"{per_path_load[p][k]:.0%}" if p in per_path_load else "—" for p in keys]
                L.append(f"| {label} | " + " | ".join(cells) + " |" + " |" * len(table_ratios))
        L.append("")
    rounds = get(data, "settings.rounds", 1)
    if rounds and rounds > 1:
        spread = []
        for p, label in PATHS:
            agg = get(data, f"paths.{p}.c64")
            if isinstance(agg, dict) and "min" in agg:
                spread.append(f"{label} {agg['min']['rps']:,.0f}–{agg['max']['rps']:,.0f}")
        L.append(f"Medians of {rounds} rounds. Spread of HTTP req/s (64 conns) over the rounds: "
                 + "; ".join(spread) + ".")
        L.append("")
    for p, label in PATHS:
        reason = (data["paths"].get(p) or {}).get("skipped")
        if isinstance(reason, str):
            L.append(f"{label}: {reason}.")
            L.append("")

    L.append("| porthole resources | value |")
    L.append("|---|---:|")

    def row(label, v, digits=1, unit=""):
        L.append(f"| {label} | {fmt(v, digits)}{(' ' + unit) if v is not None and unit else ''} |")

    def mib(path):
        v = get(ph, path)
        return v / 1024 if v is not None else None

    row("relay RSS at start, no tunnels", mib("rss_start.relay.rss_kib"), 1, "MiB")
    row("relay RSS idle, 1 HTTP + 1 TCP tunnel", mib("rss_idle.relay.rss_kib"), 1, "MiB")
    row("  of which private (not shared libraries)", mib("rss_idle.relay.private_kib"), 1, "MiB")
    row("  PSS (shared pages divided among their users)", mib("rss_idle.relay.pss_kib"), 1, "MiB")
    row("client RSS idle (porthole http)", mib("rss_idle.client.rss_kib"), 1, "MiB")
    row("relay peak RSS after the load runs (VmHWM)", mib("rss_peak.relay.hwm_kib"), 1, "MiB")
    row("http client peak RSS after the load runs (VmHWM)", mib("rss_peak.client_http.hwm_kib"), 1, "MiB")
    row("tcp client peak RSS after the load runs (VmHWM)", mib("rss_peak.client_tcp.hwm_kib"), 1, "MiB")
    if get(ph, "rss_peak_porthole_tls"):
        row("TLS: relay RSS idle", mib("rss_idle_porthole_tls.relay.rss_kib"), 1, "MiB")
        row("TLS: relay peak RSS after the load runs", mib("rss_peak_porthole_tls.relay.hwm_kib"), 1, "MiB")
        row("TLS: http client peak RSS after the load runs", mib("rss_peak_porthole_tls.client_http.hwm_kib"), 1, "MiB")
    row("threads per process (relay)", get(ph, "rss_peak.relay.threads"), 0)
    if get(ph, "rss_proxy_idle"):
        row("porthole proxy RSS idle (one hop)", mib("rss_proxy_idle.proxy.rss_kib"), 1, "MiB")
        row("porthole proxy peak RSS after the load runs (VmHWM)", mib("rss_peak_proxy.proxy.hwm_kib"), 1, "MiB")
    ic = ph.get("idle_conns")
    if ic:
        row(f"idle keep-alive visitor connections held (of {ic['requested']})", ic["alive_at_measure"], 0)
        row("  relay RSS per idle visitor connection", ic["kib_per_conn"]["relay"], 2, "KiB")
        row("  client RSS per idle visitor connection", ic["kib_per_conn"]["client"], 2, "KiB")
        row("  relay RSS with them open", ic["rss_with_kib"]["relay"] / 1024, 1, "MiB")
        row("  time to open them (s)", ic["open_seconds"], 2)
    ib = ph.get("idle_conns_burst")
    if ib:
        row(f"idle after a {ib['requested']:,}-connection burst (all opened at once), held", ib["alive_at_measure"], 0)
        row("  relay RSS per idle visitor connection", ib["kib_per_conn"]["relay"], 2, "KiB")
        row("  client RSS per idle visitor connection", ib["kib_per_conn"]["client"], 2, "KiB")
        row("  relay peak RSS during the burst (VmHWM)", ib["relay_hwm_kib"] / 1024 if ib.get("relay_hwm_kib") else None, 1, "MiB")
        row("  time to open them (s)", ib["open_seconds"], 2)
    tm = ph.get("tunnels_multi")
    if tm:
        row(f"HTTP tunnels registered from {tm['clients']} `porthole start` clients ({tm['per_client']} tunnels each)",
            tm["ready"], 0)
        row("  wall time until every ready event (s)", tm["wall_seconds"], 2)
        row("  relay CPU time spent registering them (s)", tm["relay_cpu_seconds"], 2)
        row("  relay RSS with them registered", tm["relay_rss_kib"] / 1024, 1, "MiB")
        row("  relay RSS per tunnel", tm["relay_kib_per_tunnel"], 1, "KiB")
    tn = ph.get("tunnels")
    if tn:
        row(f"HTTP tunnels registered (requested {tn['requested']}, one client process each, batches of {tn['batch']})",
            tn["ready"], 0)
        row("  wall time until every ready event (s)", tn["wall_seconds"], 2)
        row("  relay CPU time spent registering them (s)", tn["relay_cpu_seconds"], 2)
        row("  for scale: starting as many `porthole version` processes, same batches (s)",
            tn.get("spawn_baseline_seconds"), 2)
        row("  relay RSS with them registered", tn["relay_rss_kib"] / 1024, 1, "MiB")
        row("  relay RSS per tunnel", tn["relay_kib_per_tunnel"], 1, "KiB")
    of = ph.get("offload")
    if of:
        row(f"tunnel cache offload: a static site's {of['requests']} requests ({of['visits']} page visits) "
            "reaching the local service without --cache", of["origin_requests_plain"], 0)
        row(f"  with --cache (of which {of['origin_304_cached']} were 304 revalidations of HTML)",
            of["origin_requests_cached"], 0)
        row("  requests offloaded", of["requests_offloaded_pct"], 1, "%")
        row("  bytes offloaded", of["bytes_offloaded_pct"], 1, "%")
    cl = ph.get("cluster")
    if cl:
        row(f"cluster of two relays: request latency through the relay holding the tunnel, median "
            f"({cl['requests']} kept-alive requests)", cl["direct_median_us"], 0, "µs")
        row("  through the other relay (the inter-relay hop), median", cl["hop_median_us"], 0, "µs")
        row("  added by the hop, median", cl["hop_added_median_us"], 0, "µs")
        row("  p99 without / with the hop", f"{fmt(cl['direct_p99_us'])} / {fmt(cl['hop_p99_us'])}",
            unit="µs")
        row("  failover: kill -9 of the holding relay → first 200 through the other (ms, each trial)",
            ", ".join(fmt(t, 0) for t in cl["failover_ms"]))
    rc = ph.get("reconnect")
    if rc:
        trials = ", ".join(fmt(t["ms"], 0) + (f" (client back-off {t['client_backoff_ms']})"
                                              if t.get("client_backoff_ms") is not None else "")
                           for t in rc.get("trials", []))
        L.append(f"| reconnect: relay start → first 200 through the client (ms, each trial) | {trials} |")
    L.append("")

    L += compress_lines(data)
    L.append("| target | goal | measured | status | context |")
    L.append("|---|---|---:|---|---|")
    for t in tg:
        unit = "" if t["measured"] is None else (t["unit"] if t["unit"] == "×" else " " + t["unit"])
        L.append(f"| {t['target']} | {t['goal']} | {fmt(t['measured'], 2)}{unit} | {t['status']} | {t['comment']} |")
    L.append("")
    for n in data.get("notes", []):
        L.append(f"- {n}")
    if data.get("retaken"):
        L.append("- Taken a second time because other processes or the hypervisor took the CPUs during the first try: "
                 + ", ".join(data["retaken"]) + ".")
    if data.get("warnings"):
        L.append("")
        L.append("Warnings:")
        for w in data["warnings"]:
            L.append(f"- {w}")
    if data.get("failures"):
        L.append("")
        L.append("FAILED steps:")
        for f_ in data["failures"]:
            L.append(f"- {f_}")
    md = "\n".join(L) + "\n"

    info["other_cpu_during_run"] = overall_load
    doc = {"machine": info, "build": data.get("build"), "mode": data.get("mode"), "started": data.get("started"),
           "figures": figs, "ratios": ratios, "targets": tg, "paths": data["paths"], "porthole": ph,
           "notes": data.get("notes", []), "retaken": data.get("retaken", []), "warnings": data.get("warnings", []),
           "failures": data.get("failures", []), "settings": data.get("settings", {})}
    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write(md)
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    sys.stdout.write(md)
    return 1 if data.get("failures") else 0


# ---------------------------------------------------------------------------------------------
# compression: CPU of the proxy per MiB of text it compresses

def cmd_text_file(a):
    """English-like text from a fixed seed: words of a made-up vocabulary in sentences and lines,
    so it compresses like prose or markup (neither as well as repeats nor as badly as noise)."""
    rng = random.Random(20261206)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    vocab = ["".join(rng.choices(letters, weights, k=rng.randint(2, 9))) for _ in range(4000)]
    target = a.mib * MIB
    out, size = [], 0
    while size < target:
        words = [rng.choice(vocab) if rng.random() < 0.6 else vocab[int(rng.paretovariate(1.2)) % 4000]
                 for _ in range(rng.randint(6, 18))]
        line = " ".join(words).capitalize() + ". "
        if rng.random() < 0.2:
            line += "\n"
        out.append(line)
        size += len(line)
    text = "".join(out)[:target]
    with open(a.file, "w") as f:
        f.write(text)


def _tree_cpu_seconds(pid):
    """CPU seconds (user + system) of `pid` and every process below it."""
    table = _proc_table()
    children = {}
    for p, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(p)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in table:
            total += table[p][2]
        todo.extend(children.get(p, []))
    return total / os.sysconf("SC_CLK_TCK")


def _decode(coding, data):
    import gzip
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        import brotli
        return brotli.decompress(data)
    if coding == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def cmd_compress_cpu(a):
    import http.client
    with open(a.file, "rb") as f:
        original = f.read()
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
    headers = {"Host": a.host, "Accept-Encoding": a.coding}

    def one():
        conn.request("GET", a.path, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Encoding"), r.read()

    status, coding, body = one()  # warm: connections, caches, the encoder's memory
    if status != 200 or coding != a.coding:
        print(f"compress-cpu {a.key}: status {status}, Content-Encoding {coding!r}", file=sys.stderr)
        return 1
    try:
        same = _decode(coding, body) == original
    except ImportError:
        same = None  # this machine cannot decode it; sizes are still reported
    if same is False:
        print(f"compress-cpu {a.key}: the {coding} body does not decode to the file", file=sys.stderr)
        return 1
    before, t0 = _tree_cpu_seconds(a.pid), time.monotonic()
    sent = 0
    for _ in range(a.n):
        status, _, body = one()
        if status != 200:
            print(f"compress-cpu {a.key}: status {status}", file=sys.stderr)
            return 1
        sent += len(body)
    cpu, wall = _tree_cpu_seconds(a.pid) - before, time.monotonic() - t0
    conn.close()
    mib = a.n * len(original) / MIB
    data = load(a.state)
    runs = get(data, f"compress.{a.key}.runs", [])
    if a.replace_last and runs:
        runs = runs[:-1]
        data["retaken"] = data.get("retaken", []) + [f"compress {a.key}"]
    runs = runs + [
        {"requests": a.n, "text_mib": mib, "cpu_seconds": cpu, "wall_seconds": wall,
         "cpu_ms_per_mib": 1000 * cpu / mib, "ratio": sent / (a.n * len(original)),
         "decoded_equal": same}]
    put(data, f"compress.{a.key}", {
        "coding": a.coding, "label": a.label, "file_bytes": len(original), "runs": runs,
        "median_of": len(runs),
        "cpu_ms_per_mib": statistics.median(r["cpu_ms_per_mib"] for r in runs),
        "ratio": statistics.median(r["ratio"] for r in runs)})
    save(a.state, data)
    print(f"compress-cpu {a.key}: {1000 * cpu / mib:.2f} ms CPU per MiB, compressed to "
          f"{sent / (a.n * len(original)):.1%}, {mib / wall:.0f} MiB/s", file=sys.stderr)
    return 0


def compress_lines(data):
    """The report's compression rows, [] when not measured."""
    c = data.get("compress") or {}
    if not c:
        return []
    L = ["| compression of a %s text file (%s) | proxy CPU per MiB of text | compressed size |"
         % (f"{next(iter(c.values()))['file_bytes'] / MIB:.0f} MiB",
            ", ".join(sorted({str(v['runs'][0]['requests']) + " requests" for v in c.values()}))),
         "|---|---:|---:|"]
    for key, v in c.items():
        L.append(f"| {v['label']} | {v['cpu_ms_per_mib']:.2f} ms | {v['ratio']:.1%} |")
    p, n = c.get("porthole_gzip1"), c.get("nginx_gzip1")
    if p and n and n["cpu_ms_per_mib"]:
        L.append(f"| porthole ÷ nginx, gzip level 1 (target ≤ 1) | {p['cpu_ms_per_mib'] / n['cpu_ms_per_mib']:.3f}× | |")
    return L + [""]


def cmd_compress_report(a):
    data = load(a.state)
    info = machine_info()
    b = data.get("build") or {}
    L = [f"# porthole compression benchmark", "",
         f"{info['date']} · {info['nproc']} CPUs, {info['cpu_model']} · Linux {info['kernel']} · {info['os']}", "",
         f"{b.get('version')} · commit {b.get('git_commit')} · binary sha256 {b.get('sha256')}…", ""]
    L += compress_lines(data)
    for n in data.get("notes", []):
        L.append(f"- {n}")
    if data.get("retaken"):
        L.append("- Taken a second time because other processes or the hypervisor took the CPUs during the first try: "
                 + ", ".join(data["retaken"]) + ".")
    if data.get("failures"):
        L += ["", "FAILED steps:"] + [f"- {f_}" for f_ in data["failures"]]
    md = "\n".join(L) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write(md)
    with open(a.json, "w") as f:
        json.dump({"machine": info, "build": b, "compress": data.get("compress"),
                   "notes": data.get("notes", []), "failures": data.get("failures", [])},
                  f, indent=2, sort_keys=True)
        f.write("\n")
    sys.stdout.write(md)
    return 1 if data.get("failures") else 0


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports"); p.add_argument("n", type=int); p.set_defaults(f=cmd_ports)
    p = sub.add_parser("port-range"); p.add_argument("n", type=int); p.set_defaults(f=cmd_port_range)
    p = sub.add_parser("event"); p.add_argument("file"); p.add_argument("event"); p.add_argument("field")
    p.set_defaults(f=cmd_event)
    p = sub.add_parser("init"); p.add_argument("state"); p.add_argument("--mode", default="full")
    p.set_defaults(f=cmd_init)
    p = sub.add_parser("disturbed"); p.add_argument("monitor"); p.add_argument("--since", type=float, required=True)
    p.set_defaults(f=cmd_disturbed, now=time.time())
    p = sub.add_parser("wait-quiet"); p.add_argument("monitor"); p.add_argument("--max-wait", type=float, default=30)
    p.add_argument("--budget-file", default=None); p.add_argument("--budget", type=float, default=600)
    p.set_defaults(f=cmd_wait_quiet)
    p = sub.add_parser("monitor"); p.add_argument("out"); p.add_argument("--root", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.5); p.set_defaults(f=cmd_monitor)
    p = sub.add_parser("set"); p.add_argument("state"); p.add_argument("key"); p.add_argument("value")
    p.set_defaults(f=cmd_set)
    p = sub.add_parser("wrk"); p.add_argument("state"); p.add_argument("path"); p.add_argument("kind")
    p.add_argument("file"); p.add_argument("--body-bytes", type=int, default=0); p.add_argument("--command", default="")
    p.add_argument("--attempt", type=int, default=1)
    p.add_argument("--cpu-before"); p.add_argument("--cpu-after"); p.set_defaults(f=cmd_wrk)
    p = sub.add_parser("iperf"); p.add_argument("state"); p.add_argument("path"); p.add_argument("file")
    p.add_argument("--command", default=""); p.add_argument("--attempt", type=int, default=1)
    p.set_defaults(f=cmd_iperf)
    p = sub.add_parser("rss"); p.add_argument("state"); p.add_argument("key"); p.add_argument("pids", nargs="+")
    p.set_defaults(f=cmd_rss)
    p = sub.add_parser("idle-conns"); p.add_argument("state")
    p.add_argument("--port", type=int, required=True); p.add_argument("--host", required=True)
    p.add_argument("--path", default="/1k"); p.add_argument("--n", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=64); p.add_argument("--settle", type=float, default=0.5)
    p.add_argument("--relay-pid", type=int, required=True); p.add_argument("--client-pid", type=int, required=True)
    p.add_argument("--burst", action="store_true",
                   help="open all N at once (concurrency N), stored as idle_conns_burst")
    p.set_defaults(f=cmd_idle_conns)
    p = sub.add_parser("tunnels"); p.add_argument("state")
    p.add_argument("--bin", required=True); p.add_argument("--server", required=True)
    p.add_argument("--target", required=True); p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch", type=int, default=100); p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--relay-pid", type=int, required=True)
    p.add_argument("--per-client", type=int, default=1)
    p.set_defaults(f=cmd_tunnels)
    p = sub.add_parser("reconnect"); p.add_argument("state")
    p.add_argument("--port", type=int, required=True); p.add_argument("--host", required=True)
    p.add_argument("--path", default="/1k"); p.add_argument("--t0", type=float, required=True)
    p.add_argument("--down-ms", type=float, default=None); p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--client-out", default=None)
    p.set_defaults(f=cmd_reconnect)
    p = sub.add_parser("offload"); p.add_argument("state")
    p.add_argument("--port", type=int, required=True); p.add_argument("--origin-port", type=int, required=True)
    p.add_argument("--cached-host", required=True); p.add_argument("--plain-host", required=True)
    p.add_argument("--visits", type=int, default=300); p.add_argument("--pages", type=int, default=20)
    p.add_argument("--images", type=int, default=100); p.set_defaults(f=cmd_offload)
    p = sub.add_parser("cluster"); p.add_argument("state")
    p.add_argument("--bin", required=True); p.add_argument("--origin-port", type=int, required=True)
    p.add_argument("--path", default="/1k"); p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--trials", type=int, default=3); p.set_defaults(f=cmd_cluster)
    p = sub.add_parser("report"); p.add_argument("state"); p.add_argument("--md", required=True)
    p.add_argument("--monitor", default=None)
    p.add_argument("--json", required=True); p.set_defaults(f=cmd_report)
    p = sub.add_parser("text-file"); p.add_argument("file"); p.add_argument("--mib", type=int, default=4)
    p.set_defaults(f=cmd_text_file)
    p = sub.add_parser("compress-cpu"); p.add_argument("state"); p.add_argument("key")
    p.add_argument("--label", required=True); p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", required=True); p.add_argument("--path", required=True)
    p.add_argument("--file", required=True); p.add_argument("--coding", default="gzip")
    p.add_argument("--n", type=int, required=True); p.add_argument("--pid", type=int, required=True)
    p.add_argument("--replace-last", action="store_true", help="a retake: it replaces the last run")
    p.set_defaults(f=cmd_compress_cpu)
    p = sub.add_parser("compress-report"); p.add_argument("state"); p.add_argument("--md", required=True)
    p.add_argument("--json", required=True); p.set_defaults(f=cmd_compress_report)
    a = ap.parse_args()
    sys.exit(a.f(a) or 0)


if __name__ == "__main__":
    main()
