//! Native histogram buckets in multiprocess mode.
//!
//! Each process keeps a histogram's sparse buckets in a side file of its own,
//! `histogram_native_<pid>.fpn` (prometheus_client's `*.db` glob does not see it), in the
//! layout of the `.db` files: a JSON key per entry, an 8-byte atomic slot, entries appended,
//! slots never moved. The classic `_sum` and `_bucket` entries stay in the `.db` file as the
//! reference writes them.
//!
//! Every entry is a plain total: the count, the sum, the zero bucket's count at one threshold,
//! one bucket's count at one schema. When a process halves its resolution or widens its zero
//! bucket it simply writes to other entries from then on; the old ones keep what they counted.
//! So a forked child starting from zeros, compaction (entries add by key) and the collector
//! (reduce to the lowest schema present, widen to the widest zero bucket, add) need nothing
//! special.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::key::mmap_key;
use super::mapped::{label_dict, FileId, MappedSpec, Slots};
use crate::core::cell::{add_f64, load_f64};
use crate::core::native_histogram::buckets::BucketCounts;
use crate::core::native_histogram::index::{coarser_index, lower_bound, upper_bound};
use crate::core::native_histogram::{bucket_index, NativeConfig, MIN_SCHEMA};

/// The side files' extension and name prefix: `histogram_native_<pid>.fpn`.
pub const EXTENSION: &str = "fpn";
pub const FILE_PREFIX: &str = "histogram_native";

/// What one entry of a side file counts, spelt in its key's sample name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field {
    /// Every observation, NaN included.
    Count,
    Sum,
    /// A schema the process has written at (value unused): the collector reduces to the
    /// lowest one even before a bucket at it has counts.
    Schema(i32),
    /// The zero bucket's count while its threshold was this.
    Zero(f64),
    Bucket {
        schema: i32,
        negative: bool,
        index: i32,
    },
}

