//! The processes of one external special remote: started when first
//! needed, kept for the requests that follow, at most a bounded number
//! busy at once (a request beyond that waits, up to the deadline). A
//! remote that takes the ASYNC extension runs as one process with a job
//! number per request. A process that failed is never handed out again:
//! the next request starts a new one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::process::{Job, Process, Spawner};
use super::ExternalError;

/// The processes of one remote.
pub(crate) struct Pool {
    spawner: Arc<Spawner>,
    limit: usize,
    permits: Arc<Semaphore>,
    wait: Duration,
    state: Arc<Mutex<State>>,
    /// One process started at a time, so that a remote using ASYNC gets
    /// one.
    starting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Processes without ASYNC not in use.
    idle: Vec<Arc<Process>>,
    /// The process of a remote using ASYNC.
    shared: Option<Arc<Process>>,
}

/// A job taken from the pool; given back when dropped.
pub(crate) struct Lease {
    // Dropped in this order: the job (which stops the process if a
    // request was abandoned), then the process goes back to the pool if
    // it is still usable, then the permit.
    job: Job,
    _back: GiveBack,
    _permit: OwnedSemaphorePermit,
}

/// Puts a process back in the pool when its lease ends.
struct GiveBack {
    process: Arc<Process>,
    state: Arc<Mutex<State>>,
}

impl std::ops::Deref for Lease {
    type Target = Job;
    fn deref(&self) -> &Job {
        &self.job
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Job {
        &mut self.job
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        let process = self.process.clone();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if process.is_async {
            if !process.is_usable() && st.shared.as_ref().is_some_and(|s| Arc::ptr_eq(s, &process))
            {
                st.shared = None;
            }
        } else if process.is_usable() {
            st.idle.push(process);
        }
    }
}

impl Pool {
    /// A pool starting processes with `spawner`, at most `limit` busy at
    /// once, a request waiting at most `wait` for one.
    pub fn new(spawner: Arc<Spawner>, limit: usize, wait: Duration) -> Pool {
        let limit = limit.max(1);
        Pool {
            spawner,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            wait,
            state: Arc::default(),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    fn reuse(&self) -> Option<Arc<Process>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = &st.shared {
            if s.is_usable() {
                return Some(s.clone());
            }
            st.shared = None;
        }
        while let Some(p) = st.idle.pop() {
            if p.is_usable() {
                return Some(p);
            }
        }
        None
    }

    /// A job on a process of the remote: an idle one, or a new one.
    pub async fn lease(&self) -> Result<Lease, ExternalError> {
        let permit =
            match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) | Err(_) => {
                    return Err(ExternalError::Busy {
                        remote: self.spawner.label.clone(),
                        secs: self.wait.as_secs(),
                        processes: self.limit,
                    })
                }
            };
        let process = match self.reuse() {
            Some(p) => p,
            None => {
                let _one = self.starting.lock().await;
                match self.reuse() {
                    Some(p) => p,
                    None => {
                        let p = self.spawner.start().await?;
                        if p.is_async {
                            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                            st.shared = Some(p.clone());
                        }
                        p
                    }
                }
            }
        };
        let job = process.job().await;
        Ok(Lease {
            job,
            _back: GiveBack {
                process,
                state: self.state.clone(),
            },
            _permit: permit,
        })
    }
}
