use super::*;
use crate::core::model::BucketSpan;
use std::sync::Arc;
use std::time::Instant;

fn histogram(schema: i32) -> SparseHistogram {
    SparseHistogram::new(NativeConfig::with_schema(schema))
}

fn counts(h: &SparseHistogram) -> BucketCounts {
    BucketCounts::from_snapshot(&h.snapshot())
}

fn span(offset: i32, length: u32) -> BucketSpan {
    BucketSpan { offset, length }
}

#[test]
fn observations_land_in_their_buckets() {
    let h = histogram(0);
    for v in [1.0, 1.5, 2.0, 3.0, 0.0, -0.0, 1e-40, -1.0, -4.0, 100.0] {
        h.observe(v);
    }
    let s = h.snapshot();
    assert_eq!(s.schema, 0);
    assert_eq!(s.zero_threshold, DEFAULT_ZERO_THRESHOLD);
    assert_eq!(s.count, 10);
    assert_eq!(s.zero_count, 3, "0, -0 and 1e-40 are within 2^-128");
    assert_eq!(s.sum, 1.0 + 1.5 + 2.0 + 3.0 + 1e-40 - 1.0 - 4.0 + 100.0);
    // 1 -> 0; 1.5, 2 -> 1; 3 -> 2; 100 -> 7 (64, 128].
    assert_eq!(s.positive_spans, vec![span(0, 3), span(4, 1)]);
    assert_eq!(s.positive_deltas, vec![1, 1, -1, 0]);
    assert_eq!(s.negative_spans, vec![span(0, 3)]);
    assert_eq!(s.negative_deltas, vec![1, -1, 1]);
}

#[test]
fn nan_is_counted_but_never_bucketed_and_infinities_get_their_own_buckets() {
    let h = histogram(3);
    h.observe(f64::NAN);
    h.observe(f64::INFINITY);
    h.observe(f64::NEG_INFINITY);
    h.observe(f64::MAX);
    let c = counts(&h);
    assert_eq!(c.count, 4);
    assert!(c.sum.is_nan());
    assert_eq!(c.zero_count, 0);
    assert_eq!(c.positive, vec![(1024 * 8, 1), (1024 * 8 + 1, 1)]);
    assert_eq!(c.negative, vec![(1024 * 8 + 1, 1)]);
    assert_eq!(c.bucket_total() + c.zero_count + 1, c.count);
}

#[test]
fn zero_threshold_is_inclusive_and_zero_width_works() {
    let mut config = NativeConfig::with_schema(0);
    config.zero_threshold = 0.5;
    let h = SparseHistogram::new(config);
    for v in [0.5, -0.5, 0.25, 0.5000001, -0.50001] {
        h.observe(v);
    }
    let c = counts(&h);
    assert_eq!(c.zero_count, 3);
    assert_eq!((c.positive, c.negative), (vec![(0, 1)], vec![(0, 1)]));

    config.zero_threshold = -1.0; // taken as 0: only zeros are in the zero bucket
    let h = SparseHistogram::new(config);
    for v in [0.0, -0.0, f64::from_bits(1), -f64::from_bits(1)] {
        h.observe(v);
    }
    let c = counts(&h);
    assert_eq!((c.zero_threshold, c.zero_count), (0.0, 2));
    assert_eq!(c.positive, vec![(-1074, 1)]);
    assert_eq!(c.negative, vec![(-1074, 1)]);
}

#[test]
fn windows_grow_both_ways_without_losing_counts() {
    let h = histogram(8);
    let mut want = std::collections::BTreeMap::new();
    // Alternately far below and far above, then back in the middle, twice per value.
    let values: Vec<f64> = (0..400)
        .map(|i| {
            if i % 2 == 0 {
                1e-3 / (1.01f64).powi(i)
            } else {
                1e3 * (1.03f64).powi(i)
            }
        })
        .chain((0..100).map(|i| 1.0 + i as f64 / 100.0))
        .collect();
    for v in values.iter().chain(&values) {
        h.observe(*v);
        *want.entry(bucket_index(*v, 8)).or_insert(0u64) += 1;
    }
    let c = counts(&h);
    assert_eq!(c.positive, want.into_iter().collect::<Vec<_>>());
    assert_eq!(c.count, 1000);
    assert_eq!(counts(&h), c, "a second snapshot reads the same");
}

