//! Every task the server spawns is tracked here, so `kill()` can abort them
//! all at once, like a crash, and `shutdown()` can stop them in order.

use std::future::Future;
use std::sync::Mutex;
use tokio::task::AbortHandle;

#[derive(Default)]
pub struct Tasks {
    handles: Mutex<Vec<AbortHandle>>,
}

impl Tasks {
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(fut).abort_handle();
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the list short: forget tasks that already finished.
        if handles.len() >= 64 {
            handles.retain(|h| !h.is_finished());
        }
        handles.push(handle);
    }

    pub fn abort_all(&self) {
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            h.abort();
        }
    }
}
