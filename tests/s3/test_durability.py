"""Durability and atomicity: objects (small, odd keys, multipart) and deletions survive a SIGTERM
restart on the same data directory; an in-progress multipart upload survives it too; a client that
disconnects mid-body leaves no object behind and does not disturb the previous version."""

from __future__ import annotations

import hashlib
import socket
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3helpers import (
    MIN_PART,
    REGION,
    multipart_etag,
    payload,
    s3_error,
    single_etag,
    utf8_sorted,
)

SMALL = {
    "a.txt": b"alpha",
    "empty": b"",
    "dir/ünï cödé 😀.bin": payload(70_000, seed=70),
    "../outside": b"dots",
}


@pytest.mark.cairn_only  # restarts a local server
def test_objects_survive_restart(make_server):
    server = make_server()
    c = server.client()
    c.create_bucket(Bucket="durable")
    for k, v in SMALL.items():
        c.put_object(Bucket="durable", Key=k, Body=v, Metadata={"k": "v"}, ContentType="text/x-d")
    parts = [payload(MIN_PART, seed=71), payload(MIN_PART, seed=72), payload(1024, seed=73)]
    up = c.create_multipart_upload(Bucket="durable", Key="multi", Metadata={"mp": "yes"})
    etags = [
        c.upload_part(Bucket="durable", Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=d)["ETag"]
        for n, d in enumerate(parts, start=1)
    ]
    c.complete_multipart_upload(
        Bucket="durable",
        Key="multi",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    c.put_object(Bucket="durable", Key="deleted-later", Body=b"x")
    c.create_bucket(Bucket="durable-empty")
    c.close()

    server.restart()
    c = server.client()
    assert {"durable", "durable-empty"} <= {b["Name"] for b in c.list_buckets()["Buckets"]}
    for k, v in SMALL.items():
        got = c.get_object(Bucket="durable", Key=k)
        assert got["Body"].read() == v, k
        assert got["ETag"] == single_etag(v)
        assert got["Metadata"] == {"k": "v"}
        assert got["ContentType"] == "text/x-d"
    got = c.get_object(Bucket="durable", Key="multi")
    whole = b"".join(parts)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest()
    assert got["ETag"] == multipart_etag(parts)
    assert got["Metadata"] == {"mp": "yes"}
    rng = c.get_object(Bucket="durable", Key="multi", Range=f"bytes={MIN_PART - 5}-{MIN_PART + 4}")
    assert rng["Body"].read() == whole[MIN_PART - 5 : MIN_PART + 5]
    listed = [o["Key"] for o in c.list_objects_v2(Bucket="durable")["Contents"]]
    assert listed == utf8_sorted(list(SMALL) + ["multi", "deleted-later"])

    c.delete_object(Bucket="durable", Key="deleted-later")
    c.delete_bucket(Bucket="durable-empty")
    c.close()
    server.restart()
    c = server.client()
    with s3_error(status=404):
        c.head_object(Bucket="durable", Key="deleted-later")
    with s3_error(status=404):
        c.head_bucket(Bucket="durable-empty")
    assert c.get_object(Bucket="durable", Key="a.txt")["Body"].read() == b"alpha"
    c.close()


@pytest.mark.cairn_only  # restarts a local server
def test_open_multipart_upload_survives_restart(make_server):
    server = make_server()
    c = server.client()
    c.create_bucket(Bucket="uploads")
    first = payload(MIN_PART, seed=74)
    up = c.create_multipart_upload(Bucket="uploads", Key="resume")
    e1 = c.upload_part(Bucket="uploads", Key="resume", UploadId=up["UploadId"], PartNumber=1, Body=first)["ETag"]
    c.close()

    server.restart()
    c = server.client()
    uploads = c.list_multipart_uploads(Bucket="uploads").get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("resume", up["UploadId"])]
    listed = c.list_parts(Bucket="uploads", Key="resume", UploadId=up["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, e1, MIN_PART)]
    e2 = c.upload_part(Bucket="uploads", Key="resume", UploadId=up["UploadId"], PartNumber=2, Body=b"end")["ETag"]
    c.complete_multipart_upload(
        Bucket="uploads",
        Key="resume",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert c.get_object(Bucket="uploads", Key="resume")["Body"].read() == first + b"end"
    c.close()


def _signed_headers(target, method: str, path: str, body: bytes) -> dict:
    url = target.endpoint + path
    req = AWSRequest(method=method, url=url, data=body, headers={"Content-Length": str(len(body))})
    S3SigV4Auth(Credentials(target.access_key, target.secret_key), "s3", REGION).add_auth(req)
    return dict(req.headers)


def _send_truncated_put(target, path: str, body: bytes, sent: int) -> None:
    """Sends a signed PUT announcing len(body) bytes, writes only `sent` of them, then closes."""
    headers = _signed_headers(target, "PUT", path, body)
    parts = urlsplit(target.endpoint)
    headers["Host"] = parts.netloc
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body[:sent])
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        try:
            while sock.recv(65536):  # whatever the server answers (or a reset), until it closes
                pass
        except OSError:
            pass


def test_disconnect_mid_upload_leaves_nothing(target, s3, bucket):
    body = payload(3 * 1024 * 1024, seed=75)
    _send_truncated_put(target, f"/{bucket}/{quote('torn')}", body, sent=1024 * 1024)
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="torn")
    s3.put_object(Bucket=bucket, Key="kept", Body=b"previous")
    _send_truncated_put(target, f"/{bucket}/kept", body, sent=100)
    got = s3.get_object(Bucket=bucket, Key="kept")
    assert got["Body"].read() == b"previous"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
