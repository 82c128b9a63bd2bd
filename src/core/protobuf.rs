//! The Prometheus protobuf exposition: varint-length-delimited `io.prometheus.client.MetricFamily`
//! messages, one per family, read through [`FamilySource`] like the text writers.
//!
//! Samples of one child (a counter's `_total` and `_created`, a histogram's buckets, count, sum
//! and native buckets) become one `Metric`; `_created` becomes the created timestamp. Names go
//! through the negotiated escaping scheme; label values are raw UTF-8. Gzip is the caller's.

pub mod messages;

use std::collections::HashMap;

use prost::Message;

use crate::core::escape::{write_label_name, write_metric_name_parts};
use crate::core::model::{
    Escaping, Exemplar, FamilySource, MetricType, NativeHistogramSnapshot, Sample,
};
use messages as pb;

pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Appends one delimited `MetricFamily` per family that has samples.
pub fn write_protobuf(out: &mut Vec<u8>, families: &[&dyn FamilySource], escaping: Escaping) {
    for family in families {
        let message = family_message(*family, escaping);
        // A family without metrics is not valid to Prometheus; the text formats' header-only
        // output has no protobuf counterpart.
        if message.metric.is_empty() {
            continue;
        }
        // Encoding into a Vec cannot run out of room, the only error prost reports.
        let _ = message.encode_length_delimited(out);
    }
}

/// The names of the families in a delimited protobuf stream that carry native histograms
/// (a histogram with a schema), in stream order; a stream that does not decode ends the list.
pub fn native_histogram_families(mut stream: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while !stream.is_empty() {
        let Ok(family) = pb::MetricFamily::decode_length_delimited(&mut stream) else {
            break;
        };
        let native = family
            .metric
            .iter()
            .any(|m| m.histogram.as_ref().is_some_and(|h| h.schema.is_some()));
        if native {
            names.extend(family.name);
        }
    }
    names
}

/// The family's name suffix and protobuf type (as the text format names and types them).
fn protobuf_type(metric_type: MetricType) -> (&'static str, pb::MetricType) {
    match metric_type {
        MetricType::Counter => ("_total", pb::MetricType::Counter),
        MetricType::Gauge | MetricType::StateSet => ("", pb::MetricType::Gauge),
        MetricType::Info => ("_info", pb::MetricType::Gauge),
        MetricType::Summary => ("", pb::MetricType::Summary),
        MetricType::Histogram => ("", pb::MetricType::Histogram),
        MetricType::GaugeHistogram => ("", pb::MetricType::GaugeHistogram),
        MetricType::Unknown => ("", pb::MetricType::Untyped),
    }
}

pub fn family_message(family: &dyn FamilySource, escaping: Escaping) -> pb::MetricFamily {
    let name = family.name();
    let (suffix, pb_type) = protobuf_type(family.metric_type());
    let mut metrics = Metrics {
        family: name,
        metric_type: family.metric_type(),
        escaping,
        metrics: Vec::new(),
        by_child: HashMap::new(),
    };
    family.visit_samples(&mut |sample| metrics.add_sample(sample));
    family.visit_native_histograms(&mut |labels, snapshot| metrics.add_native(labels, snapshot));
    let unit = family.unit();
    pb::MetricFamily {
        name: Some(metric_name(name, suffix, escaping)),
        help: Some(family.documentation().to_owned()),
        r#type: Some(pb_type as i32),
        metric: metrics.finish(),
        unit: (!unit.is_empty()).then(|| unit.to_owned()),
    }
}

fn metric_name(head: &str, tail: &str, escaping: Escaping) -> String {
    if escaping == Escaping::AllowUtf8 {
        return format!("{head}{tail}");
    }
    let mut out = Vec::new();
    write_metric_name_parts(&mut out, head, tail, escaping);
    String::from_utf8(out).unwrap_or_default()
}

fn label_name(name: &str, escaping: Escaping) -> String {
    if escaping == Escaping::AllowUtf8 {
        return name.to_owned();
    }
    let mut out = Vec::new();
    write_label_name(&mut out, name, escaping);
    String::from_utf8(out).unwrap_or_default()
}

