//! Model-based property test: random sequences of KV operations, explicit transactions, event
//! commits and rollbacks and reopens, checked against a `BTreeMap` reference model.
//!
//! `BTreeMap<String, _>` orders keys by their UTF-8 bytes, as the engine must.

use std::collections::BTreeMap;
use std::ops::Bound;

use cairn_storage::{Error, ListOptions, ObjectStorage, OpenOptions, Synchronous, Transaction, Value};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Value as Json, json};

use crate::Obj;

type Map = BTreeMap<String, Json>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The closure returns `Ok`.
    Commit,
    /// The closure returns `Err`.
    Fail,
    /// The closure calls `rollback()` and returns `Ok` (plain transactions only).
    Rollback,
}

#[derive(Clone, Debug)]
enum TxnOp {
    Put(String, Json),
    Delete(String),
    Get(String),
    List(ListOptions),
    DeleteAll,
}

#[derive(Clone, Debug)]
struct Txn {
    sync: bool,
    ops: Vec<TxnOp>,
    end: End,
}

#[derive(Clone, Debug)]
enum Op {
    Put(String, Json),
    Delete(String),
    PutMany(Vec<(String, Json)>),
    DeleteMany(Vec<String>),
    DeleteAll,
    Get(String),
    GetMany(Vec<String>),
    List(ListOptions),
    /// A transaction, optionally with a nested one run after `ops[at]`.
    Txn(Txn, Option<(usize, Txn)>),
    CommitEvent,
    RollbackEvent,
    Reopen,
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ab]{0,2}",
        1 => "[a\\x{0}\\x{E9}\\x{FFFF}\\x{1F600}]{1,2}",
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        "[a-z\\x{1F600}\"\\\\]{0,6}".prop_map(Json::from),
        prop::collection::vec(any::<i32>(), 0..3).prop_map(|v| json!(v)),
        ("[a-z]{1,3}", any::<u8>()).prop_map(|(k, v)| json!({ k: v })),
    ]
}

fn list_options() -> impl Strategy<Value = ListOptions> {
    let opt_key = || prop::option::weighted(0.3, key());
    (
        opt_key(),
        opt_key(),
        opt_key(),
        prop::option::weighted(0.3, "[ab\\x{E9}]{0,2}"),
        any::<bool>(),
        prop::option::weighted(0.4, 0u64..5),
    )
        .prop_map(|(start, start_after, end, prefix, reverse, limit)| ListOptions {
            start,
            start_after,
            end,
            prefix,
            reverse,
            limit,
        })
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        4 => (key(), json_value()).prop_map(|(k, v)| TxnOp::Put(k, v)),
        2 => key().prop_map(TxnOp::Delete),
        1 => key().prop_map(TxnOp::Get),
        1 => list_options().prop_map(TxnOp::List),
        1 => Just(TxnOp::DeleteAll),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    let end = prop_oneof![3 => Just(End::Commit), 1 => Just(End::Fail), 1 => Just(End::Rollback)];
    (any::<bool>(), prop::collection::vec(txn_op(), 0..6), end).prop_map(|(sync, ops, end)| Txn { sync, ops, end })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key(), json_value()).prop_map(|(k, v)| Op::Put(k, v)),
        4 => key().prop_map(Op::Delete),
        2 => prop::collection::vec((key(), json_value()), 0..4).prop_map(Op::PutMany),
        2 => prop::collection::vec(key(), 0..4).prop_map(Op::DeleteMany),
        1 => Just(Op::DeleteAll),
        2 => key().prop_map(Op::Get),
        1 => prop::collection::vec(key(), 0..4).prop_map(Op::GetMany),
        3 => list_options().prop_map(Op::List),
        3 => (txn(), prop::option::weighted(0.4, (0usize..6, txn()))).prop_map(|(t, n)| Op::Txn(t, n)),
        4 => Just(Op::CommitEvent),
        2 => Just(Op::RollbackEvent),
        1 => Just(Op::Reopen),
    ]
}