impl Field {
    pub fn sample_name(self) -> String {
        match self {
            Field::Count => "count".to_owned(),
            Field::Sum => "sum".to_owned(),
            Field::Schema(schema) => format!("schema:{schema}"),
            // `{:?}` prints the shortest text that parses back to the same float.
            Field::Zero(threshold) => format!("zero:{threshold:?}"),
            Field::Bucket {
                schema,
                negative,
                index,
            } => {
                let sign = if negative { "negative" } else { "positive" };
                format!("{sign}:{schema}:{index}")
            }
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        let mut parts = name.split(':');
        let field = match (parts.next()?, parts.next(), parts.next()) {
            ("count", None, None) => Field::Count,
            ("sum", None, None) => Field::Sum,
            ("schema", Some(schema), None) => Field::Schema(schema.parse().ok()?),
            ("zero", Some(threshold), None) => Field::Zero(threshold.parse().ok()?),
            (sign @ ("positive" | "negative"), Some(schema), Some(index)) => Field::Bucket {
                schema: schema.parse().ok()?,
                negative: sign == "negative",
                index: index.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(field)
    }
}

impl MappedSpec {
    /// The native buckets of one histogram series in this process's side file.
    pub fn native_slots(
        &self,
        labelnames: &[String],
        labels: &[String],
        config: NativeConfig,
    ) -> io::Result<MappedNative> {
        let labels = label_dict(labelnames, labels)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        MappedNative::new(
            self.file.clone(),
            &self.metric_name,
            &self.help,
            labels,
            config,
        )
    }
}

/// Where one histogram child's entries go: the side file, and the key of each field.
struct EntryKeys {
    file: FileId,
    metric_name: String,
    help: String,
    labels: Vec<(String, String)>,
}

impl EntryKeys {
    fn slots(&self, fields: &[Field]) -> io::Result<Arc<Slots>> {
        let labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let keys = fields
            .iter()
            .map(|f| mmap_key(&self.metric_name, &f.sample_name(), &labels, &self.help))
            .collect();
        Slots::new(self.file.clone(), keys)
    }
}

/// One histogram child's native buckets in this process's side file.
///
/// Observations hold the GIL in multiprocess mode, so the lock is never contended; a bucket
/// seen before is found by its integer index, a new one appends an entry.
pub struct MappedNative {
    keys: EntryKeys,
    config: NativeConfig,
    /// `count`, `sum`.
    totals: Arc<Slots>,
    writer: Mutex<Writer>,
}

/// The settings this process writes at now, and the entries of its buckets at them.
struct Writer {
    schema: i32,
    zero_threshold: f64,
    zero: Arc<Slots>,
    positive: HashMap<i32, Arc<Slots>>,
    negative: HashMap<i32, Arc<Slots>>,
    /// Every entry created but the totals, each one field, for `remove` and `counts`.
    entries: Vec<(Field, Arc<Slots>)>,
}

impl Writer {
    fn bucket_number(&self) -> usize {
        self.positive.len() + self.negative.len()
    }

    fn side(&mut self, negative: bool) -> &mut HashMap<i32, Arc<Slots>> {
        if negative {
            &mut self.negative
        } else {
            &mut self.positive
        }
    }
}

impl MappedNative {
    /// `file` is the child's `.db` file (its directory and process name the side file);
    /// `labels` as `dict(zip(names, values))`.
    pub fn new(
        mut file: FileId,
        metric_name: &str,
        help: &str,
        labels: Vec<(String, String)>,
        config: NativeConfig,
    ) -> io::Result<MappedNative> {
        file.prefix = FILE_PREFIX.to_owned();
        file.extension = EXTENSION;
        let keys = EntryKeys {
            file,
            metric_name: metric_name.to_owned(),
            help: help.to_owned(),
            labels,
        };
        let totals = keys.slots(&[Field::Count, Field::Sum])?;
        let schema = Field::Schema(config.schema);
        let zero = Field::Zero(config.zero_threshold);
        let zero_slots = keys.slots(&[zero])?;
        let writer = Writer {
            schema: config.schema,
            zero_threshold: config.zero_threshold,
            zero: zero_slots.clone(),
            positive: HashMap::new(),
            negative: HashMap::new(),
            entries: vec![(schema, keys.slots(&[schema])?), (zero, zero_slots)],
        };
        Ok(MappedNative {
            keys,
            config,
            totals,
            writer: Mutex::new(writer),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every set of slots of this child, for `remove`.
    pub fn slots(&self) -> Vec<Arc<Slots>> {
        let writer = self.lock();
        let entries = writer.entries.iter().map(|(_, s)| s.clone());
        std::iter::once(self.totals.clone())
            .chain(entries)
            .collect()
    }

    pub fn observe(&self, v: f64) {
        let mut writer = self.lock();
        let threshold = writer.zero_threshold;
        let opened = if v > threshold || v < -threshold {
            let index = bucket_index(v.abs(), writer.schema);
            self.add_to_bucket(&mut writer, v < 0.0, index)
        } else {
            if !v.is_nan() {
                add_f64(writer.zero.value(0), 1.0);
            }
            false
        };
        add_f64(self.totals.value(0), 1.0);
        add_f64(self.totals.value(1), v);
        let max = self.config.max_buckets as usize;
        if opened && max > 0 && writer.bucket_number() > max {
            self.limit_buckets(&mut writer);
        }
    }

    /// Counts one in bucket `index`; true if that bucket was new.
    fn add_to_bucket(&self, writer: &mut Writer, negative: bool, index: i32) -> bool {
        if let Some(slots) = writer.side(negative).get(&index) {
            add_f64(slots.value(0), 1.0);
            return false;
        }
        // A removed child's counts are no longer exported: no new entries for it.
        if self.totals.is_detached() {
            return false;
        }
        match self.open_bucket(writer, negative, index) {
            Some(slots) => {
                add_f64(slots.value(0), 1.0);
                true
            }
            None => false,
        }
    }

    /// Appends the entry of a bucket at the current schema. If the file cannot grow the
    /// bucket's count is lost (the count and sum still have it): observe cannot fail.
    fn open_bucket(&self, writer: &mut Writer, negative: bool, index: i32) -> Option<Arc<Slots>> {
        let field = Field::Bucket {
            schema: writer.schema,
            negative,
            index,
        };
        let slots = self.keys.slots(&[field]).ok()?;
        writer.entries.push((field, slots.clone()));
        writer.side(negative).insert(index, slots.clone());
        Some(slots)
    }

    /// client_golang's strategy past `max_buckets`, without resets (one process's reset would
    /// take its counts out of every collector's totals): widen the zero bucket if
    /// `max_zero_threshold` allows, else halve the resolution.
    fn limit_buckets(&self, writer: &mut Writer) {
        if !self.widen_zero_bucket(writer) && writer.schema > MIN_SCHEMA {
            self.reduce_schema(writer);
        }
    }

    fn widen_zero_bucket(&self, writer: &mut Writer) -> bool {
        let nearest = writer
            .positive
            .keys()
            .chain(writer.negative.keys())
            .min()
            .copied();
        let Some(nearest) = nearest else {
            return false;
        };
        let threshold = upper_bound(nearest, writer.schema);
        if threshold > self.config.max_zero_threshold {
            return false;
        }
        let field = Field::Zero(threshold);
        let Ok(zero) = self.keys.slots(&[field]) else {
            return false;
        };
        writer.entries.push((field, zero.clone()));
        writer.zero = zero;
        writer.zero_threshold = threshold;
        // The buckets below it are the collector's to fold into the zero bucket.
        let schema = writer.schema;
        for negative in [false, true] {
            writer
                .side(negative)
                .retain(|&i, _| lower_bound(i, schema) >= threshold);
        }
        true
    }

    /// Writes at half the resolution from now on. The buckets already counted become the
    /// wider buckets holding them (created empty) so that the bucket number stays exact.
    fn reduce_schema(&self, writer: &mut Writer) {
        let field = Field::Schema(writer.schema - 1);
        let Ok(marker) = self.keys.slots(&[field]) else {
            return;
        };
        writer.entries.push((field, marker));
        writer.schema -= 1;
        for negative in [false, true] {
            let old = std::mem::take(writer.side(negative));
            let mut wider: Vec<i32> = old.keys().map(|&i| coarser_index(i, 1)).collect();
            wider.sort_unstable();
            wider.dedup();
            for index in wider {
                self.open_bucket(writer, negative, index);
            }
        }
    }

    /// This process's own counts (not merged with other processes').
    pub fn counts(&self) -> BucketCounts {
        let mut reader = ChildReader::default();
        reader.add(Field::Count, load_f64(self.totals.value(0)));
        reader.add(Field::Sum, load_f64(self.totals.value(1)));
        for (field, slots) in &self.lock().entries {
            reader.add(*field, load_f64(slots.value(0)));
        }
        reader.finish()
    }
}

/// Gathers the entries of one child from any number of side files, then merges them.
#[derive(Debug, Default)]
pub struct ChildReader {
    count: f64,
    sum: f64,
    /// The lowest schema seen; the narrowest and widest zero thresholds seen.
    schema: Option<i32>,
    zero_thresholds: Option<(f64, f64)>,
    zero_count: f64,
    /// Buckets per schema, per sign.
    buckets: HashMap<i32, [Vec<(i32, u64)>; 2]>,
}

impl ChildReader {
    pub fn add(&mut self, field: Field, value: f64) {
        match field {
            Field::Count => self.count += value,
            Field::Sum => self.sum += value,
            Field::Schema(schema) => self.see_schema(schema),
            Field::Zero(threshold) => {
                let (low, high) = self.zero_thresholds.unwrap_or((threshold, threshold));
                self.zero_thresholds = Some((low.min(threshold), high.max(threshold)));
                self.zero_count += value;
            }
            Field::Bucket {
                schema,
                negative,
                index,
            } => {
                self.see_schema(schema);
                let count = value.max(0.0) as u64;
                if count > 0 {
                    let sides = self.buckets.entry(schema).or_default();
                    sides[negative as usize].push((index, count));
                }
            }
        }
    }

    fn see_schema(&mut self, schema: i32) {
        self.schema = Some(self.schema.map_or(schema, |s| s.min(schema)));
    }

    /// The counts at the lowest schema seen and the widest zero bucket.
    ///
    /// Buckets wholly below the widest threshold (counted while a zero bucket was narrower)
    /// move into the zero bucket, each at the schema it was counted at, before reducing. One
    /// that straddles the threshold stays, as in one process whose widened threshold is no
    /// bucket boundary after its resolution halved (its values are above the threshold);
    /// Prometheus' own merge would widen to its upper bound instead.
    pub fn finish(self) -> BucketCounts {
        let schema = self.schema.unwrap_or(0);
        let widest = self.zero_thresholds.map_or(0.0, |t| t.1);
        let mut merged = BucketCounts {
            schema,
            zero_threshold: widest,
            zero_count: self.zero_count.max(0.0) as u64,
            count: self.count.max(0.0) as u64,
            sum: self.sum,
            positive: Vec::new(),
            negative: Vec::new(),
        };
        for (at, sides) in self.buckets {
            let mut part = BucketCounts {
                schema: at,
                ..Default::default()
            };
            for (side, mut buckets) in [&mut part.positive, &mut part.negative]
                .into_iter()
                .zip(sides)
            {
                buckets.sort_unstable_by_key(|b| b.0);
                let below = buckets
                    .iter()
                    .take_while(|b| upper_bound(b.0, at) <= widest)
                    .count();
                merged.zero_count += buckets.drain(..below).map(|b| b.1).sum::<u64>();
                *side = buckets;
            }
            part.reduce_schema(schema);
            merged.add(&part);
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::multiprocess::file::read_entries;
    use crate::core::multiprocess::key::parse_key;
    use crate::core::native_histogram::{merge, SparseHistogram};
    use std::path::{Path, PathBuf};

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fastprom-native-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn side_file(directory: &Path) -> FileId {
        FileId {
            directory: directory.to_path_buf(),
            prefix: "histogram".into(),
            process: None,
            extension: "db",
        }
    }

    /// The counts the collector reads from a side file.
    fn read_back(path: &Path) -> BucketCounts {
        let mut reader = ChildReader::default();
        for entry in read_entries(&std::fs::read(path).unwrap()).unwrap() {
            let key = parse_key(&entry.key).unwrap();
            assert_eq!((key.metric_name.as_str(), key.help.as_str()), ("h", "Help"));
            assert_eq!(key.labels, [("a".to_owned(), "1".to_owned())]);
            reader.add(Field::parse(&key.sample_name).unwrap(), entry.value);
        }
        reader.finish()
    }

    /// xorshift values spread over many octaves, both signs, some zeros.
    fn values(n: usize) -> Vec<f64> {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let magnitude =
                    2f64.powi((seed % 40) as i32 - 20) * (1.0 + (seed >> 40) as f64 / 2e7);
                match i % 7 {
                    0 => -magnitude,
                    3 => 0.0,
                    _ => magnitude,
                }
            })
            .collect()
    }

    #[test]
    fn field_names_round_trip() {
        let fields = [
            Field::Count,
            Field::Sum,
            Field::Schema(-4),
            Field::Zero(2.938735877055719e-39),
            Field::Zero(0.1),
            Field::Bucket {
                schema: 3,
                negative: true,
                index: -17,
            },
            Field::Bucket {
                schema: 0,
                negative: false,
                index: 8192,
            },
        ];
        for field in fields {
            assert_eq!(Field::parse(&field.sample_name()), Some(field));
        }
        for bad in [
            "",
            "count:1",
            "zero",
            "zero:x",
            "positive:1",
            "negative:1:2:3",
            "h_sum",
        ] {
            assert_eq!(Field::parse(bad), None, "{bad}");
        }
    }

    /// One process's side file reads back as the in-memory native histogram with the same
    /// settings and observations, also when the bucket limit halves the resolution or widens
    /// the zero bucket.
    #[test]
    fn one_process_matches_the_in_memory_histogram() {
        let limited = |max_buckets, max_zero_threshold| NativeConfig {
            max_buckets,
            max_zero_threshold,
            ..NativeConfig::with_schema(3)
        };
        let configs = [
            NativeConfig::with_schema(3),
            NativeConfig {
                zero_threshold: 0.001,
                ..NativeConfig::with_schema(-1)
            },
            limited(20, 0.0),
            limited(20, 1e-4),
        ];
        for (n, config) in configs.into_iter().enumerate() {
            let dir = temp_dir(&format!("one-{n}"));
            let labels = vec![("a".to_owned(), "1".to_owned())];
            let mapped = MappedNative::new(side_file(&dir), "h", "Help", labels, config).unwrap();
            let memory = SparseHistogram::new(config);
            for v in values(3000) {
                mapped.observe(v);
                memory.observe(v);
            }
            let expected = BucketCounts::from_snapshot(&memory.snapshot());
            if config.max_buckets > 0 {
                assert!(expected.schema < 3, "the limit was reached: {expected:?}");
            }
            assert_eq!(mapped.counts(), expected, "config {n}");
            let path = dir.join(format!("histogram_native_{}.fpn", std::process::id()));
            assert_eq!(read_back(&path), expected, "config {n}, read back");
        }
    }

    /// Processes at different schemas and zero thresholds merge as the in-memory merge does.
    #[test]
    fn processes_merge_at_the_lowest_schema_and_widest_zero_bucket() {
        let configs = [
            NativeConfig::with_schema(3),
            // A bucket boundary at every schema from 0: no bucket straddles it.
            NativeConfig {
                zero_threshold: 2f64.powi(-7),
                ..NativeConfig::with_schema(1)
            },
            NativeConfig::with_schema(2),
        ];
        let all = values(2000);
        let mut reader = ChildReader::default();
        let mut expected: Option<crate::core::model::NativeHistogramSnapshot> = None;
        for (p, config) in configs.into_iter().enumerate() {
            let memory = SparseHistogram::new(config);
            all.iter()
                .skip(p)
                .step_by(3)
                .for_each(|v| memory.observe(*v));
            let snapshot = memory.snapshot();
            let counts = BucketCounts::from_snapshot(&snapshot);
            // The entries such a process writes.
            reader.add(Field::Count, counts.count as f64);
            reader.add(Field::Sum, counts.sum);
            reader.add(Field::Schema(counts.schema), 0.0);
            reader.add(Field::Zero(counts.zero_threshold), counts.zero_count as f64);
            for (negative, side) in [(false, &counts.positive), (true, &counts.negative)] {
                for &(index, count) in side {
                    let schema = counts.schema;
                    reader.add(
                        Field::Bucket {
                            schema,
                            negative,
                            index,
                        },
                        count as f64,
                    );
                }
            }
            expected = Some(match expected {
                None => snapshot,
                Some(merged) => merge(&merged, &snapshot),
            });
        }
        let mut expected = BucketCounts::from_snapshot(&expected.unwrap());
        let mut merged = reader.finish();
        // Sums add in another order.
        assert!((merged.sum - expected.sum).abs() < 1e-9 * expected.sum.abs());
        (merged.sum, expected.sum) = (0.0, 0.0);
        assert_eq!((merged.schema, merged.zero_threshold), (1, 2f64.powi(-7)));
        assert_eq!(merged, expected);
    }

    #[test]
    fn a_removed_child_opens_no_entries() {
        let dir = temp_dir("removed");
        let labels = vec![("a".to_owned(), "1".to_owned())];
        let config = NativeConfig::with_schema(0);
        let mapped = MappedNative::new(side_file(&dir), "h", "Help", labels, config).unwrap();
        mapped.observe(1.0);
        let path = dir.join(format!("histogram_native_{}.fpn", std::process::id()));
        let entries = || read_entries(&std::fs::read(&path).unwrap()).unwrap().len();
        assert_eq!(entries(), 5, "count, sum, schema, zero, one bucket");
        super::super::mapped::remove(&mapped.slots()).unwrap();
        assert_eq!(entries(), 0);
        mapped.observe(1.0);
        mapped.observe(100.0);
        assert_eq!(entries(), 0);
        assert_eq!(mapped.counts().count, 3, "the detached cells keep counting");
    }
}
