#!/usr/bin/python3
"""What a second event loop gives the site routes that share state between loops.

    bench/loops.py BIN [ROUNDS]

One nginx origin (1 KiB file, Cache-Control max-age=600) and one relay with four sites in front
of it: `plain.test` (no policy), `limited.test` (a rate_limit too high to refuse anything: its
table is the relay's, under a lock), `shaped.test` (a bandwidth policy too high to wait: its
budget is the relay's, under a lock) and `cached.test` (a cache: every request after the first
is a hit). Two relays, `threads = 1` and `threads = 2`, run side by side, each site's rounds
alternating between them: wrk -t2 -c64 for 10 s after a 2 s warm-up; req/s and the relay's CPU
per request (from /proc/PID/stat). Everything shares
the machine's cores (wrk, nginx, the relay), so compare the two columns, not absolute figures.
Prints a markdown table; fails if any answer is not a 2xx.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SITES = {
    "plain.test": "",
    "limited.test": 'policies = [{ type = "rate_limit", rate = "1000000/s", burst = 1000000 }]\n',
    "shaped.test": 'policies = [{ type = "bandwidth", down = "4GiB/s", up = "4GiB/s" }]\n',
    "cached.test": 'cache = { memory = "16MiB" }\n',
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, host, seconds):
    return subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % seconds, "-H", "Host: " + host, url],
                          capture_output=True, text=True, check=True).stdout


def main():
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    work = tempfile.mkdtemp(prefix="porthole-loops-")
    os.chmod(work, 0o755)  # nginx's worker reads the file as another user
    with open(os.path.join(work, "1k"), "w") as f:
        f.write("x" * 1024)
    origin = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write("worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;\n"
                "events { worker_connections 4096; }\n"
                "http { access_log off; server { listen 127.0.0.1:%d; root %s; "
                "keepalive_requests 1000000; expires 10m; } }\n" % (work, work, origin, work))
    nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx",
                              "-c", os.path.join(work, "nginx.conf"), "-p", work])
    rows = {}
    relays = {}
    try:
        wait_port(origin)
        # Both relays run at once, idle but for the one measured: each site's rounds alternate
        # between them, so a drift of the machine's speed touches both columns alike.
        for threads in (1, 2):
            config = "threads = %d\n" % threads
            for host, extra in SITES.items():
                config += ('[[sites]]\nhosts = ["%s"]\n[[sites.routes]]\n'
                           'upstream = ["http://127.0.0.1:%d"]\n%s' % (host, origin, extra))
            path = os.path.join(work, "relay%d.toml" % threads)
            with open(path, "w") as f:
                f.write(config)
            http, control = free_port(), free_port()
            relays[threads] = (http, subprocess.Popen(
                [binary, "--log-level", "warn", "server", "--config", path, "--domain",
                 "localhost", "--http-addr", "127.0.0.1:%d" % http,
                 "--control-addr", "127.0.0.1:%d" % control], stdout=subprocess.DEVNULL))
            wait_port(http)
        for host in SITES:
            for _ in range(rounds):
                for threads, (http, relay) in relays.items():
                    url = "http://127.0.0.1:%d/1k" % http
                    wrk(url, host, 2)
                    before = cpu_seconds(relay.pid)
                    out = wrk(url, host, 10)
                    spent = cpu_seconds(relay.pid) - before
                    if "Non-2xx" in out:
                        raise SystemExit("%s at threads %d: %s" % (host, threads, out))
                    count = int(re.search(r"(\d+) requests in", out).group(1))
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                    rows.setdefault((host, threads), []).append((rps, spent / count * 1e6))
    finally:
        for _, relay in relays.values():
            relay.terminate()
            relay.wait()
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("| 1 KiB, wrk -c64 | threads 1 req/s | threads 2 req/s | threads 1 µs/req "
          "| threads 2 µs/req |")
    print("|---|---:|---:|---:|---:|")
    for host in SITES:
        one, two = rows[(host, 1)], rows[(host, 2)]

        def joined(values, i, fmt):
            return "; ".join(fmt % v[i] for v in values)
        print("| %s | %s | %s | %s | %s |" % (host, joined(one, 0, "%.0f"), joined(two, 0, "%.0f"),
                                               joined(one, 1, "%.1f"), joined(two, 1, "%.1f")))


if __name__ == "__main__":
    main()
