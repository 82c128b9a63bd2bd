//! Summary quantiles in one process: targeted quantiles over a sliding time window, with
//! client_golang's meaning: the value reported for quantile `q` with error `e` is the
//! `phi`-quantile, for some `phi` in `[q - e, q + e]`, of the observations of the last
//! `max_age` seconds, the window sliding in `age_buckets` steps.
//!
//! Each stream is a CKMS summary ("Effective Computation of Biased Quantiles over Data
//! Streams", Cormode, Korn, Muthukrishnan, Srivastava): sorted tuples `(value, width, delta)`
//! whose widths add up to ranks, kept as few as the targets' error allowance at each rank
//! permits. The window has `age_buckets` streams, each reset once per `max_age`, staggered so
//! that the oldest (the head) covers at most `max_age` of observations, and at least
//! `max_age - max_age/age_buckets` once the window has run that long: queries read the head. Observations are buffered, sorted once
//! per batch and merged into every stream in one linear pass each.

use std::sync::Mutex;

/// One targeted quantile and its allowed rank error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    pub quantile: f64,
    pub error: f64,
}

#[derive(Clone, Copy, Debug)]
struct Tuple {
    value: f64,
    /// How many observations this tuple stands for (rank gap to the previous tuple).
    width: f64,
    /// The uncertainty of this tuple's rank.
    delta: f64,
}

/// A CKMS summary of every observation inserted since its last reset.
#[derive(Clone, Debug, Default)]
struct Stream {
    tuples: Vec<Tuple>,
    count: f64,
}

/// CKMS's targeted invariant: the largest rank uncertainty (`width + delta`) allowed to a
/// tuple that starts after rank `r` of `n` observations is the least, over the objectives
/// `(q, e)`, of `2er/q` where `r >= qn` and `2e(n - r)/(1 - q)` below.
#[derive(Clone, Debug)]
struct Invariant {
    /// `(q, 2e/q, 2e/(1 - q))` per objective.
    terms: Box<[(f64, f64, f64)]>,
}

impl Invariant {
    fn new(objectives: &[Objective]) -> Invariant {
        let terms = objectives
            .iter()
            .map(|o| {
                let e = invariant_error(*o);
                (
                    o.quantile,
                    2.0 * e / o.quantile,
                    2.0 * e / (1.0 - o.quantile),
                )
            })
            .collect();
        Invariant { terms }
    }

    #[inline]
    fn allowance(&self, rank: f64, count: f64) -> f64 {
        let mut least = f64::INFINITY;
        for &(quantile, above, below) in self.terms.iter() {
            let f = if rank >= quantile * count {
                above * rank
            } else {
                below * (count - rank)
            };
            least = least.min(f);
        }
        least
    }
}

/// The error to run the invariant with so that answers are within `error`.
///
/// The invariant lets a tuple that starts `d` ranks below the target `qn` be
/// `2en + 2ed/(1-q)` wide, so one that spans the target can be up to
/// `2en / (1 - 2e/(1-q))` wide, and an answer off by half that: `e/(1 - 2e/(1-q))` rather than
/// `e`. Solving `e'/(1 - 2e'/(1-q)) = e` for `e'` gives the error kept here.
fn invariant_error(objective: Objective) -> f64 {
    let room = 1.0 - objective.quantile;
    objective.error * room / (room + 2.0 * objective.error)
}

impl Stream {
    /// Merges `sorted` (ascending, no NaN) into the summary and compresses it, in one pass
    /// over the tuples in value order.
    ///
    /// A new value's rank is uncertain by what its successor's is (`width + delta - 1`, as in
    /// Greenwald-Khanna); a new minimum or maximum is known exactly. Each tuple is folded into
    /// the one after it when the invariant allows the sum (never the minimum), which is what
    /// CKMS's compression does, decided against the count after the batch.
    fn insert_sorted(&mut self, invariant: &Invariant, sorted: &[f64], scratch: &mut Vec<Tuple>) {
        if sorted.is_empty() {
            return;
        }
        let count = self.count + sorted.len() as f64;
        scratch.clear();
        let mut fold = Folder {
            invariant,
            count,
            out: scratch,
            rank: 0.0,
            limit: 0.0,
            pending: None,
        };
        let mut new_values = sorted;
        for &tuple in &self.tuples {
            // The new values below this tuple share its rank uncertainty.
            let below = new_values.partition_point(|v| *v < tuple.value);
            let (run, rest) = new_values.split_at(below);
            fold.push_run(run, tuple.width + tuple.delta - 1.0);
            new_values = rest;
            fold.push(tuple);
        }
        fold.push_run(new_values, 0.0);
        fold.finish();
        self.count = count;
        std::mem::swap(&mut self.tuples, scratch);
    }

