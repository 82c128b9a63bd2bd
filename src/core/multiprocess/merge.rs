//! `MultiProcessCollector.merge`: `_read_metrics` then `_accumulate_metrics`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::file::CachedKey;
pub use super::file::FileCache;
use super::native;
use super::sketch::wall_clock;
use super::sketch_merge::{add_quantiles, is_sketch_file};
use crate::core::format::float_to_go_string;
use crate::core::model::{
    FamilySource, MetricType, NativeHistogramSnapshot, NativeHistogramVisitor, OwnedFamily,
    OwnedSample, Sample,
};
use crate::core::parse::py_float;
use std::sync::Arc;

/// FxHash (rustc's hasher): the merge hashes many short keys, where SipHash dominated.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_ne_bytes(chunk.try_into().unwrap_or_default()));
        }
        for byte in chunks.remainder() {
            self.add(u64::from(*byte));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Fast = BuildHasherDefault<FastHasher>;
type FastMap<K, V> = HashMap<K, V, Fast>;
type FastIndexMap<K, V> = IndexMap<K, V, Fast>;

/// The merged families, and the files skipped with the reason.
#[derive(Debug, Default)]
pub struct Merged {
    pub families: Vec<OwnedFamily>,
    /// Native histograms merged from the side files, by metric name.
    pub native: NativeByMetric,
    pub warnings: Vec<(PathBuf, String)>,
}

/// Merges `files` (in the caller's order, which decides the order of families). Files that have
/// disappeared are skipped silently; unreadable or corrupt ones with a warning. Native
/// histograms' side files among them are merged into `native`; summary sketch side files add
/// their quantiles when `accumulate` (the output is for exposition, not to be written back to
/// `.db` files).
pub fn merge(files: &[PathBuf], accumulate: bool, cache: &mut FileCache) -> Merged {
    let mut warnings = Vec::new();
    let mut readable = Vec::with_capacity(files.len());
    let mut side_files = Vec::new();
    let (sketches, files): (Vec<PathBuf>, Vec<PathBuf>) =
        files.iter().cloned().partition(|p| is_sketch_file(p));
    let files = files.as_slice();
    cache.retain(files);
    for path in files {
        if path.extension().is_some_and(|e| e == native::EXTENSION) {
            match cache.refresh(path) {
                Ok(true) => side_files.push(path.as_path()),
                Ok(false) => {}
                Err(e) => warnings.push((path.clone(), e.message)),
            }
            continue;
        }
        let name = match FileName::parse(path) {
            Ok(name) => name,
            Err(message) => {
                warnings.push((path.clone(), message));
                continue;
            }
        };
        match cache.refresh(path) {
            Ok(true) => readable.push((path.as_path(), name)),
            Ok(false) => {}
            Err(e) => warnings.push((path.clone(), e.message)),
        }
    }
    let metrics = read_metrics(&readable, cache, &mut warnings);
    let mut families: Vec<OwnedFamily> = metrics
        .into_values()
        .map(|metric| accumulate_metric(metric, accumulate))
        .collect();
    if accumulate {
        add_quantiles(&mut families, &sketches, wall_clock(), &mut warnings);
    }
    let native = read_native(&side_files, cache, &mut warnings);
    Merged {
        families,
        native,
        warnings,
    }
}

/// Label pairs sorted by name, and the merged native histogram of that child.
pub type NativeSeries = (Vec<(String, String)>, NativeHistogramSnapshot);
pub type NativeByMetric = HashMap<String, Vec<NativeSeries>>;

/// A histogram child: its metric's name and its labels sorted by name.
type ChildId<'a> = (&'a str, &'a [(String, String)]);

/// Each child's entries of every side file, merged (see [`native::ChildReader`]).
fn read_native(
    files: &[&Path],
    cache: &FileCache,
    warnings: &mut Vec<(PathBuf, String)>,
) -> NativeByMetric {
    let mut children: FastIndexMap<ChildId, native::ChildReader> = FastIndexMap::default();
    for path in files {
        for entry in cache.entries(path).unwrap_or_default() {
            let key = &entry.key.key;
            let Some(field) = native::Field::parse(&key.sample_name) else {
                let message = format!("Skipped {}: not a native histogram entry.", entry.key.text);
                warnings.push((path.to_path_buf(), message));
                continue;
            };
            children
                .entry((key.metric_name.as_str(), key.labels.as_slice()))
                .or_default()
                .add(field, entry.value);
        }
    }
    let mut by_metric = NativeByMetric::new();
    for ((name, labels), child) in children {
        let series = (labels.to_vec(), child.finish().to_snapshot());
        by_metric.entry(name.to_owned()).or_default().push(series);
    }
    by_metric
}

/// A merged family with its children's native histograms (only the protobuf writer reads
/// them, as for a histogram of one process).
#[derive(Clone, Debug)]
pub struct MergedFamily {
    pub family: OwnedFamily,
    pub native: Vec<NativeSeries>,
}

impl MergedFamily {
    /// Each family with the native histograms of its name (histograms only).
    pub fn attach(families: Vec<OwnedFamily>, mut native: NativeByMetric) -> Vec<MergedFamily> {
        families
            .into_iter()
            .map(|family| {
                let native = match family.metric_type {
                    MetricType::Histogram => native.remove(&family.name).unwrap_or_default(),
                    _ => Vec::new(),
                };
                MergedFamily { family, native }
            })
            .collect()
    }
}

impl FamilySource for MergedFamily {
    fn name(&self) -> &str {
        self.family.name()
    }
    fn documentation(&self) -> &str {
        self.family.documentation()
    }
    fn metric_type(&self) -> MetricType {
        self.family.metric_type()
    }
    fn unit(&self) -> &str {
        self.family.unit()
    }
    fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>)) {
        self.family.visit_samples(visit)
    }
    fn visit_native_histograms(&self, visit: &mut NativeHistogramVisitor<'_>) {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (labels, snapshot) in &self.native {
            pairs.clear();
            pairs.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            visit(&pairs, snapshot);
        }
    }
}

