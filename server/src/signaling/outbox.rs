//! A participant's outbound queue: everything the room actor, the
//! collaboration handlers and the media worker send to one connection goes
//! through it without waiting. It is bounded; when it is full the message
//! is dropped, and since a client that missed an `answer`, a `joined` or a
//! `participant_left` is out of step with the room, the connection is
//! marked as having fallen behind: its task closes the socket and the
//! client resumes (a fresh `joined` snapshot and fresh offers), instead of
//! staying silently out of sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, mpsc};

use super::wire::ServerMsg;

/// Messages one connection may have queued.
pub const OUTBOX_CAPACITY: usize = 512;

/// What the queue holds: a `ServerMsg` is a few hundred bytes (its largest
/// variant inline), and tokio's queue allocates its slots 32 at a time, the
/// first 32 with the queue: boxed, that is 256 bytes a connection instead of
/// ~11 KiB (heaptrack, S1), for one small allocation per message sent.
type Queued = Box<ServerMsg>;

#[derive(Debug, Default)]
struct Behind {
    flag: AtomicBool,
    notify: Notify,
}

/// A message that was not queued (the queue was full or closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped;

/// The sending side (cloned into the room actor, the worker's notice sink).
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    behind: Arc<Behind>,
}

/// The connection task's side.
#[derive(Debug)]
pub struct OutboxRx {
    rx: mpsc::Receiver<Queued>,
    behind: Arc<Behind>,
}

/// A new queue of `capacity` messages.
pub fn outbox(capacity: usize) -> (Outbox, OutboxRx) {
    let (tx, rx) = mpsc::channel(capacity);
    let behind = Arc::new(Behind::default());
    (
        Outbox {
            tx,
            behind: behind.clone(),
        },
        OutboxRx { rx, behind },
    )
}

impl Outbox {
    /// Queues `msg` without waiting. A full queue drops it and marks the
    /// connection as fallen behind; a closed one (the connection is gone)
    /// just drops it.
    pub fn try_send(&self, msg: ServerMsg) -> Result<(), Dropped> {
        match self.tx.try_send(Box::new(msg)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.behind.flag.swap(true, Ordering::AcqRel) {
                    self.behind.notify.notify_one();
                }
                Err(Dropped)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Dropped),
        }
    }
}

impl OutboxRx {
    pub async fn recv(&mut self) -> Option<ServerMsg> {
        self.rx.recv().await.map(|m| *m)
    }

    /// A message already queued, without waiting (the connection writes a
    /// run of them with one flush).
    pub fn try_recv(&mut self) -> Option<ServerMsg> {
        self.rx.try_recv().ok().map(|m| *m)
    }

    /// A handle that tells when a message was dropped on a full queue
    /// (separate, so it can be awaited beside `recv`).
    pub fn watch(&self) -> FellBehind {
        FellBehind(self.behind.clone())
    }
}

/// See [`OutboxRx::watch`].
#[derive(Debug, Clone)]
pub struct FellBehind(Arc<Behind>);

impl FellBehind {
    /// Resolves once a message was dropped on a full queue.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.0.flag.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_says_the_connection_fell_behind() {
        let (tx, mut rx) = outbox(2);
        assert!(tx.try_send(ServerMsg::Ping).is_ok());
        assert!(tx.try_send(ServerMsg::Pong).is_ok());
        let watch = rx.watch();
        let behind = tokio::time::timeout(std::time::Duration::from_millis(50), watch.wait());
        assert!(
            behind.await.is_err(),
            "not behind while nothing was dropped"
        );
        assert!(tx.try_send(ServerMsg::Ping).is_err());
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.wait())
            .await
            .expect("the drop is seen");
        // What was queued is still delivered, in order.
        assert!(matches!(rx.recv().await, Some(ServerMsg::Ping)));
        assert!(matches!(rx.recv().await, Some(ServerMsg::Pong)));
    }
}