    /// The estimate of quantile `q`: the value whose rank is surely closest to `ceil(q * n)`
    /// (its rank lies in `[r_min, r_min + delta]`); NaN when empty.
    fn query(&self, q: f64) -> f64 {
        let wanted = (q * self.count).ceil().max(1.0);
        let mut best = (f64::INFINITY, f64::NAN);
        let mut r_min = 0.0;
        for tuple in &self.tuples {
            r_min += tuple.width;
            let worst = (wanted - r_min).max(r_min + tuple.delta - wanted);
            if worst < best.0 {
                best = (worst, tuple.value);
            }
        }
        best.1
    }

    fn reset(&mut self) {
        self.tuples.clear();
        self.count = 0.0;
    }
}

/// Builds a summary from tuples in value order, folding each into the next where allowed.
struct Folder<'a> {
    invariant: &'a Invariant,
    count: f64,
    out: &'a mut Vec<Tuple>,
    /// The widths of the tuples written so far: the rank before `pending`.
    rank: f64,
    /// What the invariant allows at `rank` (0 before the minimum is written: it stays alone).
    limit: f64,
    /// The last tuple, which the next one may absorb.
    pending: Option<Tuple>,
}

impl Folder<'_> {
    fn push(&mut self, mut next: Tuple) {
        if let Some(last) = self.pending.take() {
            if last.width + next.width + next.delta <= self.limit {
                next.width += last.width;
            } else {
                self.emit(last);
            }
        }
        self.pending = Some(next);
    }

    /// New values, ascending, whose ranks are uncertain by `delta` (0 above every tuple). A
    /// new minimum is known exactly. (`push` for each, without moving options around.)
    fn push_run(&mut self, values: &[f64], delta: f64) {
        let mut values = values.iter();
        if self.pending.is_none() {
            let Some(&minimum) = values.next() else {
                return;
            };
            self.pending = Some(Tuple {
                value: minimum,
                width: 1.0,
                delta: 0.0,
            });
        }
        let Some(mut last) = self.pending.take() else {
            return;
        };
        for &value in values {
            let width = if last.width + 1.0 + delta <= self.limit {
                last.width + 1.0
            } else {
                self.emit(last);
                1.0
            };
            last = Tuple {
                value,
                width,
                delta,
            };
        }
        self.pending = Some(last);
    }

    fn emit(&mut self, tuple: Tuple) {
        self.rank += tuple.width;
        self.limit = self.invariant.allowance(self.rank, self.count);
        self.out.push(tuple);
    }

    fn finish(mut self) {
        if let Some(last) = self.pending.take() {
            self.out.push(last);
        }
    }
}

/// What a summary with quantiles estimates: its objectives and window.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileSpec {
    /// In quantile order.
    pub objectives: Vec<Objective>,
    /// Seconds.
    pub max_age: f64,
    pub age_buckets: usize,
}

impl QuantileSpec {
    pub fn new(mut objectives: Vec<Objective>, max_age: f64, age_buckets: usize) -> QuantileSpec {
        objectives.sort_by(|a, b| a.quantile.total_cmp(&b.quantile));
        QuantileSpec {
            objectives,
            max_age,
            age_buckets,
        }
    }

    /// A fresh estimator, its window starting now.
    pub fn start(&self) -> SlidingQuantiles {
        SlidingQuantiles::new(&self.objectives, self.max_age, self.age_buckets, clock())
    }
}

