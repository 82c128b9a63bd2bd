//! Bytes a labelled child costs in Rust (its `Arc<Child>`, label values, cells and its entry in
//! the family's index), counted by a global allocator that tallies live allocations.
//!
//! `cargo test --test child_memory -- --nocapture` prints the table. The bounds asserted are
//! the goals of issue 12 for a child with two labels: Counter and Gauge within 160 bytes, a
//! Histogram (15 buckets) within 170 until its first observation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use fastprom::core::family::{Child, ChildValue, Family};
use fastprom::core::model::MetricType;
use fastprom::core::native_histogram::NativeConfig;
use fastprom::core::quantiles::{Objective, QuantileSpec};

/// Requested bytes, and what glibc's malloc takes for them (8 bytes of header, 16-byte
/// granularity, 32 bytes at least).
static REQUESTED: AtomicIsize = AtomicIsize::new(0);
static TAKEN: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn malloc_chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        TAKEN.fetch_add(malloc_chunk(layout.size()), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        TAKEN.fetch_sub(malloc_chunk(layout.size()), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CHILDREN: usize = 200_000;

fn live() -> (isize, isize) {
    (
        REQUESTED.load(Ordering::Relaxed),
        TAKEN.load(Ordering::Relaxed),
    )
}

/// Bytes per child (requested, taken by malloc) that `run` leaves allocated.
fn per_child(run: impl FnOnce()) -> (f64, f64) {
    let before = live();
    run();
    let after = live();
    let per = |a: isize, b: isize| (a - b) as f64 / CHILDREN as f64;
    (per(after.0, before.0), per(after.1, before.1))
}

fn family(metric_type: MetricType, bounds: &[f64]) -> Family {
    let labelnames = vec!["path".to_string(), "method".to_string()];
    Family::new(
        "m".into(),
        "d".into(),
        "".into(),
        metric_type,
        labelnames,
        bounds,
    )
}

fn default_bounds() -> Vec<f64> {
    let mut bounds = vec![
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    bounds.push(f64::INFINITY);
    bounds
}

/// Adds `CHILDREN` children made by `make` from `labels(f'v{i}', 'GET')`'s values.
fn fill(family: &Family, make: impl Fn(&[String]) -> Child) {
    for i in 0..CHILDREN {
        let labels = [format!("v{i}"), "GET".to_string()];
        family.insert(Arc::new(make(&labels)));
    }
}

fn observe_all(family: &Family) {
    for child in family.children() {
        if let ChildValue::Histogram(h) | ChildValue::Summary(h) = &child.value {
            h.observe(0.25);
        }
    }
}

#[test]
fn bytes_per_labelled_child() {
    let mut rows = Vec::new();

    let counters = family(MetricType::Counter, &[]);
    rows.push((
        "counter",
        per_child(|| fill(&counters, |l| Child::counter(l, 1.0))),
    ));
    let gauges = family(MetricType::Gauge, &[]);
    rows.push(("gauge", per_child(|| fill(&gauges, Child::gauge))));

    let histograms = family(MetricType::Histogram, &default_bounds());
    let plan = histograms.observations_plan().clone();
    rows.push((
        "histogram",
        per_child(|| fill(&histograms, |l| Child::histogram(l, 1.0, &plan))),
    ));
    rows.push((
        "  + first observation",
        per_child(|| observe_all(&histograms)),
    ));

    let native =
        family(MetricType::Histogram, &default_bounds()).with_native(NativeConfig::with_schema(3));
    let plan = native.observations_plan().clone();
    rows.push((
        "native histogram",
        per_child(|| fill(&native, |l| Child::histogram(l, 1.0, &plan))),
    ));

    let objectives = vec![Objective {
        quantile: 0.5,
        error: 0.05,
    }];
    let summaries =
        family(MetricType::Summary, &[]).with_quantiles(QuantileSpec::new(objectives, 600.0, 5));
    let plan = summaries.observations_plan().clone();
    rows.push((
        "summary with quantiles",
        per_child(|| fill(&summaries, |l| Child::summary(l, 1.0, &plan))),
    ));

    println!("bytes per child, 2 labels, {CHILDREN} children: requested / taken by malloc");
    for (name, (requested, taken)) in &rows {
        println!("{name:>24}: {requested:7.1} / {taken:7.1}");
    }
    let taken = |name: &str| rows.iter().find(|r| r.0 == name).unwrap().1 .1;
    assert!(taken("counter") <= 160.0, "{rows:?}");
    assert!(taken("gauge") <= 160.0, "{rows:?}");
    assert!(taken("histogram") <= 170.0, "{rows:?}");
    assert!(taken("native histogram") <= 170.0, "{rows:?}");
    assert!(taken("summary with quantiles") <= 170.0, "{rows:?}");
}
