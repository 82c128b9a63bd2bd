//! Summary quantiles in multiprocess mode: each process keeps, per summary child, a mergeable
//! relative-error sketch (DDSketch's logarithmic buckets) in a side file,
//! `summary_sketch_<pid>.fps`, in the `.db` files' entry layout. prometheus_client's collector
//! globs `*.db` and never sees it; fastprom's collector sums the sketches of every process and
//! reads the quantiles off the sum.
//!
//! A value `x > 0` falls in bucket `ceil(log_gamma(x))`, `gamma = (1 + a) / (1 - a)`; the
//! bucket's representative `2 gamma^i / (gamma + 1)` is within `a` of every value in it, so an
//! answer is within `a` of the exact quantile's value (an error in value, not in rank as in one
//! process). Negative values go to buckets of `-x`, zero (and subnormals) to a zero count.
//!
//! The window slides on wall-clock time, so that processes' windows line up: window `k` covers
//! `[k w, (k + 1) w)` with `w = max_age / age_buckets`, and is kept in ring position
//! `k mod age_buckets`, with a stamp entry holding `k`. A writer that finds an older stamp
//! zeroes that position first; a reader sums the positions whose window is one of the last
//! `age_buckets`.
//!
//! Entry keys (plain text, short): `S <id> <max_age> <age_buckets> <q:e,...> <mmap key>` names
//! a series; `W <id> <ring>` is a position's window; `B <id> <ring> <p|n><index>` and
//! `B <id> <ring> z` are bucket counts. `<id>` is a hash of the mmap key, the same in every
//! process.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::key::mmap_key;
use super::mapped::{keys_with_prefix, label_dict, FileId, MappedSpec, Slots};
use crate::core::cell::{add_f64, load_f64, store_f64};

/// The relative accuracy of a bucket's representative: under 1% with room for rounding.
pub const RELATIVE_ACCURACY: f64 = 0.0099;

/// The prefix and extension of the side files.
pub const FILE_PREFIX: &str = "summary_sketch";
pub const FILE_EXTENSION: &str = "fps";

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Where a value is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// `x < 0`, by the index of `-x`.
    Negative(i32),
    Zero,
    Positive(i32),
}

impl Bucket {
    /// `None` for NaN, which no quantile can place.
    pub fn of(v: f64) -> Option<Bucket> {
        if v.is_nan() {
            None
        } else if v.abs() < f64::MIN_POSITIVE {
            Some(Bucket::Zero)
        } else if v > 0.0 {
            Some(Bucket::Positive(index(v)))
        } else {
            Some(Bucket::Negative(index(-v)))
        }
    }

    /// The value reported for this bucket.
    pub fn value(self) -> f64 {
        match self {
            Bucket::Negative(i) => -representative(i),
            Bucket::Zero => 0.0,
            Bucket::Positive(i) => representative(i),
        }
    }

    /// Ascending by value: the most negative first.
    pub fn order(self) -> (u8, i64) {
        match self {
            Bucket::Negative(i) => (0, -i64::from(i)),
            Bucket::Zero => (1, 0),
            Bucket::Positive(i) => (2, i64::from(i)),
        }
    }

    fn key_part(self) -> String {
        match self {
            Bucket::Negative(i) => format!("n{i}"),
            Bucket::Zero => "z".to_owned(),
            Bucket::Positive(i) => format!("p{i}"),
        }
    }

    fn parse(text: &str) -> Option<Bucket> {
        if text == "z" {
            return Some(Bucket::Zero);
        }
        let (sign, index) = text.split_at_checked(1)?;
        let index = index.parse().ok()?;
        match sign {
            "n" => Some(Bucket::Negative(index)),
            "p" => Some(Bucket::Positive(index)),
            _ => None,
        }
    }
}

/// `1 / ln(gamma)`, checked by a test: a logarithm less on every observation.
const INVERSE_LN_GAMMA: f64 = 50.50340046192384;

/// Beyond every finite double's index (about ±35,850), whose representative is infinite:
/// infinities land there, and indexes stay in a range a ring can hold densely.
const MAX_INDEX: f64 = 36_000.0;

/// `ceil(log_gamma(m))` for `m > 0`.
fn index(magnitude: f64) -> i32 {
    (magnitude.ln() * INVERSE_LN_GAMMA)
        .ceil()
        .clamp(-MAX_INDEX, MAX_INDEX) as i32
}

fn representative(index: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(index) / (g + 1.0)
}

/// A series' identity in keys: FNV-1a of its mmap key (written as 16 hex digits).
pub fn series_id(mmap_key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in mmap_key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A series' settings, as its `S` entry records them.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesInfo {
    pub id: u64,
    pub max_age: f64,
    pub age_buckets: usize,
    /// `(quantile, error)` in quantile order.
    pub objectives: Vec<(f64, f64)>,
    pub mmap_key: String,
}

