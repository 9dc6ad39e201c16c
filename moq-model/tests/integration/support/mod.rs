//! Test helpers: a minimal executor, a poll-once probe, and a macro running one async test on
//! both that executor and tokio.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

/// Wakes by unparking the thread that runs [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on the current thread, parking it while the future waits.
/// No runtime, no timer: the future makes progress only when a waker fires.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Counts wake-ups.
#[derive(Default)]
pub(crate) struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls a future by hand, to check that it waits and that a state change wakes it.
pub(crate) struct Probe<'a, T> {
    future: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
    count: Arc<WakeCount>,
    waker: Waker,
}

impl<'a, T> Probe<'a, T> {
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'a) -> Self {
        let count = Arc::new(WakeCount::default());
        let waker = Waker::from(count.clone());
        Self {
            future: Box::pin(future),
            count,
            waker,
        }
    }

    /// Polls once.
    pub(crate) fn poll(&mut self) -> Poll<T> {
        let mut cx = Context::from_waker(&self.waker);
        self.future.as_mut().poll(&mut cx)
    }

    /// Polls once and expects the future to wait.
    pub(crate) fn pending(&mut self) {
        assert!(self.poll().is_pending(), "expected the future to wait");
    }

    /// Expects a wake-up since the last poll, then polls once and expects a result.
    pub(crate) fn woken_ready(&mut self) -> T {
        assert!(self.wakes() > 0, "expected a wake-up");
        match self.poll() {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("woken but not ready"),
        }
    }

    /// How many wake-ups so far.
    pub(crate) fn wakes(&self) -> usize {
        self.count.0.load(Ordering::SeqCst)
    }
}

/// Runs `async fn $body()` as two tests: on [`block_on`] and on a 2-worker tokio runtime.
#[macro_export]
macro_rules! on_both_executors {
    ($($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[test]
                fn parking_executor() {
                    $crate::support::block_on(super::$body());
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn tokio() {
                    super::$body().await;
                }
            }
        )*
    };
}