fn label_pair(name: String, value: &str) -> pb::LabelPair {
    pb::LabelPair {
        name: Some(name),
        value: Some(value.to_owned()),
    }
}

/// Seconds since the epoch as a protobuf timestamp.
fn timestamp(seconds: f64) -> pb::Timestamp {
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round() as i32;
    let carry = (nanos >= 1_000_000_000) as i64;
    pb::Timestamp {
        seconds: whole as i64 + carry,
        nanos: if carry == 1 { 0 } else { nanos },
    }
}

/// A timestamp printed in seconds (Python's `str()` of a float): plain decimals are split
/// exactly, anything else (`1e-05`) goes through the float.
fn timestamp_from_text(text: &str) -> Option<pb::Timestamp> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = whole.strip_prefix('-').unwrap_or(whole);
    if unsigned.is_empty() || !digits(unsigned) || !digits(fraction) || fraction.len() > 9 {
        return text
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .map(timestamp);
    }
    let seconds: i64 = whole.parse().ok()?;
    let nanos: i32 = format!("{fraction:0<9}").parse().ok()?;
    if whole.starts_with('-') && nanos > 0 {
        // -1.25 s is 2 s before the epoch plus 0.75 s.
        return Some(pb::Timestamp {
            seconds: seconds - 1,
            nanos: 1_000_000_000 - nanos,
        });
    }
    Some(pb::Timestamp { seconds, nanos })
}

fn exemplar(e: &Exemplar) -> pb::Exemplar {
    pb::Exemplar {
        label: e
            .labels
            .iter()
            .map(|(k, v)| label_pair(k.clone(), v))
            .collect(),
        value: Some(e.value),
        timestamp: e.timestamp.as_deref().and_then(timestamp_from_text),
    }
}

/// A count as the integer field when it is one, else as the float field.
fn set_count(integer: &mut Option<u64>, float: &mut Option<f64>, v: f64) {
    if v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
        *integer = Some(v as u64);
    } else {
        *float = Some(v);
    }
}

/// The metrics of one family, built sample by sample.
struct Metrics<'a> {
    family: &'a str,
    metric_type: MetricType,
    escaping: Escaping,
    metrics: Vec<pb::Metric>,
    /// A child's labels (without `le` / `quantile`) -> its metric.
    by_child: HashMap<Vec<(String, String)>, usize>,
}

