//! Native bucket counts as sorted `(index, count)` lists: conversion to and from the spans and
//! deltas of the exposition, resolution reduction, zero-bucket widening, and merging.

use super::index::{coarser_index, lower_bound, upper_bound};
use crate::core::model::{BucketSpan, NativeHistogramSnapshot};

/// Gaps of at most this many empty buckets are filled with zero deltas instead of opening a new
/// span (client_golang's choice: a span costs about as much as two deltas).
const MAX_GAP_IN_SPAN: i32 = 2;

/// The counts of one native histogram, buckets sorted by index, no zero counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketCounts {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive: Vec<(i32, u64)>,
    pub negative: Vec<(i32, u64)>,
}

/// Spans and deltas of sorted, non-zero buckets.
pub fn to_spans(buckets: &[(i32, u64)]) -> (Vec<BucketSpan>, Vec<i64>) {
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut deltas = Vec::with_capacity(buckets.len());
    let mut previous: Option<(i32, u64)> = None;
    for &(index, count) in buckets {
        let mut last_count = previous.map_or(0, |p| p.1);
        match previous {
            Some((last, _)) if index - last - 1 <= MAX_GAP_IN_SPAN => {
                for _ in last + 1..index {
                    deltas.push(-(last_count as i64));
                    last_count = 0;
                }
                spans.last_mut().unwrap().length += (index - last) as u32;
            }
            Some((last, _)) => spans.push(BucketSpan {
                offset: index - last - 1,
                length: 1,
            }),
            None => spans.push(BucketSpan {
                offset: index,
                length: 1,
            }),
        }
        deltas.push(count as i64 - last_count as i64);
        previous = Some((index, count));
    }
    (spans, deltas)
}

/// Sorted, non-zero buckets from spans and deltas (inverse of [`to_spans`]).
pub fn from_spans(spans: &[BucketSpan], deltas: &[i64]) -> Vec<(i32, u64)> {
    let mut buckets = Vec::with_capacity(deltas.len());
    let mut deltas = deltas.iter();
    // Each offset counts from the bucket after the previous span (from 0 for the first).
    let (mut next, mut count) = (0i32, 0i64);
    for span in spans {
        next += span.offset;
        for _ in 0..span.length {
            count += deltas.next().copied().unwrap_or(0);
            if count > 0 {
                buckets.push((next, count as u64));
            }
            next += 1;
        }
    }
    buckets
}

/// Adds the `(index, count)` pairs into a sorted list, merging equal indices.
fn add_sorted(into: &mut Vec<(i32, u64)>, more: impl IntoIterator<Item = (i32, u64)>) {
    into.extend(more);
    into.sort_unstable_by_key(|b| b.0);
    into.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
        }
        same
    });
    into.retain(|b| b.1 > 0);
}

impl BucketCounts {
    pub fn bucket_total(&self) -> u64 {
        self.positive
            .iter()
            .chain(&self.negative)
            .map(|b| b.1)
            .sum()
    }

    pub fn bucket_number(&self) -> usize {
        self.positive.len() + self.negative.len()
    }

    /// Merges buckets so the schema is `schema` (no-op unless it is lower).
    pub fn reduce_schema(&mut self, schema: i32) {
        if schema >= self.schema {
            return;
        }
        let by = (self.schema - schema) as u32;
        for side in [&mut self.positive, &mut self.negative] {
            let wide: Vec<(i32, u64)> = side
                .iter()
                .map(|&(i, c)| (coarser_index(i, by), c))
                .collect();
            side.clear();
            add_sorted(side, wide);
        }
        self.schema = schema;
    }

    /// Widens the zero bucket to at least `threshold` (no-op unless that is wider): the
    /// buckets reaching below it move in, and if one of them reaches above it, the threshold
    /// grows to that bucket's upper bound. (A bucket straddling an unchanged threshold is
    /// fine: it only holds values above the threshold.)
    pub fn widen_zero_bucket(&mut self, threshold: f64) {
        if threshold <= self.zero_threshold {
            return;
        }
        let schema = self.schema;
        let reaches_below = |t: f64| move |b: &&(i32, u64)| lower_bound(b.0, schema) < t;
        let mut threshold = threshold;
        loop {
            let widest = self
                .positive
                .iter()
                .chain(&self.negative)
                .filter(reaches_below(threshold))
                .map(|b| upper_bound(b.0, schema))
                .fold(threshold, f64::max);
            if widest == threshold {
                break;
            }
            threshold = widest;
        }
        for side in [&mut self.positive, &mut self.negative] {
            let inside = side.iter().take_while(reaches_below(threshold)).count();
            self.zero_count += side.drain(..inside).map(|b| b.1).sum::<u64>();
        }
        self.zero_threshold = threshold;
    }

    /// Adds `other`'s counts (same schema and threshold expected; see [`merge`]).
    pub fn add(&mut self, other: &BucketCounts) {
        self.zero_count += other.zero_count;
        self.count += other.count;
        self.sum += other.sum;
        add_sorted(&mut self.positive, other.positive.iter().copied());
        add_sorted(&mut self.negative, other.negative.iter().copied());
    }

    pub fn from_snapshot(s: &NativeHistogramSnapshot) -> BucketCounts {
        BucketCounts {
            schema: s.schema,
            zero_threshold: s.zero_threshold,
            zero_count: s.zero_count,
            count: s.count,
            sum: s.sum,
            positive: from_spans(&s.positive_spans, &s.positive_deltas),
            negative: from_spans(&s.negative_spans, &s.negative_deltas),
        }
    }

