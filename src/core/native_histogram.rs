//! Native (sparse, exponential-bucket) histograms: lock-free storage with consistent snapshots.
//!
//! The hot/cold scheme of [`crate::core::hotcold`]: observations go to the hot half; a snapshot
//! flips halves, waits for the observations in flight on the now-cold half, reads it and folds
//! it into the hot one. Each half keeps its buckets in a dense array of atomics over a window
//! of bucket indices, so the common observe is one index computation and one atomic add. A
//! bucket outside the window takes a lock and installs a wider window; the old one stays
//! readable (writers may still hold it) until a snapshot owns the half again.
//!
//! The bucket limit follows client_golang: past `max_buckets`, reset if `min_reset_duration`
//! has passed since the last reset, else widen the zero bucket (up to `max_zero_threshold`),
//! else halve the resolution; a reset that restores the configured resolution is scheduled
//! for when `min_reset_duration` is due and happens at the first snapshot after that.

pub mod buckets;
pub mod exemplars;
pub mod index;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cell::add_f64;
use super::model::NativeHistogramSnapshot;
pub use buckets::{merge, BucketCounts};
use exemplars::{Reservoir, DEFAULT_EXEMPLAR_TTL, DEFAULT_MAX_EXEMPLARS};
pub use index::{bucket_index, schema_for_factor, DEFAULT_ZERO_THRESHOLD, MAX_SCHEMA, MIN_SCHEMA};
use index::{bucket_index_in, IndexTables};

const HOT_BIT: u64 = 1 << 63;
/// Slots of the first window (grown windows at least double).
const FIRST_WINDOW: usize = 16;
/// The largest window (32 KiB): far-out buckets beyond it go to a locked map, so a few
/// extreme values cannot make a window span the whole float range.
const MAX_WINDOW: usize = 4096;

/// The settings of a native histogram (client_golang's knobs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeConfig {
    /// Initial schema, in `MIN_SCHEMA..=MAX_SCHEMA`.
    pub schema: i32,
    /// Values with `|v| <= zero_threshold` go to the zero bucket (negative is taken as 0).
    pub zero_threshold: f64,
    /// 0: no limit.
    pub max_buckets: u32,
    /// Zero: never reset.
    pub min_reset_duration: Duration,
    pub max_zero_threshold: f64,
    /// Exemplars kept (0: none).
    pub max_exemplars: usize,
    pub exemplar_ttl: Duration,
}

impl NativeConfig {
    /// client_golang's defaults for a bucket factor; `None` when `factor <= 1`.
    pub fn from_factor(factor: f64) -> Option<NativeConfig> {
        Some(NativeConfig::with_schema(schema_for_factor(factor)?))
    }

    pub fn with_schema(schema: i32) -> NativeConfig {
        NativeConfig {
            schema: schema.clamp(MIN_SCHEMA, MAX_SCHEMA),
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            max_buckets: 0,
            min_reset_duration: Duration::ZERO,
            max_zero_threshold: 0.0,
            max_exemplars: DEFAULT_MAX_EXEMPLARS,
            exemplar_ttl: DEFAULT_EXEMPLAR_TTL,
        }
    }
}

/// Bucket counts for the indices `first..first + counts.len()`.
struct Window {
    first: i32,
    counts: Box<[AtomicU64]>,
}

