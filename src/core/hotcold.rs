//! Lock-free histogram (and summary) storage with consistent snapshots.
//!
//! The scheme of client_golang's `histogram.go`: observations go to the "hot" half of two
//! count sets. A snapshot flips which half is hot, waits until every observation that started
//! on the now-cold half has finished, reads it, then folds it into the hot half. So a snapshot
//! never shows a count that disagrees with its buckets, and observe never takes a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::cell::{add_f64, add_u64, load_f64, load_u64, store_f64, zeroed};

const HOT_BIT: u64 = 1 << 63;
/// Above this many bounds a binary search beats a linear scan (client_golang measured 35).
const LINEAR_SEARCH_MAX: usize = 35;

/// Slot layout: `[started_and_hot, half0.., half1..]`, each half `[completed, sum, buckets..]`.
pub struct HotCold {
    slots: Box<[AtomicU64]>,
    /// Shared by the children of a family.
    bounds: Arc<[f64]>,
    /// Serialises snapshots and direct edits; observe never takes it.
    snapshot_lock: Mutex<()>,
}

/// What a snapshot reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Observations made (NaN included, unlike the bucket total).
    pub observations: u64,
    pub sum: f64,
    /// Per-bucket (not cumulative) counts.
    pub buckets: Vec<u64>,
}

