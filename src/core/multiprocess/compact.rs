//! Compaction: the files of dead processes are folded into one archive file per kind
//! (`counter_archive.db`, `gauge_max_archive.db`, ...) and deleted, so a scrape reads files
//! for live processes plus the archives however many processes came and went. Native
//! histograms' side files fold the same way (their entries add by key) into
//! `histogram_native_archive.fpn`.
//!
//! Archives are in the reference's format, so prometheus_client's collector reads them too
//! (a gauge archive's `pid` label is `archive`; the modes that keep it, `all` and the live
//! ones, are never archived). An exclusive lock on the directory's lock file keeps concurrent
//! compactions apart and keeps fastprom's collectors (which take it shared) from seeing a
//! half-done compaction; archives are replaced by atomic rename.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::file::read_entries;
use super::mapped::encode_file;
use super::native;
use super::sketch::{self, wall_clock};
use super::sketch_merge::fold_into_archive as fold_sketches;

pub const LOCK_FILE: &str = ".fastprom.lock";
const ARCHIVE: &str = "archive";

/// A lock on the directory's lock file (`flock` on Unix, `LockFileEx` on Windows), released
/// on drop.
///
/// The lock belongs to the open file, which a forked child shares: closing the descriptor
/// would not release it while a child still has its copy, so the owner unlocks explicitly,
/// and a child (which never took it) only closes its copy.
pub struct DirectoryLock {
    file: File,
    owner: u32,
}

impl Drop for DirectoryLock {
    fn drop(&mut self) {
        if self.owner == std::process::id() {
            let _ = self.file.unlock();
        }
    }
}

impl DirectoryLock {
    pub fn shared(directory: &Path) -> io::Result<DirectoryLock> {
        DirectoryLock::take(directory, File::lock_shared)
    }

    pub fn exclusive(directory: &Path) -> io::Result<DirectoryLock> {
        DirectoryLock::take(directory, File::lock)
    }

