//! `cairn bench store`: cairn-store's auto-save, per persister, against the same single-cell
//! changes written straight to SQLite with rusqlite.
//!
//! Workload: one store table, `rows`, of `--rows` rows (default 10,000) with five cells of mixed
//! types (`name` and `note` strings, `qty` an integer, `price` a fractional number, `active` a
//! boolean), set in the store and saved once (auto-save's first, whole save). Then a
//! deterministic stream of single-cell changes (SplitMix64, fixed seed), each its own store
//! transaction, at a random row and cell: a string or number gets a value never written before,
//! the boolean is flipped. Per persister, in a fresh store and storage:
//!
//! 1. **Stream**: `--changes` changes made as fast as one thread can make them, with auto-save
//!    on. Throughput is the changes divided by the time from the first change until the save
//!    holding the last one completed; each change's latency runs from just before its
//!    `set_cell` to the completion of the first save holding it.
//! 2. **One change at a time**: `--latency-changes` changes, each made only once the previous one
//!    is saved (the store is otherwise idle): the latency of a lone change, and how much of it
//!    passed before the save called its back end (`to_backend_p50_us`: waking the persister's
//!    task and, for a back end that writes whole content, copying the store).
//!
//! Which changes a save holds: every back end is wrapped in `Timed`, a [`Persist`] that hands
//! the save to it and, once it returns, finds the largest `n` such that the content it was given
//! (for a save of changes alone: its copy of the stored content with them applied) equals the
//! store after the first `n` changes. The search only looks at the changes the
//! writer made between the end of the previous save and the start of this one (everything
//! before is in it; nothing after can be), keeping for each cell they touched whether the
//! content holds the value the store had after `n` changes; it runs after the save's completion
//! time is taken. The waits are on that count (a watch channel): nothing sleeps.
//!
//! The anchor, beside each persister, on fresh database files: a SQLite table laid out as the
//! tabular persister lays it out (`rows(_id TEXT PRIMARY KEY, name, qty, price, active, note)`,
//! the same rows), WAL, `synchronous=FULL`, normal locking, one connection, statements through
//! `prepare_cached`. Before the persister runs, it makes the stream's first changes (at most
//! 20,000) as one `UPDATE rows SET "{cell}" = ?1 WHERE _id = ?2` each, in autocommit (its
//! latency: each statement's time). After, on another fresh file, it makes all the stream's
//! changes in the persister's batches: one transaction per save the persister made during the
//! stream, holding the changes that save added.
//!
//! A first figure, `store_without_persister`, times what an auto-save of whole content does
//! before it calls its back end (copy the store's content; JSON modes then write it as JSON;
//! also a diff of two copies, which auto-saves no longer do) and how fast the writer changes a
//! store without a persister.
//!
//! Persisters: a JSON file; SQLite in JSON and in tabular mode (the connection set to WAL and
//! `synchronous=FULL`, as the anchor); a Cairn object through a `cairn_runtime::Runtime` in this
//! process (default configuration); a Cairn object on Cairn's server, started in this process
//! (`server.rs`), over HTTP; and, with `--postgres-url`, PostgreSQL in JSON and in tabular mode
//! (tables of their own, dropped afterwards; the server's `fsync` and `synchronous_commit` are
//! reported with each figure). After each run a second storage of the same place loads what was
//! saved, which must equal the store (booleans compared as 0 and 1, as SQL keeps them).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_store::{
    CairnStorage, Cell, Changes, Content, DatabaseConfig, DatabaseMode, FileStorage, JsonConfig, Persist, Persister,
    PersisterOptions, PostgresStorage, Row, SqliteStorage, Store, Table, TabularConfig,
};
use rusqlite::Connection;
use tokio::sync::watch;

use crate::load::runtime;
use crate::server::Server;
use crate::splitmix::SplitMix;
use crate::{Figure, round, rt_err};

/// Options of the store benchmark.
#[derive(Clone, Debug)]
pub struct StoreBenchOptions {
    /// Where every file goes (removed afterwards).
    pub dir: PathBuf,
    /// Rows in the store's one table.
    pub rows: usize,
    /// Changes in the stream (made as fast as possible, auto-save on).
    pub changes: usize,
    /// Changes made one at a time, each once the previous one is saved.
    pub latency_changes: usize,
    /// A PostgreSQL server for the PostgreSQL persisters; they are skipped without one.
    pub postgres_url: Option<String>,
}

