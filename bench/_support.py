"""What the benchmark scripts share. Import it first, before httpx or mcp.

``bench/http.py`` is named like the standard library's ``http``, and a
script run as ``python bench/X.py`` has this folder first on its import
path, where ``import http.client`` (inside httpx) would find it. Importing
this module takes the folder off the path.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent.resolve()
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

#: The repository's root folder.
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_server() -> str:
    """``mcp-server-time`` as ``scripts/upstreams`` installs it (installing it if needed)."""
    folder = subprocess.run([str(ROOT / "scripts" / "upstreams")], capture_output=True,
                            text=True, check=True).stdout.strip()
    return str(Path(folder) / "mcp-server-time" / "bin" / "mcp-server-time")


def predictor_command() -> str:
    """The ``predictor`` entry point of the running environment."""
    found = shutil.which("predictor")
    return str(Path(found).resolve()) if found else str(Path(sys.executable).with_name(
        "predictor"))


def start_server(folder: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``predictor serve`` in ``folder`` (its own store, no registry), once it answers."""
    import httpx

    env = {**os.environ, "PREDICTOR_LOAD_CHAMPIONS": "false",
           "PREDICTOR_ONLINE_REGISTRY": "false", **(env or {})}
    with open(folder / "serve.log", "wb") as log:
        proc = subprocess.Popen([predictor_command(), "serve", "--port", str(port)], cwd=folder,
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"server did not start: {(folder / 'serve.log').read_text()[-500:]}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: float, connections: int, script: Path | None) -> dict[str, float]:
    """One wrk run: requests per second, p50 and p99 in milliseconds."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {}
    for label, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pct[label] = float(value) * _UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} error responses\n{out}")
    return {"rps": rps, "p50_ms": pct["50"], "p99_ms": pct["99"]}


def tree_rss(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_measured(cmd: list[str], cwd: Path | None = None, poll_s: float = 0.05
                 ) -> tuple[float, int]:
    """Run ``cmd``; return its wall seconds and the peak resident bytes of its process tree.

    Raises ``subprocess.CalledProcessError`` when it fails.
    """
    start = time.perf_counter()
    peak = 0
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(poll_s)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd,
                                            stderr=proc.stderr.read() if proc.stderr else b"")
    return seconds, peak


class PeakRss:
    """The peak resident memory of process trees, sampled on a thread while a block runs.

    ``roots`` names each tree by its root process id; the sum over all trees
    is sampled too (``all``), since the trees' peaks need not coincide.

    >>> with PeakRss({"bench": os.getpid()}) as peak:
    ...     block = b"x" * (64 * 2**20)
    >>> peak.mb["bench"] >= 64, peak.mb["all"] >= peak.mb["bench"]
    (True, True)
    """

    def __init__(self, roots: dict[str, int], interval_s: float = 0.05) -> None:
        import threading

        self.roots = dict(roots)
        self.interval_s = interval_s
        self.peaks = dict.fromkeys([*self.roots, "all"], 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def _sample(self) -> None:
        while True:
            stopping = self._stop.is_set()  # one last sample once the block has ended
            sizes = {name: tree_rss(pid) for name, pid in self.roots.items()}
            sizes["all"] = sum(sizes.values())
            for name, size in sizes.items():
                self.peaks[name] = max(self.peaks[name], size)
            if stopping:
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> dict[str, int]:
        """Peak per tree and over all of them, in MiB."""
        return {name: round(size / 2**20) for name, size in self.peaks.items()}