/// Sorts every sample's labels by name, as the text writers expect.
pub fn sorted_for_render(families: &mut [OwnedFamily]) {
    for sample in families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
        sample.labels.sort();
    }
}

/// What the reference takes from `basename.split('_')`.
#[derive(Debug, PartialEq)]
struct FileName<'a> {
    metric_type: MetricType,
    /// For gauge files: the mode (`parts[1]`) and the pid (`parts[2][:-3]`).
    gauge: Option<(&'a str, &'a str)>,
}

impl<'a> FileName<'a> {
    fn parse(path: &'a Path) -> Result<FileName<'a>, String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("Not a UTF-8 file name.")?;
        let mut parts = name.split('_');
        let typ = parts.next().unwrap_or_default();
        let metric_type = match typ {
            "untyped" => MetricType::Unknown,
            _ => MetricType::parse(typ).ok_or(format!("Invalid metric type: {typ}"))?,
        };
        if metric_type != MetricType::Gauge {
            return Ok(FileName {
                metric_type,
                gauge: None,
            });
        }
        let (Some(mode), Some(pid)) = (parts.next(), parts.next()) else {
            return Err("A gauge file name needs a mode and a pid.".to_owned());
        };
        Ok(FileName {
            metric_type,
            gauge: Some((mode, drop_last_3_chars(pid))),
        })
    }
}

/// `s[:-3]` (code points).
fn drop_last_3_chars(s: &str) -> &str {
    let cut = s.char_indices().rev().nth(2).map_or(0, |(i, _)| i);
    &s[..cut]
}

type Labels<'a> = Vec<(&'a str, &'a str)>;

/// A sample as `_read_metrics` adds it.
struct RawSample<'a> {
    name: &'a str,
    labels: Labels<'a>,
    value: f64,
    timestamp: f64,
    /// `float(le)` for the samples of histograms that have an `le` label.
    bucket: Option<f64>,
}

/// The reference's `Metric` between the two steps.
struct MetricData<'a> {
    name: &'a str,
    help: &'a str,
    /// From the first file holding the metric.
    metric_type: MetricType,
    /// From the last gauge file holding the metric.
    gauge_mode: &'a str,
    samples: Vec<RawSample<'a>>,
}

