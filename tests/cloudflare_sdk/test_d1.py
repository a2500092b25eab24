"""D1 through the official Cloudflare Python SDK, as a user migrating from Cloudflare would."""

from __future__ import annotations

import datetime
import hashlib
import sqlite3
import uuid

import cloudflare
import httpx
import pytest

from cfhelpers import ACCOUNT_ID, cf_error, query, rows, run_export, run_import, unique

A = ACCOUNT_ID


def _table(client, db, name="t"):
    query(client, db, f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")


# ---------------------------------------------------------------------------------------------
# Databases


def test_d1_create_returns_uuid_and_name(client):
    name = unique("create")
    db = client.d1.database.create(account_id=A, name=name)
    try:
        assert db.name == name
        assert str(uuid.UUID(db.uuid)) == db.uuid.lower()
        assert isinstance(db.created_at, datetime.datetime)
        got = client.d1.database.get(db.uuid, account_id=A)
        assert (got.uuid, got.name) == (db.uuid, name)
    finally:
        client.d1.database.delete(db.uuid, account_id=A)


def test_d1_duplicate_name_is_rejected(client, d1_db):
    name = client.d1.database.get(d1_db, account_id=A).name
    with cf_error(400):
        client.d1.database.create(account_id=A, name=name)
    assert [d.uuid for d in client.d1.database.list(account_id=A, name=name)] == [d1_db]


def test_d1_list_is_paginated_and_includes_created(client):
    prefix = unique("list")
    created = {}
    try:
        for i in range(11):
            db = client.d1.database.create(account_id=A, name=f"{prefix}-{i:02d}")
            created[db.uuid] = db.name
        first = client.d1.database.list(account_id=A, per_page=10)
        assert 1 <= len(first.result) <= 10
        assert first.result_info.page == 1
        assert first.result_info.per_page == 10
        assert first.has_next_page()
        seen = [(d.uuid, d.name) for d in client.d1.database.list(account_id=A, per_page=10)]
        uuids = [u for u, _ in seen]
        assert len(uuids) == len(set(uuids)), "a database appeared on two pages"
        assert set(created.items()) <= set(seen)
        for d in first.result:
            assert d.uuid and d.name and d.created_at is not None
    finally:
        for u in created:
            client.d1.database.delete(u, account_id=A)


def test_d1_list_name_filter(client):
    prefix = unique("filter")
    alpha = client.d1.database.create(account_id=A, name=f"{prefix}-alpha")
    beta = client.d1.database.create(account_id=A, name=f"{prefix}-beta")
    try:
        found = list(client.d1.database.list(account_id=A, name=f"{prefix}-alpha"))
        assert [(d.uuid, d.name) for d in found] == [(alpha.uuid, alpha.name)]
        assert list(client.d1.database.list(account_id=A, name=unique("no-such-db"))) == []
    finally:
        client.d1.database.delete(alpha.uuid, account_id=A)
        client.d1.database.delete(beta.uuid, account_id=A)


def test_d1_list_past_the_end_is_empty(client, d1_db):
    page = client.d1.database.list(account_id=A, page=100000, per_page=100)
    assert page.result == []
    assert not page.has_next_page()


def test_d1_get_includes_num_tables_and_file_size(client, d1_db):
    _table(client, d1_db, "a")
    _table(client, d1_db, "b")
    query(client, d1_db, "INSERT INTO a (id, name) VALUES (1, 'x')")
    db = client.d1.database.get(d1_db, account_id=A)
    assert db.uuid == d1_db
    assert db.name.startswith("d1-")
    assert db.num_tables == 2
    assert db.file_size > 0
    assert isinstance(db.created_at, datetime.datetime)


def test_d1_get_unknown_is_not_found(client):
    with cf_error(404) as err:
        client.d1.database.get(str(uuid.uuid4()), account_id=A)
    assert isinstance(err.value, cloudflare.NotFoundError)


def test_d1_update_and_edit(client, d1_db):
    before = client.d1.database.get(d1_db, account_id=A)
    updated = client.d1.database.update(d1_db, account_id=A, read_replication={"mode": "disabled"})
    assert (updated.uuid, updated.name) == (d1_db, before.name)
    if updated.read_replication is not None:
        assert updated.read_replication.mode == "disabled"
    edited = client.d1.database.edit(d1_db, account_id=A, read_replication={"mode": "disabled"})
    assert (edited.uuid, edited.name) == (d1_db, before.name)
    if edited.read_replication is not None:
        assert edited.read_replication.mode == "disabled"
    # Configuration changes leave the data alone.
    _table(client, d1_db)
    client.d1.database.edit(d1_db, account_id=A)
    assert rows(client, d1_db, "SELECT count(*) AS n FROM t") == [{"n": 0}]


def test_d1_delete_then_get_is_not_found(client):
    db = client.d1.database.create(account_id=A, name=unique("del"))
    _table(client, db.uuid)
    client.d1.database.delete(db.uuid, account_id=A)
    with cf_error(404):
        client.d1.database.get(db.uuid, account_id=A)
    with cf_error(404):
        query(client, db.uuid, "SELECT 1")
    assert db.uuid not in {d.uuid for d in client.d1.database.list(account_id=A, name=db.name)}
    with cf_error(404):
        client.d1.database.delete(db.uuid, account_id=A)


def test_d1_name_reusable_after_delete(client):
    name = unique("reuse")
    first = client.d1.database.create(account_id=A, name=name)
    _table(client, first.uuid)
    client.d1.database.delete(first.uuid, account_id=A)
    second = client.d1.database.create(account_id=A, name=name)
    try:
        assert second.uuid != first.uuid
        assert rows(client, second.uuid, "SELECT name FROM sqlite_master WHERE name = 't'") == []
    finally:
        client.d1.database.delete(second.uuid, account_id=A)


# ---------------------------------------------------------------------------------------------
# query / raw


def test_d1_query_rows_and_meta(client, d1_db):
    (create,) = query(client, d1_db, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    assert create.success is True
    assert create.results == []
    assert create.meta.changed_db is True

    (ins,) = query(client, d1_db, "INSERT INTO people (id, name, age) VALUES (7, ?, ?)", ["ada", "36"])
    assert ins.success is True
    assert ins.results == []
    assert ins.meta.changes == 1
    assert ins.meta.last_row_id == 7
    assert ins.meta.rows_written >= 1
    assert ins.meta.changed_db is True
    assert ins.meta.size_after > 0
    assert ins.meta.duration >= 0

    query(client, d1_db, "INSERT INTO people (name, age) VALUES ('bob', 41), ('cy', NULL)")
    (sel,) = query(client, d1_db, "SELECT id, name, age FROM people ORDER BY id")
    assert sel.success is True
    assert sel.results == [
        {"id": 7, "name": "ada", "age": 36},
        {"id": 8, "name": "bob", "age": 41},
        {"id": 9, "name": "cy", "age": None},
    ]
    assert sel.meta.rows_read >= 3
    assert sel.meta.rows_written == 0
    assert sel.meta.changed_db is False
    assert sel.meta.size_after > 0
    assert sel.meta.duration >= 0

    (upd,) = query(client, d1_db, "UPDATE people SET age = age + 1 WHERE age IS NOT NULL")
    assert upd.meta.changes == 2
    assert rows(client, d1_db, "SELECT age FROM people WHERE id = 8") == [{"age": 42}]


def test_d1_query_value_types(client, d1_db):
    (r,) = query(
        client,
        d1_db,
        "SELECT 1 AS i, -9007199254740991 AS big, 2.5 AS r, 'txt' AS s, NULL AS n, 'ü🙂' AS u, typeof(1.0) AS t",
    )
    assert r.results == [
        {"i": 1, "big": -9007199254740991, "r": 2.5, "s": "txt", "n": None, "u": "ü🙂", "t": "real"}
    ]


def test_d1_query_params_positional_and_numbered(client, d1_db):
    assert rows(client, d1_db, "SELECT ? AS a, ? AS b", ["x", "y"]) == [{"a": "x", "b": "y"}]
    assert rows(client, d1_db, "SELECT ?2 AS a, ?1 AS b, ?2 AS c", ["one", "two"]) == [
        {"a": "two", "b": "one", "c": "two"}
    ]
    assert rows(client, d1_db, "SELECT ?3 AS c", ["1", "2", "3"]) == [{"c": "3"}]
    _table(client, d1_db)
    query(client, d1_db, "INSERT INTO t (id, name, score) VALUES (?1, ?2, ?3)", ["5", "it's; ok", "1.5"])
    # Column affinity turns the text parameters into numbers, as in Cloudflare.
    assert rows(client, d1_db, "SELECT id, name, score, typeof(id) AS ti FROM t") == [
        {"id": 5, "name": "it's; ok", "score": 1.5, "ti": "integer"}
    ]
    assert rows(client, d1_db, "SELECT name FROM t WHERE id = ?", ["5"]) == [{"name": "it's; ok"}]


def test_d1_query_params_json_types(client, d1_db):
    # The SDK types params as strings but sends any JSON value; D1 binds numbers and null natively.
    assert rows(
        client, d1_db, "SELECT ?1 + 1 AS a, ?2 * 2 AS b, ?3 IS NULL AS c, typeof(?1) AS t", [42, 1.25, None]
    ) == [{"a": 43, "b": 2.5, "c": 1, "t": "integer"}]


def test_d1_query_wrong_param_count_is_an_error(client, d1_db):
    with cf_error(400):
        query(client, d1_db, "SELECT ?1 AS a, ?2 AS b", ["only one"])


def test_d1_query_multiple_statements(client, d1_db):
    results = query(
        client,
        d1_db,
        "CREATE TABLE m (x INTEGER); INSERT INTO m VALUES (1); INSERT INTO m VALUES (2); "
        "SELECT x FROM m ORDER BY x; SELECT count(*) AS n FROM m;",
    )
    assert len(results) == 5
    assert all(r.success is True for r in results)
    assert results[1].meta.changes == 1 and results[2].meta.changes == 1
    assert results[3].results == [{"x": 1}, {"x": 2}]
    assert results[4].results == [{"n": 2}]


def test_d1_query_semicolons_in_strings_and_comments(client, d1_db):
    results = query(
        client,
        d1_db,
        "CREATE TABLE s (v TEXT);\n"
        "INSERT INTO s VALUES ('a;b');  -- a comment; with a semicolon\n"
        "/* block; comment */ INSERT INTO s VALUES ('c'';d');\n"
        "SELECT v FROM s ORDER BY v",
    )
    assert len(results) == 4
    assert results[-1].results == [{"v": "a;b"}, {"v": "c';d"}]


def test_d1_query_syntax_error(client, d1_db):
    with cf_error(400, contains='near "SELEC": syntax error') as err:
        query(client, d1_db, "SELEC 1")
    assert isinstance(err.value, cloudflare.BadRequestError)
    assert 'near "SELEC": syntax error' in str(err.value)


def test_d1_query_constraint_error_message(client, d1_db):
    _table(client, d1_db)
    query(client, d1_db, "INSERT INTO t (id, name) VALUES (1, 'a')")
    with cf_error(400, contains="UNIQUE constraint failed: t.id"):
        query(client, d1_db, "INSERT INTO t (id, name) VALUES (1, 'again')")
    with cf_error(400, contains="no such table: nope"):
        query(client, d1_db, "SELECT * FROM nope")
    assert rows(client, d1_db, "SELECT name FROM t") == [{"name": "a"}]


def test_d1_query_batch_form(client, d1_db):
    _table(client, d1_db)
    page = client.d1.database.query(
        d1_db,
        account_id=A,
        batch=[
            {"sql": "INSERT INTO t (id, name) VALUES (?, ?)", "params": ["1", "first"]},
            {"sql": "INSERT INTO t (id, name) VALUES (?2, ?1)", "params": ["second", "2"]},
            {"sql": "SELECT id, name FROM t ORDER BY id"},
        ],
    )
    results = page.result
    assert len(results) == 3
    assert results[0].meta.changes == 1 and results[0].meta.last_row_id == 1
    assert results[1].meta.last_row_id == 2
    assert results[2].results == [{"id": 1, "name": "first"}, {"id": 2, "name": "second"}]


def test_d1_batch_is_atomic(client, d1_db):
    _table(client, d1_db)
    with cf_error(400, contains="UNIQUE constraint failed"):
        client.d1.database.query(
            d1_db,
            account_id=A,
            batch=[
                {"sql": "INSERT INTO t (id, name) VALUES (1, 'kept?')"},
                {"sql": "INSERT INTO t (id, name) VALUES (2, 'kept?')"},
                {"sql": "INSERT INTO t (id, name) VALUES (1, 'duplicate')"},
            ],
        )
    assert rows(client, d1_db, "SELECT count(*) AS n FROM t") == [{"n": 0}]


def test_d1_raw_columns_and_rows(client, d1_db):
    _table(client, d1_db)
    query(client, d1_db, "INSERT INTO t VALUES (1, 'a', 0.5), (2, 'b', NULL)")
    (r,) = client.d1.database.raw(d1_db, account_id=A, sql="SELECT id, name, score FROM t ORDER BY id").result
    assert r.success is True
    assert r.results.columns == ["id", "name", "score"]
    assert r.results.rows == [[1, "a", 0.5], [2, "b", None]]
    assert r.meta.rows_read >= 2
    assert r.meta.changed_db is False

    (p,) = client.d1.database.raw(d1_db, account_id=A, sql="SELECT name AS n FROM t WHERE id = ?", params=["2"]).result
    assert (p.results.columns, p.results.rows) == (["n"], [["b"]])

    (empty,) = client.d1.database.raw(d1_db, account_id=A, sql="SELECT id, name FROM t WHERE id > 100").result
    assert empty.results.columns == ["id", "name"]
    assert empty.results.rows == []

    multi = client.d1.database.raw(
        d1_db, account_id=A, batch=[{"sql": "SELECT 1 AS one"}, {"sql": "SELECT ? AS two", "params": ["2"]}]
    ).result
    assert [(m.results.columns, m.results.rows) for m in multi] == [(["one"], [[1]]), (["two"], [["2"]])]


def test_d1_raw_duplicate_column_names(client, d1_db):
    # The reason raw exists: objects lose duplicate column names, arrays do not.
    (r,) = client.d1.database.raw(d1_db, account_id=A, sql="SELECT 1 AS x, 2 AS x").result
    assert r.results.columns == ["x", "x"]
    assert r.results.rows == [[1, 2]]


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE ':memory:' AS other",
        "CREATE TABLE _cf_sneaky (x)",
        "BEGIN",
        "BEGIN TRANSACTION",
    ],
)
def test_d1_forbidden_statements(client, d1_db, sql):
    with cf_error(client_error=True):
        query(client, d1_db, sql)
    # The database is still usable afterwards, and nothing leaked.
    assert rows(client, d1_db, "SELECT 1 AS ok") == [{"ok": 1}]
    assert rows(client, d1_db, "SELECT name FROM sqlite_master WHERE name = '_cf_sneaky'") == []


