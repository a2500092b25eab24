"""Starting `cairn serve` as a child process for the Python client suites.

Shared by tests/cloudflare_sdk, tests/s3 and tests/backup (each conftest puts this directory on
sys.path). The server listens on ports bound to 0 and prints where on stderr; `launch` reads
those lines, keeps draining stderr for the life of the process (so the pipe never fills) and
fails with the last lines of stderr if the server exits or stays silent past the deadline.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple


def check_binary(binary: Path) -> None:
    if not binary.is_file():
        raise RuntimeError(
            f"cairn binary not found at {binary}: build it (cargo build -p cairn) or point CAIRN_BIN at it"
        )


def kill(proc: "subprocess.Popen[bytes] | None") -> None:
    """Kills the process (SIGKILL) and reaps it, waiting at most 5 s."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def tail(log: List[str], n: int = 40) -> str:
    return "\n".join(log[-n:])


def launch(
    binary: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    patterns: Mapping[str, "re.Pattern[str]"],
    timeout_s: float,
) -> Tuple["subprocess.Popen[bytes]", List[str], Dict[str, str], threading.Thread]:
    """Runs `binary args` and waits until every pattern has matched a stderr line.

    Returns the process, its stderr lines so far (the list keeps growing), the first group of
    each pattern's match (trailing '/' removed) by name, and the thread draining stderr.
    """
    check_binary(binary)
    log: List[str] = []
    found: Dict[str, str] = {}
    proc = subprocess.Popen(
        [str(binary), *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ready = threading.Event()

    def pump(stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            log.append(line)
            if not ready.is_set():
                for name, pattern in patterns.items():
                    m = pattern.search(line)
                    if m and name not in found:
                        found[name] = m.group(1).rstrip("/")
                if len(found) == len(patterns):
                    ready.set()
        stream.close()

    reader = threading.Thread(target=pump, args=(proc.stderr,), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        rc = proc.poll()
        if rc is not None:
            reader.join(2)
            raise RuntimeError(f"cairn exited with status {rc} before serving; stderr:\n{tail(log)}")
        if time.monotonic() > deadline:
            kill(proc)
            wanted = " and ".join(repr(p.pattern) for p in patterns.values())
            raise RuntimeError(f"cairn did not print {wanted} within {timeout_s:.0f} s; stderr:\n{tail(log)}")
    return proc, log, found, reader
