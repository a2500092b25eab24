"""Authentication: SigV4 header auth with bad credentials (SignatureDoesNotMatch,
InvalidAccessKeyId), anonymous requests (AccessDenied), and presigned URLs (GET and PUT through
plain `requests`, expired -> AccessDenied, tampered -> SignatureDoesNotMatch)."""

from __future__ import annotations

import datetime
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import botocore
import botocore.auth
import pytest
import requests
from botocore.config import Config

from s3helpers import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    REGION,
    assert_xml_error,
    payload,
    s3_error,
    single_etag,
)

HTTP_TIMEOUT = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)


def _presign(s3, method: str, bucket: str, key: str, expires: int = 300, **params) -> str:
    return s3.generate_presigned_url(
        method, Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=expires
    )


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---------------------------------------------------------------------------------------------
# Presigned URLs


def test_presigned_get(s3, bucket):
    body = payload(50_000, seed=60)
    s3.put_object(Bucket=bucket, Key="dir/presigned file ü.bin", Body=body, ContentType="application/x-p")
    url = _presign(s3, "get_object", bucket, "dir/presigned file ü.bin")
    r = requests.get(url, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["ETag"] == single_etag(body)
    assert r.headers["Content-Type"] == "application/x-p"
    # Range and HEAD through the same kind of URL.
    r = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 206
    assert r.content == body[:10]
    head_url = _presign(s3, "head_object", bucket, "dir/presigned file ü.bin")
    r = requests.head(head_url, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(body)


def test_presigned_get_with_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"override")
    url = _presign(
        s3, "get_object", bucket, "o", ResponseContentDisposition='attachment; filename="x.txt"'
    )
    r = requests.get(url, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Disposition"] == 'attachment; filename="x.txt"'


def test_presigned_put(s3, bucket):
    body = payload(200_000, seed=61)
    url = _presign(s3, "put_object", bucket, "uploaded via url", ContentType="text/plain")
    r = requests.put(url, data=body, headers={"Content-Type": "text/plain"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == single_etag(body)
    got = s3.get_object(Bucket=bucket, Key="uploaded via url")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"


def test_presigned_get_missing_key(s3, bucket):
    r = requests.get(_presign(s3, "get_object", bucket, "missing"), timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "NoSuchKey", 404)


@pytest.mark.cairn_only  # moto does not check presigned URL expiry
def test_presigned_url_expired(s3, bucket, monkeypatch):
    s3.put_object(Bucket=bucket, Key="old", Body=b"x")
    real = botocore.auth.get_current_datetime

    def an_hour_ago(*args, **kwargs):
        return real(*args, **kwargs) - datetime.timedelta(hours=1)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", an_hour_ago)
    get_url = _presign(s3, "get_object", bucket, "old", expires=60)
    put_url = _presign(s3, "put_object", bucket, "new", expires=60)
    monkeypatch.undo()
    assert_xml_error(requests.get(get_url, timeout=HTTP_TIMEOUT), "AccessDenied", 403)
    assert_xml_error(requests.put(put_url, data=b"y", timeout=HTTP_TIMEOUT), "AccessDenied", 403)
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="new")


@pytest.mark.cairn_only  # moto does not check presigned URL expiry
def test_presigned_url_expires_after_its_lifetime(s3, bucket):
    """ExpiresIn=1: valid now, refused once the second has passed (bounded poll, no fixed sleep)."""
    s3.put_object(Bucket=bucket, Key="short", Body=b"x")
    url = _presign(s3, "get_object", bucket, "short", expires=1)
    deadline = time.monotonic() + 5.0
    status = None
    while time.monotonic() < deadline:
        r = requests.get(url, timeout=HTTP_TIMEOUT)
        status = r.status_code
        if status == 403:
            assert_xml_error(r, "AccessDenied", 403)
            break
        assert status == 200, r.text
        time.sleep(0.1)
    assert status == 403, "presigned URL with ExpiresIn=1 still worked after 5 s"


@pytest.mark.cairn_only  # moto does not verify signatures
def test_presigned_url_tampered(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    s3.put_object(Bucket=bucket, Key="other", Body=b"other")
    url = _presign(s3, "get_object", bucket, "k")
    sig = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    r = requests.get(_with_query(url, **{"X-Amz-Signature": flipped}), timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "SignatureDoesNotMatch", 403)
    # Another key with the same signature.
    parts = urlsplit(url)
    other = urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0] + "/other"))
    assert_xml_error(requests.get(other, timeout=HTTP_TIMEOUT), "SignatureDoesNotMatch", 403)
    # A longer lifetime than was signed.
    r = requests.get(_with_query(url, **{"X-Amz-Expires": "86400"}), timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "SignatureDoesNotMatch", 403)
    # A presigned GET does not allow a PUT.
    r = requests.put(url, data=b"overwrite", timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "SignatureDoesNotMatch", 403)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"


@pytest.mark.cairn_only  # moto does not verify signatures
def test_presigned_url_with_unknown_key_id(s3, new_client, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bad = new_client(access_key="AKIDUNKNOWNUNKNOWN00")
    r = requests.get(_presign(bad, "get_object", bucket, "k"), timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "InvalidAccessKeyId", 403)


# ---------------------------------------------------------------------------------------------
# Header auth


@pytest.mark.cairn_only  # moto does not verify signatures
def test_wrong_secret_is_signature_does_not_match(s3, new_client, bucket):
    bad = new_client(secret_key="wrong-secret-key-wrong-secret-key-000000")
    with s3_error("SignatureDoesNotMatch", 403):
        bad.list_objects_v2(Bucket=bucket)
    with s3_error("SignatureDoesNotMatch", 403):
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_error("SignatureDoesNotMatch", 403):
        bad.list_buckets()
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@pytest.mark.cairn_only  # moto does not verify signatures
def test_unknown_access_key(new_client, bucket):
    bad = new_client(access_key="AKIDUNKNOWNUNKNOWN00")
    with s3_error("InvalidAccessKeyId", 403):
        bad.list_objects_v2(Bucket=bucket)
    with s3_error("InvalidAccessKeyId", 403):
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")


@pytest.mark.cairn_only  # moto lets anonymous requests in
def test_anonymous_requests_denied(target, s3, new_client, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"x")
    anon = new_client(
        config=Config(
            signature_version=botocore.UNSIGNED,
            region_name=REGION,
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
        )
    )
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=bucket, Key="private")
    with s3_error("AccessDenied", 403):
        anon.put_object(Bucket=bucket, Key="anon", Body=b"x")
    with s3_error("AccessDenied", 403):
        anon.list_objects_v2(Bucket=bucket)
    with s3_error("AccessDenied", 403):
        anon.list_buckets()
    with s3_error("AccessDenied", 403):
        anon.create_bucket(Bucket=bucket + "-anon")
    with s3_error("AccessDenied", 403):
        anon.delete_object(Bucket=bucket, Key="private")
    # Plain HTTP without any auth.
    r = requests.get(f"{target.endpoint}/{bucket}/private", timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "AccessDenied", 403)
    r = requests.get(f"{target.endpoint}/", timeout=HTTP_TIMEOUT)
    assert_xml_error(r, "AccessDenied", 403)
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"x"
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="anon")
    with s3_error(status=404):
        s3.head_bucket(Bucket=bucket + "-anon")
