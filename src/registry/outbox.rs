//! `Outbox`: the bounded queue of frames waiting to be written to one socket.
//!
//! Policy: a socket that cannot keep up is closed with 4100 (over capacity) instead of slowing
//! everyone else or growing without bound. A full queue never blocks the sender. Closing is
//! signalled beside the queue, so a close gets through even when the queue is full.
//!
//! Why not `tokio::sync::mpsc`: its channel allocates a 32-slot block per socket up front
//! (about 1 KB for every idle connection). This queue is a `VecDeque` that stays empty until
//! frames wait, behind a lock that is only ever held for a push or a drain, with one
//! `AtomicWaker` for the connection task (a single consumer).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use futures_util::task::AtomicWaker;

use crate::protocol::{codes, Frame};

#[derive(Debug)]
struct Shared {
    frames: Mutex<VecDeque<Frame>>,
    capacity: usize,
    close: OnceLock<(u16, Cow<'static, str>)>,
    waker: AtomicWaker,
    /// Frames received from the socket and written to it, for the control API and the
    /// metrics: 32 bits each fit the allocation's padding (a larger outbox costs every idle
    /// socket); they wrap after four billion.
    frames_in: AtomicU32,
    frames_out: AtomicU32,
}

impl Shared {
    fn frames(&self) -> MutexGuard<'_, VecDeque<Frame>> {
        // Pushing and draining cannot panic halfway; a poisoned queue is still consistent.
        self.frames.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side, held by the registry and the session. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// What became of a frame. Expected outcomes, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued.
    Queued,
    /// The queue was full; the socket is being closed with 4100.
    Full,
    /// The socket is closing.
    Closed,
}

/// What the socket's writer should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Write the frames that were moved into the batch.
    Frames,
    /// Close with this code and reason.
    Close(u16, Cow<'static, str>),
}

/// The receiving side, owned by the connection task.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

impl Outbox {
    /// A queue holding at most `capacity` frames.
    pub fn new(capacity: usize) -> (Outbox, OutboxReceiver) {
        let shared = Arc::new(Shared {
            frames: Mutex::new(VecDeque::new()),
            capacity,
            close: OnceLock::new(),
            waker: AtomicWaker::new(),
            frames_in: AtomicU32::new(0),
            frames_out: AtomicU32::new(0),
        });
        (Outbox { shared: shared.clone() }, OutboxReceiver { shared })
    }

    /// One frame received from the socket.
    #[inline]
    pub fn frame_in(&self) {
        self.shared.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames received from the socket and written to it so far.
    pub fn frame_counts(&self) -> (u64, u64) {
        let shared = &self.shared;
        (u64::from(shared.frames_in.load(Ordering::Relaxed)), u64::from(shared.frames_out.load(Ordering::Relaxed)))
    }

    /// Queues `frame` without waiting. A full queue closes the socket with 4100.
    pub fn send(&self, frame: Frame) -> SendOutcome {
        if self.shared.close.get().is_some() {
            return SendOutcome::Closed;
        }
        let mut frames = self.shared.frames();
        if frames.len() >= self.shared.capacity {
            drop(frames);
            self.close(codes::OVER_CAPACITY, "Over capacity: the client is not reading its messages fast enough");
            return SendOutcome::Full;
        }
        let was_empty = frames.is_empty();
        if frames.capacity() == 0 {
            // Room for one: most sockets are idle, and one queued frame at a time is their
            // usual load (the default first growth is four slots).
            frames.reserve_exact(1);
        }
        frames.push_back(frame);
        drop(frames);
        // Frames already waiting mean the writer was woken and has not drained yet.
        if was_empty {
            self.shared.waker.wake();
        }
        SendOutcome::Queued
    }

    /// Asks the connection to close with `code`. The first request wins.
    pub fn close(&self, code: u16, reason: impl Into<Cow<'static, str>>) {
        if self.shared.close.set((code, reason.into())).is_ok() {
            self.shared.waker.wake();
        }
    }

    /// Whether the socket was asked to close (the first close request wins).
    pub fn close_code(&self) -> Option<u16> {
        self.shared.close.get().map(|(code, _)| *code)
    }
}

impl OutboxReceiver {
    /// `n` frames written to the socket.
    #[inline]
    pub fn frames_out(&self, n: usize) {
        self.shared.frames_out.fetch_add(n as u32, Ordering::Relaxed);
    }

