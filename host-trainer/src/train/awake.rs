//! Keeps the thread pool's other workers looking for work while a training loop runs, instead
//! of sleeping between the loop's parallel operations.
//!
//! A step is a chain of some hundreds of operations, most of them parallel, with short serial
//! stretches between them (autodiff bookkeeping, small element-wise ops). A rayon worker that
//! finds no work for about 30 rounds of `sched_yield` goes to sleep on a futex, and the next
//! parallel operation has to wake it: a system call on the thread that does the step's serial
//! work, and an inter-processor interrupt that in a virtual machine exits to the hypervisor.
//! Profiling the Smiley shape on a 2-core KVM guest put 4.8 % of all samples in that
//! `futex_wake` on the stepping thread and 4.3 % in the woken side's context switch.
//!
//! So while the loop runs, every other worker of the pool runs a helper job that takes the
//! pool's pending jobs (`rayon::yield_now`) and otherwise spins. Which thread runs a job does
//! not change any result (no kernel splits a sum by thread), so training stays bit-identical.
//!
//! A job that blocks until a flag is set is safe in rayon only if nothing the flag's setter
//! waits for can sit under it on the same thread's stack. Two rules make it so:
//! - the loop waits until each helper has started before it issues any work (a helper that
//!   starts later is turned away), so no job of the loop is ever under a helper;
//! - one loop at a time has helpers (tests train several models at once): two loops whose
//!   helpers each ran above the other loop's wait would wait for each other.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set while some loop has helpers.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// How long the loop waits for its helpers to start. A worker busy elsewhere (another
/// trainer's loop in the same pool) may not get to its helper; the loop then goes on without.
const START_WAIT: Duration = Duration::from_millis(50);

/// Idle spins between two `sched_yield`s, so a helper leaves its core to other processes now
/// and then (about every half millisecond) without sleeping.
const SPINS_PER_OS_YIELD: u32 = 256;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Whether the loop has stopped admitting helpers, and how many it admitted.
    admission: Mutex<(bool, usize)>,
    running: AtomicUsize,
}

/// While alive, the current rayon worker's pool has its other workers kept awake (see the
/// module docs). Off a pool, on a pool of one thread, or while another guard is alive, it
/// does nothing. The helpers stop when it is dropped, also during a panic.
pub struct WorkersAwake {
    shared: Option<Arc<Shared>>,
}

impl WorkersAwake {
    pub fn start() -> Self {
        let idle = Self { shared: None };
        let Some(me) = rayon::current_thread_index() else {
            return idle;
        };
        let others = rayon::current_num_threads() - 1;
        if others == 0 || CLAIMED.swap(true, Ordering::Acquire) {
            return idle;
        }
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        // One job on each worker's own queue; this thread's copy returns at once.
        rayon::spawn_broadcast(move |ctx| {
            if ctx.index() != me {
                help(&theirs);
            }
        });
        let deadline = Instant::now() + START_WAIT;
        while admitted(&shared) < others && Instant::now() < deadline {
            std::thread::yield_now();
        }
        shared.admission.lock().unwrap_or_else(|e| e.into_inner()).0 = true;
        Self {
            shared: Some(shared),
        }
    }

    /// Helpers that started (0 when the guard does nothing).
    #[cfg(test)]
    fn helpers(&self) -> usize {
        self.shared.as_deref().map_or(0, admitted)
    }

    /// Helpers still running, readable after the guard is gone.
    #[cfg(test)]
    fn running(&self) -> impl Fn() -> usize + Send + 'static + use<> {
        let shared = self.shared.clone();
        move || {
            shared
                .as_ref()
                .map_or(0, |s| s.running.load(Ordering::Acquire))
        }
    }
}

impl Drop for WorkersAwake {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.stop.store(true, Ordering::Release);
            CLAIMED.store(false, Ordering::Release);
        }
    }
}

fn admitted(shared: &Shared) -> usize {
    shared.admission.lock().unwrap_or_else(|e| e.into_inner()).1
}

fn help(shared: &Shared) {
    {
        let mut admission = shared.admission.lock().unwrap_or_else(|e| e.into_inner());
        if admission.0 {
            return;
        }
        admission.1 += 1;
        shared.running.fetch_add(1, Ordering::AcqRel);
    }
    let mut idle_spins = 0u32;
    while !shared.stop.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_spins = 0;
            continue;
        }
        idle_spins += 1;
        if idle_spins.is_multiple_of(SPINS_PER_OS_YIELD) {
            std::thread::yield_now();
        } else {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }
    shared.running.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
    }

    /// A guard with all `helpers` started. Other tests train models, one loop at a time has
    /// helpers, and on a loaded machine a new thread may take longer than [`START_WAIT`] to
    /// run: wait for the turn.
    fn claimed(helpers: usize) -> WorkersAwake {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let guard = WorkersAwake::start();
            if guard.helpers() == helpers || Instant::now() > deadline {
                return guard;
            }
            drop(guard);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn no_helpers_off_the_pool_or_on_one_thread() {
        assert_eq!(WorkersAwake::start().helpers(), 0);
        assert_eq!(pool(1).install(|| WorkersAwake::start().helpers()), 0);
    }

    #[test]
    fn every_other_worker_helps_until_the_guard_is_dropped() {
        pool(3).install(|| {
            let guard = claimed(2);
            assert_eq!(guard.helpers(), 2);
            let running = guard.running();
            assert_eq!(running(), 2);
            // Work still gets done, also on the helpers' threads.
            let on: Vec<usize> = (0..64)
                .map(|_| {
                    rayon::join(|| 0, rayon::current_thread_index)
                        .1
                        .unwrap_or(9)
                })
                .collect();
            assert!(on.iter().all(|&t| t < 3));
            // A second loop in the same process goes without.
            assert_eq!(WorkersAwake::start().helpers(), 0);
            drop(guard);
            wait_for("the helpers to stop", || running() == 0);
        });
    }

    #[test]
    fn the_helpers_stop_when_the_loop_panics() {
        let pool = pool(2);
        let (tx, rx) = std::sync::mpsc::channel();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                let guard = claimed(1);
                tx.send((guard.helpers(), guard.running())).expect("send");
                panic!("the loop fails");
            })
        }));
        assert!(result.is_err());
        let (helpers, running) = rx.recv().expect("guard started");
        assert_eq!(helpers, 1);
        wait_for("the helpers to stop", || running() == 0);
        // And the next loop gets helpers again.
        assert_eq!(pool.install(|| claimed(1).helpers()), 1);
    }
}
