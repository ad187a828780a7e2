//! Graceful shutdown: one signal every connection, stream and held request
//! watches, and one tracker of the tasks that must finish before the
//! process exits (mini-redis's `shutdown.rs`, with tokio-util's
//! `CancellationToken` and `TaskTracker`).
//!
//! On Ctrl-C or SIGTERM, [`Shutdown::drain`] signals and waits: the
//! connection loop stops accepting, each connection finishes its request
//! and closes, held long polls answer, streams end and WebSockets close with
//! 1001. [`ShutdownWatch`] is how something woken thousands of times a
//! second watches the signal without paying for it each time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown signal and the tasks that must finish before the process
/// exits. Cheap to clone; every clone shares both.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub async fn started(&self) {
        self.token.cancelled().await
    }

    /// Runs `task` so that [`Shutdown::drain`] waits for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Signals shutdown and waits up to `grace` for every tracked task.
    /// Returns whether everything finished in time.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// Tracked tasks still running.
    pub fn running_tasks(&self) -> usize {
        self.tasks.len()
    }
}

/// Watches the shutdown signal from inside a hand-written `poll` that is
/// woken often (a connection's task, for every notification it sends).
///
/// Polling the signal's future takes a lock that every connection shares.
/// Once it has been polled (and so holds this task's waker, which it wakes
/// when shutdown begins), polling it again on every other wake-up would only
/// take that lock for nothing: the watch polls it again only when the
/// signal is already set. One flag, kept beside the pinned future.
#[derive(Debug, Default)]
pub struct ShutdownWatch {
    armed: bool,
}

impl ShutdownWatch {
    /// Ready once shutdown has begun. `started` is the pinned future of
    /// [`Shutdown::started`] on the same `shutdown`.
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        shutdown: &Shutdown,
        started: Pin<&mut impl Future<Output = ()>>,
    ) -> Poll<()> {
        if self.armed && !shutdown.is_shutting_down() {
            return Poll::Pending;
        }
        if started.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        self.armed = true;
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_sees_shutdown_once_it_begins_and_not_before() {
        let shutdown = Shutdown::new();
        let mut watch = ShutdownWatch::default();
        let mut started = std::pin::pin!(shutdown.started());
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            watch
                .poll(&mut cx, &shutdown, started.as_mut())
                .is_pending()
        );
        assert!(
            watch
                .poll(&mut cx, &shutdown, started.as_mut())
                .is_pending()
        );
        shutdown.token.cancel();
        assert!(watch.poll(&mut cx, &shutdown, started.as_mut()).is_ready());
    }
}