def test_d1_query_unknown_database_is_not_found(client):
    with cf_error(404):
        query(client, str(uuid.uuid4()), "SELECT 1")
    with cf_error(404):
        client.d1.database.raw(str(uuid.uuid4()), account_id=A, sql="SELECT 1")


# ---------------------------------------------------------------------------------------------
# export / import


def _seed_for_export(client, db):
    query(
        client,
        db,
        "CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL);"
        "CREATE INDEX a_name ON a (name);"
        "CREATE TABLE b (k TEXT PRIMARY KEY, v INTEGER);"
        "INSERT INTO a VALUES (1, 'ada', 9.5), (2, 'it''s; tricky', NULL), (3, 'ü🙂', -1);"
        "INSERT INTO b VALUES ('x', 10), ('y', 20);",
    )


def _load_dump(sql_text):
    con = sqlite3.connect(":memory:")
    con.executescript(sql_text)
    return con


def test_d1_export_flow(client, d1_db):
    _seed_for_export(client, d1_db)
    resp, dump = run_export(client, d1_db)
    assert resp.status == "complete"
    assert resp.result.filename.endswith(".sql")
    assert "CREATE TABLE" in dump and "INSERT INTO" in dump
    assert "CREATE INDEX" in dump
    assert "_cf_" not in dump
    con = _load_dump(dump)
    assert con.execute("SELECT id, name, score FROM a ORDER BY id").fetchall() == [
        (1, "ada", 9.5),
        (2, "it's; tricky", None),
        (3, "ü🙂", -1.0),
    ]
    assert con.execute("SELECT k, v FROM b ORDER BY k").fetchall() == [("x", 10), ("y", 20)]
    # Exporting does not disturb the database.
    assert rows(client, d1_db, "SELECT count(*) AS n FROM a") == [{"n": 3}]


