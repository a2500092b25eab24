"""Integrity checks on upload: Content-MD5 (BadDigest, InvalidDigest), the flexible checksums
(x-amz-checksum-crc32 / crc32c / crc64nvme / sha1 / sha256) on PutObject and UploadPart, sent as
headers and as trailers of an aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER), stored
checksums returned by GetObject/HeadObject with ChecksumMode=ENABLED, and that a failed check
leaves nothing behind.

Over plain HTTP botocore puts checksums in headers; the `trailer_s3` client flips its
PutObject/UploadPart requests to the trailer form it uses over HTTPS by default.
"""

from __future__ import annotations

import base64
import hashlib

import botocore.httpchecksum
import pytest

from s3helpers import (
    MIN_PART,
    MiB,
    checksum_b64,
    list_all_keys,
    md5_b64,
    payload,
    s3_error,
    single_etag,
)

# Algorithms botocore computes itself without awscrt.
BOTOCORE_ALGS = ["CRC32", "SHA1", "SHA256"]
# All S3 algorithms; CRC32C / CRC64NVME values come from s3helpers' pure-Python CRCs.
ALL_ALGS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


def _param(alg: str) -> str:
    return "Checksum" + alg


def _wrong_value(alg: str, data: bytes) -> str:
    """A well-formed checksum value of the right length that does not match `data`."""
    return checksum_b64(alg, data + b"tampered")


# ---------------------------------------------------------------------------------------------
# Content-MD5


def test_content_md5_ok(s3, bucket):
    body = payload(5000, seed=11)
    put = s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=md5_b64(body))
    assert put["ETag"] == single_etag(body)
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == body


@pytest.mark.cairn_only  # moto does not verify Content-MD5
def test_content_md5_mismatch_is_bad_digest(s3, bucket):
    body = payload(5000, seed=12)
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=md5_b64(b"something else"))
    assert list_all_keys(s3, bucket) == []
    # An existing object survives a failed overwrite.
    s3.put_object(Bucket=bucket, Key="md5", Body=b"old")
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="md5", Body=body, ContentMD5=md5_b64(b"something else"))
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"old"


@pytest.mark.cairn_only  # moto does not verify Content-MD5
@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all!",
        base64.b64encode(b"short").decode(),  # decodes, but not 16 bytes
    ],
)
def test_malformed_content_md5_is_invalid_digest(s3, bucket, value):
    with s3_error("InvalidDigest", 400):
        s3.put_object(Bucket=bucket, Key="md5", Body=b"data", ContentMD5=value)
    assert list_all_keys(s3, bucket) == []


@pytest.mark.cairn_only  # moto does not verify Content-MD5
def test_content_md5_on_upload_part(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    try:
        with s3_error("BadDigest", 400):
            s3.upload_part(
                Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part", ContentMD5=md5_b64(b"x")
            )
        assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=up["UploadId"]).get("Parts", []) == []
        ok = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part", ContentMD5=md5_b64(b"part")
        )
        assert ok["ETag"] == single_etag(b"part")
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"])


# ---------------------------------------------------------------------------------------------
# Flexible checksums in headers


def test_default_request_checksum_is_stored(s3, bucket):
    """botocore sends x-amz-checksum-crc32 on every PutObject by default (when_supported)."""
    body = payload(70_000, seed=13)
    put = s3.put_object(Bucket=bucket, Key="default", Body=body)
    assert put.get("ChecksumCRC32") == checksum_b64("CRC32", body)
    got = s3.get_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == checksum_b64("CRC32", body)
    assert got["Body"].read() == body


