//! The controllers' work queue, as client-go's: keys (`namespace/name`),
//! each queued at most once, never synced by two workers at once (a key
//! added while it is being synced is synced again after), re-added after a
//! delay (the earliest asked for, when asked twice), and retried after
//! failures with client-go's per-key exponential back-off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a key waits before its next try, as client-go's
/// `DefaultControllerRateLimiter`: the longer of a per-key exponential
/// back-off (`ItemExponentialFailureRateLimiter`: `base` doubling at each
/// failure up to `max`, until [`RateLimiter::forget`]) and an overall token
/// bucket (`BucketRateLimiter`: `qps` retries a second, bursts of `burst`),
/// which only retries go through.
#[derive(Debug)]
pub struct RateLimiter {
    base: Duration,
    max: Duration,
    failures: HashMap<String, u32>,
    qps: f64,
    burst: f64,
    /// Tokens in the bucket at `last`; negative when retries are reserved
    /// ahead of the refill.
    tokens: f64,
    last: Option<Instant>,
}

impl Default for RateLimiter {
    /// client-go's: 5 ms doubling to 1000 s per key; 10 retries a second,
    /// 100 at once, overall.
    fn default() -> Self {
        RateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
            10.0,
            100,
        )
    }
}

impl RateLimiter {
    /// A limiter backing off from `base` to `max` per key, within `qps`
    /// retries a second in bursts of `burst` overall.
    pub fn new(base: Duration, max: Duration, qps: f64, burst: u32) -> Self {
        RateLimiter {
            base,
            max,
            failures: HashMap::new(),
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }

    /// How long `key`, failed once more, waits from `now`.
    pub fn when(&mut self, key: &str, now: Instant) -> Duration {
        let failures = self.failures.entry(key.to_owned()).or_insert(0);
        let exponent = *failures;
        *failures = failures.saturating_add(1);
        let backoff = self
            .base
            .checked_mul(2u32.checked_pow(exponent).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max));
        backoff.max(self.reserve(now))
    }

    /// Takes a token from the bucket: how long until it is there.
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.qps).min(self.burst) - 1.0;
        self.last = Some(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }

    /// `key` succeeded: its back-off starts over.
    pub fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// How many times `key` has failed since it last succeeded.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    /// Queued, or to be queued again when its sync ends.
    dirty: HashSet<String>,
    /// Being synced now.
    processing: HashSet<String>,
    /// Waiting to be added, and when.
    waiting: HashMap<String, Instant>,
    limiter: RateLimiter,
}

/// A queue of keys to sync.
#[derive(Clone, Default)]
pub struct WorkQueue {
    inner: Arc<Mutex<Inner>>,
    ready: Arc<Notify>,
}

impl WorkQueue {
    /// A queue retrying failed keys as `limiter` says.
    pub fn with_limiter(limiter: RateLimiter) -> Self {
        WorkQueue {
            inner: Arc::new(Mutex::new(Inner {
                limiter,
                ..Inner::default()
            })),
            ready: Arc::default(),
        }
    }

