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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::Frame;

/// The close code reported for a socket dropped because its queue overflowed (1008, policy
/// violation: the client did not read what it was sent).
pub const OVERFLOW_CLOSE_CODE: u16 = 1008;

/// Why [`Outbound::try_recv`] returned nothing (the same cases as tokio's channels).
pub use tokio::sync::mpsc::error::TryRecvError;

/// One queue. A plain deque behind a mutex rather than a channel: an idle socket's queue holds
/// no allocation at all (a channel keeps a block of slots per socket), which matters with tens
/// of thousands of hibernated sockets.
#[derive(Debug)]
struct Shared {
    frames: Mutex<VecDeque<Frame>>,
    /// Payload bytes sent and not yet taken by the transport.
    queued: AtomicUsize,
    max: usize,
    overflowed: AtomicBool,
    /// Live [`Outlet`]s; the queue ends when the last one is dropped.
    senders: AtomicUsize,
    /// Whether the [`Outbound`] still exists (sends fail once it is dropped).
    receiving: AtomicBool,
    /// Woken when a frame arrives or the last sender goes.
    ready: Notify,
    /// Woken once, when the queue overflows.
    overflow: Notify,
}

impl Shared {
    fn frames(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        // A panic while holding this lock cannot leave the deque inconsistent.
        self.frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pop(&self) -> Option<Frame> {
        let mut frames = self.frames();
        let frame = frames.pop_front()?;
        if frames.is_empty() && frames.capacity() > 0 {
            // Give the memory back: most sockets are idle most of the time.
            *frames = VecDeque::new();
        }
        drop(frames);
        if !matches!(frame, Frame::Close { .. }) {
            self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
        }
        Some(frame)
    }
}

/// The room's end of a socket's queue.
#[derive(Debug)]
pub(crate) struct Outlet {
    shared: Arc<Shared>,
}

impl Clone for Outlet {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Outlet { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

/// The transport's end of a socket's queue: the frames a room sends to this socket, once the
/// events that sent them are durable.
#[derive(Debug)]
pub struct Outbound {
    shared: Arc<Shared>,
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.shared.receiving.store(false, Ordering::Release);
        self.shared.frames().clear();
    }
}

/// A queue of at most `max` payload bytes.
pub(crate) fn channel(max: usize) -> (Outlet, Outbound) {
    let shared = Arc::new(Shared {
        frames: Mutex::new(VecDeque::new()),
        queued: AtomicUsize::new(0),
        max,
        overflowed: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        receiving: AtomicBool::new(true),
        ready: Notify::new(),
        overflow: Notify::new(),
    });
    (Outlet { shared: Arc::clone(&shared) }, Outbound { shared })
}

impl Outlet {
    /// Queues `frame`. Returns false if the socket is gone or its queue is (or now becomes)
    /// overflowed; the frame is then dropped.
    pub(crate) fn send(&self, frame: Frame) -> bool {
        let s = &self.shared;
        if !s.receiving.load(Ordering::Acquire) {
            return false;
        }
        if !matches!(frame, Frame::Close { .. }) {
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
        }
        s.frames().push_back(frame);
        s.ready.notify_one();
        true
    }
}

impl Outbound {
    /// The next frame; `None` once the room has dropped the socket and every frame is taken.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            let ready = self.shared.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(frame) = self.shared.pop() {
                return Some(frame);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A last send happens before its sender's drop: look once more.
                return self.shared.pop();
            }
            ready.await;
        }
    }

    /// The next frame if one is queued.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once the room has dropped
    /// the socket and every frame is taken.
    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        if let Some(frame) = self.shared.pop() {
            return Ok(frame);
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return self.shared.pop().ok_or(TryRecvError::Disconnected);
        }
        Err(TryRecvError::Empty)
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
    async fn recv_waits_for_a_frame_and_ends_when_the_room_lets_go() {
        let (tx, mut rx) = channel(100);
        let tx2 = tx.clone();
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            let end = rx.recv().await;
            (first, second, end)
        });
        assert!(tx.send(Frame::text("a")));
        drop(tx);
        assert!(tx2.send(Frame::text("b")));
        drop(tx2);
        let (first, second, end) = waiter.await.unwrap();
        assert_eq!((first, second, end), (Some(Frame::text("a")), Some(Frame::text("b")), None));
    }

    #[tokio::test]
    async fn a_send_to_a_dropped_receiver_fails() {
        let (tx, rx) = channel(100);
        drop(rx);
        assert!(!tx.send(Frame::text("a")));
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
