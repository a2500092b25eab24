"""Fixtures: a Cairn server started from the built binary, and a Cloudflare SDK client for it.

The server is `$CAIRN_BIN serve --listen 127.0.0.1:0 --data-dir <tmp>` with `CAIRN_TOKEN` set; the
URL is read from the line it prints on stderr ("cairn serving http://127.0.0.1:PORT with data in ...").
"""

from __future__ import annotations

import os
import re
import signal
import sys
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import cloudflare
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pysupport"))
from cairn_process import kill as _kill_process, launch, tail as _tail_of  # noqa: E402
from cfhelpers import ACCOUNT_ID, TOKEN, unique

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_SERVING = re.compile(r"cairn serving (http://\S+) with data in")


def cairn_bin() -> Path:
    """`$CAIRN_BIN`, or target/debug/cairn; a relative path is taken from the repository root."""
    path = Path(os.environ.get("CAIRN_BIN", "target/debug/cairn"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


class CairnServer:
    """One `cairn serve` process on a data directory; can be stopped and started again on it."""

    def __init__(self, data_dir: Path, binary: Optional[Path] = None) -> None:
        self.binary = binary or cairn_bin()
        self.data_dir = data_dir
        self.proc: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None
        self.log: List[str] = []
        self._reader: Optional[threading.Thread] = None

    def _tail(self, n: int = 40) -> str:
        return _tail_of(self.log, n)

    def start(self) -> "CairnServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["CAIRN_TOKEN"] = TOKEN
        env.pop("CAIRN_LISTEN", None)
        env.pop("CAIRN_DATA_DIR", None)
        self.url = None
        self.proc, self.log, urls, self._reader = launch(
            self.binary,
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            env,
            {"http": _SERVING},
            START_TIMEOUT_S,
        )
        self.url = urls["http"]
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
        """Stops the server and starts it again on the same data directory (the port changes)."""
        self.stop()
        return self.start()

    def client(self) -> cloudflare.Cloudflare:
        assert self.url, "server not started"
        return cloudflare.Cloudflare(api_token=TOKEN, base_url=f"{self.url}/client/v4", max_retries=0)


@pytest.fixture(scope="session")
def cairn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    server = CairnServer(tmp_path_factory.mktemp("cairn-data")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(cairn_server: CairnServer) -> Iterator[cloudflare.Cloudflare]:
    c = cairn_server.client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[[], CairnServer]]:
    """A private server on its own data directory (for restart/persistence tests)."""
    servers: List[CairnServer] = []

    def make() -> CairnServer:
        server = CairnServer(tmp_path / f"cairn-data-{len(servers)}")
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


@pytest.fixture
def kv_ns(client: cloudflare.Cloudflare) -> Iterator[str]:
    """A fresh KV namespace id, deleted afterwards."""
    ns = client.kv.namespaces.create(account_id=ACCOUNT_ID, title=unique("kv"))
    assert ns is not None and ns.id
    yield ns.id
    try:
        client.kv.namespaces.delete(ns.id, account_id=ACCOUNT_ID)
    except cloudflare.APIError:
        pass


@pytest.fixture
def d1_db(client: cloudflare.Cloudflare) -> Iterator[str]:
    """A fresh D1 database uuid, deleted afterwards."""
    db = client.d1.database.create(account_id=ACCOUNT_ID, name=unique("d1"))
    assert db.uuid
    yield db.uuid
    try:
        client.d1.database.delete(db.uuid, account_id=ACCOUNT_ID)
    except cloudflare.APIError:
        pass
