//! The reading side of the summary sketches (see `sketch`): the collector sums the live windows
//! of every side file, live or dead process, and reports each summary's quantiles before its
//! `_count`; compaction folds dead processes' side files into `summary_sketch_archive.fps`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::file::visit_entries;
use super::key::parse_key;
use super::mapped::encode_file;
use super::sketch::{Bucket, SeriesInfo, SketchEntry, FILE_EXTENSION, FILE_PREFIX};
use crate::core::format::float_to_go_string;
use crate::core::model::{MetricType, OwnedFamily, OwnedSample};

/// Whether `path` is a side file of summary sketches (`summary_sketch_<pid>.fps`).
pub fn is_sketch_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    path.extension().is_some_and(|e| e == FILE_EXTENSION)
        && name.starts_with(FILE_PREFIX)
        && name[FILE_PREFIX.len()..].starts_with('_')
}

/// Counts per bucket; `normalize` sorts them ascending by value, one per bucket.
type Counts = Vec<(Bucket, f64)>;

fn normalize(counts: &mut Counts) {
    counts.sort_unstable_by_key(|(bucket, _)| bucket.order());
    counts.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    counts.retain(|(_, count)| *count != 0.0);
}

/// One file's sketches: per series, per ring position, the window and its counts.
#[derive(Default)]
struct FileSketches {
    series: IndexMap<u64, SeriesInfo>,
    windows: HashMap<(u64, usize), (f64, Counts)>,
}

fn read_file(bytes: &[u8]) -> Result<FileSketches, String> {
    let mut sketches = FileSketches::default();
    let mut counts = Vec::new();
    let mut invalid = None;
    let read = visit_entries(bytes, |key, value| match SketchEntry::parse(key) {
        Some(SketchEntry::Series(info)) => {
            sketches.series.insert(info.id, info);
        }
        Some(SketchEntry::Stamp { id, ring }) => {
            sketches.windows.entry((id, ring)).or_default().0 = value;
        }
        Some(SketchEntry::Count { id, ring, bucket }) => counts.push((id, ring, bucket, value)),
        None => {
            invalid.get_or_insert_with(|| key.to_owned());
        }
    });
    read.map_err(|e| e.message)?;
    if let Some(key) = invalid {
        return Err(format!("Invalid sketch key: {key}"));
    }
    for (id, ring, bucket, count) in counts {
        if let Some((_, window)) = sketches.windows.get_mut(&(id, ring)) {
            if count != 0.0 {
                window.push((bucket, count));
            }
        }
    }
    Ok(sketches)
}

/// The windows of `info`'s series that are live at `now`.
fn live_windows<'a>(
    sketches: &'a FileSketches,
    info: &'a SeriesInfo,
    now: f64,
) -> impl Iterator<Item = (usize, f64, &'a Counts)> {
    (0..info.age_buckets).filter_map(move |ring| {
        let (window, counts) = sketches.windows.get(&(info.id, ring))?;
        info.is_live(*window, now)
            .then_some((ring, *window, counts))
    })
}

/// A summary series' identity in merged output: metric name and labels sorted by name.
type SeriesKey = (String, Vec<(String, String)>);

/// The sum of every process's live windows, per series.
struct MergedSketch {
    objectives: Vec<(f64, f64)>,
    counts: Counts,
}

/// Sums the live windows of `paths` at `now`; unreadable files are reported in `warnings`.
fn merge_sketches(
    paths: &[PathBuf],
    now: f64,
    warnings: &mut Vec<(PathBuf, String)>,
) -> HashMap<SeriesKey, MergedSketch> {
    let mut merged: HashMap<SeriesKey, MergedSketch> = HashMap::new();
    for path in paths {
        let bytes = match read_used(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                warnings.push((path.clone(), e.to_string()));
                continue;
            }
        };
        let sketches = match read_file(&bytes) {
            Ok(sketches) => sketches,
            Err(message) => {
                warnings.push((path.clone(), message));
                continue;
            }
        };
        for info in sketches.series.values() {
            let Some(mut key) = parse_key(&info.mmap_key) else {
                warnings.push((path.clone(), format!("Invalid key: {}", info.mmap_key)));
                continue;
            };
            key.labels.sort();
            let sketch = merged
                .entry((key.metric_name, key.labels))
                .or_insert_with(|| MergedSketch {
                    objectives: info.objectives.clone(),
                    counts: Counts::new(),
                });
            for (_, _, counts) in live_windows(&sketches, info, now) {
                sketch.counts.extend_from_slice(counts);
            }
        }
    }
    for sketch in merged.values_mut() {
        normalize(&mut sketch.counts);
    }
    merged
}

