//! Bodies: staging a request body (in memory when small, else streamed to a file while it is
//! hashed), and streaming a stored body back.
//!
//! Files live under `{root}/{bucket id}/{first two hex digits}/{blob id}`, where the blob id is
//! random: an object key never becomes part of a path. A blob file is written once, made durable
//! (the file and its directory are fsynced) before the metadata that points at it is committed,
//! and never changed afterwards; it is removed after the commit that stops referencing it is
//! durable. A crash can therefore leave unreferenced files behind, never a reference to a
//! missing or partial file; [`crate::BucketService::sweep_orphans`] removes the leftovers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::checksum::{ChecksumAlgorithm, Digests, Hasher};
use crate::{Error, Result};

/// Chunks in flight between the request and the writer and hasher threads.
const PIPE_CHUNKS: usize = 16;
/// Size of the chunks a stored body is read in.
const READ_CHUNK: usize = 1024 * 1024;

/// The directory tree of blob files.
#[derive(Debug)]
pub(crate) struct BlobStore {
    root: PathBuf,
    /// Whether files are fsynced (false only with the runtime's `os` durability).
    fsync: bool,
}

impl BlobStore {
    pub(crate) fn new(root: PathBuf, fsync: bool) -> BlobStore {
        BlobStore { root, fsync }
    }

    pub(crate) fn bucket_dir(&self, bucket_id: &str) -> PathBuf {
        self.root.join(bucket_id)
    }

    pub(crate) fn path(&self, bucket_id: &str, blob: &str) -> PathBuf {
        self.bucket_dir(bucket_id).join(blob.get(..2).unwrap_or("00")).join(blob)
    }

    pub(crate) fn new_blob_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Creates the file of a new blob, creating (and making durable) its directory if needed.
    pub(crate) fn create(&self, bucket_id: &str, blob: &str) -> std::io::Result<File> {
        let path = self.path(bucket_id, blob);
        self.ensure_dir(&path)?;
        File::options().write(true).create_new(true).open(&path)
    }

    /// Creates the directory of a blob's `path` if it is missing, durably.
    fn ensure_dir(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            if self.fsync {
                // The new directories' entries: the bucket's, the blob root's, the data dir's.
                sync_dir(dir.parent().unwrap_or(&self.root))?;
                sync_dir(&self.root)?;
                if let Some(data_dir) = self.root.parent() {
                    sync_dir(data_dir)?;
                }
            }
        }
        Ok(())
    }

    /// Makes a finished blob durable: its data, then its directory entry.
    pub(crate) fn seal(&self, bucket_id: &str, blob: &str, file: &File) -> std::io::Result<()> {
        if self.fsync {
            file.sync_all()?;
            sync_dir(self.path(bucket_id, blob).parent().unwrap_or(&self.root))?;
        }
        Ok(())
    }

    /// Removes blobs no longer referenced by durable metadata (best effort: a failure leaves
    /// an orphan for the sweep).
    pub(crate) fn remove(&self, bucket_id: &str, blobs: &[String]) {
        for blob in blobs {
            let path = self.path(bucket_id, blob);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a blob file");
            }
        }
    }

    /// Removes every file of a bucket.
    pub(crate) fn remove_bucket(&self, bucket_id: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.bucket_dir(bucket_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every file in a bucket's blob directory (at any depth up to the fan-out level) last
    /// modified before `before`: (file name, path). Names that are not blob ids are included,
    /// so that the sweep removes whatever does not belong.
    pub(crate) fn files_older_than(&self, bucket_id: &str, before: std::time::SystemTime) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.bucket_dir(bucket_id)) else { return out };
        let old = |e: &std::fs::DirEntry| e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < before);
        let mut push = |e: std::fs::DirEntry| {
            if let Some(name) = e.file_name().to_str() {
                out.push((name.to_owned(), e.path()));
            }
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    let Ok(files) = std::fs::read_dir(entry.path()) else { continue };
                    for file in files.flatten() {
                        if file.file_type().is_ok_and(|t| t.is_file()) && old(&file) {
                            push(file);
                        }
                    }
                }
                Ok(t) if t.is_file() && old(&entry) => push(entry),
                _ => {}
            }
        }
        out
    }

    /// Whether `path` is where the blob `name` of this bucket lives.
    pub(crate) fn is_blob_path(&self, bucket_id: &str, name: &str, path: &Path) -> bool {
        self.path(bucket_id, name) == path
    }

    /// Removes one file (best effort).
    pub(crate) fn remove_path(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a stray file");
        }
    }

    /// Copies the given blobs (or inline bodies), in order, into a new durable blob.
    pub(crate) fn concatenate(&self, bucket_id: &str, sources: &[PartSource]) -> std::io::Result<String> {
        let blob = Self::new_blob_id();
        let mut out = self.create(bucket_id, &blob)?;
        let result = (|| {
            for source in sources {
                match source {
                    PartSource::Inline(bytes) => out.write_all(bytes)?,
                    PartSource::Blob(id) => {
                        let mut f = File::open(self.path(bucket_id, id))?;
                        // Uses copy_file_range where the kernel has it: no copy through memory.
                        std::io::copy(&mut f, &mut out)?;
                    }
                }
            }
            self.seal(bucket_id, &blob, &out)
        })();
        if let Err(e) = result {
            self.remove(bucket_id, std::slice::from_ref(&blob));
            return Err(e);
        }
        Ok(blob)
    }

    /// Links a new blob to the file of an existing one (a copy without copying: blob files are
    /// never modified).
    pub(crate) fn link(&self, from_bucket: &str, from: &str, to_bucket: &str) -> std::io::Result<String> {
        let blob = Self::new_blob_id();
        let target = self.path(to_bucket, &blob);
        self.ensure_dir(&target)?;
        std::fs::hard_link(self.path(from_bucket, from), &target)?;
        if self.fsync {
            sync_dir(target.parent().unwrap_or(&self.root))?;
        }
        Ok(blob)
    }

    /// Opens a blob for reading.
    pub(crate) fn open(&self, bucket_id: &str, blob: &str) -> std::io::Result<File> {
        File::open(self.path(bucket_id, blob))
    }
}