def test_d1_export_signed_url_needs_no_credentials(client, d1_db):
    _seed_for_export(client, d1_db)
    resp, _ = run_export(client, d1_db)
    # run_export already downloaded without credentials; a tampered URL must not work.
    url = httpx.URL(resp.result.signed_url)
    assert url.is_absolute_url
    params = dict(url.params)
    if params:
        tampered = url.copy_with(params={k: v + "x" for k, v in params.items()})
        assert httpx.get(tampered, timeout=30).status_code >= 400


def test_d1_export_dump_options(client, d1_db):
    _seed_for_export(client, d1_db)
    _, schema_only = run_export(client, d1_db, {"no_data": True})
    assert "CREATE TABLE" in schema_only and "INSERT INTO" not in schema_only
    _, data_only = run_export(client, d1_db, {"no_schema": True})
    assert "CREATE TABLE" not in data_only and "INSERT INTO" in data_only
    _, only_b = run_export(client, d1_db, {"tables": ["b"]})
    con = _load_dump(only_b)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["b"]
    assert con.execute("SELECT count(*) FROM b").fetchone() == (2,)


IMPORT_SQL = """\
CREATE TABLE imported (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL);
INSERT INTO imported VALUES (1, 'ada', 9.5);
INSERT INTO imported VALUES (2, 'bob; with a semicolon', NULL);
INSERT INTO imported (id, name) VALUES (3, 'it''s');
"""


