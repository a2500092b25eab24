//! The queue of frames from a room to one socket, bounded in bytes.
//!
//! A room's sends never wait: they are delivered when the event that made them is durable,
//! from the runtime's completion callback. A client that stops reading would make an unbounded
//! queue grow without end (every broadcast of a busy room lands in it), so the queue counts
//! the payload bytes waiting in it. A send that would take it over
//! [`HostConfig::max_queued_bytes`](crate::HostConfig::max_queued_bytes) is refused and marks
//! the socket *overflowed*: the transport gives up on it (see [`Outbound::overflowed`]) and
//! reports it closed with [`OVERFLOW_CLOSE_CODE`], so the room hears `on_close` as for any
//! client that goes away. Close frames are not counted and always queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::Frame;

/// The close code reported for a socket dropped because its queue overflowed (1008, policy
/// violation: the client did not read what it was sent).
pub const OVERFLOW_CLOSE_CODE: u16 = 1008;

#[derive(Debug)]
struct Shared {
    /// Payload bytes sent and not yet taken by the transport.
    queued: AtomicUsize,
    max: usize,
    overflowed: AtomicBool,
    /// Woken once, when the queue overflows.
    overflow: Notify,
}

/// The room's end of a socket's queue.
#[derive(Clone, Debug)]
pub(crate) struct Outlet {
    tx: mpsc::UnboundedSender<Frame>,
    shared: Arc<Shared>,
}

/// The transport's end of a socket's queue: the frames a room sends to this socket, once the
/// events that sent them are durable.
#[derive(Debug)]
pub struct Outbound {
    rx: mpsc::UnboundedReceiver<Frame>,
    shared: Arc<Shared>,
}

/// A queue of at most `max` payload bytes.
pub(crate) fn channel(max: usize) -> (Outlet, Outbound) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        max,
        overflowed: AtomicBool::new(false),
        overflow: Notify::new(),
    });
    (Outlet { tx, shared: Arc::clone(&shared) }, Outbound { rx, shared })
}

impl Outlet {
    /// Queues `frame`. Returns false if the socket is gone or its queue is (or now becomes)
    /// overflowed; the frame is then dropped.
    pub(crate) fn send(&self, frame: Frame) -> bool {
        if let Frame::Close { .. } = frame {
            return self.tx.send(frame).is_ok();
        }
        let s = &self.shared;
        if s.overflowed.load(Ordering::Acquire) {
            return false;
        }
        let n = frame.len();
        let before = s.queued.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > s.max {
            s.queued.fetch_sub(n, Ordering::AcqRel);
            if !s.overflowed.swap(true, Ordering::AcqRel) {
                s.overflow.notify_one();
            }
            return false;
        }
        if self.tx.send(frame).is_ok() {
            true
        } else {
            s.queued.fetch_sub(n, Ordering::AcqRel);
            false
        }
    }
}

/// Why [`Outbound::try_recv`] returned nothing.
pub use mpsc::error::TryRecvError;

impl Outbound {
    /// The next frame; `None` once the room has dropped the socket.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// The next frame if one is queued.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once the room has dropped
    /// the socket.
    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        let frame = self.rx.try_recv()?;
        self.taken(&frame);
        Ok(frame)
    }

    fn taken(&self, frame: &Frame) {
        if !matches!(frame, Frame::Close { .. }) {
            self.shared.queued.fetch_sub(frame.len(), Ordering::AcqRel);
        }
    }

    /// Payload bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// A future that completes once the queue has overflowed (at once if it already has):
    /// the transport should then drop the connection and report it closed with
    /// [`OVERFLOW_CLOSE_CODE`] and [`Outbound::overflow_reason`].
    pub fn overflowed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            if shared.overflowed.load(Ordering::Acquire) {
                return;
            }
            let notified = shared.overflow.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.overflowed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The close reason for an overflowed queue, naming the limit.
    pub fn overflow_reason(&self) -> String {
        format!("send queue over {} bytes: the client is not reading", self.shared.max)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_signals_once() {
        let (tx, mut rx) = channel(10);
        assert!(tx.send(Frame::text("12345")));
        assert!(tx.send(Frame::text("12345")));
        assert_eq!(rx.queued_bytes(), 10);
        // One byte more overflows; later sends are refused even if they would fit.
        assert!(!tx.send(Frame::text("1")));
        rx.overflowed().await;
        assert_eq!(rx.recv().await.unwrap(), Frame::text("12345"));
        assert!(!tx.send(Frame::text("1")));
        // Close frames still go through.
        assert!(tx.send(Frame::Close { code: 1000, reason: String::new() }));
        assert_eq!(rx.recv().await.unwrap(), Frame::text("12345"));
        assert!(matches!(rx.recv().await.unwrap(), Frame::Close { code: 1000, .. }));
        assert_eq!(rx.queued_bytes(), 0);
        assert!(rx.overflow_reason().contains("10 bytes"));
    }

    #[tokio::test]
    async fn taking_frames_makes_room() {
        let (tx, mut rx) = channel(10);
        for _ in 0..100 {
            assert!(tx.send(Frame::text("1234567890")));
            assert_eq!(rx.try_recv().unwrap(), Frame::text("1234567890"));
        }
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        drop(tx);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }
}