impl SeriesInfo {
    pub fn key(&self) -> String {
        let objectives: Vec<String> = self
            .objectives
            .iter()
            .map(|(q, e)| format!("{q}:{e}"))
            .collect();
        format!(
            "S {:016x} {} {} {} {}",
            self.id,
            self.max_age,
            self.age_buckets,
            objectives.join(","),
            self.mmap_key
        )
    }

    /// The length of one window, in seconds.
    pub fn window_length(&self) -> f64 {
        self.max_age / self.age_buckets as f64
    }

    /// Whether window `window` is among the last `age_buckets` at time `now`. One window
    /// ahead counts too: a writer may have moved on just before the reader read its clock.
    pub fn is_live(&self, window: f64, now: f64) -> bool {
        let current = (now / self.window_length()).floor();
        window <= current + 1.0 && current - window < self.age_buckets as f64
    }
}

fn stamp_key(id: u64, ring: usize) -> String {
    format!("W {id:016x} {ring}")
}

fn bucket_key(id: u64, ring: usize, bucket: Bucket) -> String {
    format!("B {id:016x} {ring} {}", bucket.key_part())
}

/// What an entry of a side file is.
#[derive(Debug, PartialEq)]
pub enum SketchEntry {
    Series(SeriesInfo),
    Stamp {
        id: u64,
        ring: usize,
    },
    Count {
        id: u64,
        ring: usize,
        bucket: Bucket,
    },
}

impl SketchEntry {
    pub fn parse(key: &str) -> Option<SketchEntry> {
        let mut parts = key.splitn(6, ' ');
        let kind = parts.next()?;
        let id = u64::from_str_radix(parts.next()?, 16).ok()?;
        match kind {
            "S" => {
                let max_age = parts.next()?.parse().ok()?;
                let age_buckets = parts.next()?.parse().ok()?;
                let objectives = parse_objectives(parts.next()?)?;
                let mmap_key = parts.next()?.to_owned();
                Some(SketchEntry::Series(SeriesInfo {
                    id,
                    max_age,
                    age_buckets,
                    objectives,
                    mmap_key,
                }))
            }
            "W" => {
                let ring = parts.next()?.parse().ok()?;
                parts
                    .next()
                    .is_none()
                    .then_some(SketchEntry::Stamp { id, ring })
            }
            "B" => {
                let ring = parts.next()?.parse().ok()?;
                let bucket = Bucket::parse(parts.next()?)?;
                parts
                    .next()
                    .is_none()
                    .then_some(SketchEntry::Count { id, ring, bucket })
            }
            _ => None,
        }
    }

    /// The key this entry is written under.
    pub fn key(&self) -> String {
        match self {
            SketchEntry::Series(info) => info.key(),
            SketchEntry::Stamp { id, ring } => stamp_key(*id, *ring),
            SketchEntry::Count { id, ring, bucket } => bucket_key(*id, *ring, *bucket),
        }
    }
}

fn parse_objectives(text: &str) -> Option<Vec<(f64, f64)>> {
    text.split(',')
        .map(|pair| {
            let (q, e) = pair.split_once(':')?;
            Some((q.parse().ok()?, e.parse().ok()?))
        })
        .collect()
}

/// Seconds since the epoch: windows are aligned on it so that every process agrees on them.
/// On Linux the coarse clock (a few milliseconds' resolution) is a fraction of the cost.
#[cfg(target_os = "linux")]
pub fn wall_clock() -> f64 {
    crate::core::quantiles::coarse_seconds(libc::CLOCK_REALTIME_COARSE)
}

#[cfg(not(target_os = "linux"))]
pub fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The writing side: one summary child's sketch in this process's side file.
pub struct MappedSketch {
    file: FileId,
    info: SeriesInfo,
    /// The series entry, then each ring position's stamp.
    fixed: Arc<Slots>,
    rings: Mutex<Vec<Ring>>,
    /// The child was removed: its entries have left the file, and no new one is made.
    removed: AtomicBool,
}

/// One ring position's buckets, created as values first land in them.
#[derive(Default)]
struct Ring {
    negative: Dense,
    zero: Option<Arc<Slots>>,
    positive: Dense,
}

/// Bucket slots by index, `first` the index of `slots[0]`.
#[derive(Default)]
struct Dense {
    first: i32,
    slots: Vec<Option<Arc<Slots>>>,
}

impl Dense {
    fn get(&self, index: i32) -> Option<&Arc<Slots>> {
        let at = usize::try_from(i64::from(index) - i64::from(self.first)).ok()?;
        self.slots.get(at)?.as_ref()
    }