#[test]
fn exemplars_come_with_the_snapshot() {
    let h = histogram(3);
    h.observe_with_exemplar(0.25, vec![("trace_id".into(), "x".into())], 1700000000.5);
    h.observe(3.0);
    let s = h.snapshot();
    assert_eq!(s.count, 2);
    assert_eq!(s.exemplars.len(), 1);
    assert_eq!(s.exemplars[0].value, 0.25);
    assert_eq!(s.exemplars[0].timestamp.as_deref(), Some("1700000000.5"));
    let mut config = NativeConfig::with_schema(3);
    config.max_exemplars = 0;
    let off = SparseHistogram::new(config);
    off.observe_with_exemplar(1.0, vec![], 1.0);
    assert!(off.snapshot().exemplars.is_empty());
}

#[test]
fn far_apart_values_do_not_grow_a_window_over_the_whole_range() {
    let mut config = NativeConfig::with_schema(8);
    config.zero_threshold = 0.0;
    let h = SparseHistogram::new(config);
    let values = [
        1.0,
        1e-300,
        1e300,
        2.0,
        1e-300,
        f64::from_bits(1),
        f64::MAX,
        1e300,
    ];
    for v in values {
        h.observe(v);
    }
    for half in &h.halves {
        let len = half.positive.current().counts.len();
        assert!(len <= MAX_WINDOW, "window of {len} slots");
    }
    let mut want: Vec<(i32, u64)> = Vec::new();
    for v in values {
        let i = bucket_index(v, 8);
        match want.iter_mut().find(|b| b.0 == i) {
            Some(b) => b.1 += 1,
            None => want.push((i, 1)),
        }
    }
    want.sort();
    assert_eq!(counts(&h).positive, want);
    h.observe(1e-300);
    let c = counts(&h);
    assert_eq!(c.count, 9);
    assert_eq!(
        c.positive
            .iter()
            .find(|b| b.0 == bucket_index(1e-300, 8))
            .unwrap()
            .1,
        3
    );
}

#[test]
fn empty_histogram_snapshot() {
    let s = histogram(3).snapshot();
    assert_eq!((s.count, s.zero_count, s.sum), (0, 0, 0.0));
    assert!(s.positive_spans.is_empty() && s.negative_spans.is_empty());
}

fn limited(schema: i32, max_buckets: u32, max_zero: f64, min_reset: Duration) -> SparseHistogram {
    let mut config = NativeConfig::with_schema(schema);
    config.max_buckets = max_buckets;
    config.max_zero_threshold = max_zero;
    config.min_reset_duration = min_reset;
    SparseHistogram::new(config)
}

#[test]
fn over_the_limit_the_resolution_halves() {
    let h = limited(2, 4, 0.0, Duration::ZERO);
    // Schema 2 buckets of 1, 1.1, 1.2, 1.4: 0, 1, 2, 2 -> three buckets.
    for v in [1.0, 1.1, 1.2, 1.4] {
        h.observe(v);
    }
    assert_eq!(counts(&h).schema, 2);
    h.observe(1.7); // 1.68 < 1.7 <= 2: bucket 4, the fourth bucket: still within the limit
    h.observe(2.5); // bucket 6: fifth bucket -> schema 1
    let c = counts(&h);
    assert_eq!(c.schema, 1);
    // Schema 1: (0.7, 1] 1; (1, 1.41] 1.1, 1.2, 1.4; (1.41, 2] 1.7; (2.83, 4] 2.5.
    assert_eq!(c.positive, vec![(0, 1), (1, 3), (2, 1), (3, 1)]);
    assert_eq!(c.count, 6);
    // Once more past the limit: schema 0.
    h.observe(-1.0);
    let c = counts(&h);
    assert_eq!(c.schema, 0);
    assert_eq!(c.positive, vec![(0, 1), (1, 4), (2, 1)]);
    assert_eq!(c.negative, vec![(0, 1)]);
    assert_eq!(c.count, 7);
    assert!(c.sum == 1.0 + 1.1 + 1.2 + 1.4 + 1.7 + 2.5 - 1.0);
}