/// One part of a multipart upload being assembled.
pub(crate) enum PartSource {
    Inline(Vec<u8>),
    Blob(String),
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How to stage a body.
#[derive(Clone, Debug, Default)]
pub struct StageOptions {
    /// Checksums to compute besides MD5.
    pub algorithms: Vec<ChecksumAlgorithm>,
    /// The declared length (`Content-Length`), checked against what arrives.
    pub expected_len: Option<u64>,
}

/// A request body received in full and made durable, not yet part of any object. Dropping it
/// without using it removes its file.
pub struct StagedBody {
    pub(crate) data: Staged,
    pub(crate) size: u64,
    pub(crate) digests: Digests,
    pub(crate) bucket_id: String,
    pub(crate) store: Arc<BlobStore>,
}

pub(crate) enum Staged {
    Inline(Vec<u8>),
    Blob(String),
    /// Given to metadata (or removed): nothing to clean up.
    Taken,
}

impl std::fmt::Debug for StagedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBody").field("size", &self.size).finish_non_exhaustive()
    }
}

impl StagedBody {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its digests.
    pub fn digests(&self) -> &Digests {
        &self.digests
    }

    /// Checks a digest given by the client.
    ///
    /// # Errors
    /// [`Error::BadDigest`].
    pub fn verify(&self, alg: ChecksumAlgorithm, expected: &[u8]) -> Result<()> {
        self.digests.verify(alg, expected)
    }

    /// Hands the body over to metadata about to be committed: returns (inline bytes, blob id).
    pub(crate) fn take(&mut self) -> (Option<Vec<u8>>, Option<String>) {
        match std::mem::replace(&mut self.data, Staged::Taken) {
            Staged::Inline(b) => (Some(b), None),
            Staged::Blob(id) => (None, Some(id)),
            Staged::Taken => (None, None),
        }
    }

    /// Gives a taken body back because its commit was rolled back.
    pub(crate) fn restore(&mut self, inline: Option<Vec<u8>>, blob: Option<String>) {
        self.data = match (inline, blob) {
            (_, Some(id)) => Staged::Blob(id),
            (Some(b), None) => Staged::Inline(b),
            (None, None) => Staged::Taken,
        };
    }
}

