//! The benchmark's S3 client: one keep-alive HTTP/1.1 connection (hyper's client connection,
//! driven by a task on the caller's runtime) sending path-style requests signed with SigV4,
//! one at a time. Request bodies are either small byte strings or generated chunk by chunk as
//! hyper asks for them ([`ReqBody::generated`]), so an upload of any size holds one chunk at a
//! time; response bodies are handed to the caller frame by frame.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use anyhow::Context as _;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Response};

use super::sigv4::{self, Credentials, UNSIGNED_PAYLOAD};
use super::{CHUNK, SplitMix};

/// A request body.
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// Bytes already in memory.
    Bytes(Option<Bytes>),
    /// `left` more bytes of `rng`'s stream, produced [`CHUNK`] bytes at a time.
    Generated { rng: SplitMix, left: u64 },
}

impl ReqBody {
    /// `len` bytes of the stream of `SplitMix(seed)`, generated as they are sent.
    pub(crate) fn generated(seed: u64, len: u64) -> ReqBody {
        ReqBody::Generated { rng: SplitMix(seed), left: len }
    }

    fn len(&self) -> u64 {
        match self {
            ReqBody::Empty => 0,
            ReqBody::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            ReqBody::Generated { left, .. } => *left,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            ReqBody::Empty => None,
            ReqBody::Bytes(b) => b.take().map(Frame::data),
            ReqBody::Generated { left: 0, .. } => None,
            ReqBody::Generated { rng, left } => {
                let n = usize::try_from((*left).min(CHUNK as u64)).unwrap_or(CHUNK);
                let mut buf = vec![0u8; n];
                rng.fill(&mut buf);
                *left -= n as u64;
                Some(Frame::data(Bytes::from(buf)))
            }
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

/// The status and headers of an answer whose body was read.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The `ETag` header, without its quotes.
    pub(crate) etag: String,
    /// The body's length as received (for a HEAD, the `Content-Length` header).
    pub(crate) length: u64,
}

/// One keep-alive connection to the S3 API.
pub(crate) struct S3Conn {
    sender: SendRequest<ReqBody>,
    /// The `Host` header (the address as the client dialed it; path-style addressing).
    host: String,
    creds: Arc<Credentials>,
}

impl S3Conn {
    /// Connects to `addr`.
    pub(crate) async fn open(addr: SocketAddr, creds: Arc<Credentials>) -> anyhow::Result<S3Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await.context("connect to the S3 API")?;
        stream.set_nodelay(true).context("nodelay")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(S3Conn { sender, host: addr.to_string(), creds })
    }

    /// Sends a signed request and returns the answer, its body not read yet.
    async fn send(&mut self, method: Method, path: &str, body: ReqBody) -> anyhow::Result<Response<Incoming>> {
        let amz_date = sigv4::amz_date(SystemTime::now());
        let authorization = self.creds.authorization(&sigv4::Request {
            method: method.as_str(),
            path,
            query: "",
            headers: &[("host", &self.host), ("x-amz-content-sha256", UNSIGNED_PAYLOAD), ("x-amz-date", &amz_date)],
            payload_hash: UNSIGNED_PAYLOAD,
            amz_date: &amz_date,
        })?;
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", &self.host)
            .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
            .header("x-amz-date", &amz_date)
            .header("authorization", authorization);
        if method == Method::PUT {
            request = request.header("content-length", body.len());
        }
        let request = request.body(body).context("build the request")?;
        self.sender.ready().await.context("connection closed")?;
        self.sender.send_request(request).await.with_context(|| format!("{method} {path}"))
    }

    /// Sends a request and reads its answer, handing each piece of the body to `sink`; fails
    /// unless the status is `expected`.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: ReqBody,
        expected: u16,
        mut sink: impl FnMut(&[u8]),
    ) -> anyhow::Result<Answer> {
        let response = self.send(method.clone(), path, body).await?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let etag = header("etag").unwrap_or_default().trim_matches('"').to_owned();
        let content_length = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = response.into_body();
        if status != expected {
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            anyhow::bail!("{method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.with_context(|| format!("{method} {path}: body"))?.data_ref() {
                length += data.len() as u64;
                sink(data);
            }
        }
        if method == Method::HEAD {
            length = content_length;
        }
        Ok(Answer { etag, length })
    }

    /// Creates a bucket.
    pub(crate) async fn create_bucket(&mut self, bucket: &str) -> anyhow::Result<()> {
        self.call(Method::PUT, &format!("/{bucket}"), ReqBody::Empty, 200, |_| {}).await.map(drop)
    }

    /// Puts an object; returns its ETag.
    pub(crate) async fn put(&mut self, bucket: &str, key: &str, body: ReqBody) -> anyhow::Result<String> {
        Ok(self.call(Method::PUT, &format!("/{bucket}/{key}"), body, 200, |_| {}).await?.etag)
    }

    /// Gets an object, handing its body to `sink` as it arrives.
    pub(crate) async fn get(&mut self, bucket: &str, key: &str, sink: impl FnMut(&[u8])) -> anyhow::Result<Answer> {
        self.call(Method::GET, &format!("/{bucket}/{key}"), ReqBody::Empty, 200, sink).await
    }

    /// An object's length and ETag.
    pub(crate) async fn head(&mut self, bucket: &str, key: &str) -> anyhow::Result<Answer> {
        self.call(Method::HEAD, &format!("/{bucket}/{key}"), ReqBody::Empty, 200, |_| {}).await
    }
}