#[test]
fn resolution_stops_halving_at_the_lowest_schema() {
    let h = limited(MIN_SCHEMA, 1, 0.0, Duration::ZERO);
    for v in [1.0, 1e10, 1e-10, 1e100] {
        h.observe(v);
    }
    let c = counts(&h);
    assert_eq!((c.schema, c.count, c.bucket_number()), (MIN_SCHEMA, 4, 4));
}

#[test]
fn over_the_limit_the_zero_bucket_widens_first() {
    let h = limited(0, 3, 1.0, Duration::from_secs(3600));
    for v in [0.1, 0.3, 3.0] {
        h.observe(v);
    }
    h.observe(-0.2); // fourth bucket: the nearest to zero is 0.1's (0.0625, 0.125]
    let c = counts(&h);
    assert_eq!((c.schema, c.zero_threshold, c.zero_count), (0, 0.125, 1));
    assert_eq!((c.positive.len(), c.negative.len()), (2, 1));
    h.observe(20.0); // again: now (0.125, 0.25] of -0.2
    h.observe(0.24); // in the new zero bucket
    let c = counts(&h);
    assert_eq!((c.zero_threshold, c.zero_count), (0.25, 3));
    assert_eq!(c.positive, vec![(-1, 1), (2, 1), (5, 1)]);
    h.observe(50.0); // widens to 0.5, still within the maximum of 1
    let c = counts(&h);
    assert_eq!((c.zero_threshold, c.zero_count, c.schema), (0.5, 4, 0));
    h.observe(5000.0); // 2.0 > max zero threshold: the resolution halves instead
    let c = counts(&h);
    assert_eq!((c.zero_threshold, c.schema), (0.5, -1));
    assert_eq!(c.count, 8);
    assert_eq!(c.bucket_total() + c.zero_count, 8);
}

#[test]
fn over_the_limit_after_the_minimum_reset_duration_everything_resets() {
    let min_reset = Duration::from_millis(30);
    let h = limited(0, 2, 0.0, min_reset);
    h.observe(1.0);
    h.observe(2.0);
    h.observe(4.0); // too early to reset: halved
    let c = counts(&h);
    assert_eq!((c.schema, c.count), (-1, 3));
    std::thread::sleep(min_reset + Duration::from_millis(5));
    // The scheduled reset comes first at the next snapshot, back to the configured schema.
    let c = counts(&h);
    assert_eq!((c.schema, c.count, c.zero_count, c.sum), (0, 0, 0, 0.0));
    assert!(c.positive.is_empty());
    for v in [1.0, 2.0] {
        h.observe(v);
    }
    std::thread::sleep(min_reset + Duration::from_millis(5));
    h.observe(8.0); // past the limit and due: reset, dropping everything so far
    let c = counts(&h);
    assert_eq!((c.schema, c.count, c.sum), (0, 0, 0.0));
    h.observe(3.0);
    assert_eq!(counts(&h).count, 1);
}