/// The store table.
const TABLE: &str = "rows";
/// Its cells, in the order changes pick them.
const CELLS: [&str; 5] = ["name", "qty", "price", "active", "note"];
/// The cell holding a boolean.
const BOOL_CELL: u8 = 3;
/// How long any wait for a save may take before the benchmark fails.
const WAIT_LIMIT: Duration = Duration::from_secs(300);
/// The most changes the anchor makes in autocommit (the first of the stream's; a rate per
/// statement, which all of a long stream would take minutes to measure).
const ANCHOR_AUTOCOMMIT_CHANGES: usize = 20_000;
/// The seed of the change stream.
const SEED: u64 = 0x5EED_CA1F_0008;

/// One single-cell change.
struct Change {
    row: u32,
    cell: u8,
    value: Cell,
}

/// The rows, their initial cells and every change of a run, computed before it starts.
struct Workload {
    row_ids: Vec<String>,
    changes: Vec<Change>,
    /// For each change, the index of the previous change of the same cell, if any.
    prev: Vec<Option<u32>>,
}

fn initial_cell(row: usize, cell: u8) -> Cell {
    match cell {
        0 => Cell::from(format!("item {row:05}")),
        1 => Cell::from((row % 1000) as i64),
        2 => Cell::from(row as f64 + 0.25),
        BOOL_CELL => Cell::from(row.is_multiple_of(2)),
        _ => Cell::from(format!("note for row {row}")),
    }
}

impl Workload {
    fn new(rows: usize, total_changes: usize) -> Workload {
        let row_ids = (0..rows).map(|i| format!("r{i:05}")).collect();
        let mut rng = SplitMix(SEED);
        let mut last: HashMap<(u32, u8), u32> = HashMap::new();
        let mut changes: Vec<Change> = Vec::with_capacity(total_changes);
        let mut prev = Vec::with_capacity(total_changes);
        for k in 0..total_changes {
            let row = rng.below(rows) as u32;
            let cell = rng.below(CELLS.len()) as u8;
            let before = last.insert((row, cell), k as u32);
            // Strings and numbers get values never written before; the boolean flips.
            let value = match cell {
                0 => Cell::from(format!("renamed {k}")),
                1 => Cell::from(1_000_000 + k as i64),
                2 => Cell::from(k as f64 + 0.75),
                BOOL_CELL => {
                    let current =
                        before.map_or_else(|| initial_cell(row as usize, cell), |p| changes[p as usize].value.clone());
                    Cell::from(current.as_bool() != Some(true))
                }
                _ => Cell::from(format!("edited {k}")),
            };
            changes.push(Change { row, cell, value });
            prev.push(before);
        }
        Workload { row_ids, changes, prev }
    }

    /// The store before any change.
    fn content(&self) -> Content {
        let table: Table = self
            .row_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let row: Row =
                    (0..CELLS.len() as u8).map(|c| (CELLS[c as usize].to_owned(), initial_cell(i, c))).collect();
                (id.clone(), row)
            })
            .collect();
        let mut content = Content::default();
        content.tables.insert(TABLE.to_owned(), table);
        content
    }

    /// What change `k`'s cell held before it.
    fn before(&self, k: usize) -> Cell {
        let change = &self.changes[k];
        match self.prev[k] {
            Some(p) => self.changes[p as usize].value.clone(),
            None => initial_cell(change.row as usize, change.cell),
        }
    }

    /// The largest `n` in `lo..=hi` such that `content` is the store after the first `n`
    /// changes, given that it is the store after some number of changes in that range.
    fn included(&self, content: &Content, lo: usize, hi: usize) -> Option<usize> {
        let table = content.tables.get(TABLE)?;
        let holds = |change: &Change, value: &Cell| {
            table.get(&self.row_ids[change.row as usize]).and_then(|row| row.get(CELLS[change.cell as usize]))
                == Some(value)
        };
        // Each cell changed in `lo..hi`: whether `content` holds its value after `n` changes.
        let mut matches: HashMap<(u32, u8), bool> = HashMap::new();
        let mut mismatches = 0usize;
        for change in self.changes[lo..hi].iter().rev() {
            if let Entry::Vacant(slot) = matches.entry((change.row, change.cell)) {
                let ok = holds(change, &change.value);
                mismatches += usize::from(!ok);
                slot.insert(ok);
            }
        }
        let mut n = hi;
        loop {
            if mismatches == 0 {
                return Some(n);
            }
            if n == lo {
                return None;
            }
            n -= 1;
            let change = &self.changes[n];
            let ok = holds(change, &self.before(n));
            let slot = matches.get_mut(&(change.row, change.cell))?;
            if *slot != ok {
                if ok {
                    mismatches -= 1;
                } else {
                    mismatches += 1;
                }
                *slot = ok;
            }
        }
    }
}

