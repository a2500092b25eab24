//! A minimal HTTP/1.1 keep-alive client connection for the load generator: one request at a
//! time, responses framed by `content-length` or chunked.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A response: its status and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Requests sent again on a new connection because the server had closed the previous one
/// before answering (see [`HttpConn::send`]), since the process started.
static RESENT: AtomicU64 = AtomicU64::new(0);

/// How many requests were sent again on a new connection so far.
pub(crate) fn resent() -> u64 {
    RESENT.load(Ordering::Relaxed)
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time.
pub(crate) struct HttpConn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    line: String,
}

async fn connect(addr: SocketAddr) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true).context("nodelay")?;
    Ok(BufReader::new(stream))
}

impl HttpConn {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<HttpConn> {
        Ok(HttpConn { addr, reader: connect(addr).await?, line: String::new() })
    }

    /// Sends a request and reads the whole response. If the server closed the connection
    /// before sending any byte of the answer, the request is sent once more on a new
    /// connection, as HTTP clients do with a kept-alive connection the server dropped;
    /// [`resent`] counts them. (GETs, PUTs and selects may be repeated; a batch of inserts
    /// that had been applied would fail the second time, on its primary keys.)
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        if self.status_line(&request).await.is_err() {
            RESENT.fetch_add(1, Ordering::Relaxed);
            self.reader = connect(self.addr).await?;
            self.status_line(&request).await.context("status line")?;
        }
        let status = self.line.get(9..12).and_then(|s| s.parse().ok()).context("status")?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let l = self.read_line().await.context("header")?;
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().context("content-length")?;
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = {
                    let l = self.read_line().await.context("chunk size")?;
                    let hex = l.split(';').next().unwrap_or("").trim();
                    usize::from_str_radix(hex, 16).context("chunk size")?
                };
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..]).await.context("chunk")?;
                self.read_line().await.context("chunk end")?;
                if size == 0 {
                    break;
                }
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body).await.context("body")?;
        }
        Ok(Reply { status, body })
    }

    /// Writes the request and reads the status line into `self.line`; fails only if the
    /// connection fails.
    async fn status_line(&mut self, request: &[u8]) -> std::io::Result<()> {
        self.reader.get_mut().write_all(request).await?;
        self.read_line().await.map(|_| ())
    }

    /// Reads one line, without its line break.
    async fn read_line(&mut self) -> std::io::Result<&str> {
        self.line.clear();
        let n = self.reader.read_line(&mut self.line).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(self.line.trim_end_matches(['\r', '\n']))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{HttpConn, resent};

    #[tokio::test]
    async fn reads_chunked_bodies_and_resends_once_on_a_dropped_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // First connection: one chunked answer, then closed without answering.
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .await
                .unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            drop(s);
            // Second connection: the request again.
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno").await.unwrap();
        });
        let mut c = HttpConn::open(addr).await.unwrap();
        let first = c.send("GET", "/a", "text/plain", b"").await.unwrap();
        assert_eq!((first.status, first.body.as_slice()), (200, &b"abcde"[..]));
        let before = resent();
        let second = c.send("PUT", "/b", "text/plain", b"x").await.unwrap();
        assert_eq!((second.status, second.body.as_slice()), (404, &b"no"[..]));
        assert_eq!(resent() - before, 1);
    }
}
