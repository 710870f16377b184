//! Watch streams: the history after a revision, then every new batch of
//! durable events, filtered by prefix, with no gap and no duplicate.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast::{error::RecvError, Receiver};

use crate::engine::{Shared, Subscription};
use crate::error::Result;
use crate::Event;

/// The events one flush made durable, in revision order.
pub(crate) type Batch = Arc<[Arc<Event>]>;

/// A stream of events in revision order. It ends when the store is dropped,
/// and yields [`crate::StoreError::Gone`] (then ends) if it fell so far behind
/// that the events it missed were compacted.
pub type WatchStream = BoxStream<'static, Result<Arc<Event>>>;

struct Watcher {
    shared: Arc<Shared>,
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    receiver: Option<Receiver<Batch>>,
    /// The revision of the last event queued (or skipped): nothing at or
    /// before it is queued again.
    last: u64,
}

impl Watcher {
    fn queue(&mut self, batch: &[Arc<Event>]) {
        for event in batch {
            if event.revision <= self.last {
                continue;
            }
            self.last = event.revision;
            if event.object.key.starts_with(&self.prefix) {
                self.backlog.push_back(event.clone());
            }
        }
    }

    /// Catches up from the history after falling behind the channel.
    fn resubscribe(&mut self) -> Result<()> {
        let subscription = self.shared.subscribe(&self.prefix, self.last)?;
        self.backlog.extend(subscription.backlog);
        self.receiver = subscription.receiver;
        self.last = subscription.last;
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<Arc<Event>>> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Some(Ok(event));
            }
            match self.receiver.as_mut()?.recv().await {
                Ok(batch) => self.queue(&batch),
                Err(RecvError::Lagged(_)) => {
                    if let Err(gone) = self.resubscribe() {
                        self.receiver = None;
                        return Some(Err(gone));
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Starts a watch of `prefix` after revision `from`.
pub(crate) fn stream(shared: Arc<Shared>, prefix: String, from: u64) -> Result<WatchStream> {
    let Subscription {
        backlog,
        receiver,
        last,
    } = shared.subscribe(&prefix, from)?;
    let watcher = Watcher {
        shared,
        prefix,
        backlog,
        receiver,
        last,
    };
    Ok(stream::unfold(watcher, |mut w| async move {
        let item = w.next().await?;
        Some((item, w))
    })
    .boxed())
}