fn read_metrics<'a>(
    files: &[(&'a Path, FileName<'a>)],
    cache: &'a FileCache,
    warnings: &mut Vec<(PathBuf, String)>,
) -> FastIndexMap<&'a str, MetricData<'a>> {
    let mut metrics: FastIndexMap<&str, MetricData> = FastIndexMap::default();
    // A key seen again in another file of a metric that is not a gauge adds to the sample it
    // made the first time (keys are shared between files, so found by pointer): the generic
    // merge then sees each distinct key once, not once per process.
    let mut summed: FastMap<*const CachedKey, (usize, usize)> = FastMap::default();
    for (path, file_name) in files {
        for entry in cache.entries(path).unwrap_or_default() {
            let key: &'a CachedKey = &entry.key;
            if file_name.gauge.is_none() {
                if let Some(&(m, s)) = summed.get(&Arc::as_ptr(&entry.key)) {
                    metrics[m].samples[s].value += entry.value;
                    continue;
                }
            }
            let slot = metrics.entry(key.key.metric_name.as_str());
            let index = slot.index();
            let metric = slot.or_insert_with(|| MetricData {
                name: &key.key.metric_name,
                help: &key.key.help,
                metric_type: file_name.metric_type,
                gauge_mode: "",
                samples: Vec::new(),
            });
            let pid = file_name.gauge.map(|(_, pid)| pid);
            if let Some((mode, _)) = file_name.gauge {
                metric.gauge_mode = mode;
            }
            let summable = pid.is_none() && metric.metric_type != MetricType::Gauge;
            match raw_sample(metric, key, pid, entry.value, entry.timestamp) {
                Ok(sample) => {
                    if summable {
                        summed.insert(Arc::as_ptr(&entry.key), (index, metric.samples.len()));
                    }
                    metric.samples.push(sample);
                }
                Err(message) => warnings.push((path.to_path_buf(), message)),
            }
        }
    }
    metrics
}

/// A sample as `_read_metrics` adds it: a gauge's labels get the file's `pid`; a histogram's
/// `le` is read as a float (an error when it is not one).
fn raw_sample<'a>(
    metric: &MetricData<'a>,
    key: &'a CachedKey,
    pid: Option<&'a str>,
    value: f64,
    timestamp: f64,
) -> Result<RawSample<'a>, String> {
    let key = &key.key;
    let mut labels: Labels = key
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    labels.extend(pid.map(|pid| ("pid", pid)));
    let mut bucket = None;
    if metric.metric_type == MetricType::Histogram {
        if let Some((_, le)) = labels.iter().find(|(n, _)| *n == "le") {
            let bound = py_float(le.as_bytes())
                .ok_or_else(|| format!("Skipped {}: le={le:?} is not a float.", key.sample_name))?;
            bucket = Some(bound);
        }
    }
    Ok(RawSample {
        name: &key.sample_name,
        labels,
        value,
        timestamp,
        bucket,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum GaugeMode {
    All,
    Min,
    Max,
    Sum,
    MostRecent,
}

impl GaugeMode {
    fn parse(mode: &str) -> GaugeMode {
        match mode {
            "min" | "livemin" => GaugeMode::Min,
            "max" | "livemax" => GaugeMode::Max,
            "sum" | "livesum" => GaugeMode::Sum,
            "mostrecent" | "livemostrecent" => GaugeMode::MostRecent,
            _ => GaugeMode::All,
        }
    }
}

/// An output sample's identity: the reference's `(name, labels)`, with the bucket bound (as
/// bits, to hash) standing for the `le` label it appends.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SampleKey<'a> {
    name: &'a str,
    labels: Labels<'a>,
    bucket: Option<u64>,
}

/// Output samples grouped by label set, both in first-insertion order.
type Groups<'a> = FastIndexMap<Labels<'a>, FastIndexMap<SampleKey<'a>, f64>>;

fn accumulate_metric(metric: MetricData<'_>, accumulate: bool) -> OwnedFamily {
    let bucket_name = format!("{}_bucket", metric.name);
    let count_name = format!("{}_count", metric.name);
    let mode = match metric.metric_type {
        MetricType::Gauge => Some(GaugeMode::parse(metric.gauge_mode)),
        _ => None,
    };
    let mut groups: Groups = FastIndexMap::default();
    let mut timestamps: FastMap<SampleKey, f64> = FastMap::default();
    // Per label set without `le`: (bound, value), bounds compared with `==` as dict keys are.
    let mut buckets: FastIndexMap<Labels, Vec<(f64, f64)>> = FastIndexMap::default();
    for sample in metric.samples {
        let mut labels = sample.labels;
        if mode.is_some_and(|m| m != GaugeMode::All) {
            labels.retain(|(n, _)| *n != "pid");
        }
        let key = SampleKey {
            name: sample.name,
            labels: labels.clone(),
            bucket: None,
        };
        let value = sample.value;
        match (mode, sample.bucket) {
            (Some(GaugeMode::Min), _) => {
                let current = groups
                    .entry(labels)
                    .or_default()
                    .entry(key)
                    .or_insert(value);
                if value < *current {
                    *current = value;
                }
            }
            (Some(GaugeMode::Max), _) => {
                let current = groups
                    .entry(labels)
                    .or_default()
                    .entry(key)
                    .or_insert(value);
                if value > *current {
                    *current = value;
                }
            }
            (Some(GaugeMode::MostRecent), _) => {
                let latest = timestamps.entry(key.clone()).or_insert(0.0);
                if *latest < sample.timestamp {
                    *latest = sample.timestamp;
                    groups.entry(labels).or_default().insert(key, value);
                }
            }
            (Some(GaugeMode::All), _) => {
                groups.entry(labels).or_default().insert(key, value);
            }
            (None, Some(bound)) => {
                labels.retain(|(n, _)| *n != "le");
                let bounds = buckets.entry(labels).or_default();
                match bounds.iter_mut().find(|(b, _)| *b == bound) {
                    Some((_, total)) => *total += value,
                    None => bounds.push((bound, value)),
                }
            }
            // Histogram `_sum`/`_count`, counters, summaries, gauges in sum mode.
            (Some(GaugeMode::Sum) | None, _) => {
                *groups.entry(labels).or_default().entry(key).or_insert(0.0) += value;
            }
        }
    }
    if metric.metric_type == MetricType::Histogram {
        add_buckets(&mut groups, buckets, &bucket_name, &count_name, accumulate);
    }
    OwnedFamily {
        name: metric.name.to_owned(),
        documentation: metric.help.to_owned(),
        metric_type: metric.metric_type,
        unit: String::new(),
        samples: groups.into_values().flatten().map(owned_sample).collect(),
    }
}

/// Buckets ascending by bound, cumulative when `accumulate` (then followed by `_count`).
fn add_buckets<'a>(
    groups: &mut Groups<'a>,
    buckets: FastIndexMap<Labels<'a>, Vec<(f64, f64)>>,
    bucket_name: &'a str,
    count_name: &'a str,
    accumulate: bool,
) {
    for (labels, mut bounds) in buckets {
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let group = groups.entry(labels.clone()).or_default();
        let mut total = 0.0;
        for (bound, value) in bounds {
            let key = SampleKey {
                name: bucket_name,
                labels: labels.clone(),
                bucket: Some(bound.to_bits()),
            };
            total += value;
            group.insert(key, if accumulate { total } else { value });
        }
        if accumulate {
            let key = SampleKey {
                name: count_name,
                labels,
                bucket: None,
            };
            group.insert(key, total);
        }
    }
}

