//! The debug console's stream (issue 12): every line the printer gets, rendered once as the JSON
//! record `--log-format json` prints, handed to each console page through its own bounded queue.
//! A page that cannot keep up loses records, counted, and is told how many; the printer never
//! waits for it, and delivery never waits for the printer.
//!
//! While a page listens the printer wants every line (frames too, as with `-v`); the terminal
//! still shows only what its own verbosity and filter let through.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Local;
use tokio::sync::mpsc;

use super::json;
use super::line::{Line, View};

/// Records one page may have waiting before new ones are dropped for it.
pub const QUEUE_RECORDS: usize = 4096;

#[derive(Debug)]
struct Listener {
    tx: mpsc::Sender<Arc<str>>,
    missed: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Pages listening now (the hot paths' one check).
    count: AtomicUsize,
    listeners: Mutex<Vec<Listener>>,
}

/// The pages listening (cheap to clone; one per printer).
#[derive(Debug, Clone, Default)]
pub struct Taps {
    inner: Arc<Inner>,
}

/// One page's end of the stream; dropping it stops the stream.
#[derive(Debug)]
pub struct Tap {
    records: mpsc::Receiver<Arc<str>>,
    missed: Arc<AtomicU64>,
    taps: Taps,
}

impl Taps {
    fn listeners(&self) -> MutexGuard<'_, Vec<Listener>> {
        self.inner.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a page listens.
    #[inline]
    pub fn any(&self) -> bool {
        self.inner.count.load(Ordering::Relaxed) > 0
    }

    /// A new listener.
    pub fn add(&self) -> Tap {
        let (tx, records) = mpsc::channel(QUEUE_RECORDS);
        let missed = Arc::new(AtomicU64::new(0));
        self.listeners().push(Listener { tx, missed: missed.clone() });
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        Tap { records, missed, taps: self.clone() }
    }

    /// Hands `line` to every page (rendered once); forgets pages that went away.
    pub fn send(&self, line: &Line, view: &View) {
        if !self.any() {
            return;
        }
        let record: Arc<str> = json::render(line, view, Local::now()).into();
        self.listeners().retain(|listener| match listener.tx.try_send(record.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                listener.missed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }
}

impl Tap {
    /// The next record, or `None` once the printer is gone.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        self.records.recv().await
    }

    /// Records dropped for this page since the last call.
    pub fn missed(&self) -> u64 {
        self.missed.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.records.close();
        self.taps.listeners().retain(|listener| !listener.tx.is_closed());
        self.taps.inner.count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_page_gets_every_record_until_it_falls_behind_and_is_told_how_far() {
        let taps = Taps::default();
        assert!(!taps.any());
        let mut page = taps.add();
        assert!(taps.any());
        let line = Line::Error("boom".into());
        taps.send(&line, &line.view());
        let record: serde_json::Value = serde_json::from_str(&page.next().await.unwrap()).unwrap();
        assert_eq!((record["kind"].as_str(), record["message"].as_str()), (Some("error"), Some("boom")));
        for _ in 0..QUEUE_RECORDS + 5 {
            taps.send(&line, &line.view());
        }
        assert_eq!(page.missed(), 5);
        assert_eq!(page.missed(), 0);
        drop(page);
        assert!(!taps.any());
        assert!(taps.listeners().is_empty(), "a page that went away is forgotten");
    }
}
