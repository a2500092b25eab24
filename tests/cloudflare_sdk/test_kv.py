"""Workers KV through the official Cloudflare Python SDK, as a user migrating from Cloudflare would."""

from __future__ import annotations

import base64
import json
import time
import warnings

import cloudflare
import pytest

from cfhelpers import ACCOUNT_ID, cf_error, get, list_all_keys, put, unique, utf8_sorted

A = ACCOUNT_ID


# ---------------------------------------------------------------------------------------------
# Namespaces


def test_namespace_create_returns_id_and_title(client):
    title = unique("create")
    ns = client.kv.namespaces.create(account_id=A, title=title)
    try:
        assert ns is not None
        assert isinstance(ns.id, str) and ns.id
        assert ns.title == title
        got = client.kv.namespaces.get(ns.id, account_id=A)
        assert got is not None and got.id == ns.id and got.title == title
    finally:
        client.kv.namespaces.delete(ns.id, account_id=A)


def test_namespace_list_is_paginated_and_includes_created(client):
    prefix = unique("list")
    created = {}
    try:
        for i in range(6):
            ns = client.kv.namespaces.create(account_id=A, title=f"{prefix}-{i}")
            created[ns.id] = ns.title
        first = client.kv.namespaces.list(account_id=A, per_page=5)
        assert 1 <= len(first.result) <= 5
        assert first.result_info is not None
        assert first.result_info.page == 1
        assert first.result_info.per_page == 5
        assert first.result_info.count == len(first.result)
        assert first.result_info.total_count >= 6
        assert first.has_next_page()

        # The SDK's auto-pagination asks page=2, 3, ... until a page comes back empty.
        seen = [(ns.id, ns.title) for ns in client.kv.namespaces.list(account_id=A, per_page=5)]
        ids = [i for i, _ in seen]
        assert len(ids) == len(set(ids)), "a namespace appeared on two pages"
        assert set(created.items()) <= set(seen)
        assert len(seen) == first.result_info.total_count

        second = client.kv.namespaces.list(account_id=A, page=2, per_page=5)
        assert second.result_info.page == 2
        assert not {n.id for n in second.result} & {n.id for n in first.result}
    finally:
        for ns_id in created:
            client.kv.namespaces.delete(ns_id, account_id=A)


def test_namespace_list_past_the_end_is_empty(client, kv_ns):
    page = client.kv.namespaces.list(account_id=A, page=100000, per_page=100)
    assert page.result == []
    assert not page.has_next_page()


def test_namespace_list_order_by_title(client):
    prefix = unique("order")
    titles = [f"{prefix}-c", f"{prefix}-a", f"{prefix}-b"]
    ids = [client.kv.namespaces.create(account_id=A, title=t).id for t in titles]
    try:
        asc = [
            n.title
            for n in client.kv.namespaces.list(account_id=A, order="title", direction="asc", per_page=100)
            if n.title.startswith(prefix)
        ]
        desc = [
            n.title
            for n in client.kv.namespaces.list(account_id=A, order="title", direction="desc", per_page=100)
            if n.title.startswith(prefix)
        ]
        assert asc == sorted(titles)
        assert desc == sorted(titles, reverse=True)
    finally:
        for i in ids:
            client.kv.namespaces.delete(i, account_id=A)


def test_namespace_get(client, kv_ns):
    ns = client.kv.namespaces.get(kv_ns, account_id=A)
    assert ns is not None
    assert ns.id == kv_ns
    assert ns.title.startswith("kv-")


def test_namespace_get_unknown_is_not_found(client):
    with cf_error(404, code=10013):
        client.kv.namespaces.get("0123456789abcdef0123456789abcdef", account_id=A)


def test_namespace_update_renames(client, kv_ns):
    new_title = unique("renamed")
    ns = client.kv.namespaces.update(kv_ns, account_id=A, title=new_title)
    assert ns.id == kv_ns
    assert ns.title == new_title
    assert client.kv.namespaces.get(kv_ns, account_id=A).title == new_title
    listed = {n.id: n.title for n in client.kv.namespaces.list(account_id=A, per_page=100)}
    assert listed[kv_ns] == new_title