/// The reference semantics of `list`: a filter over the model, then order and limit.
fn model_list(map: &Map, o: &ListOptions) -> Result<Vec<(String, Json)>, &'static str> {
    if o.start.is_some() && o.start_after.is_some() {
        return Err("storage.list_start_and_start_after");
    }
    if o.limit == Some(0) {
        return Err("storage.list_limit_not_positive");
    }
    let lower = match (&o.start, &o.start_after) {
        (Some(s), _) => Bound::Included(s.clone()),
        (_, Some(s)) => Bound::Excluded(s.clone()),
        _ => Bound::Unbounded,
    };
    let prefix = o.prefix.clone().unwrap_or_default();
    let mut out: Vec<(String, Json)> = map
        .range((lower, Bound::Unbounded))
        .filter(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| o.end.as_ref().is_none_or(|e| k.as_str() < e.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if o.reverse {
        out.reverse();
    }
    if let Some(n) = o.limit {
        out.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    Ok(out)
}

fn as_values(entries: Vec<(String, Json)>) -> Vec<(String, Value)> {
    entries.into_iter().map(|(k, v)| (k, Value::Json(v))).collect()
}

/// The KV operations shared by the storage itself and by a transaction.
trait Kv {
    fn put(&mut self, k: &str, v: &Json) -> cairn_storage::Result<()>;
    fn delete(&mut self, k: &str) -> cairn_storage::Result<bool>;
    fn get_value(&mut self, k: &str) -> cairn_storage::Result<Option<Value>>;
    fn list(&mut self, o: &ListOptions) -> cairn_storage::Result<Vec<(String, Value)>>;
    fn delete_all(&mut self) -> cairn_storage::Result<()>;
    /// Rolls back explicitly; `None` if this is not a transaction (`transaction_sync`).
    fn rollback(&mut self) -> Option<cairn_storage::Result<()>>;
    fn nested(&mut self, sync: bool, f: &mut dyn FnMut(&mut dyn Kv) -> Result<(), Abort>) -> Result<(), Abort>;
}

impl Kv for ObjectStorage {
    fn put(&mut self, k: &str, v: &Json) -> cairn_storage::Result<()> {
        ObjectStorage::put(self, k, v)
    }
    fn delete(&mut self, k: &str) -> cairn_storage::Result<bool> {
        ObjectStorage::delete(self, k)
    }
    fn get_value(&mut self, k: &str) -> cairn_storage::Result<Option<Value>> {
        ObjectStorage::get_value(self, k)
    }
    fn list(&mut self, o: &ListOptions) -> cairn_storage::Result<Vec<(String, Value)>> {
        ObjectStorage::list(self, o)
    }
    fn delete_all(&mut self) -> cairn_storage::Result<()> {
        ObjectStorage::delete_all(self)
    }
    fn rollback(&mut self) -> Option<cairn_storage::Result<()>> {
        None
    }
    fn nested(&mut self, sync: bool, f: &mut dyn FnMut(&mut dyn Kv) -> Result<(), Abort>) -> Result<(), Abort> {
        if sync { self.transaction_sync(|s| f(s)) } else { self.transaction(|t| f(t)) }
    }
}

impl Kv for Transaction<'_> {
    fn put(&mut self, k: &str, v: &Json) -> cairn_storage::Result<()> {
        Transaction::put(self, k, v)
    }
    fn delete(&mut self, k: &str) -> cairn_storage::Result<bool> {
        Transaction::delete(self, k)
    }
    fn get_value(&mut self, k: &str) -> cairn_storage::Result<Option<Value>> {
        Transaction::get_value(self, k)
    }
    fn list(&mut self, o: &ListOptions) -> cairn_storage::Result<Vec<(String, Value)>> {
        Transaction::list(self, o)
    }
    fn delete_all(&mut self) -> cairn_storage::Result<()> {
        Transaction::delete_all(self)
    }
    fn rollback(&mut self) -> Option<cairn_storage::Result<()>> {
        Some(Transaction::rollback(self))
    }
    fn nested(&mut self, _sync: bool, f: &mut dyn FnMut(&mut dyn Kv) -> Result<(), Abort>) -> Result<(), Abort> {
        self.transaction(|t| f(t))
    }
}

/// How a transaction closure ended when it did not return `Ok`.
#[derive(Debug)]
enum Abort {
    /// The test asked for a failure.
    Requested,
    /// A storage error (never expected).
    Storage(Error),
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Storage(e)
    }
}

