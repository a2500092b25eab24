"""Single objects: PutObject / GetObject / HeadObject / DeleteObject(s), ETags, standard HTTP and
custom metadata, key names (any UTF-8, path-like oddities, the 1024-byte limit), the R2 metadata
size limit, ranged reads and CopyObject."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from s3helpers import list_all_keys, payload, s3_error, single_etag, utf8_sorted


def test_put_get_head_delete(s3, bucket):
    body = payload(10_000, seed=1)
    put = s3.put_object(Bucket=bucket, Key="hello.bin", Body=body)
    assert put["ETag"] == single_etag(body)

    got = s3.get_object(Bucket=bucket, Key="hello.bin")
    assert got["Body"].read() == body
    assert got["ETag"] == single_etag(body)
    assert got["ContentLength"] == len(body)
    assert isinstance(got["LastModified"], datetime.datetime)

    head = s3.head_object(Bucket=bucket, Key="hello.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == single_etag(body)
    assert head["LastModified"] == got["LastModified"]

    deleted = s3.delete_object(Bucket=bucket, Key="hello.bin")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="hello.bin")
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="hello.bin")


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0


def test_overwrite_replaces(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"gen": "1"}, ContentType="text/a")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second!")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second!"
    assert got["ETag"] == single_etag(b"second!")
    assert got["Metadata"] == {}
    assert got["ContentType"] != "text/a"


def test_delete_missing_key_is_204(s3, bucket):
    r = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_get_missing_key(s3, bucket):
    with s3_error("NoSuchKey", 404) as err:
        s3.get_object(Bucket=bucket, Key="nope")
    assert err.value.response["Error"].get("Key") in (None, "nope")


def test_http_metadata_round_trip(s3, bucket):
    expires = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    headers = dict(
        ContentType="application/x-cairn; charset=utf-8",
        ContentLanguage="de-CH",
        ContentDisposition='attachment; filename="report.txt"',
        ContentEncoding="identity",
        CacheControl="max-age=3600, public",
        Expires=expires,
    )
    s3.put_object(Bucket=bucket, Key="meta", Body=b"data", **headers)
    for resp in (s3.get_object(Bucket=bucket, Key="meta"), s3.head_object(Bucket=bucket, Key="meta")):
        for name, value in headers.items():
            if name == "Expires":
                # boto3 1.44 exposes the raw header as ExpiresString (Expires is deprecated).
                raw = resp["ResponseMetadata"]["HTTPHeaders"].get("expires")
                assert raw == "Tue, 06 May 2031 07:08:09 GMT", resp["ResponseMetadata"]["HTTPHeaders"]
            else:
                assert resp[name] == value, (name, resp.get(name))


def test_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="untyped", Body=b"x")
    ct = s3.head_object(Bucket=bucket, Key="untyped")["ContentType"]
    assert ct in ("binary/octet-stream", "application/octet-stream")


def test_custom_metadata_round_trip(s3, bucket):
    meta = {"Color": "Blue", "x-Mixed-Case": "Value With Spaces", "num": "42", "empty": ""}
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata=meta)
    expected = {k.lower(): v for k, v in meta.items()}
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == expected
    assert s3.get_object(Bucket=bucket, Key="m")["Metadata"] == expected


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
    )
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"


# ---------------------------------------------------------------------------------------------
# Metadata and key limits (R2 rules)


@pytest.mark.cairn_only  # R2's 2048-byte rule; AWS/moto count the whole header block differently
def test_metadata_size_limit(s3, bucket):
    # len("key") + 2045 == 2048: allowed.
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x", Metadata={"key": "x" * 2045})
    assert s3.head_object(Bucket=bucket, Key="ok")["Metadata"] == {"key": "x" * 2045}
    # Several entries add up: 2 * (4 + 1020) == 2048 allowed, one byte more is not.
    s3.put_object(Bucket=bucket, Key="ok2", Body=b"x", Metadata={"key1": "y" * 1020, "key2": "z" * 1020})
    with s3_error("MetadataTooLarge", 400):
        s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata={"key": "x" * 2046})
    with s3_error("MetadataTooLarge", 400):
        s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata={"key1": "y" * 1020, "key2": "z" * 1021})
    # Nothing half-written.
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="big")
    # A failing overwrite leaves the old object.
    with s3_error("MetadataTooLarge", 400):
        s3.put_object(Bucket=bucket, Key="ok", Body=b"new", Metadata={"key": "x" * 3000})
    got = s3.get_object(Bucket=bucket, Key="ok")
    assert got["Body"].read() == b"x"
    assert got["Metadata"] == {"key": "x" * 2045}


@pytest.mark.cairn_only  # also on multipart create: R2 rule
def test_metadata_size_limit_multipart(s3, bucket):
    with s3_error("MetadataTooLarge", 400):
        s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata={"key": "x" * 2046})


# Keys that must round-trip unchanged and stay inside the data directory.
ODD_KEYS = [
    "plain.txt",
    "with space.txt",
    "  leading and trailing spaces  ",
    "ünïcödé/日本語/😀.bin",
    "../../etc/passwd",
    "../escape",
    "a/../../b",
    "./dot",
    "a//b",
    "/leading-slash",
    "//double-leading",
    "trailing/",
    "percent%2Fslash",
    "percent%20space",
    "plus+sign",
    "q?uestion#hash&amp=eq;semi",
    "tilde~star*quote'dq\"",
    "back\\slash",
    "x" * 1024,
    "é" * 512,  # 1024 bytes of UTF-8
    "dir/" + "y" * 1020,
]


# Control characters in keys (only listable with EncodingType=url, which boto3 always asks for).
CONTROL_KEYS = ["tab\tand\nnewline", "cr\rlf", "bell\x07", "del\x7f"]


def test_odd_keys_round_trip(s3, bucket):
    for i, key in enumerate(ODD_KEYS):
        body = f"body {i}".encode()
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert put["ETag"] == single_etag(body), key
    for i, key in enumerate(ODD_KEYS):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"body {i}".encode(), key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(f"body {i}"), key
    assert list_all_keys(s3, bucket) == utf8_sorted(ODD_KEYS)
    # A key and its "normalised" form are distinct objects.
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="etc/passwd")
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="a/b")
    for key in ODD_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert list_all_keys(s3, bucket) == []


@pytest.mark.cairn_only  # moto's router answers 404 for a key containing a newline
def test_control_character_keys(s3, bucket):
    for key in CONTROL_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in CONTROL_KEYS:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode(), repr(key)
    assert list_all_keys(s3, bucket) == utf8_sorted(CONTROL_KEYS)
    # One by one: XML 1.0 bodies (DeleteObjects) cannot carry every control character.
    for key in CONTROL_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert list_all_keys(s3, bucket) == []


@pytest.mark.cairn_only  # needs a private local server to inspect its files
def test_odd_keys_stay_inside_data_dir(make_server, tmp_path: Path):
    root = tmp_path / "jail"
    data_dir = root / "a" / "b" / "c" / "data"
    server = make_server(data_dir)
    c = server.client()
    try:
        c.create_bucket(Bucket="jail-bucket")
        for key in ODD_KEYS + CONTROL_KEYS:
            c.put_object(Bucket="jail-bucket", Key=key, Body=b"escape?")
        c.create_bucket(Bucket="jail-two")
        up = c.create_multipart_upload(Bucket="jail-two", Key="../../../../mp")
        part = c.upload_part(Bucket="jail-two", Key="../../../../mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
        c.complete_multipart_upload(
            Bucket="jail-two",
            Key="../../../../mp",
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        assert c.get_object(Bucket="jail-two", Key="../../../../mp")["Body"].read() == b"p"
    finally:
        c.close()
    server.stop()
    outside = [p for p in root.rglob("*") if not (p == data_dir or data_dir in p.parents or p in data_dir.parents)]
    assert outside == [], f"files created outside the data dir: {outside}"
    assert not (data_dir.parent / "etc").exists()
    assert not (root / "etc").exists()


@pytest.mark.cairn_only  # moto does not limit key length
def test_key_too_long(s3, bucket):
    with s3_error("KeyTooLongError", 400):
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    with s3_error("KeyTooLongError", 400):
        s3.put_object(Bucket=bucket, Key="é" * 513, Body=b"x")  # 1026 bytes, 513 characters
    with s3_error("KeyTooLongError", 400):
        s3.create_multipart_upload(Bucket=bucket, Key="k" * 1025)
    assert list_all_keys(s3, bucket) == []


# ---------------------------------------------------------------------------------------------
# DeleteObjects


def test_delete_objects_verbose(s3, bucket):
    for k in ("a", "b", "c/d"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    r = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a"}, {"Key": "c/d"}, {"Key": "missing"}]},
    )
    assert sorted(d["Key"] for d in r.get("Deleted", [])) == ["a", "c/d", "missing"]
    assert r.get("Errors", []) == []
    assert list_all_keys(s3, bucket) == ["b"]


@pytest.mark.cairn_only  # moto lists every deleted key even in quiet mode
def test_delete_objects_quiet(s3, bucket):
    keys = [f"q/{i:03d}" for i in range(50)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:40]], "Quiet": True}
    )
    assert r.get("Deleted", []) == []
    assert r.get("Errors", []) == []
    assert list_all_keys(s3, bucket) == keys[40:]


def test_delete_objects_odd_keys(s3, bucket):
    keys = ["spa ce", "ünï", "a//b", "x&y<z>", "../up"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted(keys)
    assert list_all_keys(s3, bucket) == []


# ---------------------------------------------------------------------------------------------
# Ranges


RANGE_BODY = bytes(range(256)) * 4  # 1024 bytes


@pytest.mark.parametrize(
    "header,start,end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=1020-5000", 1020, 1023),  # the end is clamped
        ("bytes=0-0", 0, 0),
        ("bytes=1023-1023", 1023, 1023),
        ("bytes=-2000", 0, 1023),  # a suffix longer than the object: all of it
    ],
)
def test_range_reads(s3, bucket, header, start, end):
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == RANGE_BODY[start : end + 1]
    assert got["ContentRange"] == f"bytes {start}-{end}/{len(RANGE_BODY)}"
    assert got["ContentLength"] == end - start + 1
    assert got["ETag"] == single_etag(RANGE_BODY)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=1024-1030"])
def test_unsatisfiable_range(s3, bucket, header):
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    with s3_error("InvalidRange", 416):
        s3.get_object(Bucket=bucket, Key="r", Range=header)


def test_head_with_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_BODY)
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 10
    assert head["ContentRange"] == "bytes 10-19/1024"


# ---------------------------------------------------------------------------------------------
# CopyObject


def test_copy_object_copies_metadata(s3, bucket):
    body = payload(3000, seed=7)
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=body,
        ContentType="text/x-src",
        CacheControl="no-store",
        Metadata={"origin": "src", "n": "1"},
    )
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == single_etag(body)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/x-src"
    assert got["CacheControl"] == "no-store"
    assert got["Metadata"] == {"origin": "src", "n": "1"}
    assert got["ETag"] == single_etag(body)
    # The source is untouched.
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == body


def test_copy_object_replace_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"abc", ContentType="text/old", Metadata={"old": "1"})
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/new",
        Metadata={"new": "2"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "text/new"
    assert head["Metadata"] == {"new": "2"}
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"abc"


def test_copy_object_onto_itself_with_replace(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"same", Metadata={"v": "1"})
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    got = s3.get_object(Bucket=bucket, Key="self")
    assert got["Body"].read() == b"same"
    assert got["Metadata"] == {"v": "2"}


def test_copy_object_across_buckets_and_odd_keys(s3, bucket):
    other = bucket + "-2"
    s3.create_bucket(Bucket=other)
    try:
        src_key = "ünï cöde/../src?#"
        s3.put_object(Bucket=bucket, Key=src_key, Body=b"cross", Metadata={"a": "b"})
        s3.copy_object(Bucket=other, Key="dst é", CopySource={"Bucket": bucket, "Key": src_key})
        got = s3.get_object(Bucket=other, Key="dst é")
        assert got["Body"].read() == b"cross"
        assert got["Metadata"] == {"a": "b"}
    finally:
        for k in list_all_keys(s3, other):
            s3.delete_object(Bucket=other, Key=k)
        s3.delete_bucket(Bucket=other)


def test_copy_object_missing_source(s3, bucket):
    with s3_error("NoSuchKey", 404):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "missing"})
    with s3_error("NoSuchBucket", 404):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket + "-nope", "Key": "k"})


@pytest.mark.cairn_only  # moto ignores x-amz-copy-source-if-* headers
def test_copy_object_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"cond")
    etag = single_etag(b"cond")
    s3.copy_object(Bucket=bucket, Key="ok", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="ok")["Body"].read() == b"cond"
    with s3_error("PreconditionFailed", 412):
        s3.copy_object(
            Bucket=bucket,
            Key="bad",
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceIfMatch='"00000000000000000000000000000000"',
        )
    with s3_error("PreconditionFailed", 412):
        s3.copy_object(
            Bucket=bucket, Key="bad", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfNoneMatch=etag
        )
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="bad")