def test_namespace_rename_keeps_data(client, kv_ns):
    put(client, kv_ns, "k", b"v")
    client.kv.namespaces.update(kv_ns, account_id=A, title=unique("renamed"))
    assert get(client, kv_ns, "k") == b"v"


def test_namespace_delete_then_get_is_not_found(client):
    ns = client.kv.namespaces.create(account_id=A, title=unique("del"))
    put(client, ns.id, "k", b"v")
    client.kv.namespaces.delete(ns.id, account_id=A)
    with cf_error(404, code=10013):
        client.kv.namespaces.get(ns.id, account_id=A)
    assert ns.id not in {n.id for n in client.kv.namespaces.list(account_id=A, per_page=100)}
    with cf_error(404):
        client.kv.namespaces.values.get("k", account_id=A, namespace_id=ns.id)
    with cf_error(404, code=10013):
        client.kv.namespaces.delete(ns.id, account_id=A)


def test_namespace_duplicate_title_is_rejected(client, kv_ns):
    title = client.kv.namespaces.get(kv_ns, account_id=A).title
    with cf_error(400, code=10014) as err:
        client.kv.namespaces.create(account_id=A, title=title)
    assert isinstance(err.value, cloudflare.BadRequestError)
    same = [n for n in client.kv.namespaces.list(account_id=A, per_page=100) if n.title == title]
    assert len(same) == 1


def test_namespace_title_reusable_after_delete(client):
    title = unique("reuse")
    first = client.kv.namespaces.create(account_id=A, title=title)
    client.kv.namespaces.delete(first.id, account_id=A)
    second = client.kv.namespaces.create(account_id=A, title=title)
    try:
        assert second.id != first.id
        with cf_error(404):  # the old namespace's data did not come back
            client.kv.namespaces.values.get("k", account_id=A, namespace_id=second.id)
    finally:
        client.kv.namespaces.delete(second.id, account_id=A)


def test_wrong_token_is_rejected(cairn_server):
    bad = cloudflare.Cloudflare(
        api_token="not-the-right-token-at-all", base_url=f"{cairn_server.url}/client/v4", max_retries=0
    )
    with cf_error(401) as err:
        bad.kv.namespaces.list(account_id=A)
    assert isinstance(err.value, cloudflare.AuthenticationError)


def test_error_envelope_shape(client, kv_ns):
    with cf_error(404, code=10009) as err:
        client.kv.namespaces.values.get("missing", account_id=A, namespace_id=kv_ns)
    e = err.value
    assert isinstance(e, cloudflare.NotFoundError)
    assert e.response.headers["content-type"].startswith("application/json")
    assert set(e.body) >= {"success", "errors", "messages", "result"}


# ---------------------------------------------------------------------------------------------
# Values


def test_value_put_get_roundtrip(client, kv_ns):
    client.kv.namespaces.values.update("greeting", account_id=A, namespace_id=kv_ns, value=b"hello, world")
    got = client.kv.namespaces.values.get("greeting", account_id=A, namespace_id=kv_ns)
    assert got.read() == b"hello, world"
    assert got.text() == "hello, world"


def test_value_binary_roundtrip(client, kv_ns):
    data = bytes(range(256)) * 3
    put(client, kv_ns, "bin", data)
    assert get(client, kv_ns, "bin") == data


def test_value_large_roundtrip(client, kv_ns):
    data = bytes((i * 7919) % 251 for i in range(3 * 1024 * 1024 + 17))
    put(client, kv_ns, "large", data)
    assert get(client, kv_ns, "large") == data


def test_value_file_tuple_with_content_type(client, kv_ns):
    body = json.dumps({"a": [1, 2, 3]}).encode()
    put(client, kv_ns, "doc.json", ("doc.json", body, "application/json"))
    assert get(client, kv_ns, "doc.json") == body


def test_value_empty_is_allowed(client, kv_ns):
    put(client, kv_ns, "empty", b"")
    assert get(client, kv_ns, "empty") == b""
    assert [k.name for k in list_all_keys(client, kv_ns)] == ["empty"]


def test_value_overwrite_replaces_value_and_metadata(client, kv_ns):
    put(client, kv_ns, "k", b"one", metadata={"v": 1}, expiration_ttl=3600)
    put(client, kv_ns, "k", b"two")
    assert get(client, kv_ns, "k") == b"two"
    assert client.kv.namespaces.metadata.get("k", account_id=A, namespace_id=kv_ns) is None
    (entry,) = list_all_keys(client, kv_ns)
    assert entry.name == "k"
    assert entry.expiration is None
    assert entry.metadata is None


