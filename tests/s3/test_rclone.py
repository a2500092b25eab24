"""rclone against the S3 endpoint: `rclone mkdir`, `copy` of a generated tree (nested directories,
unicode and spaces in names, 0 B .. 12 MiB with files above the 5 MiB multipart cutoff), `check`,
`lsjson`, `copy` back out compared byte for byte, `sync` of a change, and `purge`.

The remote is configured only through environment variables (RCLONE_CONFIG_CAIRN_*). rclone comes
from Debian's package (tests/s3/install-rclone.sh); without it this test fails rather than skips.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from s3helpers import MiB, empty_and_delete_bucket, list_all_keys, payload, s3_error, unique

RCLONE_TIMEOUT_S = 300

# (relative path, size): 50 files.
TREE: List[tuple] = [
    ("empty.txt", 0),
    ("one-byte", 1),
    ("readme.md", 1234),
    ("with space/file name.txt", 4096),
    ("with space/nested dir/deeper file.bin", 65_536),
    ("ünïcödé/日本語 ファイル.txt", 777),
    ("ünïcödé/émoji 😀.bin", 12_345),
    ("ünïcödé/Ελληνικά/αρχείο.dat", 100_000),
    ("punct/plus+sign.txt", 10),
    ("punct/percent%20literal.txt", 11),
    ("punct/hash#tag.txt", 12),
    ("punct/semi;colon & amp.txt", 13),
    ("punct/quote's (1).txt", 14),
    ("punct/dots.in.name.tar.gz", 15),
    ("big/below-cutoff.bin", 5 * MiB - 1),  # single PUT
    ("big/exactly-cutoff.bin", 5 * MiB),  # rclone goes multipart at size >= cutoff: 1 part
    ("big/above-cutoff.bin", 5 * MiB + 1),  # 2 parts
    ("big/twelve.bin", 12 * MiB),  # 3 parts: 5 + 5 + 2
    ("big/one-mib.bin", MiB),
] + [(f"deep/{'/'.join(f'l{d}' for d in range(i % 6 + 1))}/file-{i:02d}.bin", (i * 7919) % 300_000) for i in range(31)]

assert len(TREE) == 50


def _rclone_env(endpoint: str, access_key: str, secret_key: str, config_path: Path) -> Dict[str, str]:
    # No RCLONE_* from outside, and no AWS_* either (rclone's AWS SDK reads e.g. AWS_CA_BUNDLE and
    # AWS_PROFILE, which only get in the way of a plain-HTTP local endpoint).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(
        {
            "RCLONE_CONFIG": str(config_path),  # absent file: no user config leaks in
            "RCLONE_CONFIG_CAIRN_TYPE": "s3",
            "RCLONE_CONFIG_CAIRN_PROVIDER": "Other",
            "RCLONE_CONFIG_CAIRN_ENV_AUTH": "false",
            "RCLONE_CONFIG_CAIRN_ENDPOINT": endpoint,
            "RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID": access_key,
            "RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY": secret_key,
            "RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_CAIRN_REGION": "us-east-1",
        }
    )
    return env


class Rclone:
    """Runs rclone with the suite's flags, bounded by RCLONE_TIMEOUT_S; fails on a non-zero exit."""

    def __init__(self, env: Dict[str, str], extra_flags: List[str]) -> None:
        self.binary = shutil.which("rclone")
        self.env = env
        self.extra_flags = extra_flags

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [
            self.binary,
            *args,
            "--s3-upload-cutoff",
            "5M",
            "--s3-chunk-size",
            "5M",
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "--contimeout",
            "10s",
            "--timeout",
            "60s",
            *self.extra_flags,
        ]
        proc = subprocess.run(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RCLONE_TIMEOUT_S,
        )
        if check:
            assert proc.returncode == 0, (
                f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                f"stderr:\n{proc.stderr[-4000:]}"
            )
        return proc


@pytest.fixture
def rclone(target, tmp_path: Path) -> Rclone:
    # moto answers a multipart Complete with version id "null" and then refuses the HEAD
    # ?versionId=null that rclone sends to verify the upload; --s3-no-head skips that HEAD. Against
    # Cairn rclone runs with its defaults.
    extra = [] if target.is_cairn else ["--s3-no-head"]
    env = _rclone_env(target.endpoint, target.access_key, target.secret_key, tmp_path / "rclone.conf")
    r = Rclone(env, extra)
    assert r.binary, "rclone is not on PATH: run tests/s3/install-rclone.sh"
    return r


def _make_tree(root: Path) -> None:
    for i, (rel, size) in enumerate(TREE):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload(size, seed=1000 + i))


def _local_files(root: Path) -> Dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def test_rclone_round_trip(rclone, s3, tmp_path: Path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _make_tree(src)
    local = _local_files(src)
    assert len(local) == len(TREE)
    bucket = unique("rclone")
    try:
        rclone("mkdir", f"cairn:{bucket}")
        s3.head_bucket(Bucket=bucket)

        rclone("copy", str(src), f"cairn:{bucket}/tree", "--transfers", "4")
        rclone("check", str(src), f"cairn:{bucket}/tree")

        # What boto3 sees: the same keys and sizes; the big ones went up as multipart.
        keys = list_all_keys(s3, bucket)
        assert sorted(keys) == sorted(f"tree/{rel}" for rel in local)
        assert s3.head_object(Bucket=bucket, Key="tree/big/twelve.bin")["ETag"].endswith('-3"')
        assert s3.head_object(Bucket=bucket, Key="tree/big/above-cutoff.bin")["ETag"].endswith('-2"')
        assert s3.head_object(Bucket=bucket, Key="tree/big/exactly-cutoff.bin")["ETag"].endswith('-1"')
        assert "-" not in s3.head_object(Bucket=bucket, Key="tree/big/below-cutoff.bin")["ETag"]

        listing = json.loads(rclone("lsjson", "-R", "--hash", f"cairn:{bucket}/tree").stdout)
        files = {e["Path"]: e for e in listing if not e["IsDir"]}
        assert {p: e["Size"] for p, e in files.items()} == local
        for rel, entry in files.items():
            md5 = entry.get("Hashes", {}).get("md5")
            if md5:  # rclone knows the md5 of single-part objects and of its own multipart uploads
                assert md5 == _md5(src / rel), rel
        dirs = {e["Path"] for e in listing if e["IsDir"]}
        assert {"big", "deep", "punct", "ünïcödé", "with space", "with space/nested dir"} <= dirs

        rclone("copy", f"cairn:{bucket}/tree", str(dst), "--transfers", "4")
        assert _local_files(dst) == local
        for rel in local:
            assert filecmp.cmp(src / rel, dst / rel, shallow=False), rel

        # sync: one file changed, one removed, one added.
        (src / "readme.md").write_bytes(b"changed content")
        (src / "punct/hash#tag.txt").unlink()
        (src / "new dir/new file.txt").parent.mkdir()
        (src / "new dir/new file.txt").write_bytes(b"new")
        rclone("sync", str(src), f"cairn:{bucket}/tree")
        rclone("check", str(src), f"cairn:{bucket}/tree")
        assert s3.get_object(Bucket=bucket, Key="tree/readme.md")["Body"].read() == b"changed content"
        with s3_error(status=404):
            s3.head_object(Bucket=bucket, Key="tree/punct/hash#tag.txt")
        assert s3.get_object(Bucket=bucket, Key="tree/new dir/new file.txt")["Body"].read() == b"new"

        rclone("purge", f"cairn:{bucket}")
        with s3_error(status=404):
            s3.head_bucket(Bucket=bucket)
    finally:
        empty_and_delete_bucket(s3, bucket)