impl Metrics<'_> {
    fn new_metric(&mut self, labels: &[(&str, &str)]) -> &mut pb::Metric {
        let label = labels
            .iter()
            .map(|(k, v)| label_pair(label_name(k, self.escaping), v))
            .collect();
        self.metrics.push(pb::Metric {
            label,
            ..Default::default()
        });
        self.metrics.last_mut().unwrap()
    }

    /// The metric of the child with these labels, less `skip`, created on first use.
    fn child(&mut self, labels: &[(&str, &str)], skip: &str) -> &mut pb::Metric {
        let kept: Vec<(&str, &str)> = labels.iter().copied().filter(|(k, _)| *k != skip).collect();
        let key: Vec<(String, String)> = kept
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let index = match self.by_child.get(&key) {
            Some(&i) => i,
            None => {
                self.new_metric(&kept);
                self.by_child.insert(key, self.metrics.len() - 1);
                self.metrics.len() - 1
            }
        };
        &mut self.metrics[index]
    }

    fn add_sample(&mut self, s: &Sample<'_>) {
        if let Some(native) = s.native_histogram {
            // A Python `NativeHistogram` value, rendered as its OpenMetrics 2.0 text.
            if let Some(mut snapshot) = snapshot_from_openmetrics(&native.body) {
                snapshot.exemplars = native.exemplars.clone();
                self.add_native(s.labels, &snapshot);
            }
            return;
        }
        let Some(value) = s.value else {
            return;
        };
        let family = self.family;
        let is = |tail: &str| s.name_is(family, tail);
        let metric = match self.metric_type {
            MetricType::Gauge | MetricType::Info | MetricType::StateSet => {
                let m = self.new_metric(s.labels);
                m.gauge = Some(pb::Gauge { value: Some(value) });
                m
            }
            MetricType::Unknown => {
                let m = self.new_metric(s.labels);
                m.untyped = Some(pb::Untyped { value: Some(value) });
                m
            }
            MetricType::Counter => {
                let m = self.child(s.labels, "");
                let counter = m.counter.get_or_insert_with(Default::default);
                if is("_created") {
                    counter.created_timestamp = Some(timestamp(value));
                } else {
                    counter.value = Some(value);
                    counter.exemplar = s.exemplar.map(exemplar);
                }
                m
            }
            MetricType::Summary => {
                let quantile = s.labels.iter().find(|(k, _)| *k == "quantile");
                let m = self.child(s.labels, "quantile");
                let summary = m.summary.get_or_insert_with(Default::default);
                if let Some((_, q)) = quantile {
                    summary.quantile.push(pb::Quantile {
                        quantile: q.parse().ok(),
                        value: Some(value),
                    });
                } else if is("_count") {
                    summary.sample_count = Some(value.max(0.0) as u64);
                } else if is("_sum") {
                    summary.sample_sum = Some(value);
                } else if is("_created") {
                    summary.created_timestamp = Some(timestamp(value));
                }
                m
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let le = s.labels.iter().find(|(k, _)| *k == "le");
                let m = self.child(s.labels, "le");
                let h = m.histogram.get_or_insert_with(Default::default);
                if let (true, Some((_, le))) = (is("_bucket"), le) {
                    let mut bucket = pb::Bucket {
                        upper_bound: parse_bound(le),
                        exemplar: s.exemplar.map(exemplar),
                        ..Default::default()
                    };
                    set_count(
                        &mut bucket.cumulative_count,
                        &mut bucket.cumulative_count_float,
                        value,
                    );
                    h.bucket.push(bucket);
                } else if is("_count") || is("_gcount") {
                    set_count(&mut h.sample_count, &mut h.sample_count_float, value);
                } else if is("_sum") || is("_gsum") {
                    h.sample_sum = Some(value);
                } else if is("_created") {
                    h.created_timestamp = Some(timestamp(value));
                }
                m
            }
        };
        if let Some(ts) = s.timestamp {
            metric.timestamp_ms = metric.timestamp_ms.or(ts.millis.parse().ok());
        }
    }

    fn add_native(&mut self, labels: &[(&str, &str)], snapshot: &NativeHistogramSnapshot) {
        let h = self
            .child(labels, "")
            .histogram
            .get_or_insert_with(Default::default);
        h.schema = Some(snapshot.schema);
        h.zero_threshold = Some(snapshot.zero_threshold);
        h.zero_count = Some(snapshot.zero_count);
        h.positive_span = spans(&snapshot.positive_spans);
        h.positive_delta = snapshot.positive_deltas.clone();
        h.negative_span = spans(&snapshot.negative_spans);
        h.negative_delta = snapshot.negative_deltas.clone();
        h.exemplars = snapshot.exemplars.iter().map(exemplar).collect();
        // The classic count was read before these buckets (in multiprocess mode from other
        // files): observations made in between are in the buckets only, and Prometheus refuses
        // a count below the buckets' total.
        let in_buckets = snapshot.zero_count
            + delta_total(&snapshot.positive_deltas)
            + delta_total(&snapshot.negative_deltas);
        match h.sample_count {
            Some(count) if count < in_buckets => h.sample_count = Some(snapshot.count),
            None if h.sample_count_float.is_none() => h.sample_count = Some(snapshot.count),
            _ => {}
        }
        h.sample_sum = h.sample_sum.or(Some(snapshot.sum));
        // Without any of these a scraper would take it for a classic histogram.
        let empty = snapshot.positive_spans.is_empty() && snapshot.negative_spans.is_empty();
        if empty && snapshot.zero_threshold == 0.0 && snapshot.zero_count == 0 {
            h.positive_span = vec![pb::BucketSpan {
                offset: Some(0),
                length: Some(0),
            }];
        }
    }

    /// The +Inf bucket goes: the count stands for it (it gives the count if none came), and
    /// it stays only to carry an exemplar.
    fn finish(mut self) -> Vec<pb::Metric> {
        for h in self.metrics.iter_mut().filter_map(|m| m.histogram.as_mut()) {
            let Some(last) = h.bucket.last() else {
                continue;
            };
            if last.upper_bound != Some(f64::INFINITY) {
                continue;
            }
            if h.sample_count.is_none() && h.sample_count_float.is_none() {
                h.sample_count = last.cumulative_count;
                h.sample_count_float = last.cumulative_count_float;
            }
            if last.exemplar.is_none() {
                h.bucket.pop();
            }
        }
        self.metrics
    }
}