#[test]
fn concurrent_observes_and_snapshots_stay_consistent() {
    let mut config = NativeConfig::with_schema(3);
    config.max_buckets = 40;
    let h = Arc::new(SparseHistogram::new(config));
    let per_thread = 200_000u64;
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    // Integers in [-100, 100]: sums stay exact, and many buckets force growth
                    // and halving.
                    let v = ((i * 7 + t * 13) % 201) as f64 - 100.0;
                    h.observe(v);
                }
            })
        })
        .collect();
    let mut last = 0;
    for _ in 0..300 {
        let c = counts(&h);
        assert_eq!(c.bucket_total() + c.zero_count, c.count);
        assert!(c.count >= last);
        assert!(c.sum.fract() == 0.0 && c.sum.abs() <= c.count as f64 * 100.0);
        // No bound on the bucket number here: the limit is applied by the observation that
        // opens a bucket past it, and a snapshot or a limiter moving the buckets between the
        // halves meanwhile can leave the hot half over it until the next bucket opens (seen as
        // 41-57 buckets at schema 3 in a few of 30 runs). The counts stay exact regardless.
        last = c.count;
    }
    writers.into_iter().for_each(|w| w.join().unwrap());
    let c = counts(&h);
    assert_eq!(c.count, 3 * per_thread);
    assert_eq!(c.bucket_total() + c.zero_count, c.count);
    let want_sum: f64 = (0..3u64)
        .flat_map(|t| (0..per_thread).map(move |i| ((i * 7 + t * 13) % 201) as f64 - 100.0))
        .sum();
    assert_eq!(c.sum, want_sum);
    // Each value's share is exact too: recount by the final schema.
    let mut want = std::collections::BTreeMap::new();
    let mut zeros = 0;
    for t in 0..3u64 {
        for i in 0..per_thread {
            let v = ((i * 7 + t * 13) % 201) as f64 - 100.0;
            if v == 0.0 {
                zeros += 1;
            } else if v > 0.0 {
                *want.entry(bucket_index(v, c.schema)).or_insert(0u64) += 1;
            }
        }
    }
    assert_eq!(c.zero_count, zeros);
    assert_eq!(c.positive, want.into_iter().collect::<Vec<_>>());
}

mod speed {
    use super::*;
    use crate::core::hotcold::HotCold;
    use std::hint::black_box;

    /// Log-uniform latencies from 100 µs to 10 s, the same for both storages.
    fn latencies(n: usize) -> Vec<f64> {
        let mut x: u64 = 1;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                1e-4 * 1e5f64.powf(u)
            })
            .collect()
    }

    /// Observations per run: `NH_SPEED_N` (default 5,000,000), so instruction counts can be
    /// taken as a difference between two runs under callgrind.
    fn observations() -> usize {
        std::env::var("NH_SPEED_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(5_000_000)
    }

    fn time_per_observe(values: &[f64], observe: impl Fn(f64)) -> f64 {
        let start = std::time::Instant::now();
        for v in values {
            observe(black_box(*v));
        }
        start.elapsed().as_nanos() as f64 / values.len() as f64
    }

    /// `cargo test --release --lib native_histogram::tests::speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn observe_cost_native() {
        let values = latencies(observations());
        let native = SparseHistogram::new(NativeConfig::from_factor(1.1).unwrap());
        let per = time_per_observe(&values, |v| native.observe(v));
        let c = counts(&native);
        assert_eq!(c.count as usize, values.len());
        eprintln!(
            "native (schema {}, {} buckets): {per:.2} ns per observe",
            c.schema,
            c.bucket_number()
        );
    }

    /// The loop without observing (to subtract from instruction counts).
    #[test]
    #[ignore]
    fn observe_cost_baseline() {
        let values = latencies(observations());
        let per = time_per_observe(&values, |v| {
            black_box(v);
        });
        eprintln!("baseline loop: {per:.2} ns per value");
    }

    #[test]
    #[ignore]
    fn observe_cost_classic() {
        let values = latencies(observations());
        let bounds = [
            0.005,
            0.01,
            0.025,
            0.05,
            0.075,
            0.1,
            0.25,
            0.5,
            0.75,
            1.0,
            2.5,
            5.0,
            7.5,
            10.0,
            f64::INFINITY,
        ];
        let classic = HotCold::new(&bounds);
        let per = time_per_observe(&values, |v| classic.observe(v));
        assert_eq!(classic.snapshot().observations as usize, values.len());
        eprintln!("classic (15 buckets): {per:.2} ns per observe");
    }
}