def test_value_missing_key_is_not_found(client, kv_ns):
    with cf_error(404, code=10009) as err:
        client.kv.namespaces.values.get("nope", account_id=A, namespace_id=kv_ns)
    assert isinstance(err.value, cloudflare.NotFoundError)


def test_value_put_into_unknown_namespace_is_not_found(client):
    with cf_error(404, code=10013):
        put(client, "0123456789abcdef0123456789abcdef", "k", b"v")


def test_value_delete(client, kv_ns):
    put(client, kv_ns, "doomed", b"x")
    put(client, kv_ns, "kept", b"y")
    client.kv.namespaces.values.delete("doomed", account_id=A, namespace_id=kv_ns)
    with cf_error(404, code=10009):
        get(client, kv_ns, "doomed")
    with cf_error(404, code=10009):
        client.kv.namespaces.metadata.get("doomed", account_id=A, namespace_id=kv_ns)
    assert get(client, kv_ns, "kept") == b"y"
    assert [k.name for k in list_all_keys(client, kv_ns)] == ["kept"]


def test_value_delete_missing_key_succeeds(client, kv_ns):
    # Cloudflare's delete is idempotent: deleting a key that does not exist is not an error.
    client.kv.namespaces.values.delete("never-written", account_id=A, namespace_id=kv_ns)


def test_value_metadata(client, kv_ns):
    meta = {"owner": "zoë", "tags": ["a", "b"], "n": 3, "nested": {"ok": True, "none": None}}
    put(client, kv_ns, "with-meta", b"payload", metadata=meta)
    assert client.kv.namespaces.metadata.get("with-meta", account_id=A, namespace_id=kv_ns) == meta
    assert get(client, kv_ns, "with-meta") == b"payload"
    (entry,) = list_all_keys(client, kv_ns)
    assert entry.name == "with-meta"
    assert entry.metadata == meta


def test_value_metadata_numeric(client, kv_ns):
    # A scalar is sent as a text/plain part ("42"), which is valid JSON.
    put(client, kv_ns, "num-meta", b"v", metadata=42)
    assert client.kv.namespaces.metadata.get("num-meta", account_id=A, namespace_id=kv_ns) == 42


def test_value_without_metadata_has_none(client, kv_ns):
    put(client, kv_ns, "plain", b"v")
    assert client.kv.namespaces.metadata.get("plain", account_id=A, namespace_id=kv_ns) is None


def test_value_metadata_size_limit(client, kv_ns):
    # 1009 bytes serialized by the SDK (json.dumps with spaces), under any serializer: accepted.
    ok = {"x": "a" * 1000}
    put(client, kv_ns, "meta-ok", b"v", metadata=ok)
    assert client.kv.namespaces.metadata.get("meta-ok", account_id=A, namespace_id=kv_ns) == ok
    with cf_error(413):
        put(client, kv_ns, "meta-big", b"v", metadata={"x": "a" * 1100})
    with cf_error(404, code=10009):
        get(client, kv_ns, "meta-big")


def test_value_expiration_ttl(client, kv_ns):
    before = int(time.time())
    put(client, kv_ns, "ttl", b"v", expiration_ttl=3600)
    after = int(time.time())
    got = client.kv.namespaces.values.get("ttl", account_id=A, namespace_id=kv_ns)
    assert got.read() == b"v"
    assert before + 3600 <= int(got.headers["expiration"]) <= after + 3600 + 1
    (entry,) = list_all_keys(client, kv_ns)
    assert before + 3600 <= entry.expiration <= after + 3600 + 1


def test_value_expiration_ttl_minimum(client, kv_ns):
    put(client, kv_ns, "ttl60", b"v", expiration_ttl=60)
    assert get(client, kv_ns, "ttl60") == b"v"
    with cf_error(400, contains="Invalid expiration_ttl of 30. Expiration TTL must be at least 60.") as err:
        put(client, kv_ns, "ttl30", b"v", expiration_ttl=30)
    assert isinstance(err.value, cloudflare.BadRequestError)
    with cf_error(404, code=10009):
        get(client, kv_ns, "ttl30")


