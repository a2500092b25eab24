"""Bucket operations: CreateBucket, HeadBucket, ListBuckets, DeleteBucket and their errors, and
virtual-host style addressing ({bucket}.localhost:PORT)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from s3helpers import client_config, empty_and_delete_bucket, s3_error, unique


def test_create_head_list_delete(s3):
    name = unique("b")
    created = s3.create_bucket(Bucket=name)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    try:
        head = s3.head_bucket(Bucket=name)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
        listed = s3.list_buckets()
        names = [b["Name"] for b in listed["Buckets"]]
        assert name in names
        entry = next(b for b in listed["Buckets"] if b["Name"] == name)
        assert entry["CreationDate"] is not None
    finally:
        s3.delete_bucket(Bucket=name)
    with s3_error(status=404):
        s3.head_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_head_missing_bucket_is_404(s3):
    with s3_error(status=404):
        s3.head_bucket(Bucket=unique("missing"))


def test_operations_on_missing_bucket(s3):
    name = unique("missing")
    with s3_error("NoSuchBucket", 404):
        s3.list_objects_v2(Bucket=name)
    with s3_error("NoSuchBucket", 404):
        s3.put_object(Bucket=name, Key="k", Body=b"x")
    with s3_error("NoSuchBucket", 404):
        s3.get_object(Bucket=name, Key="k")
    with s3_error("NoSuchBucket", 404):
        s3.delete_bucket(Bucket=name)
    with s3_error("NoSuchBucket", 404):
        s3.create_multipart_upload(Bucket=name, Key="k")


@pytest.mark.cairn_only  # us-east-1 AWS (and moto) answer 200 for re-creating your own bucket
def test_create_existing_bucket_conflicts(s3, bucket):
    with s3_error("BucketAlreadyOwnedByYou", 409):
        s3.create_bucket(Bucket=bucket)


@pytest.mark.parametrize("name", ["ab", "a" * 64])
def test_invalid_bucket_name_lengths(s3, name):
    with s3_error("InvalidBucketName", 400):
        s3.create_bucket(Bucket=name)


@pytest.mark.cairn_only  # moto checks only the length of bucket names
@pytest.mark.parametrize("name", ["Upper-Case", "under_score", "-leading-dash", "trailing-dash-"])
def test_invalid_bucket_name_characters(s3, name):
    with s3_error("InvalidBucketName", 400):
        s3.create_bucket(Bucket=name)


def test_delete_non_empty_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_error("BucketNotEmpty", 409):
        s3.delete_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    with s3_error(status=404):
        s3.head_bucket(Bucket=bucket)


def test_open_upload_is_not_an_object(s3, bucket):
    """An in-progress multipart upload never shows up as an object."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="pending")
    try:
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        with s3_error(status=404):
            s3.head_object(Bucket=bucket, Key="pending")
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="pending", UploadId=up["UploadId"])


@pytest.fixture
def localhost_resolves(monkeypatch):
    """Makes `localhost` and every `*.localhost` name resolve to 127.0.0.1 (IPv4 only, where the
    server listens), whatever this machine's resolver does with them."""
    real = socket.getaddrinfo

    def fake(host, port, family=0, type=0, proto=0, flags=0):
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
            return real("127.0.0.1", port, socket.AF_INET, type, proto, flags)
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_virtual_host_style(target, s3, new_client, bucket, localhost_resolves):
    port = urlsplit(target.endpoint).port
    vh = new_client(
        endpoint=f"http://localhost:{port}",
        config=client_config(addressing_style="virtual"),
    )
    seen_hosts = []
    vh.meta.events.register("before-send.s3", lambda request, **_: seen_hosts.append(urlsplit(request.url).netloc))

    vh.put_object(Bucket=bucket, Key="vh/one.txt", Body=b"virtual host", ContentType="text/plain")
    assert seen_hosts[-1] == f"{bucket}.localhost:{port}", seen_hosts
    got = vh.get_object(Bucket=bucket, Key="vh/one.txt")
    assert got["Body"].read() == b"virtual host"
    assert got["ContentType"] == "text/plain"
    listed = vh.list_objects_v2(Bucket=bucket, Prefix="vh/")
    assert [o["Key"] for o in listed["Contents"]] == ["vh/one.txt"]
    vh.head_bucket(Bucket=bucket)
    assert seen_hosts[-1] == f"{bucket}.localhost:{port}", seen_hosts
    # The same object through path style, on the same server.
    assert s3.get_object(Bucket=bucket, Key="vh/one.txt")["Body"].read() == b"virtual host"
    # A key that looks like a path, through the virtual host.
    vh.put_object(Bucket=bucket, Key="vh/a b/ü.txt", Body=b"nested")
    assert s3.get_object(Bucket=bucket, Key="vh/a b/ü.txt")["Body"].read() == b"nested"
    vh.delete_object(Bucket=bucket, Key="vh/a b/ü.txt")
    # A bucket created through virtual-host style exists for path style too.
    name = unique("vh")
    vh.create_bucket(Bucket=name)
    try:
        s3.head_bucket(Bucket=name)
    finally:
        empty_and_delete_bucket(s3, name)