@pytest.mark.parametrize("alg", BOTOCORE_ALGS)
def test_checksum_algorithm_computed_by_botocore(s3, bucket, alg):
    body = payload(100_000, seed=14)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm=alg)
    assert put[_param(alg)] == checksum_b64(alg, body)
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[_param(alg)] == checksum_b64(alg, body)
    assert got["Body"].read() == body
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[_param(alg)] == checksum_b64(alg, body)


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_explicit_checksum_value(s3, bucket, alg):
    body = payload(20_000, seed=15)
    value = checksum_b64(alg, body)
    # As SDKs send it: the algorithm (x-amz-sdk-checksum-algorithm) and the value.
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm=alg, **{_param(alg): value})
    assert put[_param(alg)] == value
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[_param(alg)] == value
    assert got["Body"].read() == body


@pytest.mark.cairn_only  # moto stores a checksum only when x-amz-sdk-checksum-algorithm is sent too
@pytest.mark.parametrize("alg", ALL_ALGS)
def test_checksum_value_alone(s3, bucket, alg):
    body = payload(20_000, seed=24)
    value = checksum_b64(alg, body)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, **{_param(alg): value})
    assert put[_param(alg)] == value
    assert s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")[_param(alg)] == value


@pytest.mark.cairn_only  # moto does not verify x-amz-checksum-* values
@pytest.mark.parametrize("alg", ALL_ALGS)
def test_wrong_checksum_is_bad_digest(s3, bucket, alg):
    body = payload(20_000, seed=16)
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=body, **{_param(alg): _wrong_value(alg, body)})
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="k")
    # Overwrite attempt: the old version stays.
    s3.put_object(Bucket=bucket, Key="k", Body=b"old version")
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=body, **{_param(alg): _wrong_value(alg, body)})
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"old version"
    assert got["ETag"] == single_etag(b"old version")


@pytest.mark.parametrize("alg", ["CRC32", "SHA256"])
def test_upload_part_checksums(s3, bucket, alg):
    key = "mp-" + alg
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg)
    upload_id = up["UploadId"]
    parts_data = [payload(MIN_PART, seed=17), payload(1000, seed=18)]
    try:
        parts = []
        for n, data in enumerate(parts_data, start=1):
            r = s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data, ChecksumAlgorithm=alg
            )
            assert r[_param(alg)] == checksum_b64(alg, data)
            assert r["ETag"] == single_etag(data)
            parts.append({"PartNumber": n, "ETag": r["ETag"], _param(alg): r[_param(alg)]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts_data)


@pytest.mark.cairn_only  # moto does not verify x-amz-checksum-* values
@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA256"])
def test_upload_part_wrong_checksum(s3, bucket, alg):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=alg)
    upload_id = up["UploadId"]
    data = payload(MIN_PART, seed=25)
    try:
        with s3_error("BadDigest", 400):
            s3.upload_part(
                Bucket=bucket,
                Key="mp",
                UploadId=upload_id,
                PartNumber=1,
                Body=data,
                ChecksumAlgorithm=alg,
                **{_param(alg): _wrong_value(alg, data[:1000])},
            )
        assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts", []) == []
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


# ---------------------------------------------------------------------------------------------
# Trailing checksums (aws-chunked, STREAMING-UNSIGNED-PAYLOAD-TRAILER)


@pytest.fixture
def trailer_s3(target):
    """A client whose PutObject/UploadPart send their checksum as an aws-chunked trailer, the way
    botocore does over HTTPS. Records the headers of each request it sends in `.sent`."""
    c = target.client()
    sent = []

    def force_trailer(params, **_):
        algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
        if isinstance(algorithm, dict) and algorithm.get("in") == "header":
            algorithm["in"] = "trailer"

    def record(request, **_):
        sent.append(dict(request.headers))

    for op in ("PutObject", "UploadPart"):
        c.meta.events.register(f"before-call.s3.{op}", force_trailer)
        c.meta.events.register(f"before-send.s3.{op}", record)
    c.sent = sent
    try:
        yield c
    finally:
        c.close()


def _assert_sent_as_trailer(headers: dict, alg: str) -> None:
    lower = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in headers.items()}
    assert lower.get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER", lower
    assert "aws-chunked" in lower.get("content-encoding", ""), lower
    assert lower.get("x-amz-trailer") == f"x-amz-checksum-{alg.lower()}", lower


