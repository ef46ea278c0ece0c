//! `Outbox`: the bounded queue of frames waiting to be written to one socket.
//!
//! Policy: a socket that cannot keep up is closed with 4100 (over capacity) instead of slowing
//! everyone else or growing without bound. A full queue never blocks the sender. Closing is
//! signalled beside the queue, so a close gets through even when the queue is full.
//!
//! Waiting is lock-free: the receiver polls the queue and the close flag in one `poll_fn`, so a
//! delivery costs the channel's own wake-up and nothing more.

use std::borrow::Cow;
use std::future::poll_fn;
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use crate::protocol::{codes, Frame};

/// The close request beside the queue. Only the connection task waits on it, so one
/// `AtomicWaker` (no lock, no waiter list) is enough.
#[derive(Debug)]
struct Control {
    close: OnceLock<(u16, Cow<'static, str>)>,
    waker: AtomicWaker,
}

/// The sending side, held by the registry and the session. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    control: Arc<Control>,
}

/// Why a frame was not queued. Expected outcomes, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued.
    Queued,
    /// The queue was full; the socket is being closed with 4100.
    Full,
    /// The socket is gone or closing.
    Closed,
}

/// What the socket's writer should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Write this frame.
    Frame(Frame),
    /// Close with this code and reason.
    Close(u16, Cow<'static, str>),
}

/// The receiving side, owned by the connection task.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Frame>,
    control: Arc<Control>,
}

impl Outbox {
    /// A queue holding at most `capacity` frames.
    pub fn new(capacity: usize) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let control = Arc::new(Control { close: OnceLock::new(), waker: AtomicWaker::new() });
        (Outbox { tx, control: control.clone() }, OutboxReceiver { rx, control })
    }

    /// Queues `frame` without waiting. A full queue closes the socket with 4100.
    pub fn send(&self, frame: Frame) -> SendOutcome {
        if self.control.close.get().is_some() {
            return SendOutcome::Closed;
        }
        match self.tx.try_send(frame) {
            Ok(()) => SendOutcome::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(codes::OVER_CAPACITY, "Over capacity: the client is not reading its messages fast enough");
                SendOutcome::Full
            }
            Err(mpsc::error::TrySendError::Closed(_)) => SendOutcome::Closed,
        }
    }

    /// Asks the connection to close with `code`. The first request wins.
    pub fn close(&self, code: u16, reason: impl Into<Cow<'static, str>>) {
        if self.control.close.set((code, reason.into())).is_ok() {
            self.control.waker.wake();
        }
    }

    /// Whether both ends belong to the same socket.
    pub fn same_socket(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.control, &other.control)
    }
}

impl OutboxReceiver {
    /// The next thing to do; a close request overtakes queued frames.
    /// Returns `None` when every sender is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        poll_fn(|cx| {
            self.control.waker.register(cx.waker());
            if let Some((code, reason)) = self.control.close.get() {
                return Poll::Ready(Some(Outgoing::Close(*code, reason.clone())));
            }
            self.rx.poll_recv(cx).map(|frame| frame.map(Outgoing::Frame))
        })
        .await
    }

    /// Resolves once a close has been requested (to abandon a write that is stuck on a
    /// client that stopped reading).
    pub async fn closing(&self) {
        poll_fn(|cx| {
            self.control.waker.register(cx.waker());
            if self.control.close.get().is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// A frame that is already queued, without waiting (for batching writes).
    pub fn try_recv(&mut self) -> Option<Frame> {
        if self.control.close.get().is_some() {
            return None;
        }
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Frame {
        Frame::from(s.to_owned())
    }

    #[tokio::test]
    async fn frames_arrive_in_order() {
        let (tx, mut rx) = Outbox::new(4);
        assert_eq!(tx.send(frame("a")), SendOutcome::Queued);
        assert_eq!(tx.send(frame("b")), SendOutcome::Queued);
        assert_eq!(rx.recv().await, Some(Outgoing::Frame(frame("a"))));
        assert_eq!(rx.try_recv(), Some(frame("b")));
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_socket_with_4100() {
        let (tx, mut rx) = Outbox::new(1);
        assert_eq!(tx.send(frame("a")), SendOutcome::Queued);
        assert_eq!(tx.send(frame("b")), SendOutcome::Full);
        assert_eq!(tx.send(frame("c")), SendOutcome::Closed);
        assert!(matches!(rx.recv().await, Some(Outgoing::Close(4100, _))));
    }

    #[tokio::test]
    async fn close_overtakes_queued_frames_and_first_close_wins() {
        let (tx, mut rx) = Outbox::new(8);
        tx.send(frame("a"));
        tx.close(4009, "terminated");
        tx.close(4200, "later");
        assert!(matches!(rx.recv().await, Some(Outgoing::Close(4009, _))));
    }

    #[tokio::test]
    async fn recv_ends_when_all_senders_are_gone() {
        let (tx, mut rx) = Outbox::new(1);
        drop(tx);
        assert_eq!(rx.recv().await, None);
    }
}
