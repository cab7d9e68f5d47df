//! A persistent worker pool for the forward pass.
//!
//! A token of generation issues a few hundred small parallel jobs (one per matrix product),
//! each lasting tens of microseconds, so waking threads through the OS for every job would
//! cost more than the job. Workers therefore spin on an epoch counter for a short while after
//! each job and only then park on a condition variable. The calling thread always takes part
//! in the work, so a pool of `n` threads owns `n - 1` workers.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks. Long enough to bridge the gap between
/// two consecutive matrix products of one token, short enough not to burn a core between tokens.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(300);

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Incremented once per job; workers compare it with the last epoch they served.
    epoch: AtomicU64,
    /// The current job, valid while `pending > 0` (see `ThreadPool::run`).
    job: UnsafeCell<Option<*const Job>>,
    n_tasks: AtomicUsize,
    next_task: AtomicUsize,
    /// Workers that have not yet finished the current job.
    pending: AtomicUsize,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread inside `ThreadPool::run` while no worker reads
// it (all workers have finished the previous epoch and wait for the next one), and read by
// workers only between the epoch bump and their decrement of `pending`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of threads that execute data-parallel jobs: `run(n, f)` calls `f(i)` once for
/// every `i < n`, spread over the threads, and returns when all calls are done.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises `run` calls from different threads sharing one pool.
    run_lock: Mutex<()>,
}

impl ThreadPool {
    /// A pool using `n_threads` threads in total (the caller's included); 0 is taken as 1.
    pub fn new(n_threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            n_tasks: AtomicUsize::new(0),
            next_task: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..n_threads.max(1))
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("kiln-worker-{i}"))
                    .spawn(move || worker_loop(&shared))
                    .expect("spawning a worker thread")
            })
            .collect();
        ThreadPool { shared, workers, run_lock: Mutex::new(()) }
    }

    /// Number of threads that execute jobs, the caller's included.
    pub fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(i)` for every `i < n_tasks`, in parallel, and returns when all have returned.
    /// Tasks are handed out dynamically, so uneven tasks or a busy core balance out.
    pub fn run<F: Fn(usize) + Sync>(&self, n_tasks: usize, f: F) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 {
            (0..n_tasks).for_each(f);
            return;
        }
        let _guard = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        let job: &(dyn Fn(usize) + Sync + '_) = &f;
        // SAFETY: no worker reads `job` now: every worker finished the previous epoch
        // (`pending` reached 0 before the previous `run` returned) and none starts the next
        // one before the epoch bump below. The pointer's lifetime is erased, but `run` does not
        // return before `pending` is 0 again, i.e. before every worker is done with it.
        unsafe {
            *shared.job.get() =
                Some(std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Job>(job) as *const Job);
        }
        shared.n_tasks.store(n_tasks, Ordering::Relaxed);
        shared.next_task.store(0, Ordering::Relaxed);
        shared.pending.store(self.workers.len(), Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::Release);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        run_tasks(shared, job);
        let mut spins = 0u32;
        while shared.pending.load(Ordering::Acquire) != 0 {
            backoff(&mut spins);
        }
    }

    /// Splits `0..len` into contiguous chunks of at least `min_chunk` items (about four per
    /// thread, for balance) and calls `f(range)` for each in parallel.
    pub fn for_chunks<F: Fn(std::ops::Range<usize>) + Sync>(&self, len: usize, min_chunk: usize, f: F) {
        let chunk = chunk_size(len, self.n_threads() * 4, min_chunk);
        let n = len.div_ceil(chunk.max(1));
        self.run(n, |i| f(i * chunk..((i + 1) * chunk).min(len)));
    }
}

/// Chunk length that splits `len` items into about `parts` pieces of at least `min_chunk`.
fn chunk_size(len: usize, parts: usize, min_chunk: usize) -> usize {
    len.div_ceil(parts.max(1)).max(min_chunk).max(1)
}

fn run_tasks(shared: &Shared, job: &(dyn Fn(usize) + Sync + '_)) {
    let n = shared.n_tasks.load(Ordering::Relaxed);
    loop {
        let i = shared.next_task.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        job(i);
    }
}

/// One step of a spin-wait. Every so often the thread yields: when the machine has more
/// runnable threads than cores, the thread being waited for may need this core to run.
#[inline]
fn backoff(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if spins.is_multiple_of(128) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn worker_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        // Wait for a new epoch: spin first, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            if shared.epoch.load(Ordering::Acquire) != seen {
                break;
            }
            if start.elapsed() < SPIN_BEFORE_PARK {
                backoff(&mut spins);
                continue;
            }
            let guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            if shared.epoch.load(Ordering::Acquire) == seen && !shared.shutdown.load(Ordering::Acquire) {
                drop(shared.wake.wait_timeout(guard, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()));
            }
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        seen = shared.epoch.load(Ordering::Acquire);
        // SAFETY: see `ThreadPool::run`; the job stays valid until this worker decrements `pending`.
        let job = unsafe { (*shared.job.get()).map(|p| &*p) };
        if let Some(job) = job {
            run_tasks(shared, job);
        }
        shared.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _l = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 4] {
            let pool = ThreadPool::new(threads);
            assert_eq!(pool.n_threads(), threads);
            for n in [0, 1, 2, 7, 100, 1000] {
                let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n, |i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn many_consecutive_jobs_and_parked_workers() {
        let pool = ThreadPool::new(3);
        let total = AtomicUsize::new(0);
        for round in 0..2000 {
            pool.run(5, |i| {
                total.fetch_add(i, Ordering::Relaxed);
            });
            if round == 1000 {
                // Let the workers park, then check they wake up for the next job.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 10);
    }

    #[test]
    fn chunks_cover_the_range_once() {
        let pool = ThreadPool::new(2);
        for len in [0, 1, 5, 64, 1000, 1001] {
            let hits: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
            pool.for_chunks(len, 16, |r| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "len {len}");
        }
        assert_eq!(chunk_size(1000, 8, 16), 125);
        assert_eq!(chunk_size(10, 8, 16), 16);
    }
}
