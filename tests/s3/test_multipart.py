"""Multipart uploads: the low-level API (Create/UploadPart/ListParts/ListMultipartUploads/Complete/
Abort), the multipart ETag, boto3's managed transfers (upload_file/download_file with 5 MiB parts),
and the part rules: 5 MiB minimum (EntityTooSmall), equal sizes (R2), part numbers 1..10000,
InvalidPart, InvalidPartOrder, NoSuchUpload."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import List

import pytest
from boto3.s3.transfer import TransferConfig

from s3helpers import MIN_PART, MiB, multipart_etag, payload, s3_error, single_etag


class Upload:
    """One multipart upload; aborts itself on exit unless completed."""

    def __init__(self, s3, bucket: str, key: str, **create_kw) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create_kw)["UploadId"]
        assert self.upload_id
        self.completed = False

    def part(self, number: int, data: bytes) -> dict:
        r = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": r["ETag"]}

    def complete(self, parts: List[dict], **kw) -> dict:
        r = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}, **kw
        )
        self.completed = True
        return r

    def abort(self) -> None:
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        self.completed = True

    def __enter__(self) -> "Upload":
        return self

    def __exit__(self, *exc) -> None:
        if not self.completed:
            try:
                self.abort()
            except Exception:
                pass


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_multipart_low_level(s3, bucket):
    data = [payload(MIN_PART, seed=s) for s in (31, 32, 33)] + [payload(MiB, seed=34)]
    with Upload(s3, bucket, "big/object.bin", ContentType="application/x-big", Metadata={"kind": "mp"}) as up:
        uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
        assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big/object.bin", up.upload_id)]
        parts = []
        for n, d in enumerate(data, start=1):
            p = up.part(n, d)
            assert p["ETag"] == single_etag(d)
            parts.append(p)
        listed = s3.list_parts(Bucket=bucket, Key="big/object.bin", UploadId=up.upload_id)
        assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
            (n, single_etag(d), len(d)) for n, d in enumerate(data, start=1)
        ]
        assert listed["UploadId"] == up.upload_id
        # The object does not exist before Complete.
        with s3_error(status=404):
            s3.head_object(Bucket=bucket, Key="big/object.bin")
        done = up.complete(parts)
    assert done["ETag"] == multipart_etag(data)
    assert done["Key"] == "big/object.bin"
    assert done["Bucket"] == bucket
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    whole = b"".join(data)
    head = s3.head_object(Bucket=bucket, Key="big/object.bin")
    assert head["ContentLength"] == len(whole)
    assert head["ETag"] == multipart_etag(data)
    assert head["ContentType"] == "application/x-big"
    assert head["Metadata"] == {"kind": "mp"}
    got = s3.get_object(Bucket=bucket, Key="big/object.bin")
    assert got["ETag"] == multipart_etag(data)
    assert _sha(got["Body"].read()) == _sha(whole)
    # A range across the boundary of parts 1 and 2, and the tail in the last part.
    start, end = MIN_PART - 100, MIN_PART + 99
    rng = s3.get_object(Bucket=bucket, Key="big/object.bin", Range=f"bytes={start}-{end}")
    assert rng["Body"].read() == whole[start : end + 1]
    assert rng["ContentRange"] == f"bytes {start}-{end}/{len(whole)}"
    tail = s3.get_object(Bucket=bucket, Key="big/object.bin", Range="bytes=-10")
    assert tail["Body"].read() == whole[-10:]
    # A conditional read with the multipart ETag.
    cond = s3.head_object(Bucket=bucket, Key="big/object.bin", IfMatch=multipart_etag(data))
    assert cond["ContentLength"] == len(whole)


def test_single_part_multipart(s3, bucket):
    """A multipart upload of one (small) part is valid: the only part is the last part."""
    with Upload(s3, bucket, "one") as up:
        done = up.complete([up.part(1, b"tiny")])
    assert done["ETag"] == multipart_etag([b"tiny"])
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == b"tiny"


def test_gaps_in_part_numbers(s3, bucket):
    a, b = payload(MIN_PART, seed=35), payload(100, seed=36)
    with Upload(s3, bucket, "gaps") as up:
        parts = [up.part(2, a), up.part(7, b)]
        done = up.complete(parts)
    assert done["ETag"] == multipart_etag([a, b])
    assert s3.get_object(Bucket=bucket, Key="gaps")["Body"].read() == a + b


def test_reuploaded_part_replaces_previous(s3, bucket):
    first, second = payload(MIN_PART, seed=37), payload(MIN_PART, seed=38)
    with Upload(s3, bucket, "re") as up:
        old = up.part(1, first)
        new = up.part(1, second)
        last = up.part(2, b"end")
        listed = s3.list_parts(Bucket=bucket, Key="re", UploadId=up.upload_id)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, new["ETag"]), (2, last["ETag"])]
        with s3_error("InvalidPart", 400):
            up.complete([old, last])
        up.complete([new, last])
    assert s3.get_object(Bucket=bucket, Key="re")["Body"].read() == second + b"end"


def test_overwrite_between_single_and_multipart(s3, bucket):
    s3.put_object(Bucket=bucket, Key="flip", Body=b"single")
    with Upload(s3, bucket, "flip") as up:
        up.complete([up.part(1, b"multi")])
    got = s3.get_object(Bucket=bucket, Key="flip")
    assert got["Body"].read() == b"multi"
    assert got["ETag"] == multipart_etag([b"multi"])
    s3.put_object(Bucket=bucket, Key="flip", Body=b"single again")
    got = s3.get_object(Bucket=bucket, Key="flip")
    assert got["Body"].read() == b"single again"
    assert got["ETag"] == single_etag(b"single again")


def test_abort(s3, bucket):
    up = Upload(s3, bucket, "aborted")
    up.part(1, payload(MIN_PART, seed=39))
    up.abort()
    with s3_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="aborted", UploadId=up.upload_id)
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="aborted")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


BOGUS_UPLOAD_ID = "bm90LWEtcmVhbC11cGxvYWQtaWQ"


def test_no_such_upload(s3, bucket):
    bogus = BOGUS_UPLOAD_ID
    with s3_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="k", UploadId=bogus)
    with s3_error("NoSuchUpload", 404):
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=bogus)


def test_completed_upload_is_gone(s3, bucket):
    with Upload(s3, bucket, "done") as up:
        part = up.part(1, b"x")
        up.complete([part])
    with s3_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="done", UploadId=up.upload_id)
    assert s3.get_object(Bucket=bucket, Key="done")["Body"].read() == b"x"


@pytest.mark.cairn_only  # moto answers 500 to UploadPart/Complete for an unknown or finished upload
def test_upload_part_to_finished_or_unknown_upload(s3, bucket):
    with s3_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=BOGUS_UPLOAD_ID, PartNumber=1, Body=b"x")
    with s3_error("NoSuchUpload", 404):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=BOGUS_UPLOAD_ID,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": single_etag(b"x")}]},
        )
    aborted = Upload(s3, bucket, "aborted")
    aborted.part(1, b"x")
    aborted.abort()
    with s3_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key="aborted", UploadId=aborted.upload_id, PartNumber=2, Body=b"x")
    with Upload(s3, bucket, "done") as done:
        done.complete([done.part(1, b"x")])
    with s3_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key="done", UploadId=done.upload_id, PartNumber=2, Body=b"y")
    # The upload id belongs to its key.
    with Upload(s3, bucket, "mine") as mine:
        with s3_error("NoSuchUpload", 404):
            s3.upload_part(Bucket=bucket, Key="other", UploadId=mine.upload_id, PartNumber=1, Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["done"]


def test_list_multipart_uploads(s3, bucket):
    ups = [Upload(s3, bucket, k) for k in ("b/2", "a/1", "b/1", "b/1")]
    try:
        listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
        assert sorted((u["Key"], u["UploadId"]) for u in listed) == sorted((u.key, u.upload_id) for u in ups)
        assert all(u["Initiated"] is not None for u in listed)
        prefixed = s3.list_multipart_uploads(Bucket=bucket, Prefix="b/")["Uploads"]
        assert sorted(u["Key"] for u in prefixed) == ["b/1", "b/1", "b/2"]
    finally:
        for u in ups:
            u.abort()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.cairn_only  # moto lists uploads in creation order
def test_list_multipart_uploads_key_order(s3, bucket):
    ups = [Upload(s3, bucket, k) for k in ("b/2", "a/1", "b/1", "c")]
    try:
        listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
        assert [u["Key"] for u in listed] == ["a/1", "b/1", "b/2", "c"]
    finally:
        for u in ups:
            u.abort()


def test_entity_too_small(s3, bucket):
    with Upload(s3, bucket, "small") as up:
        parts = [up.part(1, payload(MiB, seed=40)), up.part(2, payload(MiB, seed=41))]
        with s3_error("EntityTooSmall", 400):
            up.complete(parts)
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="small")


def test_invalid_part(s3, bucket):
    a = payload(MIN_PART, seed=42)
    with Upload(s3, bucket, "ip") as up:
        p1 = up.part(1, a)
        p2 = up.part(2, b"last")
        with s3_error("InvalidPart", 400):
            up.complete([p1, {"PartNumber": 2, "ETag": single_etag(b"not what was uploaded")}])
        with s3_error("InvalidPart", 400):
            up.complete([p1, {"PartNumber": 3, "ETag": single_etag(b"never uploaded")}])
        # The upload is still usable after a refused Complete.
        done = up.complete([p1, p2])
    assert done["ETag"] == multipart_etag([a, b"last"])


@pytest.mark.cairn_only  # moto accepts parts listed out of order
def test_invalid_part_order(s3, bucket):
    a, b = payload(MIN_PART, seed=43), payload(MIN_PART, seed=44)
    with Upload(s3, bucket, "order") as up:
        p1, p2 = up.part(1, a), up.part(2, b)
        with s3_error("InvalidPartOrder", 400):
            up.complete([p2, p1])
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="order")


@pytest.mark.parametrize(
    "number",
    [pytest.param(0, marks=pytest.mark.cairn_only), 10001],  # moto: part 0 gives 404 NoSuchUpload
)
def test_part_number_out_of_range(s3, bucket, number):
    with Upload(s3, bucket, "pn") as up:
        with s3_error(status=400):
            s3.upload_part(Bucket=bucket, Key="pn", UploadId=up.upload_id, PartNumber=number, Body=b"x")


def test_part_number_10000_is_valid(s3, bucket):
    with Upload(s3, bucket, "pn") as up:
        done = up.complete([up.part(10000, b"last part")])
    assert done["ETag"] == multipart_etag([b"last part"])


@pytest.mark.cairn_only  # R2: every part but the last has the same size; AWS/moto allow any >= 5 MiB
def test_unequal_part_sizes_rejected(s3, bucket):
    with Upload(s3, bucket, "unequal") as up:
        parts = [
            up.part(1, payload(MIN_PART + 1024, seed=45)),
            up.part(2, payload(MIN_PART, seed=46)),
            up.part(3, b"tail"),
        ]
        with s3_error(status=400) as err:
            up.complete(parts)
        assert err.value.response["Error"]["Code"] in ("InvalidPart", "EntityTooSmall")
    with s3_error(status=404):
        s3.head_object(Bucket=bucket, Key="unequal")


def test_equal_part_sizes_accepted(s3, bucket):
    """The positive side of R2's rule (valid on any S3): equal parts above 5 MiB, short last part."""
    data = [payload(MIN_PART + 1024, seed=47), payload(MIN_PART + 1024, seed=48), payload(10, seed=49)]
    with Upload(s3, bucket, "equal") as up:
        done = up.complete([up.part(n, d) for n, d in enumerate(data, start=1)])
    assert done["ETag"] == multipart_etag(data)