fn check_list(kv: &mut dyn Kv, model: &Map, o: &ListOptions) {
    match (kv.list(o), model_list(model, o)) {
        (Ok(got), Ok(want)) => assert_eq!(got, as_values(want), "list {o:?}"),
        (Err(e), Err(code)) => assert_eq!(e.code(), code, "list {o:?}"),
        (got, want) => panic!("list {o:?}: got {got:?}, want {want:?}"),
    }
}

fn check_all(kv: &mut dyn Kv, model: &Map) {
    let all = kv.list(&ListOptions::new()).expect("list everything");
    assert_eq!(all, as_values(model.clone().into_iter().collect()), "whole contents");
}

/// Runs a transaction's operations against `kv` and the model, then ends it as asked.
fn run_txn(kv: &mut dyn Kv, model: &mut Map, t: &Txn, inner: Option<&(usize, Txn)>) -> Result<(), Abort> {
    for (i, op) in t.ops.iter().enumerate() {
        match op {
            TxnOp::Put(k, v) => {
                kv.put(k, v).expect("put in a transaction");
                model.insert(k.clone(), v.clone());
            }
            TxnOp::Delete(k) => {
                assert_eq!(kv.delete(k).expect("delete in a transaction"), model.remove(k).is_some(), "delete {k:?}");
            }
            TxnOp::Get(k) => {
                assert_eq!(kv.get_value(k).expect("get"), model.get(k).cloned().map(Value::Json), "get {k:?}");
            }
            TxnOp::List(o) => check_list(kv, model, o),
            TxnOp::DeleteAll => {
                let e = kv.delete_all().expect_err("delete_all inside a transaction");
                assert_eq!(e.code(), "storage.delete_all_in_transaction");
            }
        }
        if let Some((_, nested)) = inner.filter(|(at, _)| *at == i) {
            run_transaction(kv, model, nested, None);
        }
    }
    check_all(kv, model);
    match t.end {
        End::Commit => Ok(()),
        End::Fail => Err(Abort::Requested),
        End::Rollback => match kv.rollback() {
            Some(r) => {
                r?;
                let e = kv.put("after", &json!(1)).expect_err("put after rollback");
                assert_eq!(e.code(), "storage.transaction_rolled_back");
                Ok(())
            }
            None => Err(Abort::Requested),
        },
    }
}

/// Runs `t` as a (possibly nested) transaction of `kv`, and checks how it ended.
fn run_transaction(kv: &mut dyn Kv, model: &mut Map, t: &Txn, inner: Option<&(usize, Txn)>) {
    let snapshot = model.clone();
    let result = kv.nested(t.sync, &mut |kv| run_txn(kv, model, t, inner));
    let rolls_back = t.end != End::Commit;
    match result {
        Ok(()) => assert!(t.end != End::Fail, "a failing transaction returned Ok"),
        Err(Abort::Requested) => assert!(rolls_back),
        Err(Abort::Storage(e)) => panic!("transaction failed: {e}"),
    }
    if rolls_back {
        *model = snapshot;
    }
    check_all(kv, model);
}

struct Harness {
    obj: Obj,
    /// State as of the last commit.
    committed: Map,
    /// State as the open event sees it.
    current: Map,
    /// The open event has called a write operation.
    wrote: bool,
    /// The open event has run a transaction (which may count as a write).
    ran_txn: bool,
}