/// Seconds on a monotonic clock, the one estimators made by [`QuantileSpec::start`] run on.
/// On Linux the coarse clock (a few milliseconds' resolution, plenty for windows of seconds)
/// costs a fraction of the precise one on every observation.
#[cfg(target_os = "linux")]
pub fn clock() -> f64 {
    coarse_seconds(libc::CLOCK_MONOTONIC_COARSE)
}

/// Seconds on one of Linux's coarse clocks (`CLOCK_MONOTONIC_COARSE`, `CLOCK_REALTIME_COARSE`).
#[cfg(target_os = "linux")]
pub fn coarse_seconds(clock: libc::clockid_t) -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write; the coarse clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
pub fn clock() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// Observations not yet merged: at most this many.
const BUFFER: usize = 512;

struct Window {
    streams: Vec<Stream>,
    head: usize,
    /// When the head stream has covered `max_age` and is reset (seconds, the caller's clock).
    head_expires: f64,
    step: f64,
    scratch: Vec<Tuple>,
}

/// Quantile estimates over a sliding window; thread-safe. Times are seconds on a monotonic
/// clock the caller reads (so tests can move it).
pub struct SlidingQuantiles {
    objectives: Box<[Objective]>,
    invariant: Invariant,
    buffer: Mutex<Buffer>,
    window: Mutex<Window>,
}

struct Buffer {
    values: Vec<f64>,
    /// The buffer is merged before the window next slides, so no observation is counted in a
    /// stream that was reset after it was made.
    flush_by: f64,
}

impl SlidingQuantiles {
    /// `objectives` with quantiles in (0, 1) and errors in [0, 1]; `max_age` > 0 seconds;
    /// `age_buckets` >= 1.
    pub fn new(objectives: &[Objective], max_age: f64, age_buckets: usize, now: f64) -> Self {
        let mut objectives = objectives.to_vec();
        objectives.sort_by(|a, b| a.quantile.total_cmp(&b.quantile));
        let age_buckets = age_buckets.max(1);
        let step = max_age / age_buckets as f64;
        // Stream k is first reset after k + 1 steps, so none ever holds more than max_age.
        SlidingQuantiles {
            invariant: Invariant::new(&objectives),
            objectives: objectives.into_boxed_slice(),
            buffer: Mutex::new(Buffer {
                values: Vec::with_capacity(BUFFER),
                flush_by: now + step,
            }),
            window: Mutex::new(Window {
                streams: vec![Stream::default(); age_buckets],
                head: 0,
                head_expires: now + step,
                step,
                scratch: Vec::new(),
            }),
        }
    }

    pub fn objectives(&self) -> &[Objective] {
        &self.objectives
    }

    /// Records one observation (NaN is not a quantile of anything and is left out).
    pub fn observe(&self, value: f64, now: f64) {
        if value.is_nan() {
            return;
        }
        let mut buffer = lock(&self.buffer);
        if buffer.values.len() < BUFFER && now < buffer.flush_by {
            buffer.values.push(value);
            return;
        }
        // The batch is merged before the window slides; a value made after the slide waits
        // in the next batch.
        let mut values = std::mem::replace(&mut buffer.values, Vec::with_capacity(BUFFER));
        let made_after_slide = now >= buffer.flush_by;
        if !made_after_slide {
            values.push(value);
        }
        drop(buffer);
        let mut window = lock(&self.window);
        self.merge(&mut window, &mut values, now);
        let mut buffer = lock(&self.buffer);
        buffer.flush_by = window.head_expires;
        if made_after_slide {
            buffer.values.push(value);
        }
    }

    /// `(quantile, estimate)` for every objective, in quantile order; NaN for an empty window.
    pub fn quantiles(&self, now: f64) -> Vec<(f64, f64)> {
        let mut window = lock(&self.window);
        let mut values = {
            let mut buffer = lock(&self.buffer);
            std::mem::take(&mut buffer.values)
        };
        self.merge(&mut window, &mut values, now);
        lock(&self.buffer).flush_by = window.head_expires;
        let head = &window.streams[window.head];
        self.objectives
            .iter()
            .map(|o| (o.quantile, head.query(o.quantile)))
            .collect()
    }