# ---------------------------------------------------------------------------------------------
# Managed transfers


def _transfer_config() -> TransferConfig:
    return TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def test_upload_file_download_file(s3, bucket, tmp_path: Path):
    data = payload(3 * MIN_PART + MiB, seed=50)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    s3.upload_file(
        str(src), bucket, "managed/file.bin", Config=_transfer_config(), ExtraArgs={"Metadata": {"via": "upload_file"}}
    )
    head = s3.head_object(Bucket=bucket, Key="managed/file.bin")
    assert head["ContentLength"] == len(data)
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    assert len(chunks) == 4
    assert head["ETag"] == multipart_etag(chunks)
    assert head["Metadata"] == {"via": "upload_file"}

    dst = tmp_path / "dst.bin"
    s3.download_file(bucket, "managed/file.bin", str(dst), Config=_transfer_config())  # ranged GETs
    assert dst.stat().st_size == len(data)
    assert _file_sha256(dst) == _file_sha256(src)


def test_upload_fileobj_below_threshold(s3, bucket, tmp_path: Path):
    data = payload(MiB, seed=51)
    s3.upload_fileobj(io.BytesIO(data), bucket, "small.bin", Config=_transfer_config())
    assert s3.head_object(Bucket=bucket, Key="small.bin")["ETag"] == single_etag(data)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "small.bin", out, Config=_transfer_config())
    assert out.getvalue() == data

