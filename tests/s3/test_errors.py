"""Malformed requests: broken XML bodies for DeleteObjects and CompleteMultipartUpload
(MalformedXML), sent both through boto3 with the serialized body swapped by an event hook and as
raw SigV4-signed requests, and the shape of S3 XML error documents."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from s3helpers import assert_xml_error, list_all_keys, md5_b64, s3_error, signed_request

BROKEN_BODIES = [
    b"<Delete><Object><Key>a</Key></Object>",  # unclosed root
    b"this is not xml at all",
    b"<Delete><Object><Key>a</Key></Obj></Delete>",  # mismatched tag
]


@pytest.fixture
def corrupting_s3(target):
    """A boto3 client whose next request body is replaced by `.next_body` after serialization (the
    checksum and signature are then computed over the broken body, so only the XML is wrong)."""
    c = target.client()
    c.next_body = None

    def swap(params, **_):
        if c.next_body is not None:
            params["body"] = c.next_body
            c.next_body = None

    c.meta.events.register("before-call.s3.DeleteObjects", swap)
    c.meta.events.register("before-call.s3.CompleteMultipartUpload", swap)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.cairn_only  # moto answers 500 for an unparsable DeleteObjects body
@pytest.mark.parametrize("body", BROKEN_BODIES)
def test_delete_objects_malformed_xml(corrupting_s3, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="a", Body=b"keep me")
    corrupting_s3.next_body = body
    with s3_error("MalformedXML", 400):
        corrupting_s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}]})
    assert list_all_keys(s3, bucket) == ["a"]


@pytest.mark.cairn_only  # moto answers 500 for an unparsable CompleteMultipartUpload body
@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"garbage",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
    ],
)
def test_complete_multipart_malformed_xml(corrupting_s3, s3, bucket, body):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    try:
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
        corrupting_s3.next_body = body
        with s3_error("MalformedXML", 400):
            corrupting_s3.complete_multipart_upload(
                Bucket=bucket,
                Key="mp",
                UploadId=up["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            )
        with s3_error(status=404):
            s3.head_object(Bucket=bucket, Key="mp")
        # The upload survives a malformed Complete.
        parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=up["UploadId"])["Parts"]
        assert [p["PartNumber"] for p in parts] == [1]
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"])


@pytest.mark.cairn_only  # moto answers 500 for unparsable XML bodies
def test_raw_signed_malformed_xml(target, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    creds = dict(access_key=target.access_key, secret_key=target.secret_key)
    r = signed_request(
        target.endpoint,
        "POST",
        f"/{bucket}",
        params={"delete": ""},
        body=b"<Delete><Object><Key>a</Key>",
        headers={"Content-MD5": md5_b64(b"<Delete><Object><Key>a</Key>"), "Content-Type": "application/xml"},
        **creds,
    )
    assert_xml_error(r, "MalformedXML", 400)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    try:
        r = signed_request(
            target.endpoint,
            "POST",
            f"/{bucket}/mp",
            params={"uploadId": up["UploadId"]},
            body=b"<CompleteMultipartUpload><Part>",
            **creds,
        )
        assert_xml_error(r, "MalformedXML", 400)
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"])
    assert list_all_keys(s3, bucket) == ["a"]


DELETE_BODY = "<Delete><Object><Key>raw key é</Key></Object></Delete>".encode()


def test_raw_signed_request_works(target, s3, bucket):
    """The raw signing helper itself (so the MalformedXML tests fail only for the XML)."""
    s3.put_object(Bucket=bucket, Key="raw key é", Body=b"raw")
    r = signed_request(
        target.endpoint,
        "GET",
        f"/{bucket}/{quote('raw key é')}",
        access_key=target.access_key,
        secret_key=target.secret_key,
    )
    assert r.status_code == 200, r.text
    assert r.content == b"raw"
    r = signed_request(
        target.endpoint,
        "POST",
        f"/{bucket}",
        params={"delete": ""},
        body=DELETE_BODY,
        headers={"Content-Type": "application/xml", "Content-MD5": md5_b64(DELETE_BODY)},
        access_key=target.access_key,
        secret_key=target.secret_key,
    )
    assert r.status_code == 200, r.text
    assert list_all_keys(s3, bucket) == []


def test_error_document_shape(target, s3, bucket):
    r = signed_request(
        target.endpoint,
        "GET",
        f"/{bucket}/missing-key",
        access_key=target.access_key,
        secret_key=target.secret_key,
    )
    assert_xml_error(r, "NoSuchKey", 404)
    assert "<Message>" in r.text
    assert r.headers.get("Content-Type", "").startswith(("application/xml", "text/xml"))
    r = signed_request(
        target.endpoint,
        "GET",
        f"/{bucket}-missing/",
        access_key=target.access_key,
        secret_key=target.secret_key,
    )
    assert_xml_error(r, "NoSuchBucket", 404)