/// One save, as the benchmark saw it.
#[derive(Clone, Copy, Debug)]
struct SaveRecord {
    /// How many changes it held.
    included: usize,
    /// When the back end was called, since the run's epoch.
    started: Duration,
    /// When the back end returned.
    finished: Duration,
}

/// What the writer and the wrapped back end share.
struct Tracker {
    workload: Arc<Workload>,
    epoch: Instant,
    /// Changes the writer has committed to the store.
    committed: AtomicUsize,
    /// Changes committed when the last save completed: the next save holds at least those.
    floor: AtomicUsize,
    saves: Mutex<Vec<SaveRecord>>,
    /// Saves whose content matched no prefix of the changes (a bug somewhere).
    unexplained: AtomicUsize,
    /// The most changes a completed save held.
    persisted: watch::Sender<usize>,
}

impl Tracker {
    fn new(workload: Arc<Workload>) -> Arc<Tracker> {
        Arc::new(Tracker {
            workload,
            epoch: Instant::now(),
            committed: AtomicUsize::new(0),
            floor: AtomicUsize::new(0),
            saves: Mutex::new(Vec::new()),
            unexplained: AtomicUsize::new(0),
            persisted: watch::channel(0).0,
        })
    }

    fn records(&self) -> Vec<SaveRecord> {
        self.saves.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Makes change `k` in `store`; returns when it was started, since the epoch.
    fn change(&self, store: &Store, k: usize) -> Duration {
        let change = &self.workload.changes[k];
        let at = self.epoch.elapsed();
        store.set_cell(
            TABLE,
            &self.workload.row_ids[change.row as usize],
            CELLS[change.cell as usize],
            change.value.clone(),
        );
        self.committed.store(k + 1, Ordering::Release);
        at
    }

    /// Waits until a completed save holds the first `n` changes.
    async fn wait_persisted(&self, n: usize) -> anyhow::Result<()> {
        let mut persisted = self.persisted.subscribe();
        tokio::time::timeout(WAIT_LIMIT, persisted.wait_for(|p| *p >= n))
            .await
            .with_context(|| format!("no save held change {n} after {WAIT_LIMIT:?}"))?
            .context("the tracker is gone")?;
        Ok(())
    }
}

/// A back end that tells the tracker what each save held (see the module's docs).
struct Timed<P> {
    inner: P,
    tracker: Arc<Tracker>,
    /// What the storage holds, for a back end that writes changes: the store before any change
    /// (what the first, whole save writes), then with each save's changes applied.
    stored: Mutex<Content>,
}

impl<P: Persist> Timed<P> {
    /// The changes a save starting now may hold, and when it started.
    fn start(&self) -> (Range<usize>, Duration) {
        let tracker = &self.tracker;
        // One change may be committed and not yet counted.
        let hi = (tracker.committed.load(Ordering::Acquire) + 1).min(tracker.workload.changes.len());
        let lo = tracker.floor.load(Ordering::Acquire).min(hi);
        (lo..hi, tracker.epoch.elapsed())
    }