impl Harness {
    fn new() -> Self {
        let options = OpenOptions { synchronous: Synchronous::Normal, ..OpenOptions::default() };
        Harness {
            obj: Obj::with_options(options),
            committed: Map::new(),
            current: Map::new(),
            wrote: false,
            ran_txn: false,
        }
    }

    fn apply(&mut self, op: &Op) {
        let s: &mut ObjectStorage = &mut self.obj;
        match op {
            Op::Put(k, v) => {
                s.put(k, v).expect("put");
                self.current.insert(k.clone(), v.clone());
                self.wrote = true;
            }
            Op::Delete(k) => {
                assert_eq!(s.delete(k).expect("delete"), self.current.remove(k).is_some(), "delete {k:?}");
                self.wrote = true;
            }
            Op::PutMany(pairs) => {
                let entries: Vec<(&str, Value)> =
                    pairs.iter().map(|(k, v)| (k.as_str(), Value::Json(v.clone()))).collect();
                s.put_many(&entries).expect("put_many");
                for (k, v) in pairs {
                    self.current.insert(k.clone(), v.clone());
                }
                self.wrote |= !pairs.is_empty();
            }
            Op::DeleteMany(ks) => {
                let mut existing: Vec<&String> = ks.iter().filter(|k| self.current.contains_key(*k)).collect();
                existing.sort();
                existing.dedup();
                assert_eq!(s.delete_many(ks).expect("delete_many"), existing.len(), "delete_many {ks:?}");
                for k in ks {
                    self.current.remove(k);
                }
                self.wrote |= !ks.is_empty();
            }
            Op::DeleteAll => {
                s.delete_all().expect("delete_all");
                self.current.clear();
                self.wrote = true;
            }
            Op::Get(k) => {
                assert_eq!(s.get_value(k).expect("get"), self.current.get(k).cloned().map(Value::Json), "get {k:?}");
                assert_eq!(s.get::<Json>(k).expect("get"), self.current.get(k).cloned(), "get {k:?}");
            }
            Op::GetMany(ks) => {
                let want: Map = ks
                    .iter()
                    .filter_map(|k| self.current.get_key_value(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(s.get_many(ks).expect("get_many"), as_values(want.into_iter().collect()), "get_many {ks:?}");
            }
            Op::List(o) => check_list(s, &self.current, o),
            Op::Txn(t, inner) => {
                run_transaction(s, &mut self.current, t, inner.as_ref());
                self.ran_txn = true;
            }
            Op::CommitEvent => {
                let before = s.committed_seq();
                let info = s.commit().expect("commit");
                match &info {
                    Some(info) => assert_eq!(info.seq, before + 1),
                    None => assert!(!self.wrote, "an event that wrote did not commit"),
                }
                if !self.wrote && !self.ran_txn {
                    assert_eq!(info, None, "a read-only event committed");
                }
                assert_eq!(s.committed_seq(), info.map_or(before, |i| i.seq));
                self.end_event(true);
            }
            Op::RollbackEvent => {
                s.rollback();
                self.end_event(false);
            }
            Op::Reopen => {
                let seq = s.committed_seq();
                self.obj.reopen();
                assert_eq!(self.obj.committed_seq(), seq);
                self.end_event(false);
            }
        }
        if self.wrote {
            assert!(self.obj.has_pending_writes());
        } else if !self.ran_txn {
            assert!(!self.obj.has_pending_writes());
        }
        check_all(&mut *self.obj, &self.current);
    }

    fn end_event(&mut self, committed: bool) {
        if committed {
            self.committed = self.current.clone();
        } else {
            self.current = self.committed.clone();
        }
        self.wrote = false;
        self.ran_txn = false;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x00CA_1257),
        ..ProptestConfig::default()
    })]

    #[test]
    fn storage_behaves_like_an_ordered_map_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        // Whatever is still open is lost on close; the last commit is what persists.
        h.apply(&Op::Reopen);
        prop_assert_eq!(&h.current, &h.committed);
    }
}