    /// Waits for work: moves up to `max` waiting frames into `batch` (`Outgoing::Frames`), or
    /// returns the close request, which overtakes queued frames.
    pub async fn recv(&mut self, batch: &mut Vec<Frame>, max: usize) -> Outgoing {
        poll_fn(|cx| {
            self.shared.waker.register(cx.waker());
            if let Some((code, reason)) = self.shared.close.get() {
                return Poll::Ready(Outgoing::Close(*code, reason.clone()));
            }
            let mut frames = self.shared.frames();
            if frames.is_empty() {
                return Poll::Pending;
            }
            let n = frames.len().min(max);
            if batch.capacity() == 0 {
                // Sized for this first batch only (usually one frame), not the default four.
                batch.reserve_exact(n);
            }
            batch.extend(frames.drain(..n));
            if frames.is_empty() && frames.capacity() > 64 {
                // A burst is over: give its memory back.
                frames.shrink_to(4);
            }
            Poll::Ready(Outgoing::Frames)
        })
        .await
    }

    /// Takes every frame waiting now, without waiting for more.
    pub fn take_queued(&mut self) -> Vec<Frame> {
        self.shared.frames().drain(..).collect()
    }

    /// Resolves once a close has been requested (to abandon a write that is stuck on a
    /// client that stopped reading).
    pub async fn closing(&self) {
        poll_fn(|cx| {
            self.shared.waker.register(cx.waker());
            if self.shared.close.get().is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        // The socket is gone: later sends report `Closed` instead of queueing for nobody.
        let _ = self.shared.close.set((codes::RECONNECT_NOW, Cow::Borrowed("connection ended")));
        self.shared.frames().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Frame {
        Frame::from(s.to_owned())
    }

    #[tokio::test]
    async fn frames_arrive_in_order_in_batches() {
        let (tx, mut rx) = Outbox::new(4);
        assert_eq!(tx.send(frame("a")), SendOutcome::Queued);
        assert_eq!(tx.send(frame("b")), SendOutcome::Queued);
        assert_eq!(tx.send(frame("c")), SendOutcome::Queued);
        let mut batch = Vec::new();
        assert_eq!(rx.recv(&mut batch, 2).await, Outgoing::Frames);
        assert_eq!(batch, [frame("a"), frame("b")]);
        batch.clear();
        assert_eq!(rx.recv(&mut batch, 2).await, Outgoing::Frames);
        assert_eq!(batch, [frame("c")]);
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_socket_with_4100() {
        let (tx, mut rx) = Outbox::new(1);
        assert_eq!(tx.send(frame("a")), SendOutcome::Queued);
        assert_eq!(tx.send(frame("b")), SendOutcome::Full);
        assert_eq!(tx.send(frame("c")), SendOutcome::Closed);
        assert!(matches!(rx.recv(&mut Vec::new(), 8).await, Outgoing::Close(4100, _)));
    }

    #[tokio::test]
    async fn close_overtakes_queued_frames_and_first_close_wins() {
        let (tx, mut rx) = Outbox::new(8);
        tx.send(frame("a"));
        tx.close(4009, "terminated");
        tx.close(4200, "later");
        assert!(matches!(rx.recv(&mut Vec::new(), 8).await, Outgoing::Close(4009, _)));
        rx.closing().await;
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_from_another_task() {
        let (tx, mut rx) = Outbox::new(8);
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(frame("late"));
            tx
        });
        let mut batch = Vec::new();
        assert_eq!(rx.recv(&mut batch, 8).await, Outgoing::Frames);
        assert_eq!(batch, [frame("late")]);
        drop(sender.await);
    }
}
