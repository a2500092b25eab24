"""Conditional requests: If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since on
GetObject and HeadObject (RFC 7232 as S3 applies it, second granularity), and conditional writes
(If-None-Match: * and If-Match on PutObject and CompleteMultipartUpload)."""

from __future__ import annotations

import datetime

import pytest

from s3helpers import MIN_PART, payload, s3_error, single_etag

HOUR = datetime.timedelta(hours=1)
WRONG_ETAG = '"0123456789abcdef0123456789abcdef"'


@pytest.fixture
def obj(s3, bucket):
    """(bucket, key, etag, last_modified) of a small object."""
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="c")
    assert head["ETag"] == single_etag(b"conditional")
    return bucket, "c", head["ETag"], head["LastModified"]


def _get(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)


def _head(s3, bucket, key, **kw):
    return s3.head_object(Bucket=bucket, Key=key, **kw)


@pytest.mark.parametrize("op", [_get, _head], ids=["get", "head"])
def test_if_match(s3, obj, op):
    bucket, key, etag, _ = obj
    assert op(s3, bucket, key, IfMatch=etag)["ETag"] == etag
    with s3_error(None if op is _head else "PreconditionFailed", 412):
        op(s3, bucket, key, IfMatch=WRONG_ETAG)


@pytest.mark.parametrize("op", [_get, _head], ids=["get", "head"])
def test_if_none_match(s3, obj, op):
    bucket, key, etag, _ = obj
    with s3_error(status=304):
        op(s3, bucket, key, IfNoneMatch=etag)
    r = op(s3, bucket, key, IfNoneMatch=WRONG_ETAG)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.cairn_only  # moto compares the header with the ETag as one string (no '*', no lists)
@pytest.mark.parametrize("op", [_get, _head], ids=["get", "head"])
def test_etag_lists_and_wildcards(s3, obj, op):
    bucket, key, etag, _ = obj
    assert op(s3, bucket, key, IfMatch="*")["ETag"] == etag
    assert op(s3, bucket, key, IfMatch=f"{WRONG_ETAG}, {etag}")["ETag"] == etag
    with s3_error(None if op is _head else "PreconditionFailed", 412):
        op(s3, bucket, key, IfMatch=f"{WRONG_ETAG}, W/{etag}")  # weak etags never match If-Match
    with s3_error(status=304):
        op(s3, bucket, key, IfNoneMatch="*")
    with s3_error(status=304):
        op(s3, bucket, key, IfNoneMatch=f"{WRONG_ETAG}, {etag}")
    with s3_error(status=304):
        op(s3, bucket, key, IfNoneMatch=f"W/{etag}")  # If-None-Match uses weak comparison


@pytest.mark.parametrize("op", [_get, _head], ids=["get", "head"])
def test_if_modified_since(s3, obj, op):
    bucket, key, _, last_modified = obj
    with s3_error(status=304):
        op(s3, bucket, key, IfModifiedSince=last_modified)
    r = op(s3, bucket, key, IfModifiedSince=last_modified - HOUR)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("op", [_get, _head], ids=["get", "head"])
def test_if_unmodified_since(s3, obj, op):
    bucket, key, _, last_modified = obj
    with s3_error(None if op is _head else "PreconditionFailed", 412):
        op(s3, bucket, key, IfUnmodifiedSince=last_modified - HOUR)
    r = op(s3, bucket, key, IfUnmodifiedSince=last_modified + HOUR)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Exactly the Last-Modified second: not modified since then.
    r = op(s3, bucket, key, IfUnmodifiedSince=last_modified)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.cairn_only  # moto answers 412 for If-Match true + If-Unmodified-Since false (RFC 7232 6: 200)
@pytest.mark.parametrize("op", [_get, _head], ids=["get", "head"])
def test_combined_conditions(s3, obj, op):
    bucket, key, etag, last_modified = obj
    # If-Match true wins over a false If-Unmodified-Since.
    r = op(s3, bucket, key, IfMatch=etag, IfUnmodifiedSince=last_modified - HOUR)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    # If-None-Match true (no match) wins over a false If-Modified-Since.
    r = op(s3, bucket, key, IfNoneMatch=WRONG_ETAG, IfModifiedSince=last_modified)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    # If-Match false: 412 whatever the dates say.
    with s3_error(None if op is _head else "PreconditionFailed", 412):
        op(s3, bucket, key, IfMatch=WRONG_ETAG, IfUnmodifiedSince=last_modified + HOUR)
    # If-None-Match matching: 304 even though it was "modified since" an hour before.
    with s3_error(status=304):
        op(s3, bucket, key, IfNoneMatch=etag, IfModifiedSince=last_modified - HOUR)


def test_conditional_get_returns_body_only_when_passing(s3, obj):
    bucket, key, etag, _ = obj
    got = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag, Range="bytes=0-3")
    assert got["Body"].read() == b"cond"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206


def test_conditional_read_of_missing_key(s3, bucket):
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="missing", IfMatch=WRONG_ETAG)
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="missing", IfNoneMatch="*")


# ---------------------------------------------------------------------------------------------
# Conditional writes


def test_put_if_none_match_star(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    assert first["ETag"] == single_etag(b"first")
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_put_if_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")
    etag1 = single_etag(b"v1")
    put2 = s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=etag1)
    assert put2["ETag"] == single_etag(b"v2")
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=etag1)  # stale etag
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"


def test_put_if_match_missing_key(s3, bucket):
    with s3_error("NoSuchKey", 404):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=WRONG_ETAG)
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="absent")


def _multipart(s3, bucket, key, **complete_kw):
    """One-part multipart upload (a single last part may be small); returns the Complete result."""
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"mp-body")
    try:
        return s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            **complete_kw,
        )
    except Exception:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])
        except Exception:
            pass
        raise


def test_complete_multipart_if_none_match(s3, bucket):
    _multipart(s3, bucket, "mp-once", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="mp-once")["Body"].read() == b"mp-body"
    s3.put_object(Bucket=bucket, Key="taken", Body=b"old")
    with s3_error("PreconditionFailed", 412):
        _multipart(s3, bucket, "taken", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"old"


@pytest.mark.cairn_only  # moto ignores If-Match on CompleteMultipartUpload
def test_complete_multipart_if_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="cas", Body=b"old")
    with s3_error("PreconditionFailed", 412):
        _multipart(s3, bucket, "cas", IfMatch=WRONG_ETAG)
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"old"
    _multipart(s3, bucket, "cas", IfMatch=single_etag(b"old"))
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"mp-body"


@pytest.mark.cairn_only  # moto ignores If-Match on CompleteMultipartUpload
def test_complete_multipart_if_match_missing_key(s3, bucket):
    with s3_error("NoSuchKey", 404):
        _multipart(s3, bucket, "absent", IfMatch=WRONG_ETAG)
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="absent")


def test_put_if_none_match_does_not_touch_big_existing_object(s3, bucket):
    """A refused conditional write of a larger body leaves the old object whole."""
    old = payload(MIN_PART // 5, seed=3)
    s3.put_object(Bucket=bucket, Key="big", Body=old)
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="big", Body=payload(MIN_PART // 4, seed=4), IfNoneMatch="*")
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ETag"] == single_etag(old)
    assert got["Body"].read() == old