    fn insert(&mut self, index: i32, slots: Arc<Slots>) {
        if self.slots.is_empty() {
            self.first = index;
        } else if index < self.first {
            let grow = (i64::from(self.first) - i64::from(index)) as usize;
            self.slots.splice(0..0, std::iter::repeat_n(None, grow));
            self.first = index;
        }
        let at = (i64::from(index) - i64::from(self.first)) as usize;
        if at >= self.slots.len() {
            self.slots.resize(at + 1, None);
        }
        self.slots[at] = Some(slots);
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Slots>> {
        self.slots.iter().flatten()
    }
}

impl Ring {
    fn get(&self, bucket: Bucket) -> Option<&Arc<Slots>> {
        match bucket {
            Bucket::Negative(i) => self.negative.get(i),
            Bucket::Zero => self.zero.as_ref(),
            Bucket::Positive(i) => self.positive.get(i),
        }
    }

    fn insert(&mut self, bucket: Bucket, slots: Arc<Slots>) {
        match bucket {
            Bucket::Negative(i) => self.negative.insert(i, slots),
            Bucket::Zero => self.zero = Some(slots),
            Bucket::Positive(i) => self.positive.insert(i, slots),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Slots>> {
        self.negative
            .all()
            .chain(&self.zero)
            .chain(self.positive.all())
    }

    fn clear(&self) {
        for slots in self.all() {
            store_f64(slots.value(0), 0.0);
        }
    }
}

impl MappedSketch {
    /// The sketch of the summary series `labels` of `spec`'s metric, in this process's side
    /// file (beside `spec`'s file, named after the same process).
    pub fn for_series(
        spec: &MappedSpec,
        labelnames: &[String],
        labels: &[String],
        objectives: Vec<(f64, f64)>,
        max_age: f64,
        age_buckets: usize,
    ) -> io::Result<MappedSketch> {
        let name = spec.metric_name.as_str();
        let key = mmap_key(name, name, &label_dict(labelnames, labels), &spec.help);
        let file = FileId {
            prefix: FILE_PREFIX.to_owned(),
            extension: FILE_EXTENSION,
            ..spec.file.clone()
        };
        MappedSketch::new(file, &key, objectives, max_age, age_buckets)
    }

    /// The sketch of the series whose mmap key is `mmap_key`, in side file `file`.
    pub fn new(
        file: FileId,
        mmap_key: &str,
        objectives: Vec<(f64, f64)>,
        max_age: f64,
        age_buckets: usize,
    ) -> io::Result<MappedSketch> {
        let info = SeriesInfo {
            id: series_id(mmap_key),
            max_age,
            age_buckets,
            objectives,
            mmap_key: mmap_key.to_owned(),
        };
        let mut keys = vec![info.key()];
        keys.extend((0..age_buckets).map(|ring| stamp_key(info.id, ring)));
        let fixed = Slots::new(file.clone(), keys)?;
        let mut rings: Vec<Ring> = (0..age_buckets).map(|_| Ring::default()).collect();
        // The series' value is 1 once it has had observations in this file: an earlier process
        // of the same name (a pid used again, a named worker restarted) left buckets, which are
        // taken over so that clearing a position clears them too.
        if load_f64(fixed.value(0)) != 0.0 {
            adopt_buckets(&file, info.id, &mut rings)?;
        }
        Ok(MappedSketch {
            file,
            info,
            fixed,
            rings: Mutex::new(rings),
            removed: AtomicBool::new(false),
        })
    }

    /// The child is being removed: every slot of its entries, to leave the file (see
    /// `mapped::remove`). A handle kept on it counts into process memory from now on.
    pub fn remove(&self) -> Vec<Arc<Slots>> {
        self.removed.store(true, Ordering::Relaxed);
        let rings = self.lock();
        let buckets = rings.iter().flat_map(|r| r.all().cloned());
        std::iter::once(self.fixed.clone()).chain(buckets).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Ring>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `v` in the window of time `now`. A bucket whose entry cannot be created (the
    /// disk is full) misses the value; `_count` and `_sum` still have it.
    pub fn observe(&self, v: f64, now: f64) {
        let Some(bucket) = Bucket::of(v) else {
            return;
        };
        let window = (now / self.info.window_length()).floor();
        let position = window.rem_euclid(self.info.age_buckets as f64) as usize;
        let mut rings = self.lock();
        let Some(ring) = rings.get_mut(position) else {
            return;
        };
        let stamp = self.fixed.value(1 + position);
        if load_f64(stamp) != window {
            ring.clear();
            store_f64(stamp, window);
            store_f64(self.fixed.value(0), 1.0);
        }
        self.count(ring, position, bucket);
    }

    /// Adds one to `bucket`'s slot: found by index, or (the first time) an entry appended.
    fn count(&self, ring: &mut Ring, position: usize, bucket: Bucket) {
        if let Some(slots) = ring.get(bucket) {
            add_f64(slots.value(0), 1.0);
            return;
        }
        if self.removed.load(Ordering::Relaxed) {
            return;
        }
        let key = bucket_key(self.info.id, position, bucket);
        if let Ok(slots) = Slots::new(self.file.clone(), vec![key]) {
            add_f64(slots.value(0), 1.0);
            ring.insert(bucket, slots);
        }
    }
}

/// Takes over the bucket entries of series `id` already in `file`.
fn adopt_buckets(file: &FileId, id: u64, rings: &mut [Ring]) -> io::Result<()> {
    for key in keys_with_prefix(file, &format!("B {id:016x} "))? {
        let Some(SketchEntry::Count { ring, bucket, .. }) = SketchEntry::parse(&key) else {
            continue;
        };
        if let Some(ring) = rings.get_mut(ring) {
            ring.insert(bucket, Slots::new(file.clone(), vec![key])?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representatives_are_within_the_accuracy() {
        let mut v = 1e-9;
        while v < 1e12 {
            for x in [v, -v] {
                let estimate = Bucket::of(x).unwrap().value();
                assert!(
                    ((estimate - x) / x).abs() <= RELATIVE_ACCURACY * (1.0 + 1e-9),
                    "{x}"
                );
            }
            v *= 1.0137;
        }
        assert_eq!(Bucket::of(0.0), Some(Bucket::Zero));
        assert_eq!(Bucket::of(-0.0), Some(Bucket::Zero));
        assert_eq!(Bucket::of(f64::NAN), None);
        assert_eq!(Bucket::of(f64::INFINITY), Some(Bucket::Positive(36_000)));
        assert!(Bucket::of(f64::MAX).unwrap().value() >= f64::MAX);
        assert_eq!(
            Bucket::of(f64::MIN_POSITIVE),
            Some(Bucket::Positive(-35_776))
        );
        assert_eq!(Bucket::of(f64::INFINITY).unwrap().value(), f64::INFINITY);
        assert_eq!(
            Bucket::of(f64::NEG_INFINITY).unwrap().value(),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn the_inverse_logarithm_is_gammas() {
        assert!((INVERSE_LN_GAMMA * gamma().ln() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn buckets_order_by_value() {
        let mut values = [3.0, -1e-3, 0.0, -5.0, 1e-7, 250.0, -0.5];
        let mut buckets: Vec<Bucket> = values.iter().map(|v| Bucket::of(*v).unwrap()).collect();
        buckets.sort_by_key(|b| b.order());
        values.sort_by(f64::total_cmp);
        let expected: Vec<Bucket> = values.iter().map(|v| Bucket::of(*v).unwrap()).collect();
        assert_eq!(buckets, expected);
    }

    #[test]
    fn keys_round_trip() {
        let info = SeriesInfo {
            id: series_id("[\"s\", \"s\", {\"a b\": \"x y\"}, \"help with spaces\"]"),
            max_age: 600.0,
            age_buckets: 5,
            objectives: vec![(0.5, 0.05), (0.99, 0.001)],
            mmap_key: "[\"s\", \"s\", {\"a b\": \"x y\"}, \"help with spaces\"]".to_owned(),
        };
        let entries = [
            SketchEntry::Series(info.clone()),
            SketchEntry::Stamp {
                id: info.id,
                ring: 4,
            },
            SketchEntry::Count {
                id: info.id,
                ring: 0,
                bucket: Bucket::Negative(-17),
            },
            SketchEntry::Count {
                id: info.id,
                ring: 1,
                bucket: Bucket::Zero,
            },
            SketchEntry::Count {
                id: info.id,
                ring: 2,
                bucket: Bucket::Positive(i32::MAX),
            },
        ];
        for entry in entries {
            assert_eq!(SketchEntry::parse(&entry.key()), Some(entry));
        }
        for bad in [
            "",
            "S x",
            "W id",
            "W id 1 2",
            "B id 1 q3",
            "X id 1",
            "S id 1 2 0.5 k",
        ] {
            assert_eq!(SketchEntry::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn windows_are_live_for_age_buckets_steps() {
        let info = SeriesInfo {
            id: 0,
            max_age: 10.0,
            age_buckets: 5,
            objectives: vec![],
            mmap_key: String::new(),
        };
        // Now is in window 50 ([100, 102)): windows 46..=50 are live, 51 just begun elsewhere.
        let live: Vec<i32> = (40..55)
            .filter(|k| info.is_live(*k as f64, 101.0))
            .collect();
        assert_eq!(live, [46, 47, 48, 49, 50, 51]);
    }
}
