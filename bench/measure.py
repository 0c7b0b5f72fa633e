"""Run one command and measure it: wall time, CPU time, exit code, peak RSS of its whole process tree.

Peak RSS is the larger of two numbers, both sampled every 20 ms with psutil while the command runs:
the sum of the RSS of the live process tree (Terraform runs the provider as a second process, so its
cost is a sum), and the kernel's high-water mark (``VmHWM``) of the biggest single process, which
also catches a peak between two samples. (``ru_maxrss`` from ``wait4`` is no use here: a forked
child inherits the RSS of the benchmark process, which holds moto with all its state.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in the bench extra
    psutil = None

SAMPLE_SECONDS = 0.02


@dataclass
class Run:
    seconds: float
    returncode: int
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0   # user + system time of the process tree (wait4), immune to wall-clock load


def run(argv: list[str], env: dict[str, str], cwd: str | None = None, timeout: float | None = None) -> Run:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        # its own process group: on timeout the whole tree goes (Terraform's provider plugin too)
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, text=True, start_new_session=True)
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        killer = threading.Timer(timeout, _kill_group, (proc.pid,)) if timeout else None
        if killer:
            killer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child; its rusage has the tree's CPU time
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if killer:
            killer.cancel()
        sampler.stop()
        out.seek(0)
        err.seek(0)
        return Run(seconds, proc.returncode, sampler.peak_mb, out.read(), err.read(), usage.ru_utime + usage.ru_stime)


class _TreeSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid = pid
        self.peak_mb = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        if psutil is None:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.is_set():
            total, hwm = 0, 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                        hwm = max(hwm, _hwm_bytes(p.pid))
                    except (psutil.Error, OSError):
                        pass
            except psutil.Error:
                return
            self.peak_mb = max(self.peak_mb, total / 2**20, hwm / 2**20)
            self._done.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=2)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _hwm_bytes(pid: int) -> int:
    """The peak RSS of a live process since its exec (Linux ``VmHWM``); 0 where /proc has none."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