impl Drop for StagedBody {
    fn drop(&mut self) {
        if let Staged::Blob(id) = &self.data {
            self.store.remove(&self.bucket_id, std::slice::from_ref(id));
        }
    }
}

/// Receives `body` in full: kept in memory up to `inline_bytes`, streamed to a new blob file
/// beyond that (written and hashed on two blocking threads while the next chunks arrive).
pub(crate) async fn stage<S, E>(
    store: Arc<BlobStore>,
    bucket_id: &str,
    mut body: S,
    options: &StageOptions,
    inline_bytes: usize,
    max_bytes: u64,
) -> Result<StagedBody>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    if let Some(len) = options.expected_len
        && len > max_bytes
    {
        return Err(Error::EntityTooLarge { len, max: max_bytes });
    }
    let mut buffered: Vec<Bytes> = Vec::new();
    let mut size: u64 = 0;
    let mut writer: Option<Writer> = None;
    let received =
        receive(&store, bucket_id, &mut body, options, inline_bytes, max_bytes, &mut buffered, &mut size, &mut writer)
            .await;
    if let Err(e) = received {
        // The writer thread removes its file; waiting for it means that a failed stage has
        // left nothing behind by the time it returns.
        if let Some(w) = writer {
            w.abandon().await;
        }
        return Err(e);
    }
    let (data, digests) = match writer {
        Some(w) => {
            let (blob, digests) = w.finish().await?;
            (Staged::Blob(blob), digests)
        }
        None => {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            let mut hasher = Hasher::new(&options.algorithms);
            for c in buffered {
                hasher.update(&c);
                bytes.extend_from_slice(&c);
            }
            (Staged::Inline(bytes), hasher.finish())
        }
    };
    Ok(StagedBody { data, size, digests, bucket_id: bucket_id.to_owned(), store })
}

/// The receiving loop of [`stage`]: buffers the start of the body, starts the writer once the
/// body outgrows `inline_bytes`, and checks the size limits as chunks arrive.
#[allow(clippy::too_many_arguments)]
async fn receive<S, E>(
    store: &Arc<BlobStore>,
    bucket_id: &str,
    body: &mut S,
    options: &StageOptions,
    inline_bytes: usize,
    max_bytes: u64,
    buffered: &mut Vec<Bytes>,
    size: &mut u64,
    writer: &mut Option<Writer>,
) -> Result<()>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::BodyRead { reason: e.to_string() })?;
        *size += chunk.len() as u64;
        if *size > max_bytes {
            return Err(Error::EntityTooLarge { len: *size, max: max_bytes });
        }
        if let Some(len) = options.expected_len
            && *size > len
        {
            return Err(Error::IncompleteBody { expected: len, received: *size });
        }
        match writer {
            Some(w) => w.send(chunk).await?,
            None => {
                buffered.push(chunk);
                if *size > inline_bytes as u64 {
                    let blob = BlobStore::new_blob_id();
                    let w = writer.insert(Writer::start(Arc::clone(store), bucket_id, blob, &options.algorithms));
                    for c in buffered.drain(..) {
                        w.send(c).await?;
                    }
                }
            }
        }
    }
    if let Some(len) = options.expected_len
        && *size != len
    {
        return Err(Error::IncompleteBody { expected: len, received: *size });
    }
    Ok(())
}