#[test]
fn merging_snapshots_equals_observing_everything_at_the_lower_schema() {
    let mut x: u64 = 7;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Signed values over twelve orders of magnitude, some in the zero bucket.
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        let sign = if x & 1 == 0 { 1.0 } else { -1.0 };
        sign * 1e-6 * 1e12f64.powf(u)
    };
    for (schema_a, schema_b) in [(3, 1), (8, -4), (0, 0), (-2, 5)] {
        let config = |schema| {
            let mut c = NativeConfig::with_schema(schema);
            c.zero_threshold = 1e-5;
            c
        };
        let (a, b) = (
            SparseHistogram::new(config(schema_a)),
            SparseHistogram::new(config(schema_b)),
        );
        let all = SparseHistogram::new(config(schema_a.min(schema_b)));
        for i in 0..5000 {
            let v = next();
            if i % 3 == 0 { &a } else { &b }.observe(v);
            all.observe(v);
        }
        let merged = BucketCounts::from_snapshot(&merge(&a.snapshot(), &b.snapshot()));
        let want = counts(&all);
        assert_eq!(merged.positive, want.positive, "{schema_a} {schema_b}");
        assert_eq!(merged.negative, want.negative);
        assert_eq!(
            (merged.schema, merged.zero_count, merged.count),
            (want.schema, want.zero_count, want.count)
        );
        assert!((merged.sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0));
    }
}

#[test]
fn resets_under_concurrent_observes_keep_snapshots_consistent() {
    let mut config = NativeConfig::with_schema(4);
    config.max_buckets = 20;
    config.max_zero_threshold = 0.5;
    config.min_reset_duration = Duration::from_millis(2);
    let h = Arc::new(SparseHistogram::new(config));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let (h, stop) = (h.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    h.observe(((i % 97) as f64 - 48.0) / 4.0);
                    i += 3;
                }
            })
        })
        .collect();
    let mut resets = 0;
    let mut last = 0;
    // At least 0.4 s, longer (up to 10 s) on a loaded machine until a reset was seen.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(400)
        || (resets == 0 && start.elapsed() < Duration::from_secs(10))
    {
        std::thread::sleep(Duration::from_micros(300));
        let c = counts(&h);
        assert_eq!(c.bucket_total() + c.zero_count, c.count);
        assert!(c.sum.is_finite());
        if c.count < last {
            resets += 1;
        }
        last = c.count;
    }
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    let c = counts(&h);
    assert_eq!(c.bucket_total() + c.zero_count, c.count);
    assert!(
        resets > 0,
        "the limit was hit after the minimum reset duration"
    );
}

#[test]
fn spans_round_trip_for_random_bucket_sets() {
    use super::buckets::{from_spans, to_spans};
    let mut x: u64 = 99;
    for _ in 0..500 {
        let mut buckets = Vec::new();
        let mut index = -50i32;
        for _ in 0..(x % 40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            index += 1 + (x % 6) as i32;
            buckets.push((index, 1 + x % 1000));
        }
        x = x.wrapping_add(1);
        let (spans, deltas) = to_spans(&buckets);
        assert_eq!(from_spans(&spans, &deltas), buckets);
        let covered: u32 = spans.iter().map(|s| s.length).sum();
        assert_eq!(covered as usize, deltas.len());
        assert!(
            spans.iter().skip(1).all(|s| s.offset > 2),
            "gaps of <= 2 are filled"
        );
    }
}

#[test]
fn nans_under_concurrency_are_counted_and_never_bucketed() {
    let h = Arc::new(histogram(2));
    let threads = 3;
    let pairs = 50_000;
    let writers: Vec<_> = (0..threads)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..pairs {
                    h.observe(f64::NAN);
                    h.observe(1.0);
                }
            })
        })
        .collect();
    for _ in 0..200 {
        let c = counts(&h);
        let ones = c.positive.first().map_or(0, |b| b.1);
        let nans = c.count - c.bucket_total() - c.zero_count;
        // Each writer has observed as many NaNs as ones, or one more.
        assert!(
            nans >= ones && nans <= ones + threads,
            "{nans} NaNs, {ones} ones"
        );
        assert_eq!(c.positive.len() as u64, (ones > 0) as u64);
    }
    writers.into_iter().for_each(|w| w.join().unwrap());
    let c = counts(&h);
    assert_eq!(c.count, 2 * threads * pairs);
    assert_eq!(c.positive, vec![(0, threads * pairs)]);
    assert!(c.sum.is_nan());
}