def test_value_expiration_absolute(client, kv_ns):
    at = int(time.time()) + 7200
    put(client, kv_ns, "abs", b"v", expiration=at)
    got = client.kv.namespaces.values.get("abs", account_id=A, namespace_id=kv_ns)
    assert got.read() == b"v"
    assert int(got.headers["expiration"]) == at
    (entry,) = list_all_keys(client, kv_ns)
    assert entry.expiration == at


def test_value_expiration_absolute_too_soon(client, kv_ns):
    now = int(time.time())
    with cf_error(400):
        put(client, kv_ns, "soon", b"v", expiration=now + 10)
    with cf_error(400):
        put(client, kv_ns, "past", b"v", expiration=now - 3600)
    assert list_all_keys(client, kv_ns) == []


def test_value_ttl_takes_precedence_over_expiration(client, kv_ns):
    before = int(time.time())
    put(client, kv_ns, "both", b"v", expiration=before + 100000, expiration_ttl=600)
    (entry,) = list_all_keys(client, kv_ns)
    assert before + 600 <= entry.expiration <= int(time.time()) + 600 + 1


def test_value_without_expiration_has_no_header(client, kv_ns):
    put(client, kv_ns, "forever", b"v")
    got = client.kv.namespaces.values.get("forever", account_id=A, namespace_id=kv_ns)
    assert "expiration" not in got.headers
    (entry,) = list_all_keys(client, kv_ns)
    assert entry.expiration is None


SPECIAL_KEYS = [
    "with space",
    "a/b/c",
    "/leading-slash",
    "trailing/",
    "ünïcødé-ключ-鍵-🔑",
    "100%",
    "%2F",
    "%",
    "q?x=1&y=2#frag",
    "plus+sign",
    "semi;colon:at@bang!dollar$",
    "quote'\"",
    "back\\slash",
    "...",
    "a..b",
]


def test_special_key_names_roundtrip(client, kv_ns):
    for key in SPECIAL_KEYS:
        put(client, kv_ns, key, key.encode("utf-8"), metadata={"key": key})
    for key in SPECIAL_KEYS:
        assert get(client, kv_ns, key) == key.encode("utf-8"), key
        assert client.kv.namespaces.metadata.get(key, account_id=A, namespace_id=kv_ns) == {"key": key}
    listed = list_all_keys(client, kv_ns)
    assert [k.name for k in listed] == utf8_sorted(SPECIAL_KEYS)
    assert all(k.metadata == {"key": k.name} for k in listed)
    for key in SPECIAL_KEYS:
        client.kv.namespaces.values.delete(key, account_id=A, namespace_id=kv_ns)
    assert list_all_keys(client, kv_ns) == []


def test_percent_encoded_looking_keys_are_distinct(client, kv_ns):
    put(client, kv_ns, "a/b", b"slash")
    put(client, kv_ns, "a%2Fb", b"literal")
    assert get(client, kv_ns, "a/b") == b"slash"
    assert get(client, kv_ns, "a%2Fb") == b"literal"


def test_key_length_limit(client, kv_ns):
    put(client, kv_ns, "k" * 512, b"ascii-512")
    assert get(client, kv_ns, "k" * 512) == b"ascii-512"
    put(client, kv_ns, "é" * 256, b"utf8-512")  # 512 bytes
    assert get(client, kv_ns, "é" * 256) == b"utf8-512"
    with cf_error(414):
        put(client, kv_ns, "k" * 513, b"v")
    with cf_error(414):
        put(client, kv_ns, "é" * 257, b"v")  # 257 characters, 514 bytes
    assert sorted(k.name for k in list_all_keys(client, kv_ns)) == sorted(["k" * 512, "é" * 256])


# ---------------------------------------------------------------------------------------------
# keys.list


def test_keys_list_prefix(client, kv_ns):
    for key in ["user:1", "user:2", "users", "admin:1", "use"]:
        put(client, kv_ns, key, b"v")
    assert [k.name for k in list_all_keys(client, kv_ns, prefix="user:")] == ["user:1", "user:2"]
    assert [k.name for k in list_all_keys(client, kv_ns, prefix="user")] == ["user:1", "user:2", "users"]
    assert [k.name for k in list_all_keys(client, kv_ns, prefix="use")] == ["use", "user:1", "user:2", "users"]
    assert list_all_keys(client, kv_ns, prefix="zzz") == []
    assert [k.name for k in list_all_keys(client, kv_ns)] == ["admin:1", "use", "user:1", "user:2", "users"]