    /// Forgets every observation.
    pub fn reset(&self, now: f64) {
        let mut window = lock(&self.window);
        lock(&self.buffer).values.clear();
        for stream in &mut window.streams {
            stream.reset();
        }
        window.head_expires = now + window.step;
        window.head = 0;
        lock(&self.buffer).flush_by = window.head_expires;
    }

    /// Merges `values` into every stream, sliding the window first where it is due: the values
    /// were made before `now` but after the last slide (the buffer is flushed at each).
    fn merge(&self, window: &mut Window, values: &mut [f64], now: f64) {
        if !values.is_empty() {
            sort_floats(values);
            let Window {
                streams, scratch, ..
            } = window;
            for stream in streams.iter_mut() {
                stream.insert_sorted(&self.invariant, values, scratch);
            }
        }
        window.slide(now);
    }
}

impl Window {
    /// Resets the head stream and moves on for every step that has passed by `now`.
    fn slide(&mut self, now: f64) {
        let whole_window = self.step * self.streams.len() as f64;
        if now - self.head_expires >= whole_window {
            // Idle for more than a whole window: every stream is out of date.
            for stream in &mut self.streams {
                stream.reset();
            }
            self.head_expires += ((now - self.head_expires) / self.step).floor() * self.step;
        }
        while now >= self.head_expires {
            self.streams[self.head].reset();
            self.head = (self.head + 1) % self.streams.len();
            self.head_expires += self.step;
        }
    }
}

