//! `Changes`: wakes the control API's waiters (`/pusher-local/wait/…`) when something they may
//! be waiting for happened: an event published, a subscription or member changed, a webhook
//! recorded or attempted. A waiter re-checks its condition on each wake-up.
//!
//! [`Changes::changed`] is on the publish and subscribe paths: while nobody waits it is one
//! atomic load. A waiter counts itself in before it checks its condition, so a change made
//! after the check always wakes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    waiters: AtomicUsize,
    notify: Notify,
}

/// The wake-up handle (cheap to clone; one per server).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    inner: Arc<Inner>,
}

/// A waiter's place, held while it waits; leaving it counts the waiter out.
#[derive(Debug)]
pub struct Waiting {
    inner: Arc<Inner>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.inner.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Changes {
    /// Something changed: wakes every waiter (nothing to do when there is none).
    #[inline]
    pub fn changed(&self) {
        if self.inner.waiters.load(Ordering::SeqCst) > 0 {
            self.inner.notify.notify_waiters();
        }
    }

    /// Counts a waiter in: hold it across the checks and waits.
    pub fn wait(&self) -> Waiting {
        self.inner.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting { inner: self.inner.clone() }
    }
}

impl Waiting {
    /// Runs `check` until it answers `Ok`, re-checking after each change (and at least every
    /// `poll`, for what no change announces: another node's subscribers). At `deadline`, the
    /// last `Err` it answered: what was seen instead.
    pub async fn until<T, S, F, Fut>(
        &self,
        deadline: tokio::time::Instant,
        poll: Duration,
        mut check: F,
    ) -> Result<T, S>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, S>>,
    {
        loop {
            // Armed before the check, so a change during the check is not missed.
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen = match check().await {
                Ok(found) => return Ok(found),
                Err(seen) => seen,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(seen);
            }
            let next = deadline.min(now + poll);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn a_change_wakes_a_waiter_long_before_its_poll() {
        let changes = Changes::default();
        let flag = Arc::new(AtomicBool::new(false));
        let waiting = changes.wait();
        let setter = {
            let (changes, flag) = (changes.clone(), flag.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                flag.store(true, Ordering::SeqCst);
                changes.changed();
            })
        };
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let found = waiting
            .until(deadline, Duration::from_secs(5), || {
                let flag = flag.clone();
                async move {
                    if flag.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        Err("not yet")
                    }
                }
            })
            .await;
        assert_eq!(found, Ok(()));
        assert!(started.elapsed() < Duration::from_secs(4));
        setter.await.unwrap();
    }

    #[tokio::test]
    async fn a_waiter_gives_up_at_its_deadline_and_counts_itself_out() {
        let changes = Changes::default();
        {
            let waiting = changes.wait();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(30);
            let found: Result<(), u32> = waiting.until(deadline, Duration::from_millis(10), || async { Err(7) }).await;
            assert_eq!(found, Err(7));
        }
        assert_eq!(changes.inner.waiters.load(Ordering::SeqCst), 0);
    }
}
