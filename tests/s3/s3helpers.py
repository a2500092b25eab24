"""Shared helpers for the S3 suite (imported by conftest and the tests).

Credentials and client construction, an assertion context manager for S3 XML errors, hashes and
ETags (including pure-Python CRC32C and CRC64NVME, which botocore only has with awscrt), raw
SigV4-signed requests for bodies boto3 would never send, and bucket clean-up.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import random
import types
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, Iterator, List, Optional
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REGION = "us-east-1"
# What the suite gives Cairn (CAIRN_S3_ACCESS_KEY_ID / CAIRN_S3_SECRET_ACCESS_KEY).
ACCESS_KEY_ID = "cairntestaccesskey01"
SECRET_ACCESS_KEY = "cairn-test-secret-key-0123456789abcdef"
# Cairn refuses tokens shorter than 16 characters; the S3 suite never uses the token itself.
TOKEN = "test-token-for-s3-conformance"

KiB = 1024
MiB = 1024 * 1024
MIN_PART = 5 * MiB

# Timeouts for one HTTP request (seconds); big multipart parts on a 2-core machine need slack.
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120


def unique(prefix: str = "cairn") -> str:
    """A fresh name that is a valid bucket name everywhere (lowercase letters, digits, '-')."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def utf8_sorted(names: Iterable[str]) -> List[str]:
    """S3 lists keys in the order of their UTF-8 bytes."""
    return sorted(names, key=lambda s: s.encode("utf-8"))


def client_config(**s3: Any) -> Config:
    """botocore config for the suite: SigV4, path style unless overridden, no retries (a retry
    would hide a server error), and bounded timeouts."""
    s3_cfg = {"addressing_style": "path"}
    s3_cfg.update(s3)
    return Config(
        region_name=REGION,
        signature_version="s3v4",
        s3=s3_cfg,
        retries={"total_max_attempts": 1},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=32,
    )


def make_client(
    endpoint: str,
    access_key: str,
    secret_key: str,
    config: Optional[Config] = None,
    **kw: Any,
):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=config or client_config(),
        **kw,
    )


# ---------------------------------------------------------------------------------------------
# Errors


@contextlib.contextmanager
def s3_error(code: Optional[str] = None, status: Optional[int] = None) -> Iterator[types.SimpleNamespace]:
    """Expects the block to raise botocore's ClientError with this S3 error `code` and HTTP `status`.

    HEAD responses carry no body, so botocore reports their code as the status number ("404");
    pass `code=None` for those. Yields a holder whose `.value` is the exception afterwards.
    """
    holder = types.SimpleNamespace(value=None)
    with pytest.raises(ClientError) as info:
        yield holder
    e = info.value
    holder.value = e
    err = e.response.get("Error", {})
    got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    detail = f"HTTP {got_status}, error {err!r}"
    if status is not None:
        assert got_status == status, detail
    if code is not None:
        assert err.get("Code") == code, detail


def assert_xml_error(resp: requests.Response, code: str, status: int) -> None:
    """Checks a raw `requests` response is an S3 XML error document with this code and status."""
    detail = f"HTTP {resp.status_code}: {resp.text[:500]!r}"
    assert resp.status_code == status, detail
    assert f"<Code>{code}</Code>" in resp.text, detail
    assert "<Error>" in resp.text, detail


# ---------------------------------------------------------------------------------------------
# Hashes, checksums, ETags


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quoted(etag: str) -> str:
    return f'"{etag}"'


def single_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part object: the quoted hex MD5 of the body."""
    return quoted(md5_hex(data))


def multipart_etag(parts: Iterable[bytes]) -> str:
    """The ETag of a multipart object: hex MD5 of the concatenated binary part MD5s, then -N."""
    parts = list(parts)
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return quoted(f"{digest}-{len(parts)}")


def _reflected_table(poly: int, width: int) -> List[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & ((1 << width) - 1))
    return table


_CRC32C_TABLE = _reflected_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5, 64)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as S3's CRC32C checksum. Pure Python: use on small bodies only."""
    c = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc64nvme(data: bytes) -> int:
    """CRC-64/NVME, as S3's CRC64NVME checksum. Pure Python: use on small bodies only."""
    mask = 0xFFFFFFFFFFFFFFFF
    c = mask
    t = _CRC64NVME_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def checksum_b64(algorithm: str, data: bytes) -> str:
    """The base64 value S3 expects in x-amz-checksum-{algorithm} for `data`."""
    algorithm = algorithm.upper()
    if algorithm == "CRC32":
        raw = (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        raw = crc32c(data).to_bytes(4, "big")
    elif algorithm == "CRC64NVME":
        raw = crc64nvme(data).to_bytes(8, "big")
    elif algorithm == "SHA1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


# Known-answer checks ("123456789"), so a wrong table shows up here and not as a server bug.
assert crc32c(b"123456789") == 0xE3069283
assert crc64nvme(b"123456789") == 0xAE8B14860A799888


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (the same `seed` gives the same bytes)."""
    return random.Random(seed).randbytes(size)


# ---------------------------------------------------------------------------------------------
# Raw signed requests


def signed_request(
    endpoint: str,
    method: str,
    path: str,
    *,
    access_key: str,
    secret_key: str,
    params: Optional[Dict[str, str]] = None,
    body: bytes = b"",
    headers: Optional[Dict[str, str]] = None,
    timeout: float = 60,
) -> requests.Response:
    """Sends one SigV4-signed request with exactly this body, bypassing botocore's serializers.

    `path` is the already percent-encoded path (e.g. "/bucket/key"); `params` the query string.
    """
    url = endpoint.rstrip("/") + path
    if params:
        # "name" alone for an empty value, as S3 spells sub-resources ("?delete", "?uploads").
        url += "?" + "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" if v else quote(k, safe="") for k, v in params.items()
        )
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    return requests.request(
        method, prepared.url, data=body, headers=dict(prepared.headers), timeout=timeout
    )


# ---------------------------------------------------------------------------------------------
# Buckets


def list_all_keys(s3, bucket: str, **kw: Any) -> List[str]:
    keys: List[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def empty_and_delete_bucket(s3, bucket: str) -> None:
    """Aborts open uploads, deletes every object, then the bucket. Tolerates a missing bucket."""
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                with contextlib.suppress(ClientError):
                    s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        keys = list_all_keys(s3, bucket)
        for i in range(0, len(keys), 1000):
            s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )
        s3.delete_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
            raise


def put_many(s3, bucket: str, items: Dict[str, bytes], workers: int = 16) -> None:
    """Puts every (key, body) with a bounded thread pool; re-raises the first failure."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(s3.put_object, Bucket=bucket, Key=k, Body=v) for k, v in items.items()]
        for f in futures:
            f.result()