    /// Records a save that returned: `content` is what the storage holds after it.
    fn finish(&self, (window, started): (Range<usize>, Duration), finished: Duration, content: &Content) {
        let tracker = &self.tracker;
        tracker.floor.store(tracker.committed.load(Ordering::Acquire), Ordering::Release);
        match tracker.workload.included(content, window.start, window.end) {
            Some(included) => {
                tracker.saves.lock().unwrap_or_else(PoisonError::into_inner).push(SaveRecord {
                    included,
                    started,
                    finished,
                });
                tracker.persisted.send_if_modified(|p| {
                    let more = included > *p;
                    *p = (*p).max(included);
                    more
                });
            }
            None => {
                tracker.unexplained.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

impl<P: Persist> Persist for Timed<P> {
    async fn get_content(&self) -> Result<Option<Content>, cairn_store::Error> {
        self.inner.get_content().await
    }

    async fn set_content(&self, content: &Content) -> Result<(), cairn_store::Error> {
        let start = self.start();
        self.inner.set_content(content).await?;
        let finished = self.tracker.epoch.elapsed();
        // Before any change `stored` is already the store (and copying it would add to the
        // first save's time).
        if self.inner.writes_changes() && self.tracker.committed.load(Ordering::Acquire) > 0 {
            self.stored.lock().unwrap_or_else(PoisonError::into_inner).clone_from(content);
        }
        self.finish(start, finished, content);
        Ok(())
    }

    fn writes_changes(&self) -> bool {
        self.inner.writes_changes()
    }

    async fn set_changes(&self, changes: &Changes) -> Result<(), cairn_store::Error> {
        let start = self.start();
        self.inner.set_changes(changes).await?;
        let finished = self.tracker.epoch.elapsed();
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored.apply_changes(changes);
        self.finish(start, finished, &stored);
        Ok(())
    }
}

/// The PostgreSQL settings that decide whether its commits are durable.
#[derive(Clone, Debug)]
struct PgSettings {
    version: String,
    fsync: String,
    synchronous_commit: String,
}

/// Which persister, and where it keeps the store.
#[derive(Clone)]
enum Target {
    File(PathBuf),
    Sqlite { path: PathBuf, tabular: bool },
    CairnEmbedded(cairn_runtime::ObjectRef),
    CairnRemote(cairn_client::ObjectClient),
    Postgres { url: String, table: String, tabular: bool, settings: PgSettings },
}

/// The settings the persisters and the anchor give SQLite.
fn sqlite_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("open {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "SQLite refused WAL mode ({mode})");
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    Ok(conn)
}

fn tabular_config(table: &str) -> DatabaseConfig {
    DatabaseConfig::tabular(TabularConfig::new().table(TABLE, table))
}

fn json_config(table: &str) -> DatabaseConfig {
    DatabaseConfig::new(DatabaseMode::Json(JsonConfig::new(table)))
}

/// Opens the target's storage and calls `run` with it (the back ends are different types).
macro_rules! with_storage {
    ($target:expr, |$storage:ident| $body:expr) => {
        match $target {
            Target::File(path) => {
                let $storage = FileStorage::new(path);
                $body
            }
            Target::Sqlite { path, tabular } => {
                let config = if *tabular { tabular_config(TABLE) } else { DatabaseConfig::json() };
                let $storage = SqliteStorage::new(sqlite_connection(path)?, config)?;
                $body
            }
            Target::CairnEmbedded(object) => {
                let $storage = CairnStorage::embedded(object.clone());
                $body
            }
            Target::CairnRemote(object) => {
                let $storage = CairnStorage::remote(object.clone());
                $body
            }
            Target::Postgres { url, table, tabular, .. } => {
                let config = if *tabular { tabular_config(table) } else { json_config(table) };
                let $storage = PostgresStorage::connect(url, config).await?;
                $body
            }
        }
    };
}

/// Booleans as 0 and 1, as SQL keeps them.
fn bools_as_numbers(mut content: Content) -> Content {
    for row in content.tables.values_mut().flat_map(|t| t.values_mut()) {
        for cell in row.values_mut() {
            if let Cell::Bool(b) = cell {
                *cell = Cell::from(i64::from(*b));
            }
        }
    }
    content
}

/// What one persister's run measured.
struct Measured {
    initial_save: Duration,
    /// Start of each stream change, since the epoch.
    stream_times: Vec<Duration>,
    /// The saves that completed during the stream (the last one holds every change).
    stream_saves: Vec<SaveRecord>,
    one_at_a_time_elapsed: Duration,
    one_at_a_time_latencies: Vec<Duration>,
    /// From each lone change to the call of the back end that saved it.
    one_at_a_time_to_backend: Vec<Duration>,
    stream_latencies: Vec<Duration>,
}

/// Runs the workload through `storage` (wrapped), on the current tokio runtime.
async fn measure<P: Persist>(
    storage: P,
    workload: &Arc<Workload>,
    stream: usize,
    one_at_a_time: usize,
) -> anyhow::Result<(Measured, Store)> {
    let tracker = Tracker::new(workload.clone());
    let store = Store::new();
    store.set_content(workload.content());
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = errors.clone();
    let options = PersisterOptions::new().on_ignored_error(move |e| {
        log.lock().unwrap_or_else(PoisonError::into_inner).push(format!("{e} ({})", e.code()));
    });
    let timed = Timed { inner: storage, tracker: tracker.clone(), stored: Mutex::new(store.content()) };
    let persister = Persister::new(&store, timed, options)?;

    // The whole store, saved once.
    let t = Instant::now();
    persister.start_auto_save().await?;
    let initial_save = t.elapsed();
    let first_error =
        |errors: &Mutex<Vec<String>>| errors.lock().unwrap_or_else(PoisonError::into_inner).first().cloned();
    if let Some(error) = first_error(&errors) {
        anyhow::bail!("the first save failed: {error}");
    }
    let before_stream = tracker.records().len();

    // The stream, from one thread, as fast as it goes.
    let writer = {
        let (store, tracker) = (store.clone(), tracker.clone());
        tokio::task::spawn_blocking(move || (0..stream).map(|k| tracker.change(&store, k)).collect::<Vec<_>>())
    };
    tracker.wait_persisted(stream).await?;
    let stream_times = writer.await.context("the writer")?;
    let records = tracker.records();
    let stream_saves: Vec<SaveRecord> =
        records[before_stream..].iter().copied().take_while(|r| r.included <= stream).collect();

    // One change at a time.
    let t = Instant::now();
    let mut times = Vec::with_capacity(one_at_a_time);
    for k in stream..stream + one_at_a_time {
        times.push(tracker.change(&store, k));
        tracker.wait_persisted(k + 1).await?;
    }
    let one_at_a_time_elapsed = t.elapsed();
    persister.stop_auto_save().await?;
    persister.destroy().await;
    if let Some(error) = first_error(&errors) {
        anyhow::bail!("a save failed: {error}");
    }
    let unexplained = tracker.unexplained.load(Ordering::SeqCst);
    anyhow::ensure!(unexplained == 0, "{unexplained} saves held content that matches no prefix of the changes");

    let records = tracker.records();
    let (stream_latencies, _) = latencies(&records, &stream_times, 0)?;
    let (one_at_a_time_latencies, one_at_a_time_to_backend) = latencies(&records, &times, stream)?;
    let measured = Measured {
        initial_save,
        stream_times,
        stream_saves,
        one_at_a_time_elapsed,
        one_at_a_time_latencies,
        one_at_a_time_to_backend,
        stream_latencies,
    };
    Ok((measured, store))
}

/// For each change (the first is number `first`, started at `times[0]`), the time from its
/// start to the completion of the first save holding it, and to that save's call of the back end.
fn latencies(
    records: &[SaveRecord],
    times: &[Duration],
    first: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut done, mut called) = (Vec::with_capacity(times.len()), Vec::with_capacity(times.len()));
    let mut r = 0;
    for (i, at) in times.iter().enumerate() {
        let k = first + i;
        while records.get(r).is_some_and(|s| s.included <= k) {
            r += 1;
        }
        let save = records.get(r).with_context(|| format!("no save holds change {k}"))?;
        done.push(save.finished.saturating_sub(*at));
        called.push(save.started.saturating_sub(*at));
    }
    Ok((done, called))
}

/// Percentile `p` of sorted durations, in microseconds.
fn pct_us(sorted: &[Duration], p: f64) -> u64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0, |d| d.as_micros() as u64)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The anchor's database: the rows as the tabular persister lays them out.
fn anchor_db(path: &Path, workload: &Workload) -> anyhow::Result<Connection> {
    let conn = sqlite_connection(path)?;
    let columns: Vec<String> = CELLS.iter().map(|c| format!("\"{c}\"")).collect();
    conn.execute_batch(&format!("CREATE TABLE rows(\"_id\" TEXT PRIMARY KEY, {})", columns.join(", ")))?;
    let tx = conn.unchecked_transaction()?;
    {
        let mut insert = tx.prepare(&format!("INSERT INTO rows VALUES (?1, {})", placeholders(2, CELLS.len())))?;
        for (i, id) in workload.row_ids.iter().enumerate() {
            let mut params: Vec<rusqlite::types::Value> = vec![id.clone().into()];
            params.extend((0..CELLS.len() as u8).map(|c| to_sql(&initial_cell(i, c))));
            insert.execute(rusqlite::params_from_iter(params))?;
        }
    }
    tx.commit()?;
    Ok(conn)
}

fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

/// A cell as the SQLite persister binds it.
fn to_sql(cell: &Cell) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match cell {
        Cell::Null => Value::Null,
        Cell::Bool(b) => Value::Integer(i64::from(*b)),
        Cell::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::Integer(*n as i64),
        Cell::Number(n) => Value::Real(*n),
        Cell::String(s) => Value::Text(s.clone()),
    }
}

fn update(conn: &Connection, workload: &Workload, k: usize) -> anyhow::Result<()> {
    let change = &workload.changes[k];
    let sql = format!("UPDATE rows SET \"{}\" = ?1 WHERE \"_id\" = ?2", CELLS[change.cell as usize]);
    let n = conn
        .prepare_cached(&sql)?
        .execute(rusqlite::params![to_sql(&change.value), workload.row_ids[change.row as usize]])?;
    anyhow::ensure!(n == 1, "the anchor's UPDATE of change {k} changed {n} rows");
    Ok(())
}

/// The anchor in autocommit: (changes per second, each statement's time, sorted).
fn anchor_autocommit(path: &Path, workload: &Workload, changes: Range<usize>) -> anyhow::Result<(f64, Vec<Duration>)> {
    let conn = anchor_db(path, workload)?;
    let n = changes.len();
    let mut times = Vec::with_capacity(n);
    let start = Instant::now();
    for k in changes {
        let t = Instant::now();
        update(&conn, workload, k)?;
        times.push(t.elapsed());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
    times.sort_unstable();
    Ok((rate, times))
}

/// The anchor in the persister's batches: one transaction per `bounds` window.
fn anchor_batched(path: &Path, workload: &Workload, bounds: &[usize]) -> anyhow::Result<f64> {
    let conn = anchor_db(path, workload)?;
    let start = Instant::now();
    let mut from = 0;
    for &to in bounds {
        let tx = conn.unchecked_transaction()?;
        for k in from..to {
            update(&tx, workload, k)?;
        }
        tx.commit()?;
        from = to;
    }
    Ok(from as f64 / start.elapsed().as_secs_f64().max(1e-9))
}

async fn pg_settings(url: &str) -> anyhow::Result<PgSettings> {
    use cairn_store::tokio_postgres;
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connect to PostgreSQL")?;
    let task = tokio::spawn(connection);
    let mut show = Vec::new();
    for setting in ["server_version", "fsync", "synchronous_commit"] {
        let row = client.query_one(&format!("SHOW {setting}"), &[]).await?;
        show.push(row.get::<_, String>(0));
    }
    drop(client);
    let _ = task.await;
    let [version, fsync, synchronous_commit] = <[String; 3]>::try_from(show).map_err(|_| anyhow::anyhow!("SHOW"))?;
    Ok(PgSettings { version, fsync, synchronous_commit })
}

async fn pg_drop(url: &str, tables: &[&str]) -> anyhow::Result<()> {
    use cairn_store::tokio_postgres;
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connect to PostgreSQL")?;
    let task = tokio::spawn(connection);
    for table in tables {
        client.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\"")).await?;
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Runs one persister and its anchors; reports its three figures.
fn run_target(
    rt: &tokio::runtime::Runtime,
    name: &str,
    target: &Target,
    anchor_dir: &Path,
    workload: &Arc<Workload>,
    opts: &StoreBenchOptions,
    report: &mut impl FnMut(&Figure),
) -> anyhow::Result<()> {
    let (stream, one) = (opts.changes, opts.latency_changes);
    // The anchor in autocommit first, on a fresh file: nothing another system left running
    // (a PostgreSQL checkpoint, a runtime's checkpoint) is writing to the disk yet.
    let anchored = stream.min(ANCHOR_AUTOCOMMIT_CHANGES);
    let (anchor_rate, anchor_times) =
        anchor_autocommit(&anchor_dir.join(format!("{name}-autocommit.db")), workload, 0..anchored)?;
    let (measured, store) = rt
        .block_on(async { with_storage!(target, |storage| measure(storage, workload, stream, one).await) })
        .with_context(|| format!("{name}: the run"))?;

    // What was saved, loaded by another storage of the same place.
    let loaded = rt
        .block_on(async {
            with_storage!(target, |storage| {
                let copy = Store::new();
                let loader = Persister::new(&copy, storage, PersisterOptions::new())?;
                loader.load(None).await?;
                loader.destroy().await;
                anyhow::Ok(copy.content())
            })
        })
        .with_context(|| format!("{name}: loading what was saved"))?;
    anyhow::ensure!(
        bools_as_numbers(loaded) == bools_as_numbers(store.content()),
        "{name}: what was loaded back is not the store"
    );

    // The anchor in the persister's batches, on another fresh file.
    let bounds: Vec<usize> = {
        let mut b: Vec<usize> = measured.stream_saves.iter().map(|s| s.included).filter(|&n| n > 0).collect();
        b.dedup();
        b
    };
    let batched_rate = anchor_batched(&anchor_dir.join(format!("{name}-batched.db")), workload, &bounds)?;

    let postgres = match target {
        Target::Postgres { settings, .. } => Some(settings.clone()),
        _ => None,
    };
    let with_context = |f: &mut Figure| {
        f.extra.insert("rows".into(), opts.rows.into());
        if let Some(pg) = &postgres {
            f.extra.insert("postgres_version".into(), pg.version.clone().into());
            f.extra.insert("postgres_fsync".into(), pg.fsync.clone().into());
            f.extra.insert("postgres_synchronous_commit".into(), pg.synchronous_commit.clone().into());
        }
    };

    // 1. The stream.
    let first = measured.stream_times.first().copied().unwrap_or_default();
    let last_save = measured.stream_saves.last().context("no save during the stream")?;
    let span = last_save.finished.saturating_sub(first);
    let writer_span = measured.stream_times.last().copied().unwrap_or_default().saturating_sub(first);
    let rate = stream as f64 / span.as_secs_f64().max(1e-9);
    let mut lat = measured.stream_latencies.clone();
    lat.sort_unstable();
    let mut save_times: Vec<Duration> =
        measured.stream_saves.iter().map(|s| s.finished.saturating_sub(s.started)).collect();
    save_times.sort_unstable();
    let per_save: Vec<usize> = {
        let mut prev = 0;
        bounds
            .iter()
            .map(|&b| {
                let n = b - prev;
                prev = b;
                n
            })
            .collect()
    };
    let figure_name = format!("store_autosave_stream_{name}");
    let mut f = Figure::new(
        &figure_name,
        rate,
        "rusqlite, one UPDATE per change in autocommit (WAL, synchronous=FULL)",
        anchor_rate,
        None,
    );
    with_context(&mut f);
    f.extra.insert("changes".into(), stream.into());
    f.extra.insert("saves".into(), bounds.len().into());
    f.extra.insert("changes_per_save_mean".into(), round(stream as f64 / bounds.len().max(1) as f64).into());
    f.extra.insert("changes_per_save_max".into(), per_save.iter().max().copied().unwrap_or(0).into());
    f.extra.insert("p50_us".into(), pct_us(&lat, 0.5).into());
    f.extra.insert("p99_us".into(), pct_us(&lat, 0.99).into());
    f.extra.insert("max_us".into(), pct_us(&lat, 1.0).into());
    f.extra.insert("anchor_changes".into(), anchored.into());
    f.extra.insert("anchor_p50_us".into(), pct_us(&anchor_times, 0.5).into());
    f.extra.insert("anchor_p99_us".into(), pct_us(&anchor_times, 0.99).into());
    f.extra.insert("anchor_max_us".into(), pct_us(&anchor_times, 1.0).into());
    f.extra.insert("save_ms_p50".into(), ms(save_times.get(save_times.len() / 2).copied().unwrap_or_default()).into());
    f.extra.insert("save_ms_max".into(), ms(save_times.last().copied().unwrap_or_default()).into());
    f.extra.insert("writer_changes_per_sec".into(), round(stream as f64 / writer_span.as_secs_f64().max(1e-9)).into());
    f.extra.insert("initial_save_ms".into(), ms(measured.initial_save).into());
    report(&f);

    let mut f = Figure::new(
        &figure_name,
        rate,
        "rusqlite, the same changes in the persister's batches (one transaction per save)",
        batched_rate,
        None,
    );
    with_context(&mut f);
    f.extra.insert("changes".into(), stream.into());
    f.extra.insert("batches".into(), bounds.len().into());
    report(&f);

    // 2. One change at a time.
    let mut lat = measured.one_at_a_time_latencies.clone();
    lat.sort_unstable();
    let rate = one as f64 / measured.one_at_a_time_elapsed.as_secs_f64().max(1e-9);
    let mut f = Figure::new(
        &format!("store_autosave_one_change_{name}"),
        rate,
        "rusqlite, one UPDATE per change in autocommit (WAL, synchronous=FULL)",
        anchor_rate,
        None,
    );
    with_context(&mut f);
    f.extra.insert("changes".into(), one.into());
    f.extra.insert("p50_us".into(), pct_us(&lat, 0.5).into());
    f.extra.insert("p99_us".into(), pct_us(&lat, 0.99).into());
    f.extra.insert("max_us".into(), pct_us(&lat, 1.0).into());
    let mut to_backend = measured.one_at_a_time_to_backend.clone();
    to_backend.sort_unstable();
    f.extra.insert("to_backend_p50_us".into(), pct_us(&to_backend, 0.5).into());
    f.extra.insert("anchor_changes".into(), anchored.into());
    f.extra.insert("anchor_p50_us".into(), pct_us(&anchor_times, 0.5).into());
    f.extra.insert("anchor_p99_us".into(), pct_us(&anchor_times, 0.99).into());
    f.extra.insert("anchor_max_us".into(), pct_us(&anchor_times, 1.0).into());
    report(&f);
    Ok(())
}

fn best_of_three(mut f: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| f()).min().unwrap_or_default()
}

/// What an auto-save of whole content does before it calls its back end, timed alone on the
/// loaded store (the best of three): copying the store's content (then, in JSON modes, writing
/// it as JSON), plus diffing two copies (which auto-saves no longer do); and how fast the writer
/// changes a store that has no persister (`changes` single-cell transactions, at most 200,000).
fn store_costs(workload: &Workload, changes: usize) -> Figure {
    let store = Store::new();
    store.set_content(workload.content());
    let copy = best_of_three(|| {
        let t = Instant::now();
        std::hint::black_box(store.content());
        t.elapsed()
    });
    let before = store.content();
    store.set_cell(TABLE, &workload.row_ids[0], CELLS[0], "changed");
    let after = store.content();
    let diff = best_of_three(|| {
        let t = Instant::now();
        std::hint::black_box(Changes::between(&before, &after));
        t.elapsed()
    });
    let mut json_bytes = 0;
    let to_json = best_of_three(|| {
        let t = Instant::now();
        json_bytes = std::hint::black_box(after.to_json()).len();
        t.elapsed()
    });
    // A fresh store for the writer, so that its changes have their usual effect.
    let store = Store::new();
    store.set_content(workload.content());
    let n = changes.min(200_000).min(workload.changes.len());
    let t = Instant::now();
    for change in &workload.changes[..n] {
        store.set_cell(
            TABLE,
            &workload.row_ids[change.row as usize],
            CELLS[change.cell as usize],
            change.value.clone(),
        );
    }
    let rate = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let mut f = Figure::new(
        "store_without_persister",
        rate,
        "none (single-cell transactions per second on a store without a persister; extra: one copy, diff and JSON of the whole store)",
        0.0,
        None,
    );
    f.extra.insert("rows".into(), workload.row_ids.len().into());
    f.extra.insert("changes".into(), n.into());
    f.extra.insert("content_copy_ms".into(), ms(copy).into());
    f.extra.insert("changes_between_ms".into(), ms(diff).into());
    f.extra.insert("to_json_ms".into(), ms(to_json).into());
    f.extra.insert("json_bytes".into(), json_bytes.into());
    f
}

/// Runs every persister of the store benchmark, calling `report` with each figure.
///
/// # Errors
/// Any failure of a persister, of the anchor, of the server or of PostgreSQL, and any save
/// that did not hold what the store held.
pub fn store(opts: &StoreBenchOptions, mut report: impl FnMut(&Figure)) -> anyhow::Result<()> {
    anyhow::ensure!(opts.rows > 0 && opts.changes > 0 && opts.latency_changes > 0, "nothing to measure");
    std::fs::create_dir_all(&opts.dir).context("create the benchmark directory")?;
    let work = tempfile::tempdir_in(&opts.dir).context("create a work directory")?;
    let root = work.path();
    let anchors = root.join("anchor");
    std::fs::create_dir_all(&anchors)?;
    let workload = Arc::new(Workload::new(opts.rows, opts.changes + opts.latency_changes));
    report(&store_costs(&workload, opts.changes));
    let rt = runtime()?;

    let targets = [
        ("json_file", Target::File(root.join("store.json"))),
        ("sqlite_json", Target::Sqlite { path: root.join("json.db"), tabular: false }),
        ("sqlite_tabular", Target::Sqlite { path: root.join("tabular.db"), tabular: true }),
    ];
    for (name, target) in &targets {
        run_target(&rt, name, target, &anchors, &workload, opts, &mut report)?;
    }

    // A Cairn object in this process.
    {
        let cairn = cairn_runtime::Runtime::builder(root.join("cairn")).open().map_err(rt_err)?;
        let object = cairn.object("tinybase", "bench-store").map_err(rt_err)?;
        let result =
            run_target(&rt, "cairn_embedded", &Target::CairnEmbedded(object), &anchors, &workload, opts, &mut report);
        cairn.close();
        result?;
    }

    // A Cairn object on a server, over HTTP.
    {
        let server = Server::start(&root.join("server"))?;
        let client =
            cairn_client::Client::new(&format!("http://{}", server.addr), None).map_err(|e| anyhow::anyhow!("{e}"))?;
        let target = Target::CairnRemote(client.object("tinybase", "bench-store"));
        let result = run_target(&rt, "cairn_remote", &target, &anchors, &workload, opts, &mut report);
        server.stop()?;
        result?;
    }

    if let Some(url) = &opts.postgres_url {
        let settings = rt.block_on(pg_settings(url))?;
        let json_table = format!("cairn_bench_store_json_{}", std::process::id());
        let tabular_table = format!("cairn_bench_store_tabular_{}", std::process::id());
        rt.block_on(pg_drop(url, &[&json_table, &tabular_table]))?;
        let targets = [
            (
                "postgres_json",
                Target::Postgres {
                    url: url.clone(),
                    table: json_table.clone(),
                    tabular: false,
                    settings: settings.clone(),
                },
            ),
            (
                "postgres_tabular",
                Target::Postgres { url: url.clone(), table: tabular_table.clone(), tabular: true, settings },
            ),
        ];
        let mut result = Ok(());
        for (name, target) in &targets {
            result = run_target(&rt, name, target, &anchors, &workload, opts, &mut report);
            if result.is_err() {
                break;
            }
        }
        rt.block_on(pg_drop(url, &[&json_table, &tabular_table]))?;
        result?;
    }
    Ok(())
}
