//! What the exposition writers read: metric families and their samples.
//!
//! Native metrics and families converted from Python `Metric` objects both implement
//! [`FamilySource`], so the writers stream every family straight into one buffer without an
//! intermediate copy of the samples.

/// The eight OpenMetrics types, as `Metric.type` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Summary,
    Histogram,
    GaugeHistogram,
    Unknown,
    Info,
    StateSet,
}

impl MetricType {
    /// The OpenMetrics spelling (`Metric.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Unknown => "unknown",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    pub fn parse(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "summary" => MetricType::Summary,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "unknown" => MetricType::Unknown,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => return None,
        })
    }
}

/// An exemplar attached to a counter's `_total` or a histogram bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Label pairs, sorted by name.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// The exemplar's timestamp exactly as OpenMetrics prints it (Python `str()` of it).
    pub timestamp: Option<String>,
}

/// A native histogram sample (OpenMetrics 2.0.0 only), prepared by the binding layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeHistogram {
    /// The whole value text: `{count:..,sum:..,schema:..,zero_threshold:..,zero_count:..[,...]}`.
    pub body: String,
    pub exemplars: Vec<Exemplar>,
}

/// One run of consecutive native buckets: `offset` is the first bucket's index for the first
/// span, else the number of empty buckets since the previous span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}

/// A consistent read of one child's native buckets, in the protobuf exposition's shape: bucket
/// counts as deltas (each bucket minus the previous one, the first minus zero) along the spans.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeHistogramSnapshot {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    /// Every observation, NaN included (NaN lands in no bucket).
    pub count: u64,
    pub sum: f64,
    pub positive_spans: Vec<BucketSpan>,
    pub positive_deltas: Vec<i64>,
    pub negative_spans: Vec<BucketSpan>,
    pub negative_deltas: Vec<i64>,
    /// Exemplars of the native histogram (each with a timestamp).
    pub exemplars: Vec<Exemplar>,
}

/// Sample timestamps as each format prints them (precomputed with Python's arithmetic).
#[derive(Clone, Debug, PartialEq)]
pub struct SampleTimestamp {
    /// Prometheus text: `int(float(ts) * 1000)`, printed in decimal.
    pub millis: String,
    /// OpenMetrics: `str(ts)`.
    pub openmetrics: String,
}

/// One sample. Its name is `name` followed by `suffix` (native metrics pass the family name and a
/// suffix such as `_bucket`; converted Python samples pass their whole name and an empty suffix).
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub suffix: &'a str,
    /// Label pairs sorted by name (the writers do not sort).
    pub labels: &'a [(&'a str, &'a str)],
    /// `None` only for Python samples whose value is `None` (allowed by OpenMetrics beside a
    /// native histogram; the binding layer raises the reference's error for the text format).
    pub value: Option<f64>,
    pub timestamp: Option<&'a SampleTimestamp>,
    pub exemplar: Option<&'a Exemplar>,
    pub native_histogram: Option<&'a NativeHistogram>,
}

impl Sample<'_> {
    /// Whether `name + suffix` equals `prefix + tail` without concatenating.
    pub fn name_is(&self, prefix: &str, tail: &str) -> bool {
        let total = self.name.len() + self.suffix.len();
        if total != prefix.len() + tail.len() {
            return false;
        }
        let full = self.name.bytes().chain(self.suffix.bytes());
        full.eq(prefix.bytes().chain(tail.bytes()))
    }

    /// Whether the full sample name ends with `tail`.
    pub fn name_ends_with(&self, tail: &str) -> bool {
        let total = self.name.len() + self.suffix.len();
        if tail.len() > total {
            return false;
        }
        let full = self.name.bytes().chain(self.suffix.bytes());
        full.skip(total - tail.len()).eq(tail.bytes())
    }
}

/// Receives a child's labels and its native buckets.
pub type NativeHistogramVisitor<'a> = dyn FnMut(&[(&str, &str)], &NativeHistogramSnapshot) + 'a;

/// A metric family the writers can render.
pub trait FamilySource {
    fn name(&self) -> &str;
    fn documentation(&self) -> &str;
    fn metric_type(&self) -> MetricType;
    fn unit(&self) -> &str;
    /// Calls `visit` once per sample, in exposition order.
    fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>));
    /// Calls `visit` once per child that has native buckets, with the child's labels (sorted by
    /// name, as in its samples). Only the protobuf writer reads them.
    fn visit_native_histograms(&self, _visit: &mut NativeHistogramVisitor<'_>) {}
}

/// The name escaping schemes of `openmetrics.exposition` (`escaping=` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    AllowUtf8,
    Underscores,
    Dots,
    Values,
    /// An unknown scheme string: names pass through unchanged.
    Other,
}

impl Escaping {
    pub fn parse(s: &str) -> Escaping {
        match s {
            "allow-utf-8" => Escaping::AllowUtf8,
            "underscores" => Escaping::Underscores,
            "dots" => Escaping::Dots,
            "values" => Escaping::Values,
            _ => Escaping::Other,
        }
    }
}

/// An error while rendering a family (the reference raises `ValueError` and appends the metric).
#[derive(Clone, Debug, PartialEq)]
pub struct RenderError {
    /// Index of the family in the order the writer received them.
    pub family: usize,
    pub message: String,
}

/// A family fully owned in Rust (converted from a Python `Metric`, or built in tests).
#[derive(Clone, Debug)]
pub struct OwnedFamily {
    pub name: String,
    pub documentation: String,
    pub metric_type: MetricType,
    pub unit: String,
    pub samples: Vec<OwnedSample>,
}

#[derive(Clone, Debug)]
pub struct OwnedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: Option<f64>,
    pub timestamp: Option<SampleTimestamp>,
    pub exemplar: Option<Exemplar>,
    pub native_histogram: Option<NativeHistogram>,
}

impl FamilySource for OwnedFamily {
    fn name(&self) -> &str {
        &self.name
    }
    fn documentation(&self) -> &str {
        &self.documentation
    }
    fn metric_type(&self) -> MetricType {
        self.metric_type
    }
    fn unit(&self) -> &str {
        &self.unit
    }
    fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>)) {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for s in &self.samples {
            pairs.clear();
            pairs.extend(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            visit(&Sample {
                name: &s.name,
                suffix: "",
                labels: &pairs,
                value: s.value,
                timestamp: s.timestamp.as_ref(),
                exemplar: s.exemplar.as_ref(),
                native_histogram: s.native_histogram.as_ref(),
            });
        }
    }
}
