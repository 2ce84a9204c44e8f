"""CPU time of the servers under test, shared by the benches: utime + stime
from /proc/<pid>/stat of httpd (master and children) and mariadbd. Unlike a
rate, the CPU time spent per request hardly moves with other load on the
machine, so it is the figure to judge a change by on a shared machine."""

import os
import re
import subprocess


def cpu_ticks(pids):
    """utime + stime (clock ticks) of each pid still running."""
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


class CpuMeter:
    """CPU time of the servers (httpd master and children, mariadbd)
    between start() and stop(), in ms. A child that exits in between is
    not counted (httpd's children live for the whole run here)."""

    def __init__(self, httpd, db):
        self.httpd, self.db = httpd, db

    def _pids(self):
        return {"httpd": list(self.httpd.pids()), "mariadbd": [self.db.pid]}

    def start(self):
        self.before = {k: cpu_ticks(v) for k, v in self._pids().items()}

    def stop(self):
        hz = os.sysconf("SC_CLK_TCK")
        after = {k: cpu_ticks(v) for k, v in self._pids().items()}
        return {k: 1000.0 * sum(t - self.before[k].get(pid, 0) for pid, t in after[k].items()) / hz
                for k in after}


class StealMeter:
    """The share of the machine's CPU time the hypervisor gave to others
    (steal, from /proc/stat) between start() and stop(), in per cent. A
    virtual machine's neighbours take it in bursts; rounds with a high
    steal are slower and have longer tails for reasons outside the code."""

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields[:8]), fields[7] if len(fields) > 7 else 0

    def start(self):
        self.before = self._read()

    def stop(self):
        total, steal = self._read()
        elapsed = total - self.before[0]
        return 100.0 * (steal - self.before[1]) / elapsed if elapsed > 0 else 0.0


def p256_speed(seconds=1):
    """This host's P-256 speed, one core, from `openssl speed`: a license
    is three such operations plus a database transaction, the baseline
    none, so the license ratio moves with it from host to host (the same
    code measured 0.26-0.32 on a host doing 10 k verify/s and 0.36-0.37
    on one doing 16-20 k/s, docs/PERFORMANCE.md). Printed so that figures
    from different machines can be compared; "unknown" if it cannot run."""
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256",
                              "ecdhp256"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        sign, verify = re.search(r"nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)",
                                 out).groups()
        ecdh = re.search(r"ecdh \(nistp256\)\s+\S+s\s+([\d.]+)", out).group(1)
    except (OSError, subprocess.SubprocessError, AttributeError):
        return "unknown"
    return "ECDSA sign %.0f/s, verify %.0f/s, ECDH %.0f/s" % (float(sign), float(verify),
                                                             float(ecdh))