def test_d1_import_flow(client, d1_db):
    resp = run_import(client, d1_db, IMPORT_SQL)
    assert resp.status == "complete"
    assert resp.result.num_queries == 4
    assert resp.result.meta.rows_written >= 3
    assert resp.result.meta.duration >= 0
    assert rows(client, d1_db, "SELECT id, name, score FROM imported ORDER BY id") == [
        {"id": 1, "name": "ada", "score": 9.5},
        {"id": 2, "name": "bob; with a semicolon", "score": None},
        {"id": 3, "name": "it's", "score": None},
    ]
    assert client.d1.database.get(d1_db, account_id=A).num_tables == 1


def test_d1_import_same_file_twice(client, d1_db):
    # The second init may report the file as already uploaded and start the import directly.
    run_import(client, d1_db, "CREATE TABLE IF NOT EXISTS c (n INTEGER);\nINSERT INTO c VALUES (1);\n")
    run_import(client, d1_db, "CREATE TABLE IF NOT EXISTS c (n INTEGER);\nINSERT INTO c VALUES (1);\n")
    assert rows(client, d1_db, "SELECT count(*) AS n FROM c") == [{"n": 2}]


def test_d1_import_failure_leaves_database_unchanged(client, d1_db):
    _table(client, d1_db)
    query(client, d1_db, "INSERT INTO t (id, name) VALUES (1, 'before')")
    bad = "INSERT INTO t (id, name) VALUES (2, 'half');\nINSERT INTO t (id, name) VALUES (1, 'duplicate');\n"
    failed = False
    try:
        resp = run_import(client, d1_db, bad)
    except cloudflare.APIStatusError:
        failed = True
    except AssertionError as e:  # run_import asserts on success=false / status=error
        failed = "import failed" in str(e)
        if not failed:
            raise
    else:
        failed = resp.status != "complete"
    assert failed, "importing SQL that violates a constraint must fail"
    assert rows(client, d1_db, "SELECT id, name FROM t ORDER BY id") == [{"id": 1, "name": "before"}]


