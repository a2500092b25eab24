"""Shared helpers for the Cloudflare SDK suite (imported by conftest and the tests)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import types
import uuid
from typing import Any, Iterable, Iterator, List, Optional, Tuple

import cloudflare
import httpx
import pytest

# Cairn ignores the account id in the path; Cloudflare needs one, so the SDK requires it.
ACCOUNT_ID = "cairn-test"
# Cairn refuses tokens shorter than 16 characters.
TOKEN = os.environ.get("CAIRN_TEST_TOKEN", "test-token-for-cloudflare-sdk")

POLL_TIMEOUT_S = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def utf8_sorted(names: Iterable[str]) -> List[str]:
    return sorted(names, key=lambda s: s.encode("utf-8"))


@contextlib.contextmanager
def cf_error(
    status: Optional[int] = None,
    *,
    code: Optional[int] = None,
    contains: Optional[str] = None,
    client_error: bool = False,
) -> Iterator[types.SimpleNamespace]:
    """Expects the block to raise `cloudflare.APIStatusError` carrying a Cloudflare error envelope.

    `status`: exact HTTP status; `client_error`: any 4xx; `code`: one of the `errors[].code`;
    `contains`: a substring of one of the `errors[].message`. Yields a holder whose `.value` is the
    exception once the block has raised.
    """
    holder = types.SimpleNamespace(value=None)
    with pytest.raises(cloudflare.APIStatusError) as info:
        yield holder
    e = info.value
    holder.value = e
    detail = f"HTTP {e.status_code}, body {e.body!r}"
    if status is not None:
        assert e.status_code == status, detail
    if client_error:
        assert 400 <= e.status_code < 500, detail
    body = e.body
    assert isinstance(body, dict), f"error body is not a JSON object: {detail}"
    assert body.get("success") is False, detail
    assert isinstance(body.get("errors"), list) and body["errors"], detail
    assert isinstance(body.get("messages"), list), detail
    assert body.get("result") is None, detail
    for err in e.errors:
        assert isinstance(err.code, int) and isinstance(err.message, str) and err.message, detail
    if code is not None:
        assert code in [err.code for err in e.errors], detail
    if contains is not None:
        assert any(contains in (err.message or "") for err in e.errors), detail


# ---------------------------------------------------------------------------------------------
# KV


def put(client: cloudflare.Cloudflare, ns: str, key: str, value: bytes, **kw: Any) -> None:
    client.kv.namespaces.values.update(key, account_id=ACCOUNT_ID, namespace_id=ns, value=value, **kw)


def get(client: cloudflare.Cloudflare, ns: str, key: str) -> bytes:
    return client.kv.namespaces.values.get(key, account_id=ACCOUNT_ID, namespace_id=ns).read()


def list_all_keys(client: cloudflare.Cloudflare, ns: str, **kw: Any) -> list:
    """Every key, following cursors through the SDK's auto-pagination."""
    return list(client.kv.namespaces.keys.list(ns, account_id=ACCOUNT_ID, **kw))


# ---------------------------------------------------------------------------------------------
# D1


def query(client: cloudflare.Cloudflare, db: str, sql: str, params: Optional[list] = None) -> list:
    """The per-statement results of one /query call."""
    kw: dict = {"sql": sql}
    if params is not None:
        kw["params"] = params
    return client.d1.database.query(db, account_id=ACCOUNT_ID, **kw).result


def rows(client: cloudflare.Cloudflare, db: str, sql: str, params: Optional[list] = None) -> list:
    """The rows (dicts) of the last statement."""
    results = query(client, db, sql, params)
    assert results, "no statement results"
    assert results[-1].success is True
    return results[-1].results


def run_export(
    client: cloudflare.Cloudflare, db: str, dump_options: Optional[dict] = None
) -> Tuple[Any, str]:
    """The export flow wrangler uses: POST export, poll with at_bookmark until complete, download
    the signed URL (plain GET, no credentials). Returns (final response, SQL text)."""
    kw: dict = {}
    if dump_options is not None:
        kw["dump_options"] = dump_options
    resp = client.d1.database.export(db, account_id=ACCOUNT_ID, output_format="polling", **kw)
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        assert resp.success is not False, f"export failed: {resp.error} {resp.messages}"
        if resp.status == "complete":
            break
        assert resp.status != "error", f"export failed: {resp.error} {resp.messages}"
        assert resp.at_bookmark, f"an unfinished export must give at_bookmark to poll with: {resp}"
        assert time.monotonic() < deadline, "export did not complete in time"
        time.sleep(0.1)
        resp = client.d1.database.export(
            db, account_id=ACCOUNT_ID, output_format="polling", current_bookmark=resp.at_bookmark, **kw
        )
    assert resp.result is not None and resp.result.signed_url, f"complete export without signed_url: {resp}"
    assert resp.result.filename, resp
    download = httpx.get(resp.result.signed_url, timeout=30)
    assert download.status_code == 200, f"download {resp.result.signed_url}: {download.status_code} {download.text}"
    return resp, download.text


def run_import(client: cloudflare.Cloudflare, db: str, sql_text: str) -> Any:
    """The import flow wrangler uses (`d1 execute --remote --file`): init with the md5 etag, PUT the
    file to upload_url (expecting 200 and the md5 as ETag), ingest, poll until complete."""
    data = sql_text.encode("utf-8")
    etag = hashlib.md5(data).hexdigest()
    init = client.d1.database.import_(db, account_id=ACCOUNT_ID, action="init", etag=etag)
    assert init.success is not False, f"import init failed: {init.error}"
    if init.upload_url:
        assert init.filename, init
        up = httpx.put(init.upload_url, content=data, timeout=60)
        assert up.status_code == 200, f"upload: {up.status_code} {up.text}"
        assert up.headers.get("etag", "").strip('"') == etag, f"upload ETag {up.headers.get('etag')!r} != md5 {etag}"
        resp = client.d1.database.import_(db, account_id=ACCOUNT_ID, action="ingest", etag=etag, filename=init.filename)
    else:
        resp = init  # the file was already uploaded: init started the import
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        assert resp.success is not False, f"import failed: {resp.error} {resp.messages}"
        if resp.status == "complete":
            return resp
        assert resp.status != "error", f"import failed: {resp.error} {resp.messages}"
        assert resp.at_bookmark, f"an unfinished import must give at_bookmark to poll with: {resp}"
        assert time.monotonic() < deadline, "import did not complete in time"
        time.sleep(0.1)
        resp = client.d1.database.import_(db, account_id=ACCOUNT_ID, action="poll", current_bookmark=resp.at_bookmark)
