//! The storage of a histogram or summary child: lock-free hot/cold cells in process memory, or
//! one slot per sample in this process's multiprocess file.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use once_cell::race::OnceBox;

use super::cell::{add_f64, load_f64, store_f64};
use super::hotcold::{bucket_index, HotCold, Snapshot};
use super::multiprocess::mapped::Slots;
use super::multiprocess::native::MappedNative;
use super::multiprocess::sketch::{wall_clock, MappedSketch};
use super::native_histogram::{NativeConfig, SparseHistogram};
use super::quantiles::{clock, QuantileSpec, SlidingQuantiles};

pub enum Observations {
    Local(HotCold),
    Mapped(MappedObservations),
    /// A summary's cells and the estimator of its quantiles, which sees every observation.
    WithQuantiles(Box<Observations>, Box<SlidingQuantiles>),
    /// A histogram's classic cells and its native (sparse exponential) buckets, which see
    /// every observation.
    WithNative(Box<Observations>, Box<SparseHistogram>),
    /// Multiprocess mode: the classic slots and the native buckets in this process's side
    /// file.
    WithMappedNative(Box<Observations>, Box<MappedNative>),
}

/// Multiprocess storage in the reference's order of entries: a histogram's `_sum` then its
/// buckets (per-bucket counts, not cumulative); a summary's `_count` then `_sum`.
pub struct MappedObservations {
    slots: Arc<Slots>,
    bounds: Box<[f64]>,
    /// A summary with objectives: its sketch in this process's side file.
    sketch: Option<Box<MappedSketch>>,
}

impl MappedObservations {
    pub fn new(slots: Arc<Slots>, bounds: &[f64]) -> MappedObservations {
        let observations = MappedObservations {
            slots,
            bounds: bounds.into(),
            sketch: None,
        };
        // An existing file (a pid used again) may hold a counter left odd by a process that
        // died mid-update: readers would take the child for one being updated.
        let sequence = observations.sequence();
        let left = sequence.load(Ordering::Relaxed);
        if !left.is_multiple_of(2) {
            sequence.store(left.wrapping_add(1), Ordering::Release);
        }
        observations
    }

    /// A summary's cells that also feed the sketch its quantiles are merged from.
    pub fn with_sketch(slots: Arc<Slots>, sketch: MappedSketch) -> MappedObservations {
        MappedObservations {
            sketch: Some(Box::new(sketch)),
            ..MappedObservations::new(slots, &[])
        }
    }

    fn is_histogram(&self) -> bool {
        !self.bounds.is_empty()
    }

    fn sum_slot(&self) -> usize {
        if self.is_histogram() {
            0
        } else {
            1
        }
    }

    fn observe(&self, v: f64) {
        self.observe_in(bucket_index(&self.bounds, v), v)
    }

    fn observe_in(&self, bucket: Option<usize>, v: f64) {
        self.update(|| self.add_observation(bucket, v));
        self.add_to_sketch(&[v]);
    }

    fn observe_many<T: Copy + Into<f64>>(&self, values: &[T]) {
        self.update(|| {
            for v in values {
                let v = (*v).into();
                self.add_observation(bucket_index(&self.bounds, v), v);
            }
        });
        self.add_to_sketch(values);
    }

    /// Outside `update`: the sketch is in another file, which the sequence counter does not
    /// cover, and readers of the `.db` file need not wait for it.
    fn add_to_sketch<T: Copy + Into<f64>>(&self, values: &[T]) {
        if let Some(sketch) = &self.sketch {
            let now = wall_clock();
            values.iter().for_each(|v| sketch.observe((*v).into(), now));
        }
    }

    fn add_observation(&self, bucket: Option<usize>, v: f64) {
        if self.is_histogram() {
            if let Some(i) = bucket {
                add_f64(self.slots.value(1 + i), 1.0);
            }
        } else {
            add_f64(self.slots.value(0), 1.0);
        }
        add_f64(self.slots.value(self.sum_slot()), v);
    }

    /// The child's sequence counter: the timestamp slot of its `_sum` entry, which
    /// prometheus_client's collector ignores for histograms and summaries.
    fn sequence(&self) -> &AtomicU64 {
        self.slots.timestamp(self.sum_slot())
    }

    /// Runs `change` (updates of this child's slots) between the two steps of its sequence
    /// counter: odd while the slots change, even again once they are done, so a reader of the
    /// file can tell a child caught mid-update. Writers hold the GIL: one writer at a time.
    fn update(&self, change: impl FnOnce()) {
        let sequence = self.sequence();
        // `| 1`: a file taken over from a process that died mid-update starts odd.
        let odd = sequence.load(Ordering::Relaxed) | 1;
        sequence.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        change();
        sequence.store(odd.wrapping_add(1), Ordering::Release);
    }

