//! The scheduling queue, without I/O (time is passed in): pods waiting to
//! be placed (active, in arrival order), pods backing off after a failed
//! binding or a retry, pods no node fits (parked until the cluster changes,
//! and retried at least every minute), and pods whose binding is in flight.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

/// How long an unschedulable pod waits at most before it is tried again.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Active,
    InFlight,
    Binding,
    BackingOff,
    /// No node fits; the reason reported.
    Unschedulable(String),
}

struct Entry {
    /// The informer's copy, shared.
    pod: Arc<Pod>,
    state: State,
    attempts: u32,
    /// The last reason reported as unschedulable (reported once per reason).
    reported: Option<String>,
}

/// The pods to place.
#[derive(Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: VecDeque<String>,
    timers: BinaryHeap<Reverse<(Instant, String)>>,
}

/// The back-off after `attempts` failures: 1 s doubling, at most 10 s.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((1u64 << attempts.min(4)).min(10))
}

impl Queue {
    /// A pod to place, new or changed. A changed unschedulable pod may fit
    /// now: it is tried again.
    pub fn add(&mut self, uid: String, pod: Arc<Pod>) {
        match self.entries.get_mut(&uid) {
            Some(entry) => {
                entry.pod = pod;
                if matches!(entry.state, State::Unschedulable(_)) {
                    entry.state = State::Active;
                    self.active.push_back(uid);
                }
            }
            None => {
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        state: State::Active,
                        attempts: 0,
                        reported: None,
                    },
                );
                self.active.push_back(uid);
            }
        }
    }

    /// A pod that needs no placing any more (bound, deleted, not ours).
    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// The next pod to place, once due timers have moved theirs along.
    pub fn pop(&mut self, now: Instant) -> Option<Arc<Pod>> {
        while let Some(Reverse((due, _))) = self.timers.peek() {
            if *due > now {
                break;
            }
            let Reverse((_, uid)) = self.timers.pop().expect("peeked");
            if let Some(entry) = self.entries.get_mut(&uid) {
                if matches!(entry.state, State::BackingOff | State::Unschedulable(_)) {
                    entry.state = State::Active;
                    self.active.push_back(uid);
                }
            }
        }
        while let Some(uid) = self.active.pop_front() {
            if let Some(entry) = self.entries.get_mut(&uid) {
                if entry.state == State::Active {
                    entry.state = State::InFlight;
                    return Some(entry.pod.clone());
                }
            }
        }
        None
    }

    /// How long until the next timer is due.
    pub fn next_due(&self, now: Instant) -> Option<Duration> {
        self.timers
            .peek()
            .map(|Reverse((due, _))| due.saturating_duration_since(now))
    }

    /// The pod's binding was sent.
    pub fn binding(&mut self, uid: &str) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.state = State::Binding;
        }
    }

    /// The pod is bound.
    pub fn bound(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// The binding failed: `settled` when the pod is gone or bound already,
    /// else it backs off and is tried again.
    pub fn binding_failed(&mut self, uid: &str, settled: bool, now: Instant) {
        if settled {
            self.entries.remove(uid);
            return;
        }
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.attempts += 1;
            entry.state = State::BackingOff;
            self.timers
                .push(Reverse((now + backoff(entry.attempts), uid.to_owned())));
        }
    }

    /// No node fits the pod, for `reason`: it waits for the cluster to
    /// change. Answers whether this reason is new (to be reported).
    pub fn unschedulable(&mut self, uid: &str, reason: &str, now: Instant) -> bool {
        let Some(entry) = self.entries.get_mut(uid) else {
            return false;
        };
        entry.attempts += 1;
        entry.state = State::Unschedulable(reason.to_owned());
        self.timers
            .push(Reverse((now + UNSCHEDULABLE_FLUSH, uid.to_owned())));
        let new = entry.reported.as_deref() != Some(reason);
        entry.reported = Some(reason.to_owned());
        new
    }

    /// The cluster changed (a node came or changed, a pod went): every
    /// unschedulable pod is tried again after its back-off.
    pub fn retry_unschedulable(&mut self, now: Instant) {
        for (uid, entry) in &mut self.entries {
            if matches!(entry.state, State::Unschedulable(_)) {
                entry.state = State::BackingOff;
                self.timers
                    .push(Reverse((now + backoff(entry.attempts), uid.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        Arc::new(pod)
    }

    fn name(pod: Option<Arc<Pod>>) -> Option<String> {
        pod.and_then(|p| p.metadata.name.clone())
    }

    #[test]
    fn pods_come_in_order_and_once() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a".into(), pod("a"));
        q.add("b".into(), pod("b"));
        q.add("a".into(), pod("a"));
        assert_eq!(name(q.pop(now)).as_deref(), Some("a"));
        assert_eq!(name(q.pop(now)).as_deref(), Some("b"));
        assert!(q.pop(now).is_none());
        q.add("c".into(), pod("c"));
        q.remove("c");
        assert!(q.pop(now).is_none());
    }

    #[test]
    fn failed_bindings_back_off() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a".into(), pod("a"));
        q.pop(now);
        q.binding("a");
        q.binding_failed("a", false, now);
        assert!(q.pop(now).is_none());
        assert_eq!(q.next_due(now), Some(Duration::from_secs(2)));
        assert_eq!(
            name(q.pop(now + Duration::from_secs(2))).as_deref(),
            Some("a")
        );
        q.binding_failed("a", true, now);
        assert!(q.pop(now + Duration::from_secs(60)).is_none());
        let delays: Vec<u64> = (0..6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_change_and_report_each_reason_once() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.add("a".into(), pod("a"));
        q.pop(now);
        assert!(q.unschedulable("a", "0/1 nodes are available", now));
        assert!(q.pop(now + Duration::from_secs(30)).is_none());
        q.retry_unschedulable(now);
        assert_eq!(
            name(q.pop(now + Duration::from_secs(2))).as_deref(),
            Some("a")
        );
        assert!(
            !q.unschedulable("a", "0/1 nodes are available", now),
            "the same reason again"
        );
        // Without any change, the flush tries it again after a minute.
        assert_eq!(name(q.pop(now + UNSCHEDULABLE_FLUSH)).as_deref(), Some("a"));
        // A changed pod is tried at once.
        q.unschedulable("a", "x", now);
        q.add("a".into(), pod("a"));
        assert_eq!(name(q.pop(now)).as_deref(), Some("a"));
    }
}