def test_keys_list_limit(client, kv_ns):
    names = [f"k{i:02d}" for i in range(25)]
    client.kv.namespaces.bulk_update(kv_ns, account_id=A, body=[{"key": n, "value": n} for n in names])
    page = client.kv.namespaces.keys.list(kv_ns, account_id=A, limit=10)
    assert [k.name for k in page.result] == names[:10]
    assert page.result_info.count == 10
    assert page.result_info.cursor
    with cf_error(400):
        client.kv.namespaces.keys.list(kv_ns, account_id=A, limit=1001)
    full = client.kv.namespaces.keys.list(kv_ns, account_id=A, limit=1000)
    assert [k.name for k in full.result] == names
    assert not full.result_info.cursor
    assert not full.has_next_page()


def _paging_names():
    names = [f"key-{i:05d}" for i in range(2400)]
    # Order traps: upper case before lower case, and UTF-8 byte order differs from UTF-16 order
    # for characters beyond the BMP (U+1F600 sorts after U+F900 in UTF-8, before it in UTF-16).
    names += [f"Key-{i:03d}" for i in range(40)]
    names += [f"key-\uf900-{i:02d}" for i in range(20)]
    names += [f"key-\U0001f600-{i:02d}" for i in range(20)]
    names += [f"key-é-{i:02d}" for i in range(20)]
    assert len(names) == 2500
    return names


def test_keys_list_cursor_paging_2500_keys(client, kv_ns):
    names = _paging_names()
    resp = client.kv.namespaces.bulk_update(kv_ns, account_id=A, body=[{"key": n, "value": "v"} for n in names])
    assert resp.successful_key_count == 2500
    assert not resp.unsuccessful_keys
    expected = utf8_sorted(names)

    # By hand, as a user following result_info.cursor.
    got, cursor, pages = [], None, 0
    while True:
        kw = {"limit": 1000}
        if cursor:
            kw["cursor"] = cursor
        page = client.kv.namespaces.keys.list(kv_ns, account_id=A, **kw)
        pages += 1
        assert page.result_info.count == len(page.result)
        got += [k.name for k in page.result]
        cursor = page.result_info.cursor
        if not cursor:
            break
        assert pages < 10, "cursor never ended"
    assert pages == 3
    assert got == expected

    # And through the SDK's auto-pagination (default limit).
    assert [k.name for k in list_all_keys(client, kv_ns)] == expected
    # With a prefix across pages.
    assert [k.name for k in list_all_keys(client, kv_ns, prefix="key-0", limit=100)] == [
        n for n in expected if n.startswith("key-0")
    ]


def test_keys_list_sees_keys_added_between_pages(client, kv_ns):
    names = [f"b{i:02d}" for i in range(30)]
    client.kv.namespaces.bulk_update(kv_ns, account_id=A, body=[{"key": n, "value": "v"} for n in names])
    first = client.kv.namespaces.keys.list(kv_ns, account_id=A, limit=10)
    assert [k.name for k in first.result] == names[:10]
    cursor = first.result_info.cursor
    assert cursor
    put(client, kv_ns, "a", b"before the cursor")
    put(client, kv_ns, "b095", b"after the cursor")
    put(client, kv_ns, "c", b"at the end")
    client.kv.namespaces.values.delete("b15", account_id=A, namespace_id=kv_ns)
    rest = []
    while cursor:
        page = client.kv.namespaces.keys.list(kv_ns, account_id=A, limit=10, cursor=cursor)
        rest += [k.name for k in page.result]
        cursor = page.result_info.cursor
    assert rest == ["b095"] + [n for n in names[10:] if n != "b15"] + ["c"]


