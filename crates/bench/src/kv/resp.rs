//! A tiny Redis client: RESP2 over one TCP connection, one command at a time (no pipelining).
//! Enough for `GET`, `SET`, `PING` and `INFO`; arrays in replies are not supported.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply, as far as this client reads them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$3 abc`, or `$-1` (`None`).
    Bulk(Option<Vec<u8>>),
}

/// One connection to a Redis server.
pub(crate) struct RespConn {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl RespConn {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<RespConn> {
        let stream = TcpStream::connect(addr).await.context("connect to redis")?;
        stream.set_nodelay(true).context("nodelay")?;
        Ok(RespConn { reader: BufReader::new(stream), out: Vec::new(), line: Vec::new() })
    }

    /// Sends one command and reads its reply.
    pub(crate) async fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        self.out.clear();
        self.out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&self.out).await.context("write to redis")?;
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line).await.context("read from redis")?;
        anyhow::ensure!(n >= 3 && self.line.ends_with(b"\r\n"), "redis closed the connection");
        let text = std::str::from_utf8(&self.line[1..n - 2]).context("reply line")?;
        Ok(match self.line[0] {
            b'+' => Reply::Simple(text.to_owned()),
            b'-' => Reply::Error(text.to_owned()),
            b':' => Reply::Integer(text.parse().context("integer reply")?),
            b'$' => {
                let len: i64 = text.parse().context("bulk length")?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut data = vec![0u8; usize::try_from(len)? + 2];
                    self.reader.read_exact(&mut data).await.context("bulk reply")?;
                    data.truncate(data.len() - 2);
                    Reply::Bulk(Some(data))
                }
            }
            other => anyhow::bail!("unsupported reply type {:?}", char::from(other)),
        })
    }

    /// `SET key value`.
    pub(crate) async fn set(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        match self.command(&[b"SET", key, value]).await? {
            Reply::Simple(s) if s == "OK" => Ok(()),
            other => anyhow::bail!("SET answered {other:?}"),
        }
    }

    /// `GET key`.
    pub(crate) async fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        match self.command(&[b"GET", key]).await? {
            Reply::Bulk(v) => Ok(v),
            other => anyhow::bail!("GET answered {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{Reply, RespConn};

    /// A server that reads one command per canned reply and answers it.
    async fn server(replies: &'static [&'static [u8]]) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            for reply in replies {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(reply).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_simple_bulk_nil_integer_and_error_replies() {
        let addr = server(&[b"+OK\r\n", b"$5\r\nab\r\nc\r\n", b"$-1\r\n", b":42\r\n", b"-ERR wrong\r\n"]).await;
        let mut c = RespConn::open(addr).await.unwrap();
        c.set(b"k", b"v").await.unwrap();
        assert_eq!(c.get(b"k").await.unwrap(), Some(b"ab\r\nc".to_vec()));
        assert_eq!(c.get(b"missing").await.unwrap(), None);
        assert_eq!(c.command(&[b"INCR", b"n"]).await.unwrap(), Reply::Integer(42));
        assert_eq!(c.command(&[b"BAD"]).await.unwrap(), Reply::Error("ERR wrong".into()));
    }
}