/// The observations in the buckets whose counts these deltas give.
fn delta_total(deltas: &[i64]) -> u64 {
    let mut count = 0i64;
    let mut total = 0u64;
    for delta in deltas {
        count += delta;
        total += count.max(0) as u64;
    }
    total
}

fn spans(spans: &[crate::core::model::BucketSpan]) -> Vec<pb::BucketSpan> {
    spans
        .iter()
        .map(|s| pb::BucketSpan {
            offset: Some(s.offset),
            length: Some(s.length),
        })
        .collect()
}

/// The native histogram of an OpenMetrics 2.0 value as the binding layer writes it:
/// `{count:..,sum:..,schema:..,zero_threshold:..,zero_count:..[,negative_spans:[o:l,..],
/// negative_deltas:[..]][,positive_spans:[..],positive_deltas:[..]]}`. `None` if malformed.
pub fn snapshot_from_openmetrics(body: &str) -> Option<NativeHistogramSnapshot> {
    let inner = body.strip_prefix('{')?.strip_suffix('}')?;
    let mut snapshot = NativeHistogramSnapshot::default();
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':')?;
        let (value, next) = if let Some(list) = after.strip_prefix('[') {
            let (list, next) = list.split_once(']')?;
            (list, next)
        } else {
            after.split_once(',').map_or((after, ""), |(v, n)| (v, n))
        };
        rest = next.strip_prefix(',').unwrap_or(next);
        let count = || value.parse::<f64>().ok().map(|c| c.max(0.0) as u64);
        match key {
            "count" => snapshot.count = count()?,
            "sum" => snapshot.sum = value.parse().ok()?,
            "schema" => snapshot.schema = value.parse().ok()?,
            "zero_threshold" => snapshot.zero_threshold = value.parse().ok()?,
            "zero_count" => snapshot.zero_count = count()?,
            "positive_spans" => snapshot.positive_spans = parse_spans(value)?,
            "negative_spans" => snapshot.negative_spans = parse_spans(value)?,
            "positive_deltas" => snapshot.positive_deltas = parse_list(value)?,
            "negative_deltas" => snapshot.negative_deltas = parse_list(value)?,
            _ => {}
        }
    }
    Some(snapshot)
}

fn parse_list<T: std::str::FromStr>(list: &str) -> Option<Vec<T>> {
    list.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.trim().parse().ok())
        .collect()
}

fn parse_spans(list: &str) -> Option<Vec<crate::core::model::BucketSpan>> {
    list.split(',')
        .filter(|x| !x.is_empty())
        .map(|span| {
            let (offset, length) = span.split_once(':')?;
            Some(crate::core::model::BucketSpan {
                offset: offset.trim().parse().ok()?,
                length: length.trim().parse().ok()?,
            })
        })
        .collect()
}

/// An `le` label value as Python's `float()` reads it (`+Inf`, `1.0`, `1e3` ...).
fn parse_bound(le: &str) -> Option<f64> {
    le.trim().parse().ok()
}

#[cfg(test)]
mod tests;
