//! Value cells: 8-byte atomic slots.
//!
//! Every metric value lives in an `AtomicU64` that holds either an `f64` bit pattern or an
//! integer count. The operations below take the slot by reference, so the same code updates a
//! slot in process memory or one mapped from a shared-memory file.

use std::sync::atomic::{AtomicU64, Ordering};

/// Adds `v` to the `f64` stored in `slot` (lock-free CAS loop; never sleeps).
#[inline]
pub fn add_f64(slot: &AtomicU64, v: f64) {
    let mut old = slot.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(old) + v).to_bits();
        match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => old = current,
        }
    }
}

#[inline]
pub fn load_f64(slot: &AtomicU64) -> f64 {
    f64::from_bits(slot.load(Ordering::Relaxed))
}

#[inline]
pub fn store_f64(slot: &AtomicU64, v: f64) {
    slot.store(v.to_bits(), Ordering::Relaxed);
}

#[inline]
pub fn add_u64(slot: &AtomicU64, n: u64) {
    slot.fetch_add(n, Ordering::Relaxed);
}

#[inline]
pub fn load_u64(slot: &AtomicU64) -> u64 {
    slot.load(Ordering::Relaxed)
}

/// A block of zeroed slots owned by this process.
pub fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn f64_and_u64_ops() {
        let s = AtomicU64::new(0);
        add_f64(&s, 1.5);
        add_f64(&s, 2.25);
        assert_eq!(load_f64(&s), 3.75);
        store_f64(&s, -0.0);
        assert!(load_f64(&s).is_sign_negative());
        let n = AtomicU64::new(0);
        add_u64(&n, 7);
        assert_eq!(load_u64(&n), 7);
    }

    #[test]
    fn concurrent_float_adds_lose_nothing() {
        let s = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..50_000).for_each(|_| add_f64(&s, 0.5)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(load_f64(&s), 100_000.0);
    }
}
