//! Fork safety: `fork()` copies only the thread that calls it, so a lock another thread holds
//! at that moment stays locked in the child for good (and the data it guards may be half
//! changed). Python forks with the GIL held, so code that holds the GIL is never caught
//! mid-way; the code at risk is what runs without it (renders, the server's threads, the
//! multiprocess reader). That code holds a `ForkGuard` around its critical sections, and the
//! pre-fork handler waits until no guard is held and keeps new ones out until the fork is
//! done: the child starts with every such lock free and every structure whole.
//!
//! A guarded section never waits for the GIL (the forking thread holds it while it waits for
//! the section to end). A thread may nest guards. The hot paths (inc, observe, labels of an
//! existing child) run under the GIL and take no guard.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Threads inside a guarded section (counted once per thread, however deeply nested).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Set from the pre-fork handler until the fork is done: no new section starts.
static FORKING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// How many guards this thread holds.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Held while a section that runs without the GIL uses shared state; not `Send` (it counts
/// for the thread that took it).
pub struct ForkGuard {
    _this_thread: PhantomData<*const ()>,
}

/// Enters a section that no fork may split.
pub fn guard() -> ForkGuard {
    DEPTH.with(|depth| {
        if depth.get() == 0 {
            enter_outermost();
        }
        depth.set(depth.get() + 1);
    });
    ForkGuard {
        _this_thread: PhantomData,
    }
}

fn enter_outermost() {
    loop {
        wait_while(|| FORKING.load(Ordering::SeqCst));
        // Counted before FORKING is read again: the pre-fork handler, which sets FORKING before
        // it reads ACTIVE, either sees this thread or this thread sees FORKING.
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        if !FORKING.load(Ordering::SeqCst) {
            return;
        }
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for ForkGuard {
    fn drop(&mut self) {
        DEPTH.with(|depth| {
            depth.set(depth.get() - 1);
            if depth.get() == 0 {
                ACTIVE.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}

/// Spins briefly, then sleeps in short steps: sections and forks are short.
fn wait_while(busy: impl Fn() -> bool) {
    let mut rounds = 0u32;
    while busy() {
        rounds += 1;
        if rounds < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Before `fork()`: keeps new sections out and waits until the current ones end. The calling
/// thread must hold no guard.
pub fn before_fork() {
    debug_assert_eq!(
        DEPTH.with(Cell::get),
        0,
        "fork from inside a guarded section"
    );
    FORKING.store(true, Ordering::SeqCst);
    wait_while(|| ACTIVE.load(Ordering::SeqCst) != 0);
}

/// After `fork()`, in the parent (also when the fork failed): sections may start again.
pub fn after_fork_in_parent() {
    FORKING.store(false, Ordering::SeqCst);
}

/// After `fork()`, in the child: it has one thread, inside no section.
pub fn after_fork_in_child() {
    ACTIVE.store(0, Ordering::SeqCst);
    FORKING.store(false, Ordering::SeqCst);
}

/// Whether a fork is under way (for tests).
pub fn is_forking() -> bool {
    FORKING.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, Mutex};

    // The statics are process-wide: one test drives them all, in order.
    #[test]
    fn a_fork_waits_for_sections_and_keeps_new_ones_out() {
        // Nested guards count once, and all of them leave.
        {
            let _outer = guard();
            let _inner = guard();
            assert_eq!(ACTIVE.load(Ordering::SeqCst), 1);
        }
        assert_eq!(ACTIVE.load(Ordering::SeqCst), 0);

        // A fork waits for a section in progress.
        let inside = Arc::new(Mutex::new(()));
        let held = inside.lock().unwrap();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let section = {
            let inside = inside.clone();
            std::thread::spawn(move || {
                let _guard = guard();
                entered_tx.send(()).unwrap();
                let _wait = inside.lock().unwrap();
            })
        };
        entered_rx.recv().unwrap();
        let forked = Arc::new(AtomicU64::new(0));
        let forker = {
            let forked = forked.clone();
            std::thread::spawn(move || {
                before_fork();
                forked.store(1, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(forked.load(Ordering::SeqCst), 0, "the fork did not wait");
        drop(held);
        section.join().unwrap();
        forker.join().unwrap();
        assert!(is_forking());

        // While the fork is under way a new section waits; after it, the section runs.
        let entered = Arc::new(AtomicU64::new(0));
        let late = {
            let entered = entered.clone();
            std::thread::spawn(move || {
                let _guard = guard();
                entered.store(1, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            entered.load(Ordering::SeqCst),
            0,
            "a section started mid-fork"
        );
        after_fork_in_parent();
        late.join().unwrap();
        assert_eq!(entered.load(Ordering::SeqCst), 1);
        assert!(!is_forking());

        // The child starts with no section and no fork under way.
        before_fork();
        after_fork_in_child();
        assert!(!is_forking());
        drop(guard());
        assert_eq!(ACTIVE.load(Ordering::SeqCst), 0);
    }
}