def test_keys_list_entries_have_expiration_and_metadata(client, kv_ns):
    at = int(time.time()) + 86400
    put(client, kv_ns, "a-both", b"v", metadata={"m": 1}, expiration=at)
    put(client, kv_ns, "b-meta", b"v", metadata=["x"])
    put(client, kv_ns, "c-exp", b"v", expiration=at)
    put(client, kv_ns, "d-none", b"v")
    entries = {k.name: k for k in list_all_keys(client, kv_ns)}
    assert list(entries) == ["a-both", "b-meta", "c-exp", "d-none"]
    assert (entries["a-both"].expiration, entries["a-both"].metadata) == (at, {"m": 1})
    assert (entries["b-meta"].expiration, entries["b-meta"].metadata) == (None, ["x"])
    assert (entries["c-exp"].expiration, entries["c-exp"].metadata) == (at, None)
    assert (entries["d-none"].expiration, entries["d-none"].metadata) == (None, None)


def test_keys_list_unknown_namespace_is_not_found(client):
    with cf_error(404, code=10013):
        client.kv.namespaces.keys.list("0123456789abcdef0123456789abcdef", account_id=A)


# ---------------------------------------------------------------------------------------------
# Bulk


def test_bulk_update_then_bulk_get(client, kv_ns):
    pairs = {f"bulk-{i}": f"value {i} ✓" for i in range(20)}
    resp = client.kv.namespaces.bulk_update(
        kv_ns, account_id=A, body=[{"key": k, "value": v} for k, v in pairs.items()]
    )
    assert resp.successful_key_count == 20
    assert not resp.unsuccessful_keys
    for k, v in pairs.items():
        assert get(client, kv_ns, k) == v.encode("utf-8")
    got = client.kv.namespaces.bulk_get(kv_ns, account_id=A, keys=list(pairs) + ["missing"])
    assert got.values == {**pairs, "missing": None}


def test_bulk_update_base64(client, kv_ns):
    data = bytes(range(256))
    resp = client.kv.namespaces.bulk_update(
        kv_ns,
        account_id=A,
        body=[
            {"key": "b64", "value": base64.b64encode(data).decode(), "base64": True},
            {"key": "text", "value": "aGk=", "base64": False},
        ],
    )
    assert resp.successful_key_count == 2
    assert get(client, kv_ns, "b64") == data
    assert get(client, kv_ns, "text") == b"aGk="


def test_bulk_update_expiration_and_metadata(client, kv_ns):
    now = int(time.time())
    at = now + 86400
    client.kv.namespaces.bulk_update(
        kv_ns,
        account_id=A,
        body=[
            {"key": "e-ttl", "value": "1", "expiration_ttl": 3600, "metadata": {"kind": "ttl"}},
            {"key": "e-abs", "value": "2", "expiration": at},
            {"key": "e-none", "value": "3", "metadata": {"kind": "none"}},
        ],
    )
    entries = {k.name: k for k in list_all_keys(client, kv_ns)}
    assert now + 3600 <= entries["e-ttl"].expiration <= int(time.time()) + 3601
    assert entries["e-ttl"].metadata == {"kind": "ttl"}
    assert entries["e-abs"].expiration == at and entries["e-abs"].metadata is None
    assert entries["e-none"].expiration is None
    assert client.kv.namespaces.metadata.get("e-none", account_id=A, namespace_id=kv_ns) == {"kind": "none"}

    got = client.kv.namespaces.bulk_get(
        kv_ns, account_id=A, keys=["e-ttl", "e-abs", "e-none", "e-missing"], with_metadata=True
    )
    assert got.values["e-missing"] is None
    assert got.values["e-ttl"].value == "1"
    assert got.values["e-ttl"].metadata == {"kind": "ttl"}
    assert got.values["e-ttl"].expiration == entries["e-ttl"].expiration
    assert got.values["e-abs"].value == "2"
    assert got.values["e-abs"].metadata is None
    assert got.values["e-abs"].expiration == at
    assert got.values["e-none"].metadata == {"kind": "none"}


def test_bulk_update_invalid_ttl_is_rejected(client, kv_ns):
    with cf_error(400):
        client.kv.namespaces.bulk_update(
            kv_ns,
            account_id=A,
            body=[{"key": "good", "value": "v"}, {"key": "bad", "value": "v", "expiration_ttl": 30}],
        )
    assert list_all_keys(client, kv_ns) == []