/// The header and used bytes of a side file (not the zeros of its unused capacity).
fn read_used(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut bytes = vec![0u8; 8];
    if file.read_exact(&mut bytes).is_err() {
        return Ok(Vec::new());
    }
    let used = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let rest = usize::try_from(used)
        .unwrap_or(0)
        .saturating_sub(bytes.len());
    file.take(rest as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The value of quantile `q` (`counts` normalized): the representative of the bucket holding
/// the observation of rank `ceil(q n)` (1-based); NaN without observations.
fn quantile(counts: &Counts, q: f64) -> f64 {
    let total: f64 = counts.iter().map(|(_, c)| c).sum();
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = (q * total).ceil().max(1.0);
    let mut seen = 0.0;
    for (bucket, count) in counts {
        seen += count;
        if seen >= rank {
            return bucket.value();
        }
    }
    counts.last().map_or(f64::NAN, |(b, _)| b.value())
}

/// Adds the quantiles merged from the side files `paths` to the summaries of `families`: before
/// the first sample of each label set that has a sketch, one `name{quantile="q"}` sample per
/// objective.
pub fn add_quantiles(
    families: &mut [OwnedFamily],
    paths: &[PathBuf],
    now: f64,
    warnings: &mut Vec<(PathBuf, String)>,
) {
    if paths.is_empty() {
        return;
    }
    let sketches = merge_sketches(paths, now, warnings);
    for family in families
        .iter_mut()
        .filter(|f| f.metric_type == MetricType::Summary)
    {
        let samples = std::mem::take(&mut family.samples);
        let mut done: Vec<Vec<(String, String)>> = Vec::new();
        for sample in samples {
            let mut labels = sample.labels.clone();
            labels.sort();
            if !done.contains(&labels) {
                let key = (family.name.clone(), labels);
                if let Some(sketch) = sketches.get(&key) {
                    push_quantiles(&mut family.samples, &family.name, &sample.labels, sketch);
                }
                done.push(key.1);
            }
            family.samples.push(sample);
        }
    }
}

fn push_quantiles(
    samples: &mut Vec<OwnedSample>,
    name: &str,
    labels: &[(String, String)],
    sketch: &MergedSketch,
) {
    for (q, _) in &sketch.objectives {
        let mut labels = labels.to_vec();
        labels.push(("quantile".to_owned(), float_to_go_string(*q)));
        samples.push(OwnedSample {
            name: name.to_owned(),
            labels,
            value: Some(quantile(&sketch.counts, *q)),
            timestamp: None,
            exemplar: None,
            native_histogram: None,
        });
    }
}

/// The archive of dead processes' sketches.
pub fn archive_path(directory: &Path) -> PathBuf {
    directory.join(format!("{FILE_PREFIX}_archive.{FILE_EXTENSION}"))
}

/// Folds the side files `dead` into the archive and deletes them; returns how many. Per series
/// and ring position the latest window is kept (an older one there has expired), counts of the
/// same window summed; windows expired at `now` are dropped, series entries kept (their
/// summaries keep their quantile samples, NaN once empty).
pub fn fold_into_archive(directory: &Path, dead: &[PathBuf], now: f64) -> io::Result<usize> {
    let archive = archive_path(directory);
    let mut folded = FileSketches::default();
    if archive.exists() {
        let sketches = read_file(&fs::read(&archive)?).map_err(io::Error::other)?;
        fold(&mut folded, &sketches, now);
    }
    let mut done = Vec::new();
    for path in dead {
        // An unreadable file stays for the collector to report.
        let Ok(bytes) = fs::read(path) else { continue };
        if let Ok(sketches) = read_file(&bytes) {
            fold(&mut folded, &sketches, now);
            done.push(path);
        }
    }
    if done.is_empty() {
        return Ok(0);
    }
    let temporary = directory.join(format!(".{FILE_PREFIX}_archive.{FILE_EXTENSION}.tmp"));
    let mut out = fs::File::create(&temporary)?;
    out.write_all(&encode_archive(&mut folded))?;
    out.sync_all()?;
    fs::rename(&temporary, &archive)?;
    for path in &done {
        fs::remove_file(path)?;
    }
    Ok(done.len())
}

fn fold(into: &mut FileSketches, from: &FileSketches, now: f64) {
    for info in from.series.values() {
        into.series.entry(info.id).or_insert_with(|| info.clone());
        for (ring, window, counts) in live_windows(from, info, now) {
            let slot = into
                .windows
                .entry((info.id, ring))
                .or_insert((window, Counts::new()));
            if window > slot.0 {
                *slot = (window, Counts::new());
            }
            if window == slot.0 {
                slot.1.extend_from_slice(counts);
            }
        }
    }
}

fn encode_archive(sketches: &mut FileSketches) -> Vec<u8> {
    let mut entries: Vec<(String, f64)> = Vec::new();
    for info in sketches.series.values() {
        entries.push((info.key(), 0.0));
        let id = info.id;
        for ring in 0..info.age_buckets {
            let Some((window, counts)) = sketches.windows.get_mut(&(id, ring)) else {
                continue;
            };
            normalize(counts);
            entries.push((SketchEntry::Stamp { id, ring }.key(), *window));
            for &(bucket, count) in counts.iter() {
                entries.push((SketchEntry::Count { id, ring, bucket }.key(), count));
            }
        }
    }
    encode_file(entries.iter().map(|(k, v)| (k.as_str(), *v, 0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::multiprocess::key::mmap_key;
    use crate::core::multiprocess::mapped::FileId;
    use crate::core::multiprocess::sketch::MappedSketch;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("fastprom-sketch-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// The side file a process named `process` writes.
        fn file(&self, process: &str) -> FileId {
            FileId {
                directory: self.0.clone(),
                prefix: FILE_PREFIX.to_owned(),
                process: Some(process.to_owned()),
                extension: FILE_EXTENSION,
            }
        }

        fn path(&self, process: &str) -> PathBuf {
            self.0
                .join(format!("{FILE_PREFIX}_{process}.{FILE_EXTENSION}"))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const OBJECTIVES: [(f64, f64); 4] = [(0.01, 0.001), (0.5, 0.05), (0.9, 0.01), (0.99, 0.001)];

    fn key(route: &str) -> String {
        mmap_key("lat", "lat", &[("route", route)], "Latency.")
    }

    fn sketch(dir: &TempDir, process: &str, route: &str) -> MappedSketch {
        let objectives = OBJECTIVES.to_vec();
        MappedSketch::new(dir.file(process), &key(route), objectives, 10.0, 5).unwrap()
    }

    /// Deterministic values spread over many orders of magnitude, both signs.
    fn values(seed: u64, n: usize) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                let v = (unit * 20.0 - 8.0).exp();
                if state.is_multiple_of(7) {
                    -v
                } else {
                    v
                }
            })
            .collect()
    }

    fn merged_at(dir: &TempDir, now: f64) -> HashMap<SeriesKey, MergedSketch> {
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| is_sketch_file(p))
            .collect();
        paths.sort();
        let mut warnings = Vec::new();
        let merged = merge_sketches(&paths, now, &mut warnings);
        assert_eq!(warnings, []);
        merged
    }

    fn series(route: &str) -> SeriesKey {
        (
            "lat".to_owned(),
            vec![("route".to_owned(), route.to_owned())],
        )
    }

    #[test]
    fn quantiles_merged_across_processes_are_within_one_percent() {
        let dir = TempDir::new("merge");
        let mut all = Vec::new();
        for p in 0..4 {
            let sketch = sketch(&dir, &format!("p{p}"), "/a");
            let values = values(p + 1, 5000);
            for v in &values {
                sketch.observe(*v, 100.0);
            }
            all.extend(values);
        }
        all.sort_by(f64::total_cmp);
        let merged = merged_at(&dir, 105.0);
        let sketch = &merged[&series("/a")];
        assert_eq!(sketch.objectives, OBJECTIVES);
        for (q, _) in OBJECTIVES {
            let exact = all[(q * all.len() as f64).ceil() as usize - 1];
            let estimate = quantile(&sketch.counts, q);
            assert!(
                ((estimate - exact) / exact).abs() <= 0.01,
                "q={q}: {estimate} vs {exact}"
            );
        }
    }

    #[test]
    fn windows_expire_and_positions_are_reused() {
        let dir = TempDir::new("windows");
        let sketch = sketch(&dir, "w", "/a");
        // w = 2 s: window 50 ([100, 102)) in position 0, window 51 in position 1.
        sketch.observe(1.0, 100.5);
        sketch.observe(2.0, 102.5);
        let counts = |now| {
            let merged = merged_at(&dir, now);
            let total: f64 = merged[&series("/a")].counts.iter().map(|(_, c)| c).sum();
            total
        };
        assert_eq!(counts(103.0), 2.0);
        // At 110.5 (window 55) window 50 has left the last five; 51 has not.
        assert_eq!(counts(110.5), 1.0);
        // Window 55 lands in position 0 again: the old counts there are zeroed first.
        sketch.observe(3.0, 110.5);
        let merged = merged_at(&dir, 110.5);
        let values: Vec<f64> = merged[&series("/a")]
            .counts
            .iter()
            .map(|(b, _)| b.value())
            .collect();
        assert_eq!(values.len(), 2);
        assert!((values[0] / 2.0 - 1.0).abs() < 0.01 && (values[1] / 3.0 - 1.0).abs() < 0.01);
        assert_eq!(counts(100.0 + 60.0), 0.0);
        assert!(quantile(&merged_at(&dir, 160.0)[&series("/a")].counts, 0.5).is_nan());
    }

    #[test]
    fn a_later_process_of_the_same_name_clears_the_buckets_it_finds() {
        let dir = TempDir::new("again");
        let earlier = sketch(&dir, "same", "/a");
        earlier.observe(1.0, 100.0);
        drop(earlier);
        // Window 55 falls in position 0, where the earlier process counted window 50.
        let later = sketch(&dir, "same", "/a");
        later.observe(5.0, 110.0);
        let merged = merged_at(&dir, 110.0);
        assert_eq!(
            merged[&series("/a")].counts,
            [(Bucket::of(5.0).unwrap(), 1.0)]
        );
    }

    #[test]
    fn extreme_values_are_counted_in_few_slots() {
        let dir = TempDir::new("extreme");
        let sketch = sketch(&dir, "x", "/a");
        let values = [
            f64::INFINITY,
            1e-300,
            f64::MAX,
            f64::NEG_INFINITY,
            f64::NAN,
            0.0,
            -1e-310,
        ];
        for v in values {
            sketch.observe(v, 100.0);
        }
        let merged = merged_at(&dir, 100.0);
        let counts = &merged[&series("/a")].counts;
        // NaN is not counted; -1e-310 (subnormal) is a zero.
        let total: f64 = counts.iter().map(|(_, c)| c).sum();
        assert_eq!(total, 6.0);
        assert_eq!(quantile(counts, 0.01), f64::NEG_INFINITY);
        assert_eq!(quantile(counts, 0.5), 0.0);
        assert_eq!(quantile(counts, 0.99), f64::INFINITY);
        assert!(fs::metadata(dir.path("x")).unwrap().len() <= 1 << 16);
    }

    #[test]
    fn bad_side_files_are_skipped_with_a_warning() {
        let dir = TempDir::new("bad");
        sketch(&dir, "good", "/a").observe(2.0, 100.0);
        let junk = crate::core::multiprocess::mapped::MappedFile::open(&dir.path("junk")).unwrap();
        junk.slot("not a sketch key").unwrap();
        fs::write(dir.path("short"), [64, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap();
        let paths = ["good", "junk", "short", "gone"].map(|p| dir.path(p));
        let mut warnings = Vec::new();
        let merged = merge_sketches(&paths, 100.0, &mut warnings);
        assert_eq!(merged[&series("/a")].counts.len(), 1);
        let reasons: Vec<&str> = warnings.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "Invalid sketch key: not a sketch key",
                "File is truncated: its header says 64 bytes are used but it has 9."
            ]
        );
    }

    #[test]
    fn quantile_samples_come_before_each_summary_series() {
        let dir = TempDir::new("samples");
        sketch(&dir, "s", "/a").observe(4.0, 100.0);
        let sample = |name: &str, route: &str, value| OwnedSample {
            name: name.to_owned(),
            labels: vec![("route".to_owned(), route.to_owned())],
            value: Some(value),
            timestamp: None,
            exemplar: None,
            native_histogram: None,
        };
        let mut families = vec![OwnedFamily {
            name: "lat".to_owned(),
            documentation: "Latency.".to_owned(),
            metric_type: MetricType::Summary,
            unit: String::new(),
            samples: vec![
                sample("lat_count", "/a", 1.0),
                sample("lat_sum", "/a", 4.0),
                sample("lat_count", "/b", 0.0),
                sample("lat_sum", "/b", 0.0),
            ],
        }];
        let mut warnings = Vec::new();
        add_quantiles(&mut families, &[dir.path("s")], 101.0, &mut warnings);
        let got: Vec<(String, Vec<(String, String)>)> = families[0]
            .samples
            .iter()
            .map(|s| (s.name.clone(), s.labels.clone()))
            .collect();
        let labels = |route: &str, q: Option<&str>| {
            let mut labels = vec![("route".to_owned(), route.to_owned())];
            labels.extend(q.map(|q| ("quantile".to_owned(), q.to_owned())));
            labels
        };
        let mut expected: Vec<(String, Vec<(String, String)>)> = ["0.01", "0.5", "0.9", "0.99"]
            .iter()
            .map(|q| ("lat".to_owned(), labels("/a", Some(q))))
            .collect();
        expected.push(("lat_count".to_owned(), labels("/a", None)));
        expected.push(("lat_sum".to_owned(), labels("/a", None)));
        expected.push(("lat_count".to_owned(), labels("/b", None)));
        expected.push(("lat_sum".to_owned(), labels("/b", None)));
        assert_eq!(got, expected);
        assert!((families[0].samples[1].value.unwrap() / 4.0 - 1.0).abs() < 0.01);
    }

    #[test]
    fn dead_sketches_fold_into_the_archive() {
        let dir = TempDir::new("fold");
        // Window 50 (position 0) in a and b, then b goes on to window 51 (position 1).
        sketch(&dir, "a", "/a").observe(1.0, 100.0);
        let b = sketch(&dir, "b", "/a");
        b.observe(1.0, 100.0);
        b.observe(5.0, 102.0);
        sketch(&dir, "c", "/c").observe(7.0, 100.0);
        let before = merged_at(&dir, 103.0);
        let dead = [dir.path("a"), dir.path("c")];
        assert_eq!(fold_into_archive(&dir.0, &dead, 103.0).unwrap(), 2);
        assert!(!dir.path("a").exists() && dir.path("b").exists());
        let after = merged_at(&dir, 103.0);
        for route in ["/a", "/c"] {
            assert_eq!(after[&series(route)].counts, before[&series(route)].counts);
        }
        // Folding b later, when window 50 has expired: only window 51 is kept.
        assert_eq!(
            fold_into_archive(&dir.0, &[dir.path("b")], 111.0).unwrap(),
            1
        );
        let archive = fs::read(archive_path(&dir.0)).unwrap();
        let sketches = read_file(&archive).unwrap();
        assert_eq!(sketches.series.len(), 2, "series entries stay");
        let windows: Vec<f64> = sketches.windows.values().map(|(w, _)| *w).collect();
        assert_eq!(windows, [51.0]);
        let merged = merged_at(&dir, 111.0);
        assert_eq!(
            merged[&series("/a")].counts,
            [(Bucket::of(5.0).unwrap(), 1.0)]
        );
        assert!(merged[&series("/c")].counts.is_empty());
    }
}