    fn snapshot(&self) -> Snapshot {
        let sequence = self.sequence();
        // A render runs without the GIL, so an update may be under way: read again until the
        // counter is even and unchanged around the reads. The writer may be descheduled
        // mid-update: after a few spins, yield to it, for `SNAPSHOT_PATIENCE` at most.
        let mut tries = 0;
        let mut deadline = None;
        loop {
            let before = sequence.load(Ordering::Acquire);
            let snapshot = self.read_slots();
            fence(Ordering::Acquire);
            if before.is_multiple_of(2) && sequence.load(Ordering::Relaxed) == before {
                return snapshot;
            }
            tries += 1;
            if tries < SNAPSHOT_SPINS {
                std::hint::spin_loop();
                continue;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + SNAPSHOT_PATIENCE);
            if Instant::now() >= deadline {
                return snapshot;
            }
            std::thread::yield_now();
        }
    }

    fn read_slots(&self) -> Snapshot {
        let buckets: Vec<u64> = (0..self.bounds.len())
            .map(|i| load_f64(self.slots.value(1 + i)).max(0.0) as u64)
            .collect();
        let observations = if self.is_histogram() {
            buckets.iter().sum()
        } else {
            load_f64(self.slots.value(0)).max(0.0) as u64
        };
        Snapshot {
            observations,
            sum: load_f64(self.slots.value(self.sum_slot())),
            buckets,
        }
    }
}

/// Reads of a mapped child's slots, spinning, before a render yields to its writer.
const SNAPSHOT_SPINS: usize = 100;
/// How long a render waits for a writer stopped mid-update before it takes what it read.
const SNAPSHOT_PATIENCE: Duration = Duration::from_millis(20);

impl Observations {
    pub fn local(bounds: Arc<[f64]>) -> Observations {
        Observations::Local(HotCold::with_bounds(bounds))
    }

    /// A histogram's native buckets, if it has them.
    pub fn native(&self) -> Option<&SparseHistogram> {
        match self {
            Observations::WithNative(_, native) => Some(native),
            _ => None,
        }
    }

    /// The estimator of a summary's quantiles, if it has objectives.
    pub fn quantiles(&self) -> Option<&SlidingQuantiles> {
        match self {
            Observations::WithQuantiles(_, q) => Some(q),
            _ => None,
        }
    }

    /// Multiprocess mode: a histogram's native buckets in this process's side file.
    pub fn mapped_native(&self) -> Option<&MappedNative> {
        match self {
            Observations::WithMappedNative(_, native) => Some(native),
            _ => None,
        }
    }

    /// A multiprocess summary's sketch, if it has one.
    pub fn mapped_sketch(&self) -> Option<&MappedSketch> {
        match self {
            Observations::Mapped(m) => m.sketch.as_deref(),
            _ => None,
        }
    }

    pub fn mapped_slots(&self) -> Option<&Arc<Slots>> {
        match self {
            Observations::Local(_) => None,
            Observations::Mapped(m) => Some(&m.slots),
            Observations::WithQuantiles(inner, _)
            | Observations::WithNative(inner, _)
            | Observations::WithMappedNative(inner, _) => inner.mapped_slots(),
        }
    }

    pub fn bounds(&self) -> &[f64] {
        match self {
            Observations::Local(h) => h.bounds(),
            Observations::Mapped(m) => &m.bounds,
            Observations::WithQuantiles(inner, _)
            | Observations::WithNative(inner, _)
            | Observations::WithMappedNative(inner, _) => inner.bounds(),
        }
    }

    #[inline]
    pub fn bucket_index(&self, v: f64) -> Option<usize> {
        bucket_index(self.bounds(), v)
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        match self {
            Observations::Local(h) => h.observe(v),
            Observations::Mapped(m) => m.observe(v),
            Observations::WithQuantiles(inner, q) => {
                inner.observe(v);
                q.observe(v, clock());
            }
            Observations::WithNative(inner, native) => {
                inner.observe(v);
                native.observe(v);
            }
            Observations::WithMappedNative(inner, native) => {
                inner.observe(v);
                native.observe(v);
            }
        }
    }