@pytest.mark.parametrize("alg", BOTOCORE_ALGS)
@pytest.mark.parametrize("size", [0, 1, 65_536, 2 * MiB + 12_345])
def test_trailing_checksum_put(trailer_s3, s3, bucket, alg, size):
    body = payload(size, seed=19 + size)
    put = trailer_s3.put_object(Bucket=bucket, Key="t", Body=body, ChecksumAlgorithm=alg)
    _assert_sent_as_trailer(trailer_s3.sent[-1], alg)
    assert put["ETag"] == single_etag(body)
    got = s3.get_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    data = got["Body"].read()
    assert len(data) == size  # no aws-chunked framing leaked into the object
    assert data == body
    assert got[_param(alg)] == checksum_b64(alg, body)
    assert got["ContentLength"] == size


def test_trailing_checksum_default_algorithm(trailer_s3, s3, bucket):
    body = payload(300_000, seed=20)
    trailer_s3.put_object(Bucket=bucket, Key="t", Body=body, ContentEncoding="identity", ContentType="text/plain")
    _assert_sent_as_trailer(trailer_s3.sent[-1], "CRC32")
    head = s3.head_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(body)
    assert head["ChecksumCRC32"] == checksum_b64("CRC32", body)
    # "aws-chunked" is a transfer detail: it must not be stored as the object's Content-Encoding.
    assert head.get("ContentEncoding") == "identity"
    assert head["ContentType"] == "text/plain"
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == body


def test_trailing_checksum_upload_part(trailer_s3, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="tp")
    upload_id = up["UploadId"]
    data = [payload(MIN_PART, seed=21), payload(MiB + 7, seed=22)]
    try:
        parts = []
        for n, d in enumerate(data, start=1):
            r = trailer_s3.upload_part(Bucket=bucket, Key="tp", UploadId=upload_id, PartNumber=n, Body=d)
            _assert_sent_as_trailer(trailer_s3.sent[-1], "CRC32")
            assert r["ETag"] == single_etag(d)
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        listed = s3.list_parts(Bucket=bucket, Key="tp", UploadId=upload_id)["Parts"]
        assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, len(data[0])), (2, len(data[1]))]
        s3.complete_multipart_upload(Bucket=bucket, Key="tp", UploadId=upload_id, MultipartUpload={"Parts": parts})
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key="tp", UploadId=upload_id)
        raise
    got = s3.get_object(Bucket=bucket, Key="tp")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(b"".join(data)).hexdigest()


class _WrongCrc32(botocore.httpchecksum.Crc32Checksum):
    """Computes a CRC32 and then reports a different one."""

    def digest(self):
        good = int.from_bytes(super().digest(), "big")
        return ((good ^ 0x5A5A5A5A) & 0xFFFFFFFF).to_bytes(4, "big")


@pytest.mark.cairn_only  # moto does not verify x-amz-checksum-* values
def test_wrong_trailing_checksum_is_bad_digest(trailer_s3, s3, bucket, monkeypatch):
    s3.put_object(Bucket=bucket, Key="existing", Body=b"old")
    body = payload(1_500_000, seed=23)
    monkeypatch.setitem(botocore.httpchecksum._CHECKSUM_CLS, "crc32", _WrongCrc32)
    with s3_error("BadDigest", 400):
        trailer_s3.put_object(Bucket=bucket, Key="bad", Body=body, ChecksumAlgorithm="CRC32")
    _assert_sent_as_trailer(trailer_s3.sent[-1], "CRC32")
    with s3_error("BadDigest", 400):
        trailer_s3.put_object(Bucket=bucket, Key="existing", Body=body, ChecksumAlgorithm="CRC32")
    monkeypatch.undo()  # the checks below read with the real CRC32
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="bad")
    assert s3.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"old"