def test_d1_export_then_import_into_new_database(client, d1_db):
    _seed_for_export(client, d1_db)
    _, dump = run_export(client, d1_db)
    target = client.d1.database.create(account_id=A, name=unique("copy"))
    try:
        run_import(client, target.uuid, dump)
        for sql in ("SELECT * FROM a ORDER BY id", "SELECT * FROM b ORDER BY k"):
            assert rows(client, target.uuid, sql) == rows(client, d1_db, sql)
        assert rows(client, target.uuid, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'a_name'") == [
            {"name": "a_name"}
        ]
    finally:
        client.d1.database.delete(target.uuid, account_id=A)


def test_d1_upload_url_rejects_wrong_content(client, d1_db):
    data = b"CREATE TABLE z (x);\n"
    etag = hashlib.md5(data).hexdigest()
    init = client.d1.database.import_(d1_db, account_id=A, action="init", etag=etag)
    assert init.upload_url and init.filename
    up = httpx.put(init.upload_url, content=b"CREATE TABLE evil (x);\n", timeout=30)
    if up.status_code == 200:
        # Accepted bytes must at least be reported truthfully, so the client's ETag check catches it.
        assert up.headers.get("etag", "").strip('"') != etag
        with cf_error(client_error=True):
            client.d1.database.import_(d1_db, account_id=A, action="ingest", etag=etag, filename=init.filename)
    else:
        assert 400 <= up.status_code < 500
    assert rows(client, d1_db, "SELECT name FROM sqlite_master WHERE name IN ('z', 'evil')") == []