    pub fn to_snapshot(&self) -> NativeHistogramSnapshot {
        let (positive_spans, positive_deltas) = to_spans(&self.positive);
        let (negative_spans, negative_deltas) = to_spans(&self.negative);
        NativeHistogramSnapshot {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive_spans,
            positive_deltas,
            negative_spans,
            negative_deltas,
            exemplars: Vec::new(),
        }
    }
}

/// Two processes' snapshots as one (multiprocess collection): both reduced to the lower schema
/// and the wider zero bucket, then added. Exemplars of both are kept.
pub fn merge(a: &NativeHistogramSnapshot, b: &NativeHistogramSnapshot) -> NativeHistogramSnapshot {
    let (mut x, mut y) = (
        BucketCounts::from_snapshot(a),
        BucketCounts::from_snapshot(b),
    );
    let schema = x.schema.min(y.schema);
    x.reduce_schema(schema);
    y.reduce_schema(schema);
    // Widening one may take it past the other's threshold: repeat until they agree (each
    // round only grows them, up to bucket bounds).
    while x.zero_threshold != y.zero_threshold {
        let threshold = x.zero_threshold.max(y.zero_threshold);
        x.widen_zero_bucket(threshold);
        y.widen_zero_bucket(threshold);
    }
    x.add(&y);
    let mut merged = x.to_snapshot();
    merged.exemplars = a.exemplars.iter().chain(&b.exemplars).cloned().collect();
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> BucketSpan {
        BucketSpan { offset, length }
    }

    #[test]
    fn spans_fill_small_gaps_and_open_new_spans_for_large_ones() {
        let buckets = [(-2, 3), (-1, 1), (2, 4), (6, 2), (7, 5)];
        let (spans, deltas) = to_spans(&buckets);
        // -2,-1 then a gap of 2 (0, 1) filled, then 2; gap of 3 (3, 4, 5) opens a span at 6.
        assert_eq!(spans, vec![span(-2, 5), span(3, 2)]);
        assert_eq!(deltas, vec![3, -2, -1, 0, 4, -2, 3]);
        assert_eq!(from_spans(&spans, &deltas), buckets.to_vec());
        assert_eq!(to_spans(&[]), (vec![], vec![]));
        assert_eq!(from_spans(&[span(0, 0)], &[]), vec![]);
    }

    #[test]
    fn reduce_schema_adds_buckets_that_share_a_wider_one() {
        let mut c = BucketCounts {
            schema: 2,
            positive: vec![(-1, 1), (0, 2), (1, 3), (4, 4), (5, 5)],
            negative: vec![(3, 7)],
            ..Default::default()
        };
        c.reduce_schema(1);
        assert_eq!(c.positive, vec![(0, 3), (1, 3), (2, 4), (3, 5)]);
        c.reduce_schema(-1); // by 2: (0] (1..4] (5..8]
        assert_eq!(c.positive, vec![(0, 3), (1, 12)]);
        assert_eq!(c.negative, vec![(1, 7)]);
        assert_eq!(c.schema, -1);
    }

    #[test]
    fn widening_moves_straddling_buckets_into_the_zero_bucket() {
        let mut c = BucketCounts {
            schema: 0,
            zero_threshold: 0.0,
            zero_count: 1,
            positive: vec![(-3, 1), (-1, 2), (2, 3)],
            negative: vec![(-2, 4), (1, 5)],
            ..Default::default()
        };
        c.widen_zero_bucket(0.3); // bucket -1 is (0.25, 0.5]: it straddles, so 0.5 it is
        assert_eq!(c.zero_threshold, 0.5);
        assert_eq!(c.zero_count, 8);
        assert_eq!(c.positive, vec![(2, 3)]);
        assert_eq!(c.negative, vec![(1, 5)]);
    }

    #[test]
    fn merge_reduces_to_the_lower_schema_and_adds() {
        let a = BucketCounts {
            schema: 3,
            zero_threshold: 1e-3,
            zero_count: 2,
            count: 10,
            sum: 5.0,
            positive: vec![(0, 4), (1, 1), (8, 3)],
            negative: vec![],
        };
        let b = BucketCounts {
            schema: 1,
            zero_threshold: 1e-3,
            zero_count: 1,
            count: 4,
            sum: -1.0,
            positive: vec![(2, 1)],
            negative: vec![(0, 2)],
        };
        let merged = BucketCounts::from_snapshot(&merge(&a.to_snapshot(), &b.to_snapshot()));
        // At schema 1, a's 0 -> 0, 1 -> 1 (ceil(1/4)), 8 -> 2.
        let want = BucketCounts {
            schema: 1,
            zero_threshold: 1e-3,
            zero_count: 3,
            count: 14,
            sum: 4.0,
            positive: vec![(0, 4), (1, 1), (2, 4)],
            negative: vec![(0, 2)],
        };
        assert_eq!(merged, want);
        assert_eq!(merged.bucket_total() + merged.zero_count, merged.count);
        let again = merge(&b.to_snapshot(), &a.to_snapshot());
        assert_eq!(
            BucketCounts::from_snapshot(&again),
            want,
            "merge is symmetric"
        );
    }

    #[test]
    fn merge_widens_to_the_larger_zero_threshold() {
        let a = BucketCounts {
            schema: 0,
            zero_threshold: 0.0,
            count: 3,
            positive: vec![(-3, 1), (-1, 1), (1, 1)],
            ..Default::default()
        };
        let b = BucketCounts {
            schema: 0,
            zero_threshold: 0.25,
            zero_count: 1,
            count: 1,
            ..Default::default()
        };
        let m = BucketCounts::from_snapshot(&merge(&a.to_snapshot(), &b.to_snapshot()));
        assert_eq!((m.zero_threshold, m.zero_count), (0.25, 2));
        assert_eq!(m.positive, vec![(-1, 1), (1, 1)]);
        assert_eq!(m.count, 4);
    }
}