impl Window {
    fn new(first: i32, len: usize) -> Window {
        Window {
            first,
            counts: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    fn slot(&self, index: i32) -> Option<&AtomicU64> {
        // A negative offset wraps to a huge one and misses.
        self.counts
            .get(index.wrapping_sub(self.first) as u32 as usize)
    }

    /// A window at least twice as large covering this one and `index`, its spare room on
    /// the side of `index`; `None` past `MAX_WINDOW`.
    fn grown_to(&self, index: i32) -> Option<Window> {
        let len = self.counts.len() as i64;
        if len == 0 {
            return Some(Window::new(index - FIRST_WINDOW as i32 / 2, FIRST_WINDOW));
        }
        let first = self.first as i64;
        let (low, high) = (first.min(index as i64), (first + len).max(index as i64 + 1));
        let new_len = (2 * len).max(high - low + len / 2);
        if high - low > MAX_WINDOW as i64 {
            return None;
        }
        let new_len = new_len.min(MAX_WINDOW as i64);
        let start = if (index as i64) < first {
            high - new_len
        } else {
            low
        };
        Some(Window::new(start as i32, new_len as usize))
    }
}

/// The buckets of one sign in one half.
struct SparseBuckets {
    /// Never null; replaced only under `outside`'s lock.
    current: AtomicPtr<Window>,
    outside: Mutex<OutsideWindow>,
}

/// What the current window does not hold.
#[derive(Default)]
struct OutsideWindow {
    /// Replaced windows, kept until the half is read (writers may still be adding to them).
    retired: Vec<Window>,
    /// Buckets too far from the window to grow it.
    far: BTreeMap<i32, u64>,
}

impl SparseBuckets {
    fn new() -> SparseBuckets {
        SparseBuckets {
            current: AtomicPtr::new(Box::into_raw(Box::new(Window::new(0, 0)))),
            outside: Mutex::new(OutsideWindow::default()),
        }
    }

    fn current(&self) -> &Window {
        // SAFETY: `current` always holds a pointer from `Box::into_raw`; a replaced window goes
        // to `retired` and is freed only by `take` (when no writer uses this half) or by drop.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// Adds `n` to bucket `index`; true if the bucket was empty (in the window it landed in).
    #[inline]
    fn add(&self, index: i32, n: u64) -> bool {
        match self.current().slot(index) {
            Some(slot) => slot.fetch_add(n, Ordering::Relaxed) == 0,
            None => self.add_growing(index, n),
        }
    }

    #[cold]
    fn add_growing(&self, index: i32, n: u64) -> bool {
        let mut outside = self.outside.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.current();
        if let Some(slot) = window.slot(index) {
            return slot.fetch_add(n, Ordering::Relaxed) == 0;
        }
        let Some(grown) = window.grown_to(index) else {
            let count = outside.far.entry(index).or_insert(0);
            *count += n;
            return *count == n;
        };
        let grown = Box::new(grown);
        if let Some(slot) = grown.slot(index) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
        let old = self.current.swap(Box::into_raw(grown), Ordering::AcqRel);
        // SAFETY: `old` came from `Box::into_raw` and is no longer reachable from `current`.
        outside.retired.push(*unsafe { Box::from_raw(old) });
        true
    }

    /// Reads and empties the buckets. The caller guarantees no concurrent `add`.
    fn take(&self) -> Vec<(i32, u64)> {
        let mut outside = self.outside.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.current();
        let mut counts: Vec<u64> = window
            .counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        // Every window covers those it replaced.
        for old in outside.retired.drain(..) {
            let offset = (old.first - window.first) as usize;
            for (k, c) in old.counts.iter().enumerate() {
                counts[offset + k] += c.load(Ordering::Relaxed);
            }
        }
        let far = std::mem::take(&mut outside.far);
        let inside = (window.first..).zip(counts).filter(|(_, c)| *c > 0);
        // Far buckets lie below or above the window: sorting merges them in place.
        let mut buckets: Vec<(i32, u64)> = inside.chain(far).collect();
        buckets.sort_unstable_by_key(|b| b.0);
        buckets
    }
}

impl Drop for SparseBuckets {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` and nothing else frees it.
        drop(unsafe { Box::from_raw(*self.current.get_mut()) });
    }
}

/// One of the two count sets.
struct Half {
    /// Observations completed on this half (plus those folded in; see `flip_and_take`).
    completed: AtomicU64,
    sum: AtomicU64,
    zero_count: AtomicU64,
    schema: AtomicI32,
    zero_threshold: AtomicU64,
    positive: SparseBuckets,
    negative: SparseBuckets,
    /// Buckets opened since the half was last read (over-counts when a window grows under a
    /// racing writer; the limiter counts exactly before acting).
    bucket_number: AtomicU32,
}

impl Half {
    fn new(schema: i32, zero_threshold: f64) -> Half {
        Half {
            completed: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            zero_count: AtomicU64::new(0),
            schema: AtomicI32::new(schema),
            zero_threshold: AtomicU64::new(zero_threshold.to_bits()),
            positive: SparseBuckets::new(),
            negative: SparseBuckets::new(),
            bucket_number: AtomicU32::new(0),
        }
    }

    /// Counts `v` in its bucket (NaN in none); true if that opened a bucket.
    #[inline]
    fn record(&self, tables: &IndexTables, v: f64) -> bool {
        let threshold = f64::from_bits(self.zero_threshold.load(Ordering::Relaxed));
        let opened = if v > threshold {
            let schema = self.schema.load(Ordering::Relaxed);
            self.positive.add(bucket_index_in(tables, v, schema), 1)
        } else if v < -threshold {
            let schema = self.schema.load(Ordering::Relaxed);
            self.negative.add(bucket_index_in(tables, -v, schema), 1)
        } else {
            if !v.is_nan() {
                self.zero_count.fetch_add(1, Ordering::Relaxed);
            }
            false
        };
        if opened {
            self.bucket_number.fetch_add(1, Ordering::Relaxed);
        }
        opened
    }

    fn set_settings(&self, schema: i32, zero_threshold: f64) {
        self.schema.store(schema, Ordering::Relaxed);
        self.zero_threshold
            .store(zero_threshold.to_bits(), Ordering::Relaxed);
    }

    /// Reads and empties the half (not its `completed`). No writer may be using it.
    fn take(&self, count: u64) -> BucketCounts {
        self.bucket_number.store(0, Ordering::Relaxed);
        BucketCounts {
            schema: self.schema.load(Ordering::Relaxed),
            zero_threshold: f64::from_bits(self.zero_threshold.load(Ordering::Relaxed)),
            zero_count: self.zero_count.swap(0, Ordering::Relaxed),
            count,
            sum: f64::from_bits(self.sum.swap(0, Ordering::Relaxed)),
            positive: self.positive.take(),
            negative: self.negative.take(),
        }
    }

    /// Adds the counts (in this half's settings) next to concurrent writers.
    fn add_counts(&self, counts: &BucketCounts) {
        self.zero_count
            .fetch_add(counts.zero_count, Ordering::Relaxed);
        add_f64(&self.sum, counts.sum);
        let mut opened = 0;
        for &(i, c) in &counts.positive {
            opened += self.positive.add(i, c) as u32;
        }
        for &(i, c) in &counts.negative {
            opened += self.negative.add(i, c) as u32;
        }
        self.bucket_number.fetch_add(opened, Ordering::Relaxed);
    }
}

/// What only snapshots and the limiter touch.
struct State {
    /// Observations dropped by resets (the started counter never goes back).
    discarded: u64,
    last_reset: Instant,
    reset_scheduled: bool,
}

/// A native histogram's storage.
pub struct SparseHistogram {
    /// Bit 63: the hot half; low bits: observations started.
    started_and_hot: AtomicU64,
    halves: [Half; 2],
    tables: &'static IndexTables,
    config: NativeConfig,
    state: Mutex<State>,
    exemplars: Mutex<Reservoir>,
}

impl SparseHistogram {
    pub fn new(config: NativeConfig) -> SparseHistogram {
        let mut config = config;
        config.schema = config.schema.clamp(MIN_SCHEMA, MAX_SCHEMA);
        config.zero_threshold = config.zero_threshold.max(0.0);
        let half = || Half::new(config.schema, config.zero_threshold);
        SparseHistogram {
            started_and_hot: AtomicU64::new(0),
            halves: [half(), half()],
            tables: IndexTables::get(),
            config,
            state: Mutex::new(State {
                discarded: 0,
                last_reset: Instant::now(),
                reset_scheduled: false,
            }),
            exemplars: Mutex::new(Reservoir::new(config.max_exemplars, config.exemplar_ttl)),
        }
    }

    pub fn config(&self) -> &NativeConfig {
        &self.config
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        let n = self.started_and_hot.fetch_add(1, Ordering::Acquire);
        let half = &self.halves[(n >> 63) as usize];
        let opened = half.record(self.tables, v);
        add_f64(&half.sum, v);
        // Last: marks this observation complete for a snapshot waiting on the half.
        half.completed.fetch_add(1, Ordering::Release);
        if opened
            && self.config.max_buckets > 0
            && half.bucket_number.load(Ordering::Relaxed) > self.config.max_buckets
        {
            self.limit_buckets(Instant::now());
        }
    }

    /// Observes `v` and offers it as an exemplar with `labels`, observed at `now` (seconds
    /// since the epoch).
    pub fn observe_with_exemplar(&self, v: f64, labels: Vec<(String, String)>, now: f64) {
        self.observe(v);
        self.offer_exemplar(v, labels, now);
    }

    /// Offers an observation already counted as an exemplar with `labels`, made at `now`
    /// (seconds since the epoch).
    pub fn offer_exemplar(&self, v: f64, labels: Vec<(String, String)>, now: f64) {
        let mut reservoir = self.exemplars.lock().unwrap_or_else(|e| e.into_inner());
        reservoir.add(v, labels, now);
    }

    /// A consistent read: `count` equals the zero count plus every bucket plus the NaNs.
    pub fn snapshot(&self) -> NativeHistogramSnapshot {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> NativeHistogramSnapshot {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let min_reset = self.config.min_reset_duration;
        if state.reset_scheduled && now.duration_since(state.last_reset) >= min_reset {
            self.reset(&mut state, now);
        }
        let (cold, counts) = self.flip_and_take(&state);
        self.halves[cold ^ 1].add_counts(&counts);
        let mut snapshot = counts.to_snapshot();
        let reservoir = self.exemplars.lock().unwrap_or_else(|e| e.into_inner());
        snapshot.exemplars = reservoir.exemplars();
        snapshot
    }

    /// Flips the hot half, waits for the observations in flight on the old one, and reads and
    /// empties it. Returns the now-cold half's index. Caller holds `state`.
    fn flip_and_take(&self, state: &State) -> (usize, BucketCounts) {
        let n = self.started_and_hot.fetch_add(HOT_BIT, Ordering::AcqRel);
        let started = n & !HOT_BIT;
        let cold_index = (n >> 63) as usize;
        let (cold, hot) = (&self.halves[cold_index], &self.halves[cold_index ^ 1]);
        let mut spins = 0u32;
        while cold.completed.load(Ordering::Acquire) != started {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let counts = cold.take(started - state.discarded);
        // The hot half's completed count continues from all observations started so far.
        cold.completed.store(0, Ordering::Relaxed);
        hot.completed.fetch_add(started, Ordering::Release);
        (cold_index, counts)
    }

    /// Empties both halves and restores the configured settings.
    fn reset(&self, state: &mut State, now: Instant) {
        for _ in 0..2 {
            let (cold, counts) = self.flip_and_take(state);
            state.discarded += counts.count;
            self.halves[cold].set_settings(self.config.schema, self.config.zero_threshold);
        }
        state.last_reset = now;
        state.reset_scheduled = false;
    }

    /// client_golang's strategy once the bucket number went past the limit.
    #[cold]
    fn limit_buckets(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (cold, mut counts) = self.flip_and_take(&state);
        let max = self.config.max_buckets as usize;
        if counts.bucket_number() <= max {
            // Another thread got here first, or the count was over.
            self.halves[cold ^ 1].add_counts(&counts);
            return;
        }
        let min_reset = self.config.min_reset_duration;
        if !min_reset.is_zero() && now.duration_since(state.last_reset) >= min_reset {
            state.discarded += counts.count;
            self.halves[cold].set_settings(self.config.schema, self.config.zero_threshold);
            // The other half's recent observations go too: they are from before the reset.
            let (other, recent) = self.flip_and_take(&state);
            state.discarded += recent.count;
            self.halves[other].set_settings(self.config.schema, self.config.zero_threshold);
            state.last_reset = now;
            state.reset_scheduled = false;
            return;
        }
        if !min_reset.is_zero() {
            state.reset_scheduled = true;
        }
        if !self.widen_zero_bucket(&mut counts) && counts.schema > MIN_SCHEMA {
            counts.reduce_schema(counts.schema - 1);
        }
        self.halves[cold].set_settings(counts.schema, counts.zero_threshold);
        // The observations made meanwhile went to the other half in the old settings.
        let (other, mut recent) = self.flip_and_take(&state);
        recent.reduce_schema(counts.schema);
        recent.widen_zero_bucket(counts.zero_threshold);
        self.halves[other].set_settings(counts.schema, counts.zero_threshold);
        let hot = &self.halves[other ^ 1];
        hot.add_counts(&counts);
        hot.add_counts(&recent);
    }

    /// Widens the zero bucket over the bucket nearest zero, if `max_zero_threshold` allows.
    fn widen_zero_bucket(&self, counts: &mut BucketCounts) -> bool {
        let max = self.config.max_zero_threshold;
        if max <= counts.zero_threshold {
            return false;
        }
        let nearest = counts
            .positive
            .first()
            .into_iter()
            .chain(counts.negative.first())
            .map(|b| b.0)
            .min();
        let Some(nearest) = nearest else {
            return false;
        };
        let threshold = index::upper_bound(nearest, counts.schema);
        if threshold > max {
            return false;
        }
        counts.widen_zero_bucket(threshold);
        true
    }
}

#[cfg(test)]
mod tests;