/// A blob being written by one blocking thread and hashed by another.
///
/// The writer thread owns the file from creation to the end: if the writer is dropped without
/// [`Writer::finish`] (a failed or abandoned upload, a cancelled request) or writing fails, the
/// thread removes the file itself, so nothing is left behind whatever the timing.
struct Writer {
    to_file: mpsc::Sender<Bytes>,
    to_hasher: mpsc::Sender<Bytes>,
    file_task: tokio::task::JoinHandle<std::io::Result<()>>,
    hash_task: tokio::task::JoinHandle<Digests>,
    blob: String,
    /// Set by `finish` before the channels close: the body is complete and must be kept.
    complete: Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    fn start(store: Arc<BlobStore>, bucket_id: &str, blob: String, algorithms: &[ChecksumAlgorithm]) -> Writer {
        use std::sync::atomic::Ordering;
        let (to_file, mut file_rx) = mpsc::channel::<Bytes>(PIPE_CHUNKS);
        let (to_hasher, mut hash_rx) = mpsc::channel::<Bytes>(PIPE_CHUNKS);
        let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, id, done) = (bucket_id.to_owned(), blob.clone(), Arc::clone(&complete));
        let file_task = tokio::task::spawn_blocking(move || {
            let written = (|| {
                let mut file = store.create(&b, &id)?;
                while let Some(chunk) = file_rx.blocking_recv() {
                    file.write_all(&chunk)?;
                }
                if !done.load(Ordering::Acquire) {
                    return Err(std::io::Error::other("the upload was abandoned"));
                }
                store.seal(&b, &id, &file)
            })();
            if written.is_err() {
                store.remove(&b, std::slice::from_ref(&id));
            }
            written
        });
        let mut hasher = Hasher::new(algorithms);
        let hash_task = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = hash_rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finish()
        });
        Writer { to_file, to_hasher, file_task, hash_task, blob, complete }
    }

    async fn send(&mut self, chunk: Bytes) -> Result<()> {
        let file_ok = self.to_file.send(chunk.clone()).await.is_ok();
        let hash_ok = self.to_hasher.send(chunk).await.is_ok();
        if file_ok && hash_ok {
            return Ok(());
        }
        // The writer stopped early: only an I/O error does that.
        match (&mut self.file_task).await {
            Ok(Err(e)) => Err(Error::Io(e)),
            _ => Err(Error::Io(std::io::Error::other("the blob writer stopped"))),
        }
    }

    /// Stops without keeping anything: the writer thread removes the file; returns once it has.
    async fn abandon(self) {
        let Writer { to_file, to_hasher, file_task, hash_task, .. } = self;
        drop(to_file);
        drop(to_hasher);
        let _ = file_task.await;
        let _ = hash_task.await;
    }

    async fn finish(self) -> Result<(String, Digests)> {
        let Writer { to_file, to_hasher, file_task, hash_task, blob, complete } = self;
        complete.store(true, std::sync::atomic::Ordering::Release);
        drop(to_file);
        drop(to_hasher);
        let written = file_task.await.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let digests = hash_task.await.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        written?;
        Ok((blob, digests))
    }
}

/// A stored body (or a range of it) being sent.
pub struct BodyStream {
    inner: BodyInner,
}

enum BodyInner {
    Once(Option<Bytes>),
    Channel(mpsc::Receiver<std::io::Result<Bytes>>),
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream").finish_non_exhaustive()
    }
}

impl Stream for BodyStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.inner {
            BodyInner::Once(b) => Poll::Ready(b.take().map(Ok)),
            BodyInner::Channel(rx) => rx.poll_recv(cx),
        }
    }
}

impl BodyStream {
    pub(crate) fn once(bytes: Bytes) -> BodyStream {
        BodyStream { inner: BodyInner::Once((!bytes.is_empty()).then_some(bytes)) }
    }

    /// Streams `length` bytes of `file` from `offset`, read on a blocking thread a chunk ahead
    /// of the consumer.
    pub(crate) fn file(mut file: File, offset: u64, length: u64) -> BodyStream {
        let (tx, rx) = mpsc::channel(2);
        tokio::task::spawn_blocking(move || {
            let send = |item| tx.blocking_send(item).is_ok();
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                send(Err(e));
                return;
            }
            let mut left = length;
            while left > 0 {
                let n = usize::try_from(left.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
                let mut buf = BytesMut::zeroed(n);
                match file.read_exact(&mut buf) {
                    Ok(()) => {}
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                }
                left -= n as u64;
                if !send(Ok(buf.freeze())) {
                    return;
                }
            }
        });
        BodyStream { inner: BodyInner::Channel(rx) }
    }

    /// Collects the whole stream.
    ///
    /// # Errors
    /// A read error of the blob file.
    pub async fn collect(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}
