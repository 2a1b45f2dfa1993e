"""Helpers the Python benchmarks share: free ports, a process's CPU time, waiting for a
broker to listen."""

import os
import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    """User plus system CPU seconds process `pid` has used (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def wait_listening(port, timeout=30):
    """Waits until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def write_report(root, bench, body):
    """Writes `body` (the benchmark's config and results) with the benchmark's name, the git
    revision and the machine to bench/results/<bench>-<unix time>.json; returns the path."""
    import json
    import platform
    import subprocess

    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                         text=True).stdout.strip()
    report = {
        "bench": bench,
        "git": rev,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg": os.getloadavg()},
        **body,
    }
    os.makedirs(os.path.join(root, "bench", "results"), exist_ok=True)
    path = os.path.join(root, "bench", "results", f"{bench}-{int(time.time())}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    return path