/// Sorts floats (no NaN) ascending, as integers: the order of their bits once negative
/// numbers are flipped, which integer sorting does in far fewer instructions than float
/// comparisons.
fn sort_floats(values: &mut [f64]) {
    const SIGN: u64 = 1 << 63;
    let to_key = |v: f64| {
        let bits = v.to_bits();
        if bits & SIGN != 0 {
            !bits
        } else {
            bits | SIGN
        }
    };
    let from_key = |k: u64| f64::from_bits(if k & SIGN != 0 { k & !SIGN } else { !k });
    let mut keys: Vec<u64> = values.iter().map(|v| to_key(*v)).collect();
    keys.sort_unstable();
    for (value, key) in values.iter_mut().zip(keys) {
        *value = from_key(key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const OBJECTIVES: [Objective; 3] = [
        Objective {
            quantile: 0.5,
            error: 0.05,
        },
        Objective {
            quantile: 0.9,
            error: 0.01,
        },
        Objective {
            quantile: 0.99,
            error: 0.001,
        },
    ];

    /// A small deterministic generator (xorshift*), uniform in [0, 1).
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The interval of ranks (1-based) at which `value` stands in `sorted`.
    fn ranks(sorted: &[f64], value: f64) -> (usize, usize) {
        let below = sorted.partition_point(|v| *v < value);
        let up_to = sorted.partition_point(|v| *v <= value);
        (below + 1, up_to)
    }

    fn check(name: &str, values: &[f64]) {
        let summary = SlidingQuantiles::new(&OBJECTIVES, 600.0, 5, 0.0);
        for (i, v) in values.iter().enumerate() {
            summary.observe(*v, i as f64 * 1e-6);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        for ((q, estimate), objective) in summary.quantiles(1.0).into_iter().zip(OBJECTIVES) {
            let (low, high) = ranks(&sorted, estimate);
            let lowest = ((q - objective.error) * n).floor() as usize;
            let highest = ((q + objective.error) * n).ceil() as usize;
            assert!(
                high >= lowest && low <= highest,
                "{name}: q={q} estimate {estimate} has ranks {low}..{high}, allowed {lowest}..{highest}"
            );
        }
    }

    #[test]
    fn estimates_stay_within_their_rank_error() {
        for seed in [0x9E37_79B9_7F4A_7C15, 3, 0xDEAD_BEEF] {
            let mut random = Random(seed);
            let n = 100_000;
            let uniform: Vec<f64> = (0..n).map(|_| random.next()).collect();
            check("uniform", &uniform);
            let exponential: Vec<f64> = (0..n).map(|_| -(1.0 - random.next()).ln()).collect();
            check("exponential", &exponential);
            let heavy: Vec<f64> = (0..n)
                .map(|_| 1.0 / (1.0 - random.next()).powf(0.8))
                .collect();
            check("pareto", &heavy);
            let few_values: Vec<f64> = (0..n).map(|_| (random.next() * 4.0).floor()).collect();
            check("four values", &few_values);
            let bimodal: Vec<f64> = (0..n)
                .map(|_| random.next() + if random.next() < 0.7 { 0.0 } else { 100.0 })
                .collect();
            check("bimodal", &bimodal);
        }
        let ascending: Vec<f64> = (0..100_000).map(f64::from).collect();
        check("ascending", &ascending);
        let descending: Vec<f64> = (0..100_000).rev().map(f64::from).collect();
        check("descending", &descending);
    }

    #[test]
    fn the_summary_stays_small() {
        let mut random = Random(7);
        let summary = SlidingQuantiles::new(&OBJECTIVES, 600.0, 5, 0.0);
        for _ in 0..500_000 {
            summary.observe(random.next(), 0.0);
        }
        summary.quantiles(0.0);
        let window = lock(&summary.window);
        let largest = window.streams.iter().map(|s| s.tuples.len()).max().unwrap();
        assert!(largest < 2_000, "{largest} tuples");
    }

    #[test]
    fn an_empty_window_reports_nan() {
        let summary = SlidingQuantiles::new(&OBJECTIVES, 10.0, 5, 0.0);
        assert!(summary.quantiles(0.0).iter().all(|(_, v)| v.is_nan()));
        summary.observe(f64::NAN, 0.0);
        assert!(summary.quantiles(0.0).iter().all(|(_, v)| v.is_nan()));
    }

    #[test]
    fn old_observations_age_out() {
        let summary = SlidingQuantiles::new(&OBJECTIVES, 10.0, 5, 0.0);
        for _ in 0..100 {
            summary.observe(1.0, 0.5);
        }
        assert_eq!(summary.quantiles(9.0)[0].1, 1.0);
        for _ in 0..100 {
            summary.observe(5.0, 9.5);
        }
        // At 10 s the window lost the stream that held only the first second.
        let after = summary.quantiles(10.5);
        assert!(after.iter().all(|(_, v)| *v == 5.0), "{after:?}");
        // A window later, nothing is left.
        assert!(summary.quantiles(30.0).iter().all(|(_, v)| v.is_nan()));
    }

    #[test]
    fn small_counts_are_exact_at_the_ends() {
        let summary = SlidingQuantiles::new(&OBJECTIVES, 600.0, 5, 0.0);
        for v in [3.0, 1.0, 2.0] {
            summary.observe(v, 0.0);
        }
        let q = summary.quantiles(0.0);
        assert_eq!(q[0].1, 2.0);
        assert_eq!(q[2].1, 3.0);
    }

    #[test]
    fn concurrent_observers_lose_nothing() {
        let summary = std::sync::Arc::new(SlidingQuantiles::new(&OBJECTIVES, 600.0, 5, 0.0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let summary = summary.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000 {
                        summary.observe((t * 50_000 + i) as f64, 0.0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        summary.quantiles(0.0);
        let window = lock(&summary.window);
        assert!(window.streams.iter().all(|s| s.count == 200_000.0));
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release --lib quantiles::speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn observe_cost() {
        let summary = SlidingQuantiles::new(&super::tests::OBJECTIVES, 600.0, 5, 0.0);
        let mut x: u64 = 1;
        let n = 2_000_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            summary.observe((x >> 11) as f64 / (1u64 << 53) as f64, 0.0);
        }
        let per = start.elapsed().as_nanos() as f64 / n as f64;
        let sizes: Vec<usize> = lock(&summary.window)
            .streams
            .iter()
            .map(|s| s.tuples.len())
            .collect();
        eprintln!("observe: {per:.1} ns; tuples per stream {sizes:?}");
    }
}