    /// Observes `v` into `bucket`, chosen by the caller.
    pub fn observe_in(&self, bucket: Option<usize>, v: f64) {
        match self {
            Observations::Local(h) => h.observe_in(bucket, v),
            Observations::Mapped(m) => m.observe_in(bucket, v),
            Observations::WithQuantiles(inner, q) => {
                inner.observe_in(bucket, v);
                q.observe(v, clock());
            }
            Observations::WithNative(inner, native) => {
                inner.observe_in(bucket, v);
                native.observe(v);
            }
            Observations::WithMappedNative(inner, native) => {
                inner.observe_in(bucket, v);
                native.observe(v);
            }
        }
    }

    pub fn observe_many<T: Copy + Into<f64>>(&self, values: &[T]) {
        match self {
            Observations::Local(h) => h.observe_many(values),
            Observations::Mapped(m) => m.observe_many(values),
            Observations::WithQuantiles(inner, q) => {
                inner.observe_many(values);
                let now = clock();
                values.iter().for_each(|v| q.observe((*v).into(), now));
            }
            Observations::WithNative(inner, native) => {
                inner.observe_many(values);
                values.iter().for_each(|v| native.observe((*v).into()));
            }
            Observations::WithMappedNative(inner, native) => {
                inner.observe_many(values);
                values.iter().for_each(|v| native.observe((*v).into()));
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        match self {
            Observations::Local(h) => h.snapshot(),
            Observations::Mapped(m) => m.snapshot(),
            Observations::WithQuantiles(inner, _)
            | Observations::WithNative(inner, _)
            | Observations::WithMappedNative(inner, _) => inner.snapshot(),
        }
    }

    pub fn add_to_sum(&self, v: f64) {
        match self {
            Observations::Local(h) => h.add_to_sum(v),
            Observations::Mapped(m) => m.update(|| add_f64(m.slots.value(m.sum_slot()), v)),
            Observations::WithQuantiles(inner, _)
            | Observations::WithNative(inner, _)
            | Observations::WithMappedNative(inner, _) => inner.add_to_sum(v),
        }
    }

    pub fn add_to_bucket(&self, bucket: usize, n: u64) {
        match self {
            Observations::Local(h) => h.add_to_bucket(bucket, n),
            Observations::Mapped(m) => m.update(|| add_f64(m.slots.value(1 + bucket), n as f64)),
            Observations::WithQuantiles(inner, _)
            | Observations::WithNative(inner, _)
            | Observations::WithMappedNative(inner, _) => inner.add_to_bucket(bucket, n),
        }
    }

    /// Observations that add nothing to the sum or buckets (`_count.inc()`); a mapped
    /// histogram has no count of its own (it is the bucket total), as in the reference.
    pub fn add_observations(&self, n: u64) {
        match self {
            Observations::Local(h) => h.add_observations(n),
            Observations::Mapped(m) if !m.is_histogram() => {
                m.update(|| add_f64(m.slots.value(0), n as f64))
            }
            Observations::Mapped(_) => {}
            Observations::WithQuantiles(inner, _)
            | Observations::WithNative(inner, _)
            | Observations::WithMappedNative(inner, _) => inner.add_observations(n),
        }
    }

    pub fn set_part(&self, bucket: Option<usize>, v: f64) {
        match (self, bucket) {
            (Observations::Local(h), _) => h.set_part(bucket, v),
            (Observations::Mapped(m), None) => {
                m.update(|| store_f64(m.slots.value(m.sum_slot()), v))
            }
            (Observations::Mapped(m), Some(i)) => m.update(|| store_f64(m.slots.value(1 + i), v)),
            (
                Observations::WithQuantiles(inner, _)
                | Observations::WithNative(inner, _)
                | Observations::WithMappedNative(inner, _),
                _,
            ) => inner.set_part(bucket, v),
        }
    }
}

/// What a family's histogram or summary children are made of: the bucket bounds, shared by
/// all of them, and what they estimate besides. Also holds one never-observed set of cells
/// (made at the first read), which stands in for a child's own until its first observation.
pub struct ObservationsPlan {
    bounds: Arc<[f64]>,
    native: Option<NativeConfig>,
    quantiles: Option<QuantileSpec>,
    unobserved: OnceLock<Observations>,
}

impl ObservationsPlan {
    /// A histogram's (non-empty `bounds`, maybe `native` buckets) or a summary's (maybe
    /// `quantiles`) plan.
    pub fn new(
        bounds: &[f64],
        native: Option<NativeConfig>,
        quantiles: Option<QuantileSpec>,
    ) -> ObservationsPlan {
        ObservationsPlan {
            bounds: bounds.into(),
            native,
            quantiles,
            unobserved: OnceLock::new(),
        }
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    pub fn native(&self) -> Option<&NativeConfig> {
        self.native.as_ref()
    }

    pub fn quantiles(&self) -> Option<&QuantileSpec> {
        self.quantiles.as_ref()
    }

    fn make(&self) -> Observations {
        Observations::make(&self.bounds, self.native(), self.quantiles())
    }

    /// Cells never observed, for reading children that have none of their own yet.
    fn unobserved(&self) -> &Observations {
        self.unobserved.get_or_init(|| self.make())
    }
}

impl Observations {
    /// Cells in process memory for a child of a plan with these settings.
    fn make(
        bounds: &Arc<[f64]>,
        native: Option<&NativeConfig>,
        quantiles: Option<&QuantileSpec>,
    ) -> Observations {
        let cells = Observations::local(bounds.clone());
        match (native, quantiles) {
            (Some(config), _) => {
                Observations::WithNative(Box::new(cells), Box::new(SparseHistogram::new(*config)))
            }
            (None, Some(spec)) => {
                Observations::WithQuantiles(Box::new(cells), Box::new(spec.start()))
            }
            (None, None) => cells,
        }
    }
}

/// A histogram's or summary's cells, allocated at the first change. Until then reads see the
/// plan's never-observed cells, which render exactly as a fresh child's would. Two threads
/// that change a new child at once may both make cells; one set wins, the other is dropped
/// before anything is recorded in it, so no observation is lost.
pub struct ObservationCells {
    made: OnceBox<Observations>,
    plan: Arc<ObservationsPlan>,
}

impl ObservationCells {
    pub fn new(plan: Arc<ObservationsPlan>) -> ObservationCells {
        ObservationCells {
            made: OnceBox::new(),
            plan,
        }
    }

    /// Cells made up front (multiprocess slots, which the reference writes at creation).
    pub fn with(cells: Observations, plan: Arc<ObservationsPlan>) -> ObservationCells {
        let made = OnceBox::new();
        // A fresh OnceBox: this first set cannot fail.
        let _ = made.set(Box::new(cells));
        ObservationCells { made, plan }
    }

    /// Whether this child's own cells exist (it was changed at least once).
    pub fn is_made(&self) -> bool {
        self.made.get().is_some()
    }

    /// The cells to read: the child's own, or the never-observed ones.
    #[inline]
    fn read(&self) -> &Observations {
        match self.made.get() {
            Some(cells) => cells,
            None => self.plan.unobserved(),
        }
    }

    /// The child's own cells, made now if they do not exist yet.
    #[inline]
    fn write(&self) -> &Observations {
        match self.made.get() {
            Some(cells) => cells,
            None => self.make(),
        }
    }

    #[cold]
    fn make(&self) -> &Observations {
        self.made.get_or_init(|| Box::new(self.plan.make()))
    }

    /// A histogram's native buckets, if it has them. Read-only until the child is observed:
    /// offer exemplars only after `observe`.
    pub fn native(&self) -> Option<&SparseHistogram> {
        self.read().native()
    }

    pub fn quantiles(&self) -> Option<&SlidingQuantiles> {
        self.read().quantiles()
    }

    pub fn mapped_native(&self) -> Option<&MappedNative> {
        self.read().mapped_native()
    }

    pub fn mapped_sketch(&self) -> Option<&MappedSketch> {
        self.read().mapped_sketch()
    }

    pub fn mapped_slots(&self) -> Option<&Arc<Slots>> {
        self.made.get()?.mapped_slots()
    }

    pub fn bounds(&self) -> &[f64] {
        self.plan.bounds()
    }

    #[inline]
    pub fn bucket_index(&self, v: f64) -> Option<usize> {
        bucket_index(self.bounds(), v)
    }

    pub fn snapshot(&self) -> Snapshot {
        self.read().snapshot()
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        self.write().observe(v)
    }

    #[inline]
    pub fn observe_in(&self, bucket: Option<usize>, v: f64) {
        self.write().observe_in(bucket, v)
    }

    pub fn observe_many<T: Copy + Into<f64>>(&self, values: &[T]) {
        self.write().observe_many(values)
    }

    pub fn add_to_sum(&self, v: f64) {
        self.write().add_to_sum(v)
    }

    pub fn add_to_bucket(&self, bucket: usize, n: u64) {
        self.write().add_to_bucket(bucket, n)
    }

    pub fn add_observations(&self, n: u64) {
        self.write().add_observations(n)
    }

    pub fn set_part(&self, bucket: Option<usize>, v: f64) {
        self.write().set_part(bucket, v)
    }
}
