"""Fixtures: moto in server mode (an S3 server that is not Cairn), a fresh bucket on it, and Cairn
servers started from the built binary with continuous backup to that bucket.

moto is `python -m moto.server -H 127.0.0.1 -p PORT` from this venv, on a free port (moto needs a
number, so one is picked by binding port 0 and closing the socket). Cairn is `$CAIRN_BIN serve
--listen 127.0.0.1:0 --data-dir <tmp>`; its URL is read from the line it prints on stderr
("cairn serving http://127.0.0.1:PORT with data in ..."). Backup settings go in by environment:
`CAIRN_BACKUP_TARGETS`, `CAIRN_BACKUP_INTERVAL_MS` and object_store's `AWS_*` names.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import boto3
import pytest
import requests
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pysupport"))
from cairn_process import kill as _kill_process, launch, tail as _tail_of  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
COMMAND_TIMEOUT_S = 120.0
TOKEN = "backup-test-token"
ACCESS_KEY_ID = "test"
SECRET_ACCESS_KEY = "test"
REGION = "us-east-1"
_SERVING = re.compile(r"cairn serving (http://\S+) with data in")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _isolate_from_user_config() -> None:
    """Keeps ~/.aws files and stray AWS_* / CAIRN_* settings out of boto3 and the child processes;
    everything they need is passed explicitly."""
    for name in list(os.environ):
        if (name.startswith("AWS_") and name != "AWS_CA_BUNDLE") or (
            name.startswith("CAIRN_") and name != "CAIRN_BIN"
        ):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def pytest_configure(config: pytest.Config) -> None:
    _isolate_from_user_config()


def cairn_bin() -> Path:
    """`$CAIRN_BIN`, or target/debug/cairn; a relative path is taken from the repository root."""
    path = Path(os.environ.get("CAIRN_BIN", "target/debug/cairn"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_env(endpoint: str) -> Dict[str, str]:
    """object_store's AWS_* settings for a target on `endpoint`."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def run_cairn(args: List[str], extra_env: Dict[str, str]) -> subprocess.CompletedProcess:
    """Runs `$CAIRN_BIN ARGS...` to completion (bounded); raises with its output on failure."""
    env = dict(os.environ)
    env.update(extra_env)
    proc = subprocess.run(
        [str(cairn_bin()), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"cairn {' '.join(args)} exited with status {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


class MotoServer:
    """moto's S3 server in its own process."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.endpoint: Optional[str] = None

    def start(self) -> "MotoServer":
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(f"moto_server exited with status {rc} before serving on port {port}")
            try:
                requests.get(f"{self.endpoint}/moto-api/", timeout=2)
                return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not answer on {self.endpoint} within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )


class CairnServer:
    """One `cairn serve` process on a data directory, with extra environment (backup settings)."""

    def __init__(self, data_dir: Path, extra_env: Optional[Dict[str, str]] = None) -> None:
        self.binary = cairn_bin()
        self.data_dir = data_dir
        self.extra_env = dict(extra_env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None
        self.log: List[str] = []
        self._reader: Optional[threading.Thread] = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"

    def tail(self, n: int = 40) -> str:
        return _tail_of(self.log, n)

    def start(self) -> "CairnServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["CAIRN_TOKEN"] = TOKEN
        env.update(self.extra_env)
        self.url = None
        self.proc, self.log, urls, self._reader = launch(
            self.binary,
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            env,
            {"http": _SERVING},
            START_TIMEOUT_S,
        )
        self.url = urls["http"]
        deadline = time.monotonic() + START_TIMEOUT_S
        # Ready: /healthz answers (bounded).
        while True:
            try:
                if self.session.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"cairn /healthz did not answer 200 within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no last backup pass."""
        _kill_process(self.proc)

    def stop(self) -> None:
        """SIGTERM, then wait (bounded); SIGKILL if it does not stop."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise RuntimeError(f"cairn did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM; stderr:\n{self.tail()}")
        if self._reader is not None:
            self._reader.join(5)
        self.session.close()

    def kv_url(self, ns: str, obj: str, key: str) -> str:
        return f"{self.url}/v1/namespaces/{ns}/objects/{obj}/kv/{key}"

    def backup_status(self) -> dict:
        r = self.session.get(f"{self.url}/v1/backup", timeout=5)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """A fresh bucket on moto (moto's state goes away with its process)."""
    name = unique("cairn-backup")
    client = moto.client()
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()
    return name


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., CairnServer]]:
    """`make(data_dir, extra_env)` -> a started Cairn server; all are killed or stopped afterwards."""
    servers: List[CairnServer] = []

    def make(data_dir: Path, extra_env: Optional[Dict[str, str]] = None) -> CairnServer:
        server = CairnServer(data_dir, extra_env)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        try:
            server.stop()
        except RuntimeError:
            server.kill()