# ---------------------------------------------------------------------------------------------
# Durability


def test_d1_survives_restart(make_server):
    server = make_server()
    c = server.client()
    db = c.d1.database.create(account_id=A, name="persistent-db")
    query(c, db.uuid, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'kept')")
    c.close()

    server.restart()
    c = server.client()
    try:
        got = c.d1.database.get(db.uuid, account_id=A)
        assert got.name == "persistent-db"
        assert got.num_tables == 1
        assert rows(c, db.uuid, "SELECT id, v FROM t") == [{"id": 1, "v": "kept"}]
        assert [d.uuid for d in c.d1.database.list(account_id=A, name="persistent-db")] == [db.uuid]
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Time Travel


def test_d1_time_travel_restores_to_a_bookmark_and_the_previous_bookmark_undoes_it(client, d1_db):
    tt = client.d1.database.time_travel
    _table(client, d1_db)
    query(client, d1_db, "INSERT INTO t (name, score) VALUES ('ada', 1), ('bob', 2)")
    before = tt.get_bookmark(d1_db, account_id=A).bookmark
    assert before and len(before.split("-")) == 4
    query(client, d1_db, "DELETE FROM t WHERE name = 'ada'")
    query(client, d1_db, "CREATE TABLE later (x)")

    restored = tt.restore(d1_db, account_id=A, bookmark=before)
    assert restored.previous_bookmark and restored.bookmark
    assert restored.bookmark > restored.previous_bookmark > before, "bookmarks sort by time"
    assert [r["name"] for r in rows(client, d1_db, "SELECT name FROM t ORDER BY name")] == ["ada", "bob"]
    tables = rows(client, d1_db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'later'")
    assert tables == [], "the schema is restored too"

    # Restoring never deletes newer history: the previous bookmark brings the deletion back.
    tt.restore(d1_db, account_id=A, bookmark=restored.previous_bookmark)
    assert [r["name"] for r in rows(client, d1_db, "SELECT name FROM t ORDER BY name")] == ["bob"]
    # And the first bookmark still restores after that.
    tt.restore(d1_db, account_id=A, bookmark=before)
    assert len(rows(client, d1_db, "SELECT name FROM t")) == 2


def test_d1_time_travel_by_timestamp(client, d1_db):
    tt = client.d1.database.time_travel
    _table(client, d1_db)
    query(client, d1_db, "INSERT INTO t (name, score) VALUES ('x', 1)")
    now = datetime.datetime.now(datetime.timezone.utc)
    at_now = tt.get_bookmark(d1_db, account_id=A, timestamp=now).bookmark
    assert at_now == tt.get_bookmark(d1_db, account_id=A).bookmark, "now is the current state"
    # An RFC 3339 string and Unix seconds are accepted too.
    assert tt.get_bookmark(d1_db, account_id=A, timestamp=now.strftime("%Y-%m-%dT%H:%M:%SZ")).bookmark
    assert tt.get_bookmark(d1_db, account_id=A, timestamp=str(int(now.timestamp()))).bookmark

    r = tt.restore(d1_db, account_id=A, timestamp=now)
    assert r.previous_bookmark
    assert len(rows(client, d1_db, "SELECT * FROM t")) == 1


def test_d1_time_travel_errors(client, d1_db):
    tt = client.d1.database.time_travel
    _table(client, d1_db)
    long_ago = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
    with cf_error(400, contains="retention window"):
        tt.get_bookmark(d1_db, account_id=A, timestamp=long_ago)
    with cf_error(400, contains="retention window"):
        tt.restore(d1_db, account_id=A, timestamp=long_ago)
    with cf_error(400, contains="invalid bookmark"):
        tt.restore(d1_db, account_id=A, bookmark="not-a-bookmark")
    with cf_error(400, contains="ahead of"):
        tt.restore(d1_db, account_id=A, bookmark="00000000-ffffffff-00000000-" + "0" * 32)
    with cf_error(400, contains="invalid timestamp"):
        tt.get_bookmark(d1_db, account_id=A, timestamp="yesterday")
    with cf_error(400, contains="bookmark or a timestamp"):
        tt.restore(d1_db, account_id=A)
    with cf_error(404):
        tt.get_bookmark("00000000-0000-0000-0000-000000000000", account_id=A)