    /// Queues `key` unless it already waits.
    pub fn add(&self, key: String) {
        let mut inner = self.inner.lock().expect("queue");
        if !inner.dirty.insert(key.clone()) {
            return;
        }
        if !inner.processing.contains(&key) {
            inner.queue.push_back(key);
            drop(inner);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`, unless it is already to be queued
    /// sooner.
    pub fn add_after(&self, key: String, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        {
            let mut inner = self.inner.lock().expect("queue");
            match inner.waiting.get(&key) {
                Some(sooner) if *sooner <= at => return,
                _ => inner.waiting.insert(key.clone(), at),
            };
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let due = {
                let mut inner = queue.inner.lock().expect("queue");
                let due = inner.waiting.get(&key) == Some(&at);
                if due {
                    inner.waiting.remove(&key);
                }
                due
            };
            // (Else a sooner add took its place.)
            if due {
                queue.add(key);
            }
        });
    }

    /// Queues `key` again after its back-off: it failed once more.
    pub fn add_rate_limited(&self, key: String) {
        let delay = self
            .inner
            .lock()
            .expect("queue")
            .limiter
            .when(&key, Instant::now());
        self.add_after(key, delay);
    }

    /// `key` succeeded: its back-off starts over.
    pub fn forget(&self, key: &str) {
        self.inner.lock().expect("queue").limiter.forget(key);
    }

    /// The next key to sync; call [`WorkQueue::done`] after.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.ready.notified();
            {
                let mut inner = self.inner.lock().expect("queue");
                if let Some(key) = inner.queue.pop_front() {
                    inner.dirty.remove(&key);
                    inner.processing.insert(key.clone());
                    return key;
                }
            }
            notified.await;
        }
    }

    /// The sync of `key` ended: it is queued again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut inner = self.inner.lock().expect("queue");
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.queue.push_back(key.to_owned());
            drop(inner);
            self.ready.notify_one();
        }
    }
}

/// The key of an object in a work queue: `namespace/name`.
pub fn key_of<K: kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Queues, for every object of `informer` added, changed or deleted, the
/// key `key` gives it (if any): a controller's event handlers, which only
/// queue keys; its syncs read the informer's cache.
pub fn enqueue<K>(
    informer: &skiff_runtime::Informer<K>,
    queue: WorkQueue,
    key: impl Fn(&K) -> Option<String> + Send + 'static,
) where
    K: kube::Resource + Send + std::marker::Sync + 'static,
{
    informer.on_event(move |event| {
        if let Some(key) = event.object().and_then(|o| key(o)) {
            queue.add(key);
        }
    });
}

/// A controller's sync of one key.
pub trait Sync: Send + std::marker::Sync + 'static {
    /// Why a sync fails.
    type Error: std::fmt::Display + Send;

    /// Brings the object `key` names to where it should be.
    fn sync(&self, key: &str) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// Starts `workers` loops that take keys from `queue` and sync them with
/// `controller`; a failed sync is logged as `component` and retried after
/// its back-off, a successful one forgets it.
pub fn spawn_workers<C: Sync>(
    controller: std::sync::Arc<C>,
    queue: WorkQueue,
    workers: usize,
    component: &'static str,
) {
    tracing::info!(component, workers, "controller started");
    for _ in 0..workers {
        let (controller, queue) = (controller.clone(), queue.clone());
        tokio::spawn(async move {
            loop {
                let key = queue.next().await;
                match controller.sync(&key).await {
                    Ok(()) => queue.forget(&key),
                    Err(e) => {
                        tracing::warn!(component, key, error = %e, "sync failed");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_queued_once_and_resynced_when_added_during_a_sync() {
        let q = WorkQueue::default();
        q.add("a".into());
        q.add("b".into());
        q.add("a".into());
        assert_eq!(q.next().await, "a");
        q.add("a".into());
        assert_eq!(
            q.next().await,
            "b",
            "a is being synced: not handed out twice"
        );
        q.done("a");
        assert_eq!(q.next().await, "a");
        q.done("a");
        q.done("b");
        let waiting = tokio::time::timeout(Duration::from_millis(20), q.next()).await;
        assert!(waiting.is_err(), "nothing left");
    }

    #[test]
    fn failures_back_off_exponentially_per_key_until_forgotten() {
        let mut limiter = RateLimiter::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (0..4).map(|_| limiter.when("a", now)).collect();
        assert_eq!(delays, [ms(5), ms(10), ms(20), ms(40)]);
        assert_eq!(limiter.when("b", now), ms(5), "per key");
        assert_eq!(limiter.failures("a"), 4);
        limiter.forget("a");
        assert_eq!(limiter.when("a", now), ms(5));
        for _ in 0..40 {
            limiter.when("c", now);
        }
        assert_eq!(
            limiter.when("c", now + Duration::from_secs(3600)),
            Duration::from_secs(1000),
            "capped"
        );
    }

    #[test]
    fn the_overall_bucket_spaces_retries_past_its_burst() {
        let mut limiter =
            RateLimiter::new(Duration::from_millis(1), Duration::from_secs(1), 10.0, 3);
        let now = Instant::now();
        let first: Vec<Duration> = ["a", "b", "c"]
            .iter()
            .map(|k| limiter.when(k, now))
            .collect();
        assert_eq!(first, [Duration::from_millis(1); 3], "the burst");
        assert_eq!(limiter.when("d", now), Duration::from_millis(100));
        assert_eq!(limiter.when("e", now), Duration::from_millis(200));
        // A second later, the bucket has refilled for 10 more.
        let later = now + Duration::from_secs(2);
        assert_eq!(limiter.when("f", later), Duration::from_millis(1));
    }

    #[tokio::test]
    async fn a_failed_key_comes_back_after_its_back_off_and_the_sooner_add_wins() {
        let q = WorkQueue::default();
        let deadline = Duration::from_secs(5);
        for _ in 0..3 {
            q.add_rate_limited("k".into());
            let key = tokio::time::timeout(deadline, q.next()).await;
            assert_eq!(key.expect("back within its back-off"), "k");
            q.done("k");
        }
        q.forget("k");
        q.add_after("k".into(), Duration::from_secs(3600));
        q.add_after("k".into(), Duration::from_millis(1));
        let key = tokio::time::timeout(deadline, q.next()).await;
        assert_eq!(key.expect("the sooner time"), "k");
    }
}