def test_bulk_update_10000_pairs(client, kv_ns):
    body = [{"key": f"p{i:05d}", "value": f"v{i}"} for i in range(10000)]
    resp = client.kv.namespaces.bulk_update(kv_ns, account_id=A, body=body)
    assert resp.successful_key_count == 10000
    assert not resp.unsuccessful_keys
    names = [k.name for k in list_all_keys(client, kv_ns)]
    assert names == [f"p{i:05d}" for i in range(10000)]
    assert get(client, kv_ns, "p09999") == b"v9999"


def test_bulk_update_over_10000_pairs_is_rejected(client, kv_ns):
    body = [{"key": f"p{i:05d}", "value": "v"} for i in range(10001)]
    with cf_error(client_error=True):
        client.kv.namespaces.bulk_update(kv_ns, account_id=A, body=body)
    assert list_all_keys(client, kv_ns) == []


def test_bulk_get_json_type(client, kv_ns):
    put(client, kv_ns, "j1", json.dumps({"a": 1, "b": [True, None]}).encode())
    put(client, kv_ns, "j2", b"42")
    put(client, kv_ns, "j3", b'"str"')
    got = client.kv.namespaces.bulk_get(kv_ns, account_id=A, keys=["j1", "j2", "j3", "nope"], type="json")
    assert got.values == {"j1": {"a": 1, "b": [True, None]}, "j2": 42, "j3": "str", "nope": None}
    text = client.kv.namespaces.bulk_get(kv_ns, account_id=A, keys=["j2", "j3"], type="text")
    assert text.values == {"j2": "42", "j3": '"str"'}


def test_bulk_get_over_100_keys_is_rejected(client, kv_ns):
    with cf_error(400):
        client.kv.namespaces.bulk_get(kv_ns, account_id=A, keys=[f"k{i}" for i in range(101)])
    got = client.kv.namespaces.bulk_get(kv_ns, account_id=A, keys=[f"k{i}" for i in range(100)])
    assert got.values == {f"k{i}": None for i in range(100)}


def test_bulk_delete(client, kv_ns):
    names = [f"d{i}" for i in range(10)]
    client.kv.namespaces.bulk_update(kv_ns, account_id=A, body=[{"key": n, "value": n} for n in names])
    doomed = names[:5] + ["never-existed"]
    resp = client.kv.namespaces.bulk_delete(kv_ns, account_id=A, body=doomed)
    assert resp.successful_key_count == len(doomed)
    assert not resp.unsuccessful_keys
    assert [k.name for k in list_all_keys(client, kv_ns)] == names[5:]
    for n in names[:5]:
        with cf_error(404, code=10009):
            get(client, kv_ns, n)
    assert get(client, kv_ns, "d7") == b"d7"


def test_deprecated_keys_bulk_methods(client, kv_ns):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resp = client.kv.namespaces.keys.bulk_update(
            kv_ns, account_id=A, body=[{"key": "x", "value": "1"}, {"key": "y", "value": "2"}]
        )
        assert resp.successful_key_count == 2
        got = client.kv.namespaces.keys.bulk_get(kv_ns, account_id=A, keys=["x", "y"])
        assert got.values == {"x": "1", "y": "2"}
        resp = client.kv.namespaces.keys.bulk_delete(kv_ns, account_id=A, body=["x"])
        assert resp.successful_key_count == 1
    assert [k.name for k in list_all_keys(client, kv_ns)] == ["y"]


# ---------------------------------------------------------------------------------------------
# Durability


def test_kv_survives_restart(make_server):
    server = make_server()
    c = server.client()
    ns = c.kv.namespaces.create(account_id=A, title="persistent")
    put(c, ns.id, "k", bytes(range(256)), metadata={"m": True}, expiration_ttl=3600)
    c.kv.namespaces.bulk_update(ns.id, account_id=A, body=[{"key": f"b{i}", "value": str(i)} for i in range(50)])
    c.close()

    server.restart()
    c = server.client()
    try:
        assert c.kv.namespaces.get(ns.id, account_id=A).title == "persistent"
        assert get(c, ns.id, "k") == bytes(range(256))
        assert c.kv.namespaces.metadata.get("k", account_id=A, namespace_id=ns.id) == {"m": True}
        names = [k.name for k in list_all_keys(c, ns.id)]
        assert names == utf8_sorted([f"b{i}" for i in range(50)] + ["k"])
        with cf_error(400, code=10014):
            c.kv.namespaces.create(account_id=A, title="persistent")
    finally:
        c.close()