impl Snapshot {
    /// The cumulative count of all buckets (what a histogram exports as `_count`).
    pub fn bucket_total(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The first bucket whose bound is >= v; None for NaN (it lands in no bucket).
#[inline]
pub fn bucket_index(bounds: &[f64], v: f64) -> Option<usize> {
    if v.is_nan() {
        return None;
    }
    if bounds.len() <= LINEAR_SEARCH_MAX {
        return bounds.iter().position(|b| v <= *b);
    }
    // Small values are common (latencies): answer the first bucket without a search.
    if v <= bounds[0] {
        return Some(0);
    }
    let i = bounds.partition_point(|b| *b < v);
    (i < bounds.len()).then_some(i)
}

impl HotCold {
    /// `bounds` are the bucket upper bounds (empty for a summary).
    pub fn new(bounds: &[f64]) -> HotCold {
        HotCold::with_bounds(bounds.into())
    }

    pub fn with_bounds(bounds: Arc<[f64]>) -> HotCold {
        HotCold {
            slots: zeroed(1 + 2 * (2 + bounds.len())),
            bounds,
            snapshot_lock: Mutex::new(()),
        }
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    fn half(&self, hot: u64) -> usize {
        1 + (hot as usize) * (2 + self.bounds.len())
    }

    /// The first bucket whose bound is >= v; None for NaN (it lands in no bucket).
    #[inline]
    pub fn bucket_index(&self, v: f64) -> Option<usize> {
        bucket_index(&self.bounds, v)
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        self.observe_in(self.bucket_index(v), v)
    }

    /// Observes `v` into `bucket`, chosen by the caller (Python's `<=` for numpy scalars).
    #[inline]
    pub fn observe_in(&self, bucket: Option<usize>, v: f64) {
        let n = self.slots[0].fetch_add(1, Ordering::Acquire);
        let half = self.half(n >> 63);
        if let Some(i) = bucket {
            add_u64(&self.slots[half + 2 + i], 1);
        }
        add_f64(&self.slots[half + 1], v);
        // Last: marks this observation complete for a snapshot waiting on the half.
        self.slots[half].fetch_add(1, Ordering::Release);
    }

    /// Observes every value, in order, with the same result as observing them one by one: the
    /// sum is folded in sequence, and the counts go in with one atomic add per bucket.
    pub fn observe_many<T: Copy + Into<f64>>(&self, values: &[T]) {
        if values.is_empty() {
            return;
        }
        let n = values.len() as u64;
        let started = self.slots[0].fetch_add(n, Ordering::Acquire);
        let half = self.half(started >> 63);
        let mut counts = vec![0u64; self.bounds.len()];
        for v in values {
            if let Some(i) = self.bucket_index((*v).into()) {
                counts[i] += 1;
            }
        }
        for (i, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            add_u64(&self.slots[half + 2 + i], *count);
        }
        let sum = &self.slots[half + 1];
        let mut old = sum.load(Ordering::Relaxed);
        loop {
            let folded = values
                .iter()
                .fold(f64::from_bits(old), |acc, v| acc + (*v).into());
            match sum.compare_exchange_weak(
                old,
                folded.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => old = current,
            }
        }
        self.slots[half].fetch_add(n, Ordering::Release);
    }

    pub fn snapshot(&self) -> Snapshot {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.flip_and_fold()
    }

    /// Flips the hot half, waits for in-flight observations on the old one, reads it and folds
    /// it into the new hot half. Caller holds `snapshot_lock`.
    fn flip_and_fold(&self) -> Snapshot {
        let n = self.slots[0].fetch_add(HOT_BIT, Ordering::AcqRel);
        let started = n & !HOT_BIT;
        let cold = self.half(n >> 63);
        let hot = self.half((n >> 63) ^ 1);
        let mut spins = 0u32;
        while self.slots[cold].load(Ordering::Acquire) != started {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let snap = Snapshot {
            observations: started,
            sum: load_f64(&self.slots[cold + 1]),
            buckets: (0..self.bounds.len())
                .map(|i| load_u64(&self.slots[cold + 2 + i]))
                .collect(),
        };
        for (i, count) in snap.buckets.iter().enumerate() {
            add_u64(&self.slots[hot + 2 + i], *count);
            self.slots[cold + 2 + i].store(0, Ordering::Relaxed);
        }
        add_f64(&self.slots[hot + 1], snap.sum);
        store_f64(&self.slots[cold + 1], 0.0);
        self.slots[hot].fetch_add(started, Ordering::Release);
        self.slots[cold].store(0, Ordering::Release);
        snap
    }

    /// Adds to the sum without an observation (the `_sum.inc()` of the reference's value API).
    pub fn add_to_sum(&self, v: f64) {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        let hot = self.half(self.slots[0].load(Ordering::Acquire) >> 63);
        add_f64(&self.slots[hot + 1], v);
    }

    /// Adds to one bucket's count without touching the sum.
    pub fn add_to_bucket(&self, bucket: usize, n: u64) {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        let hot = self.half(self.slots[0].load(Ordering::Acquire) >> 63);
        add_u64(&self.slots[hot + 2 + bucket], n);
    }

    /// Records `n` observations that add nothing to the sum or buckets (`_count.inc()`).
    pub fn add_observations(&self, n: u64) {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Started and completed move together, so a later snapshot's wait still balances.
        let started = self.slots[0].fetch_add(n, Ordering::AcqRel);
        self.slots[self.half(started >> 63)].fetch_add(n, Ordering::Release);
    }

    /// Replaces the sum (or, with `Some(bucket)`, one bucket's count).
    pub fn set_part(&self, bucket: Option<usize>, v: f64) {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.flip_and_fold();
        let hot = self.half(self.slots[0].load(Ordering::Acquire) >> 63);
        match bucket {
            None => store_f64(&self.slots[hot + 1], v),
            Some(i) => self.slots[hot + 2 + i].store(v.max(0.0) as u64, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn observe_places_values_in_first_matching_bucket() {
        let h = HotCold::new(&[1.0, 2.0, f64::INFINITY]);
        for v in [0.5, 1.0, 1.5, 3.0, f64::NAN] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![2, 1, 1]);
        assert_eq!(s.observations, 5);
        assert!(s.sum.is_nan());
        assert_eq!(s.bucket_total(), 4);
    }

    #[test]
    fn binary_and_linear_search_agree() {
        let mut bounds: Vec<f64> = (0..100).map(|i| i as f64 / 4.0).collect();
        bounds.insert(10, 2.25); // duplicate bound: the first one wins
        bounds.push(f64::INFINITY);
        let h = HotCold::new(&bounds);
        for k in 0..1000 {
            let v = k as f64 / 37.0 - 1.0;
            let linear = bounds.iter().position(|b| v <= *b);
            assert_eq!(h.bucket_index(v), linear, "v={v}");
        }
    }

    #[test]
    fn snapshots_stay_consistent_under_concurrent_observes() {
        let h = Arc::new(HotCold::new(&[0.25, 0.75, f64::INFINITY]));
        let writers: Vec<_> = (0..3)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..100_000 {
                        h.observe(((i + t) % 3) as f64 * 0.5);
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            let s = h.snapshot();
            assert_eq!(s.bucket_total(), s.observations);
            assert_eq!(
                s.sum,
                (s.buckets[1] as f64) * 0.5 + (s.buckets[2] as f64) * 1.0
            );
        }
        writers.into_iter().for_each(|w| w.join().unwrap());
        let s = h.snapshot();
        assert_eq!(s.observations, 300_000);
        assert_eq!(s.buckets, vec![100_000, 100_000, 100_000]);
        assert_eq!(h.snapshot(), s, "a second snapshot sees the same data");
    }

    #[test]
    fn observe_many_equals_one_by_one() {
        let values: Vec<f64> = (0..1000)
            .map(|i| (i as f64 * 0.37).sin() * 3.0)
            .chain([f64::NAN, 0.1, 0.2])
            .collect();
        let one = HotCold::new(&[-1.0, 0.0, 1.0, f64::INFINITY]);
        let many = HotCold::new(&[-1.0, 0.0, 1.0, f64::INFINITY]);
        one.observe(0.5);
        many.observe(0.5);
        values.iter().for_each(|v| one.observe(*v));
        many.observe_many(&values[..500]);
        many.observe_many(&values[500..]);
        let (a, b) = (one.snapshot(), many.snapshot());
        assert_eq!((a.observations, a.buckets), (b.observations, b.buckets));
        assert_eq!(a.sum.to_bits(), b.sum.to_bits());
        let finite: Vec<f32> = vec![0.5, 1.5, -2.0];
        let f = HotCold::new(&[0.0, f64::INFINITY]);
        f.observe_many(&finite);
        assert_eq!(f.snapshot().buckets, vec![1, 2]);
    }

    #[test]
    fn direct_edits() {
        let h = HotCold::new(&[1.0, f64::INFINITY]);
        h.observe(0.5);
        h.add_to_sum(2.0);
        h.add_to_bucket(1, 3);
        let s = h.snapshot();
        assert_eq!((s.sum, s.buckets.clone()), (2.5, vec![1, 3]));
        h.set_part(None, 10.0);
        h.set_part(Some(0), 7.0);
        let s = h.snapshot();
        assert_eq!((s.sum, s.buckets), (10.0, vec![7, 3]));
    }
}