/// `Sample(name, dict(labels), value)`: a repeated label name (a user `pid` beside the one
/// appended) keeps its first place and its last value.
fn owned_sample((key, value): (SampleKey<'_>, f64)) -> OwnedSample {
    let le = key
        .bucket
        .map(|bits| float_to_go_string(f64::from_bits(bits)));
    let pairs = key
        .labels
        .iter()
        .copied()
        .chain(le.as_deref().map(|le| ("le", le)));
    let mut labels: Vec<(String, String)> = Vec::with_capacity(key.labels.len() + 1);
    for (name, value) in pairs {
        match labels.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.to_owned(),
            None => labels.push((name.to_owned(), value.to_owned())),
        }
    }
    OwnedSample {
        name: key.name.to_owned(),
        labels,
        value: Some(value),
        timestamp: None,
        exemplar: None,
        native_histogram: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Escaping;
    use crate::core::multiprocess::file::encode_file;
    use crate::core::multiprocess::key::mmap_key;
    use crate::core::text::write_text;

    fn render(mut families: Vec<OwnedFamily>) -> String {
        sorted_for_render(&mut families);
        let sources: Vec<&dyn FamilySource> =
            families.iter().map(|f| f as &dyn FamilySource).collect();
        let mut out = Vec::new();
        write_text(&mut out, &sources, Escaping::Underscores).unwrap();
        String::from_utf8(out).unwrap()
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("fastprom-merge-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn file_names_split_like_the_reference() {
        let parse = |name: &'static str| FileName::parse(Path::new(name));
        let file_name = |metric_type, gauge| Ok(FileName { metric_type, gauge });
        assert_eq!(
            parse("/d/counter_12.db"),
            file_name(MetricType::Counter, None)
        );
        assert_eq!(
            parse("histogram_x_y.db"),
            file_name(MetricType::Histogram, None)
        );
        assert_eq!(parse("untyped_1.db"), file_name(MetricType::Unknown, None));
        let gauge = |mode, pid| file_name(MetricType::Gauge, Some((mode, pid)));
        assert_eq!(parse("gauge_livesum_123.db"), gauge("livesum", "123"));
        assert_eq!(parse("gauge_all_1_2.db"), gauge("all", ""));
        assert_eq!(parse("gauge_max_日本語db"), gauge("max", "日本"));
        assert!(parse("gauge_1.db").is_err());
        assert!(parse("histogram.db").is_err());
        assert!(parse("foo_1.db").is_err());
        assert!(parse("/").is_err());
    }

    #[test]
    fn bad_files_are_skipped_with_a_warning() {
        let dir = TempDir::new("warnings");
        let path = |name: &str| dir.0.join(name);
        let key = |name: &str, labels: &[(&str, &str)]| mmap_key("c", name, labels, "Help");
        let total = key("c_total", &[("a", "1")]);
        std::fs::write(
            path("counter_1.db"),
            encode_file(&[(&total, 1.0, 0.0)], 4096),
        )
        .unwrap();
        let mut truncated = encode_file(&[(&total, 2.0, 0.0)], 0);
        truncated.pop();
        std::fs::write(path("counter_2.db"), truncated).unwrap();
        std::fs::write(path("counter_4.db"), encode_file(&[("[1]", 1.0, 0.0)], 0)).unwrap();
        std::fs::write(path("foo_1.db"), encode_file(&[(&total, 2.0, 0.0)], 0)).unwrap();
        let h = |name: &str, labels: &[(&str, &str)]| mmap_key("h", name, labels, "H");
        let buckets = [
            (h("h_sum", &[]), 3.0),
            (h("h_bucket", &[("le", "1_0")]), 1.0),
            (h("h_bucket", &[("le", "ten")]), 1.0),
            (h("h_bucket", &[("le", " +inf ")]), 2.0),
        ];
        let buckets: Vec<(&str, f64, f64)> =
            buckets.iter().map(|(k, v)| (k.as_str(), *v, 0.0)).collect();
        std::fs::write(path("histogram_1.db"), encode_file(&buckets, 0)).unwrap();
        let files = [
            "counter_1.db",
            "counter_2.db",
            "counter_3.db",
            "counter_4.db",
            "foo_1.db",
            "histogram_1.db",
        ]
        .map(path);
        let mut cache = FileCache::new();
        let merged = merge(&files, true, &mut cache);
        let expected = "# HELP c_total Help\n# TYPE c_total counter\nc_total{a=\"1\"} 1.0\n\
            # HELP h H\n# TYPE h histogram\nh_sum 3.0\nh_bucket{le=\"10.0\"} 1.0\n\
            h_bucket{le=\"+Inf\"} 3.0\nh_count 3.0\n";
        assert_eq!(render(merged.families), expected);
        let warned: Vec<(&str, &str)> = merged
            .warnings
            .iter()
            .map(|(p, m)| (p.file_name().unwrap().to_str().unwrap(), m.as_str()))
            .collect();
        assert_eq!(
            warned,
            [
                (
                    "counter_2.db",
                    "File is truncated: its header says 72 bytes are used but it has 71."
                ),
                ("counter_4.db", "Invalid key at offset 8: [1]"),
                ("foo_1.db", "Invalid metric type: foo"),
                (
                    "histogram_1.db",
                    "Skipped h_bucket: le=\"ten\" is not a float."
                ),
            ]
        );
    }

    /// The Python side of `matches_prometheus_client`: writes files as several pids, then prints
    /// the files it globbed, `generate_latest` of their merge, and of their merge without
    /// accumulation, separated by NULs.
    const WRITE_AND_MERGE: &str = r#"
import glob, os, sys
directory, phase = sys.stdin.read().split('\n')[:2]
os.environ['PROMETHEUS_MULTIPROC_DIR'] = directory
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

pid = [0]
values.ValueClass = values.MultiProcessValue(lambda: pid[0])
MODES = ['all', 'liveall', 'min', 'livemin', 'max', 'livemax', 'sum', 'livesum', 'mostrecent', 'livemostrecent']
ODD = ['é', '日本', '😀', '"quoted"', 'back\\slash', 'new\nline', 'tab\there', '\x01\x7f', '']

requests = Counter('requests', 'Requests with "quotes", \\ and\nnewline é😀', ['z', 'a'], registry=None)
plain = Counter('plain', 'No labels', registry=None)
gauges = {m: Gauge('g_' + m, 'Gauge ' + m, ['x'], multiprocess_mode=m, registry=None) for m in MODES}
user_pid = Gauge('user_pid', 'A pid label of its own', ['pid', 'zz'], registry=None)
user_pid_max = Gauge('user_pid_max', 'A pid label of its own', ['a', 'pid'], multiprocess_mode='max', registry=None)
hist = Histogram('hist', 'Histogram', ['m'], buckets=[0.005, 1, 2.5, 1e6, 12345678.9], registry=None)
summary = Summary('summ', 'Summary', ['m'], registry=None)
mixed_counter = Counter('mixed', 'As a counter', registry=None)
mixed_gauge = Gauge('mixed', 'As a gauge', registry=None)
two_modes_max = Gauge('two_modes', 'Max', multiprocess_mode='max', registry=None)
two_modes_min = Gauge('two_modes', 'Min', multiprocess_mode='min', registry=None)


def work(p, k):
    pid[0] = p
    for i, v in enumerate(ODD):
        requests.labels(z=v, a=str(i % 3)).inc(k + i)
    plain.inc(k)
    for m, g in gauges.items():
        if 'mostrecent' in m:
            g.labels('now').set(k)
            g.labels('same')._value.set(k, timestamp=1000.0)
            g.labels('older' if p % 2 else 'newer')._value.set(k, timestamp=2000.0 + p)
            g.labels('never')
            g.labels('zero')._value.set(k, timestamp=None)
        else:
            g.labels('a').set(k * (-1) ** p)
            g.labels(ODD[p % len(ODD)]).inc(k)
            if p == 22:
                g.labels('nan').set(float('nan'))
    user_pid.labels(pid='user', zz='z').set(k)
    user_pid_max.labels(a='1', pid='user').set(k)
    for v in [0.001, 0.005, 3, 1e7, 1e8, -1, k]:
        hist.labels('get').observe(v)
    if p % 2 == 0:
        hist.labels('post "x"').observe(k / 7)
    hist.labels('only%d' % p)
    summary.labels('x').observe(k)
    summary.labels(ODD[p % len(ODD)]).observe(k * 0.1)
    mixed_counter.inc(k)
    mixed_gauge.set(k)
    two_modes_max.set(k)
    two_modes_min.set(-k)


if phase == '1':
    for p, k in [(11, 1.5), (22, 2), (33, 3.25)]:
        work(p, k)
    mark_process_dead(22)
else:
    for p, k in [(11, 10), (44, 0.125)]:
        work(p, k)
        pid[0] = p
        requests.labels(z='phase two ' + str(p), a='new').inc()
        gauges['livemax'].labels('phase two').set(p)
    mark_process_dead(33)

files = glob.glob(os.path.join(directory, '*.db'))


class Fixed:
    def __init__(self, accumulate):
        self.accumulate = accumulate

    def collect(self):
        return MultiProcessCollector.merge(files, accumulate=self.accumulate)


out = sys.stdout.buffer
out.write('\n'.join(files).encode() + b'\x00')
for accumulate in (True, False):
    registry = CollectorRegistry()
    registry.register(Fixed(accumulate))
    out.write(generate_latest(registry) + b'\x00')
"#;

    #[test]
    fn matches_prometheus_client() {
        let dir = TempDir::new("reference");
        let mut cache = FileCache::new();
        for phase in ["1", "2"] {
            let input = format!("{}\n{phase}\n", dir.0.display());
            let Some(output) = crate::core::format::run_python(WRITE_AND_MERGE, &input) else {
                return;
            };
            let parts: Vec<&str> = output.split('\0').collect();
            let files: Vec<PathBuf> = parts[0].lines().map(PathBuf::from).collect();
            assert!(files.len() > 30, "phase {phase}: {files:?}");
            let merged = merge(&files, true, &mut cache);
            assert_eq!(merged.warnings, []);
            assert_eq!(render(merged.families), parts[1], "phase {phase}");
            let merged = merge(&files, false, &mut cache);
            assert_eq!(merged.warnings, []);
            assert_eq!(
                render(merged.families),
                parts[2],
                "phase {phase}, accumulate=False"
            );
        }
    }
}
