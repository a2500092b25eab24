"""Continuous backup to a real S3-compatible server that is not Cairn (moto), surviving SIGKILL.

The crash test writes in a loop while a second thread polls `GET /v1/backup`; once the status
says every write acknowledged before `captured_at_ms` is at the target, with `captured_at_ms`
past the 150th acknowledgement and the writer still going, Cairn is killed with SIGKILL. A
restore from moto must then hold every write acknowledged before the last `captured_at_ms` seen.
A write's acknowledgement time is taken when its response has been received, i.e. at or after
the real acknowledgement, so "received before captured_at_ms" implies "acknowledged before it".
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import requests

from conftest import MotoServer, run_cairn, s3_env, unique

NS = "backup"
OBJECTS = 20
MAX_WRITES = 20_000  # the writer goes on until the kill; this only bounds it
KILL_AFTER_ACK = 150  # kill once captured_at_ms is past this write's acknowledgement
WRITE_DEADLINE_S = 90.0


def now_ms() -> float:
    return time.time() * 1000.0


def backup_env(moto: MotoServer, target: str) -> Dict[str, str]:
    env = s3_env(moto.endpoint)
    env["CAIRN_BACKUP_TARGETS"] = target
    env["CAIRN_BACKUP_INTERVAL_MS"] = "100"
    return env


def write_of(i: int) -> Tuple[str, str, dict]:
    """The i-th write: (object, key, value). Keys are unique, so every write stays visible."""
    return f"obj-{i % OBJECTS}", f"k{i:06d}", {"i": i, "pad": "x" * (i % 50)}


def test_backup_to_moto_survives_sigkill(moto: MotoServer, bucket: str, make_server, tmp_path: Path) -> None:
    target = f"s3://{bucket}/crash"
    server = make_server(tmp_path / "data", backup_env(moto, target))

    acks: List[float] = []  # acks[i]: when write i's response had been received (ms)
    lock = threading.Lock()
    killed = threading.Event()
    writer_done = threading.Event()
    seen: Dict[str, Optional[float]] = {"captured": None}
    poll_errors: List[str] = []
    statuses: List[dict] = []

    def poller() -> None:
        session = requests.Session()
        session.headers.update(server.session.headers)
        deadline = time.monotonic() + WRITE_DEADLINE_S
        while not writer_done.is_set() and time.monotonic() < deadline:
            try:
                status = session.get(f"{server.url}/v1/backup", timeout=5).json()
            except (requests.RequestException, ValueError) as e:
                poll_errors.append(repr(e))
                time.sleep(0.02)
                continue
            statuses.append(status)
            t = status["targets"][0]
            captured = t.get("captured_at_ms")
            if captured is not None:
                seen["captured"] = float(captured)
            with lock:
                past = len(acks) >= KILL_AFTER_ACK and captured is not None and captured > acks[KILL_AFTER_ACK - 1]
                if past:
                    # The writer is mid-loop (it only stops on error or MAX_WRITES): kill now.
                    server.kill()
                    killed.set()
            if killed.is_set():
                break
            time.sleep(0.02)
        session.close()

    poll_thread = threading.Thread(target=poller, daemon=True)
    poll_thread.start()

    session = requests.Session()
    session.headers.update(server.session.headers)
    write_error: Optional[str] = None
    deadline = time.monotonic() + WRITE_DEADLINE_S
    try:
        for i in range(MAX_WRITES):
            if time.monotonic() > deadline:
                write_error = "deadline"
                break
            obj, key, value = write_of(i)
            try:
                r = session.put(server.kv_url(NS, obj, key), json=value, timeout=10)
            except requests.RequestException as e:
                write_error = repr(e)
                break
            received = now_ms()
            if r.status_code >= 300:
                write_error = f"HTTP {r.status_code}: {r.text}"
                break
            with lock:
                acks.append(received)
    finally:
        writer_done.set()
        session.close()
    poll_thread.join(10)

    assert killed.is_set(), (
        f"never saw captured_at_ms past write {KILL_AFTER_ACK}'s ack: {len(acks)} writes, "
        f"writer stopped by {write_error}, last status {statuses[-1] if statuses else None}, "
        f"poll errors {poll_errors[-3:]}\ncairn stderr:\n{server.tail()}"
    )
    assert write_error is not None and len(acks) < MAX_WRITES, "the writer was not interrupted by the kill"
    captured = seen["captured"]
    assert captured is not None
    must_have = [i for i, t in enumerate(acks) if t < captured]
    assert len(must_have) >= KILL_AFTER_ACK, (len(must_have), captured)

    # Restore from moto into a new directory, serve it and read every write back.
    restored_dir = tmp_path / "restored"
    out = run_cairn(
        ["restore", "--from", target, "--data-dir", str(restored_dir), "--endpoint", moto.endpoint],
        s3_env(moto.endpoint),
    )
    report = json.loads(out.stdout)
    assert report["records_replayed"] > 0, report

    restored = make_server(restored_dir)
    missing = []
    wrong = []
    for i in must_have:
        obj, key, value = write_of(i)
        r = restored.session.get(restored.kv_url(NS, obj, key), timeout=10)
        if r.status_code == 404:
            missing.append(i)
        elif r.status_code != 200 or r.json() != value:
            wrong.append((i, r.status_code, r.text[:200]))
    assert not missing and not wrong, (
        f"{len(must_have)} writes acknowledged before captured_at_ms={captured:.0f}, "
        f"{len(acks)} acknowledged in all; missing {missing[:20]} ({len(missing)}), wrong {wrong[:5]}; "
        f"restore report {report}"
    )
    # Writes after captured_at_ms may or may not be there; any that is must hold its value.
    for i in range(len(must_have), len(acks)):
        obj, key, value = write_of(i)
        r = restored.session.get(restored.kv_url(NS, obj, key), timeout=10)
        assert r.status_code in (200, 404), (i, r.status_code, r.text)
        if r.status_code == 200:
            assert r.json() == value, (i, r.text)


def test_backup_status_lists_snapshot_on_moto(moto: MotoServer, bucket: str, make_server, tmp_path: Path) -> None:
    target = f"s3://{bucket}/{unique('status')}"
    server = make_server(tmp_path / "data", backup_env(moto, target))
    r = server.session.put(server.kv_url(NS, "one", "k"), json={"v": 1}, timeout=10)
    assert r.status_code < 300, r.text
    acked = now_ms()

    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = server.backup_status()["targets"][0]
        if (status.get("captured_at_ms") or 0) > acked and status.get("snapshot"):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"backup did not catch up within 30 s: {status}\n{server.tail()}")
    assert status["last_error"] is None, status

    out = run_cairn(
        ["backup", "status", "--target", target, "--endpoint", moto.endpoint],
        s3_env(moto.endpoint),
    )
    report = json.loads(out.stdout)
    assert len(report["snapshots"]) >= 1, report
    assert report["captured_at_ms"] is not None and report["captured_at_ms"] > acked, report