    /// A reader's shared lock where one can be had. A directory that is gone, or read-only
    /// without a lock file (a read-only mount of the writers' volume), gets none: nothing
    /// can compact there. A read-only lock file that exists is locked all the same.
    pub fn shared_if_possible(directory: &Path) -> io::Result<Option<DirectoryLock>> {
        use io::ErrorKind::{NotFound, PermissionDenied, ReadOnlyFilesystem};
        match DirectoryLock::shared(directory) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if matches!(e.kind(), NotFound | PermissionDenied | ReadOnlyFilesystem) => {
                match File::open(directory.join(LOCK_FILE)) {
                    Ok(file) => lock_retrying(&file, File::lock_shared)
                        .map(|()| Some(DirectoryLock::held(file))),
                    Err(_) => Ok(None),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn take(directory: &Path, lock: fn(&File) -> io::Result<()>) -> io::Result<DirectoryLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(directory.join(LOCK_FILE))?;
        lock_retrying(&file, lock)?;
        Ok(DirectoryLock::held(file))
    }

    /// A lock this process took on `file`.
    fn held(file: File) -> DirectoryLock {
        DirectoryLock {
            file,
            owner: std::process::id(),
        }
    }
}

fn lock_retrying(file: &File, lock: fn(&File) -> io::Result<()>) -> io::Result<()> {
    loop {
        match lock(file) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// How the entries of one kind of file combine, as the collector merges them.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fold {
    Sum,
    Min,
    Max,
    MostRecent,
}

fn fold_of(prefix: &str) -> Option<Fold> {
    Some(match prefix {
        "counter" | "histogram" | "summary" | "gauge_sum" | native::FILE_PREFIX => Fold::Sum,
        "gauge_min" => Fold::Min,
        "gauge_max" => Fold::Max,
        "gauge_mostrecent" => Fold::MostRecent,
        _ => return None,
    })
}

/// `counter_123.db` → (`counter`, 123); `gauge_livesum_123.db` → (`gauge_livesum`, 123);
/// the side files `histogram_native_123.fpn` and `summary_sketch_123.fps` →
/// (`histogram_native`, 123) and (`summary_sketch`, 123).
fn split_name(name: &str) -> Option<(&str, u32)> {
    let (stem, extension) = name.rsplit_once('.')?;
    let (prefix, pid) = stem.rsplit_once('_')?;
    if extension != extension_of(prefix) {
        return None;
    }
    Some((prefix, pid.parse().ok()?))
}

/// The files of a kind: the reference's `.db`, or one of fastprom's side files.
fn extension_of(prefix: &str) -> &'static str {
    match prefix {
        native::FILE_PREFIX => native::EXTENSION,
        sketch::FILE_PREFIX => sketch::FILE_EXTENSION,
        _ => "db",
    }
}

fn is_dead(pid: u32, dead: Option<&[u32]>) -> bool {
    match dead {
        Some(pids) => pids.contains(&pid),
        None => pid != std::process::id() && !process_exists(pid),
    }
}

#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let signalled = unsafe { libc::kill(pid, 0) } == 0;
    signalled || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// No portable liveness check without a platform crate: every process counts as running, so
/// `compact()` folds nothing by itself there; `mark_process_dead(pid)` names the dead ones.
#[cfg(not(unix))]
fn process_exists(_pid: u32) -> bool {
    true
}

/// Folds the files of the dead processes (`dead`, or every pid not running when `None`) into
/// the archives and deletes them; a live gauge's file is just deleted; summary sketches fold
/// into `summary_sketch_archive.fps` (their expired windows dropped). A file that cannot be
/// read stays where it is. Returns how many files were folded or deleted.
pub fn compact(directory: &Path, dead: Option<&[u32]>) -> io::Result<usize> {
    let _lock = DirectoryLock::exclusive(directory)?;
    let mut to_fold: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut removed = 0;
    let mut dead_sketches = Vec::new();
    for entry in fs::read_dir(directory)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((prefix, pid)) = split_name(name) else {
            continue;
        };
        if !is_dead(pid, dead) {
            continue;
        }
        if prefix == sketch::FILE_PREFIX {
            dead_sketches.push(path);
        } else if prefix.starts_with("gauge_live") {
            removed += remove_if_present(&path)?;
        } else if fold_of(prefix).is_some() {
            to_fold.entry(prefix.to_string()).or_default().push(path);
        }
    }
    // Folded in directory order, the order both collectors read files in: a `mostrecent`
    // gauge's sets stamped within one tick of the coarse clock tie, and the archive keeps the
    // first of them, the value the collectors showed before the compaction.
    for (prefix, files) in to_fold {
        removed += fold_into_archive(directory, &prefix, &files)?;
    }
    if !dead_sketches.is_empty() {
        dead_sketches.sort();
        removed += fold_sketches(directory, &dead_sketches, wall_clock())?;
    }
    Ok(removed)
}

fn remove_if_present(path: &Path) -> io::Result<usize> {
    match fs::remove_file(path) {
        Ok(()) => Ok(1),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Entries of a file as key → (value, timestamp), in file order.
type Entries = IndexMap<String, (f64, f64)>;

fn fold_into_archive(directory: &Path, prefix: &str, files: &[PathBuf]) -> io::Result<usize> {
    let Some(fold) = fold_of(prefix) else {
        return Ok(0);
    };
    let extension = extension_of(prefix);
    let archive = directory.join(format!("{prefix}_{ARCHIVE}.{extension}"));
    let mut entries = Entries::new();
    if archive.exists() {
        add_file(&mut entries, &fs::read(&archive)?, fold).map_err(io::Error::other)?;
    }
    let mut folded = Vec::new();
    for file in files {
        let Ok(bytes) = fs::read(file) else { continue };
        // An unreadable file stays for the collector to report.
        if add_file(&mut entries, &bytes, fold).is_ok() {
            folded.push(file);
        }
    }
    if folded.is_empty() {
        return Ok(0);
    }
    let contents = encode_file(entries.iter().map(|(k, (v, t))| (k.as_str(), *v, *t)));
    let temporary = directory.join(format!(".{prefix}_{ARCHIVE}.{extension}.tmp"));
    let mut out = File::create(&temporary)?;
    out.write_all(&contents)?;
    out.sync_all()?;
    fs::rename(&temporary, &archive)?;
    let mut removed = 0;
    for file in folded {
        removed += remove_if_present(file)?;
    }
    Ok(removed)
}

fn add_file(entries: &mut Entries, bytes: &[u8], fold: Fold) -> Result<(), String> {
    for entry in read_entries(bytes).map_err(|e| e.message)? {
        // Only a most-recent gauge's timestamp means anything in an archive; elsewhere it is
        // a histogram's or summary's sequence counter, which no writer bumps there.
        let timestamp = if fold == Fold::MostRecent {
            entry.timestamp
        } else {
            0.0
        };
        let incoming = (entry.value, timestamp);
        match entries.get_mut(&entry.key) {
            None => {
                entries.insert(entry.key, incoming);
            }
            Some(kept) => *kept = combine(fold, *kept, incoming),
        }
    }
    Ok(())
}

fn combine(fold: Fold, kept: (f64, f64), incoming: (f64, f64)) -> (f64, f64) {
    match fold {
        Fold::Sum => (kept.0 + incoming.0, 0.0),
        Fold::Min => (kept.0.min(incoming.0), 0.0),
        Fold::Max => (kept.0.max(incoming.0), 0.0),
        Fold::MostRecent if incoming.1 > kept.1 => incoming,
        Fold::MostRecent => kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::multiprocess::mapped::MappedFile;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fastprom-compact-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, entries: &[(&str, f64)]) {
        let file = MappedFile::open(&dir.join(name)).unwrap();
        for (key, value) in entries {
            crate::core::cell::add_f64(file.slot(key).unwrap(), *value);
        }
    }

    #[test]
    fn dead_counters_fold_into_one_archive() {
        let dir = temp_dir("fold");
        write(&dir, "counter_101.db", &[("a", 1.0), ("b", 2.0)]);
        write(&dir, "counter_102.db", &[("b", 3.0), ("c", 4.0)]);
        write(&dir, "counter_103.db", &[("a", 10.0)]);
        write(&dir, "gauge_livesum_101.db", &[("g", 1.0)]);
        write(&dir, "gauge_all_101.db", &[("g", 1.0)]);
        assert_eq!(compact(&dir, Some(&[101, 102])).unwrap(), 3);
        assert!(!dir.join("counter_101.db").exists());
        assert!(dir.join("counter_103.db").exists());
        assert!(dir.join("gauge_all_101.db").exists(), "per-pid gauges stay");
        let archive = fs::read(dir.join("counter_archive.db")).unwrap();
        // Entries come in the order the files were read (directory order).
        let mut values: Vec<(String, f64)> = read_entries(&archive)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = [("a", 1.0), ("b", 5.0), ("c", 4.0)];
        assert_eq!(values, expected.map(|(k, v)| (k.to_string(), v)));
        // Folding again adds to the archive.
        assert_eq!(compact(&dir, Some(&[103])).unwrap(), 1);
        let archive = fs::read(dir.join("counter_archive.db")).unwrap();
        let a = read_entries(&archive)
            .unwrap()
            .into_iter()
            .find(|e| e.key == "a");
        assert_eq!(a.map(|e| e.value), Some(11.0));
    }

    /// Sets stamped within one tick of the coarse clock tie: the archive keeps the first in
    /// directory order, the value both collectors showed before the compaction.
    #[test]
    fn tied_most_recent_sets_keep_the_first_file_in_directory_order() {
        let dir = temp_dir("tied");
        for (pid, value) in [(201, 1.0), (202, 2.0), (203, 3.0), (204, 4.0)] {
            let name = format!("gauge_mostrecent_{pid}.db");
            fs::write(dir.join(name), encode_file([("g", value, 7.5)].into_iter())).unwrap();
        }
        let first = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with("gauge_mostrecent_"))
            .unwrap();
        let first_value: f64 = first[17..20].parse::<f64>().unwrap() - 200.0;
        compact(&dir, Some(&[201, 202, 203, 204])).unwrap();
        let archive = fs::read(dir.join("gauge_mostrecent_archive.db")).unwrap();
        let entries = read_entries(&archive).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].value, entries[0].timestamp), (first_value, 7.5));
    }

    #[test]
    fn gauges_fold_by_their_mode() {
        assert_eq!(combine(Fold::Min, (3.0, 0.0), (2.0, 0.0)), (2.0, 0.0));
        assert_eq!(combine(Fold::Max, (3.0, 0.0), (2.0, 0.0)), (3.0, 0.0));
        assert_eq!(
            combine(Fold::MostRecent, (3.0, 5.0), (2.0, 4.0)),
            (3.0, 5.0)
        );
        assert_eq!(
            combine(Fold::MostRecent, (3.0, 5.0), (2.0, 6.0)),
            (2.0, 6.0)
        );
        assert_eq!(
            split_name("gauge_livesum_12.db"),
            Some(("gauge_livesum", 12))
        );
        assert_eq!(split_name("counter_archive.db"), None);
        assert_eq!(
            split_name("histogram_native_12.fpn"),
            Some(("histogram_native", 12))
        );
        assert_eq!(split_name("histogram_12.fpn"), None);
        assert_eq!(split_name("histogram_native_12.db"), None);
    }
}
