"""Fixtures: a Cairn server with its S3 listener, started from the built binary, and boto3 clients.

The server is `$CAIRN_BIN serve --listen 127.0.0.1:0 --s3-listen 127.0.0.1:0 --data-dir <tmp>` with
`CAIRN_TOKEN`, `CAIRN_S3_ACCESS_KEY_ID` and `CAIRN_S3_SECRET_ACCESS_KEY` set. The S3 URL is read
from the line it prints on stderr ("cairn s3 serving http://127.0.0.1:PORT").

To check the tests themselves against another S3 implementation, set `S3_ENDPOINT` (and
`S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`, default "test"/"test"): no Cairn is started, and the
tests marked `cairn_only` (Cloudflare R2 rules other servers lack, and tests that need a local
server process such as restarts) are skipped. Against Cairn nothing is skipped.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pysupport"))
from cairn_process import kill as _kill_process, launch, tail as _tail_of  # noqa: E402
from s3helpers import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    TOKEN,
    client_config,
    empty_and_delete_bucket,
    make_client,
    unique,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_HTTP_SERVING = re.compile(r"cairn serving (http://\S+) with data in")
_S3_SERVING = re.compile(r"cairn s3 serving (http://\S+)")


def external_endpoint() -> Optional[str]:
    """`$S3_ENDPOINT` when the suite runs against an already running S3 server, else None."""
    return os.environ.get("S3_ENDPOINT") or None


def _isolate_boto_from_user_config() -> None:
    """Keeps ~/.aws files and AWS_* settings (profile, endpoint, checksum policy, retries) from
    changing what botocore sends; the suite passes every setting explicitly."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def pytest_configure(config: pytest.Config) -> None:
    _isolate_boto_from_user_config()
    config.addinivalue_line(
        "markers",
        "cairn_only: needs Cairn itself (R2-specific rules, or a local server process); "
        "skipped only when S3_ENDPOINT points the suite at another server",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if not external_endpoint():
        return
    skip = pytest.mark.skip(reason="cairn_only: S3_ENDPOINT is set, not running against Cairn")
    for item in items:
        if "cairn_only" in item.keywords:
            item.add_marker(skip)


def cairn_bin() -> Path:
    """`$CAIRN_BIN`, or target/debug/cairn; a relative path is taken from the repository root."""
    path = Path(os.environ.get("CAIRN_BIN", "target/debug/cairn"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


class CairnServer:
    """One `cairn serve` process with an S3 listener on a data directory; can be stopped and
    started again on it (the ports change on every start)."""

    def __init__(self, data_dir: Path, binary: Optional[Path] = None) -> None:
        self.binary = binary or cairn_bin()
        self.data_dir = data_dir
        self.proc: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None
        self.s3_url: Optional[str] = None
        self.log: List[str] = []
        self._reader: Optional[threading.Thread] = None

    def _tail(self, n: int = 40) -> str:
        return _tail_of(self.log, n)

    def start(self) -> "CairnServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("CAIRN_"):
                del env[name]  # CAIRN_LISTEN, CAIRN_DATA_DIR, CAIRN_S3_* ... must not leak in
        env["CAIRN_TOKEN"] = TOKEN
        env["CAIRN_S3_ACCESS_KEY_ID"] = ACCESS_KEY_ID
        env["CAIRN_S3_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
        self.url = None
        self.s3_url = None
        self.proc, self.log, urls, self._reader = launch(
            self.binary,
            ["serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            env,
            {"http": _HTTP_SERVING, "s3": _S3_SERVING},
            START_TIMEOUT_S,
        )
        self.url, self.s3_url = urls["http"], urls["s3"]
        return self

    def _kill(self) -> None:
        _kill_process(self.proc)

    def stop(self) -> None:
        """SIGTERM, then wait (bounded). Raises if the server does not stop cleanly."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise RuntimeError(
                    f"cairn did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM (killed); "
                    f"stderr:\n{self._tail()}"
                )
        if self._reader is not None:
            self._reader.join(5)
        if proc.returncode != 0:
            raise RuntimeError(f"cairn exited with status {proc.returncode} after SIGTERM; stderr:\n{self._tail()}")

    def restart(self) -> "CairnServer":
        """Stops the server and starts it again on the same data directory (the ports change)."""
        self.stop()
        return self.start()

    def client(self, **config_s3):
        assert self.s3_url, "server not started"
        return make_client(self.s3_url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, client_config(**config_s3))


@dataclass
class S3Target:
    """Where the suite's requests go: Cairn's S3 listener, or the external `S3_ENDPOINT`."""

    endpoint: str
    access_key: str
    secret_key: str
    server: Optional[CairnServer]  # None when external

    @property
    def is_cairn(self) -> bool:
        return self.server is not None

    def client(self, access_key: Optional[str] = None, secret_key: Optional[str] = None, **kw):
        """A fresh boto3 S3 client; `config=` or `endpoint=` may override the defaults."""
        config = kw.pop("config", None)
        endpoint = kw.pop("endpoint", self.endpoint)
        return make_client(
            endpoint,
            access_key if access_key is not None else self.access_key,
            secret_key if secret_key is not None else self.secret_key,
            config,
            **kw,
        )


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Target]:
    endpoint = external_endpoint()
    if endpoint:
        yield S3Target(
            endpoint=endpoint.rstrip("/"),
            access_key=os.environ.get("S3_ACCESS_KEY_ID", "test"),
            secret_key=os.environ.get("S3_SECRET_ACCESS_KEY", "test"),
            server=None,
        )
        return
    server = CairnServer(tmp_path_factory.mktemp("cairn-data")).start()
    try:
        assert server.s3_url
        yield S3Target(server.s3_url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3(target: S3Target):
    c = target.client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def new_client(target: S3Target) -> Iterator[Callable[..., object]]:
    """`new_client(**kw)` -> a fresh client (see S3Target.client), closed after the test."""
    made = []

    def make(**kw):
        c = target.client(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    """A fresh, empty bucket; emptied and deleted afterwards."""
    name = unique("t")
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        empty_and_delete_bucket(s3, name)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., CairnServer]]:
    """Private Cairn servers on their own data directories (restart / filesystem tests).

    `make()` uses tmp_path/cairn-data-N; `make(data_dir)` a given directory. Only for tests marked
    `cairn_only`.
    """
    if external_endpoint():
        pytest.skip("needs a local Cairn process; S3_ENDPOINT is set")
    servers: List[CairnServer] = []

    def make(data_dir: Optional[Path] = None) -> CairnServer:
        server = CairnServer(data_dir or tmp_path / f"cairn-data-{len(servers)}")
        servers.append(server)
        return server.start()

    yield make
    errors = []
    for server in servers:
        try:
            server.stop()
        except RuntimeError as e:  # keep stopping the others
            errors.append(str(e))
    if errors:
        raise RuntimeError("\n".join(errors))
