//! Reading multiprocess `.db` files (`mmap_dict.MmapedDict.read_all_values_from_file`).
//!
//! Layout (native byte order): `i32 used` (bytes in use, header included), 4 bytes of padding,
//! then entries back to back from offset 8: `i32 len`, `len` bytes of UTF-8 JSON key, spaces up to
//! the next multiple of 8 (1 to 8 of them), `f64 value`, `f64 timestamp`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::key::{parse_key, Key};

/// Where the first entry starts.
pub const HEADER_LEN: usize = 8;

/// One entry of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEntry {
    pub key: String,
    pub value: f64,
    pub timestamp: f64,
    /// Offset of `value` (the timestamp follows it).
    pub value_offset: usize,
}

/// An entry borrowing its key from the file's bytes.
#[derive(Clone, Copy)]
struct EntryRef<'a> {
    key: &'a str,
    value: f64,
    timestamp: f64,
    value_offset: usize,
}

/// Why a file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub message: String,
}

impl FileError {
    fn new(message: impl Into<String>) -> FileError {
        FileError {
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> FileError {
        FileError::new(e.to_string())
    }
}

/// All entries of a file's bytes (at least its first `used` bytes), in file order.
pub fn read_entries(bytes: &[u8]) -> Result<Vec<RawEntry>, FileError> {
    let used = used_len(bytes)?;
    let mut entries = Vec::new();
    for entry in entries_between(bytes, HEADER_LEN, used) {
        let entry = entry?;
        entries.push(RawEntry {
            key: entry.key.to_owned(),
            value: entry.value,
            timestamp: entry.timestamp,
            value_offset: entry.value_offset,
        });
    }
    Ok(entries)
}

/// Calls `visit` with each entry's key and value, borrowed from `bytes`, in file order.
pub fn visit_entries(bytes: &[u8], mut visit: impl FnMut(&str, f64)) -> Result<(), FileError> {
    let used = used_len(bytes)?;
    for entry in entries_between(bytes, HEADER_LEN, used) {
        let entry = entry?;
        visit(entry.key, entry.value);
    }
    Ok(())
}

/// The header's `used`, checked against the bytes present. An empty file (just created, not yet
/// sized) and a `used` below 8 (zero before the writer's first store) hold no entries, as in the
/// reference.
pub fn used_len(bytes: &[u8]) -> Result<usize, FileError> {
    if bytes.is_empty() {
        return Ok(HEADER_LEN);
    }
    let used = read_i32(bytes, 0)
        .ok_or_else(|| FileError::new("File is truncated: no complete header."))?;
    let used = usize::try_from(used).unwrap_or(0).max(HEADER_LEN);
    if used > bytes.len() {
        return Err(FileError::new(format!(
            "File is truncated: its header says {used} bytes are used but it has {}.",
            bytes.len()
        )));
    }
    Ok(used)
}

/// Total size of an entry whose key is `key_len` bytes long.
fn entry_len(key_len: usize) -> usize {
    4 + key_len + (8 - (key_len + 4) % 8) + 16
}

/// Where the entry whose value is at `value_offset` starts (its length field).
fn entry_start(value_offset: usize, key_len: usize) -> usize {
    value_offset + 16 - entry_len(key_len)
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_f64(bytes: &[u8], at: usize) -> Option<f64> {
    Some(f64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Value and timestamp at `value_offset`.
fn read_value(bytes: &[u8], value_offset: usize) -> Option<(f64, f64)> {
    Some((
        read_f64(bytes, value_offset)?,
        read_f64(bytes, value_offset + 8)?,
    ))
}

/// The entries starting at `from`, up to `used` (`used <= bytes.len()`).
fn entries_between(bytes: &[u8], from: usize, used: usize) -> Entries<'_> {
    Entries {
        bytes: &bytes[..used.min(bytes.len())],
        pos: from,
        failed: false,
    }
}

/// Yields entries until the end of the used bytes or the first error.
struct Entries<'a> {
    /// The used bytes only.
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Entries<'a> {
    /// The entry at `self.pos`, entirely inside the used bytes, and where the next one starts.
    /// The reference only checks that the key ends inside `used`; we also require the padding and
    /// value to, since a writer never publishes part of an entry.
    fn entry(&self) -> Result<(EntryRef<'a>, usize), FileError> {
        let beyond = || FileError::new("Read beyond file size detected, file is corrupted.");
        let pos = self.pos;
        let key_len = read_i32(self.bytes, pos).ok_or_else(beyond)?;
        let key_len = usize::try_from(key_len)
            .map_err(|_| FileError::new(format!("Negative key length at offset {pos}.")))?;
        let end = pos.checked_add(entry_len(key_len)).ok_or_else(beyond)?;
        if end > self.bytes.len() {
            return Err(beyond());
        }
        let key = std::str::from_utf8(&self.bytes[pos + 4..pos + 4 + key_len])
            .map_err(|_| FileError::new(format!("Invalid UTF-8 in the key at offset {pos}.")))?;
        let value_offset = end - 16;
        let (value, timestamp) = read_value(self.bytes, value_offset).ok_or_else(beyond)?;
        let entry = EntryRef {
            key,
            value,
            timestamp,
            value_offset,
        };
        Ok((entry, end))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<EntryRef<'a>, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        match self.entry() {
            Ok((entry, next)) => {
                self.pos = next;
                Some(Ok(entry))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A key as the collector uses it: parsed once, shared by every file that holds it.
#[derive(Debug)]
pub struct CachedKey {
    /// The JSON text, to check that a cached file still holds it.
    pub text: Box<str>,
    /// Labels sorted by name (the reference's `labels_key`).
    pub key: Key,
}

/// One entry of a cached file, with the value last read.
#[derive(Clone, Debug)]
pub struct CachedEntry {
    pub key: Arc<CachedKey>,
    pub value_offset: usize,
    pub value: f64,
    pub timestamp: f64,
}

/// A file kept open between scrapes. While it is open its inode cannot be reused, so a path
/// that still names the same (device, inode) names this very file: its entries stay where they
/// were, and only the tail written since is parsed. The file is read, never mapped: a mapping
/// would fault (SIGBUS) if the file were truncated under it.
struct CachedFile {
    /// `None` where the platform gives no stable identity: such a file is parsed afresh.
    identity: Option<(u64, u64)>,
    file: File,
    used: usize,
    entries: Vec<CachedEntry>,
    /// A histogram or summary file's children, read from one moment each; `None` for others.
    children: Option<Children>,
}

/// The histogram or summary children of a file, each with its sequence counter (see
/// `observations.rs`: odd while its writer updates it).
#[derive(Default)]
struct Children {
    /// A histogram file: a child's bucket entries differ by their `le` label.
    histogram: bool,
    list: Vec<ChildEntries>,
    /// Metric name and labels (a histogram's without `le`) → position in `list`.
    by_labels: HashMap<(String, Vec<(String, String)>), usize>,
}

#[derive(Default)]
struct ChildEntries {
    /// Offset of the counter: the timestamp of the child's `_sum` entry.
    sequence: Option<usize>,
    /// Indices of the child's entries in `CachedFile::entries`.
    entries: Vec<usize>,
    /// The bytes from the first entry's value to the last one's timestamp.
    start: usize,
    end: usize,
    /// Whether the values last read were from one moment.
    consistent: bool,
    /// Scrapes in a row that kept those values while its writer kept updating it.
    stale_scrapes: u8,
    /// Its sequence counter when last read (`None` if not read yet).
    counter: Option<u64>,
}

impl Children {
    /// Files whose children have sequence counters: prometheus_client names them by type
    /// (fastprom's side files, not `.db`, have none).
    fn for_file(path: &Path) -> Option<Children> {
        if path.extension()? != "db" {
            return None;
        }
        let name = path.file_name()?.to_str()?;
        let histogram = name.starts_with("histogram_");
        (histogram || name.starts_with("summary_")).then(|| Children {
            histogram,
            ..Children::default()
        })
    }

    /// Adds entry `index` (just parsed) to its child.
    fn add(&mut self, index: usize, entry: &CachedEntry) {
        let key = &entry.key.key;
        let labels: Vec<(String, String)> = (key.labels.iter())
            .filter(|(name, _)| !(self.histogram && name == "le"))
            .cloned()
            .collect();
        let next = self.list.len();
        let position = *self
            .by_labels
            .entry((key.metric_name.clone(), labels))
            .or_insert(next);
        if position == next {
            self.list.push(ChildEntries {
                start: entry.value_offset,
                ..ChildEntries::default()
            });
        }
        let child = &mut self.list[position];
        if key.sample_name.strip_prefix(key.metric_name.as_str()) == Some("_sum") {
            child.sequence = Some(entry.value_offset + 8);
        }
        child.entries.push(index);
        // Values from one moment include this entry's only from the next read on.
        child.consistent = false;
        child.start = child.start.min(entry.value_offset);
        child.end = child.end.max(entry.value_offset + 16);
    }
}

impl CachedFile {
    fn open(path: &Path, identity: Option<(u64, u64)>) -> io::Result<CachedFile> {
        Ok(CachedFile {
            identity,
            file: File::open(path)?,
            used: HEADER_LEN,
            entries: Vec::new(),
            children: Children::for_file(path),
        })
    }

    /// The first `used` bytes of the file into `bytes`; an error if it has fewer now.
    fn read_prefix(&self, used: usize, bytes: &mut Vec<u8>) -> Result<(), FileError> {
        bytes.clear();
        read_at_most(&self.file, 0, used, bytes)?;
        if bytes.len() < used {
            return Err(FileError::new(
                "File is truncated: it shrank while being read.",
            ));
        }
        Ok(())
    }

    /// Reads the header and the used bytes it announces (fewer if the file is shorter) into
    /// `bytes`. Positional reads: the descriptor's offset is shared with other threads of this
    /// process and, after a fork, with the parent and its other children.
    fn read_used(&self, bytes: &mut Vec<u8>) -> io::Result<()> {
        bytes.clear();
        read_at_most(&self.file, 0, HEADER_LEN, bytes)?;
        let used = read_i32(bytes, 0).map_or(0, |u| usize::try_from(u).unwrap_or(0));
        if used > bytes.len() {
            read_at_most(&self.file, bytes.len(), used - bytes.len(), bytes)?;
        }
        Ok(())
    }
}

/// Appends up to `len` bytes of `file` from `offset` to `bytes`, stopping early at its end.
fn read_at_most(file: &File, offset: usize, len: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
    let start = bytes.len();
    bytes.resize(start + len, 0);
    let mut filled = 0;
    while filled < len {
        match read_at(file, &mut bytes[start + filled..], (offset + filled) as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                bytes.truncate(start + filled);
                return Err(e);
            }
        }
    }
    bytes.truncate(start + filled);
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Per-path memory of parsed keys across scrapes. Writers only append entries and never move
/// them, so a file whose identity is unchanged needs only its new tail parsed; values are
/// re-read every time.
#[derive(Default)]
pub struct FileCache {
    files: HashMap<PathBuf, CachedFile>,
    /// The bytes of the file being read, reused from file to file.
    scratch: Reads,
    /// Entries of the files read beyond `MAX_OPEN_FILES`, kept until the next `retain`.
    uncached: HashMap<PathBuf, Vec<CachedEntry>>,
    keys: HashMap<Box<str>, Arc<CachedKey>>,
}

/// Files kept open between scrapes; beyond that (thousands of dead processes never compacted)
/// files are read afresh each time rather than run out of descriptors.
const MAX_OPEN_FILES: usize = 256;

impl FileCache {
    pub fn new() -> FileCache {
        FileCache::default()
    }

    /// Reads `path` afresh. `Ok(false)` if it does not exist (deleted by `mark_process_dead`);
    /// on any error the file is forgotten.
    pub fn refresh(&mut self, path: &Path) -> Result<bool, FileError> {
        let cached = self.files.remove(path);
        let identity = match std::fs::metadata(path) {
            Ok(meta) => file_identity(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let mut file = match cached {
            Some(c) if identity.is_some() && c.identity == identity => c,
            _ => match CachedFile::open(path, identity) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                opened => opened?,
            },
        };
        let mut reads = std::mem::take(&mut self.scratch);
        let read = self.read_into(&mut file, &mut reads);
        self.scratch = reads;
        read?;
        if self.files.len() < MAX_OPEN_FILES {
            self.files.insert(path.to_path_buf(), file);
        } else {
            self.uncached.insert(path.to_path_buf(), file.entries);
        }
        Ok(true)
    }

    /// Fresh values for the entries already known, and the entries appended since.
    fn read_into(&mut self, file: &mut CachedFile, reads: &mut Reads) -> Result<(), FileError> {
        let bytes = &mut reads.first;
        file.read_used(bytes)?;
        let used = used_len(bytes)?;
        if used < file.used {
            return Err(FileError::new("File is corrupted: its used length shrank."));
        }
        for raw in entries_between(bytes, file.used, used) {
            let entry = cached_entry(&mut self.keys, raw?)?;
            if let Some(children) = &mut file.children {
                children.add(file.entries.len(), &entry);
            }
            file.entries.push(entry);
        }
        file.used = used;
        match &file.children {
            Some(children) if !children.list.is_empty() => read_children(file, used, reads),
            _ => set_values(
                &mut file.entries,
                reads.first.get(..used).unwrap_or_default(),
                None,
            ),
        }
    }

    /// The entries of a file read by the last successful `refresh`.
    pub fn entries(&self, path: &Path) -> Option<&[CachedEntry]> {
        match self.files.get(path) {
            Some(f) => Some(f.entries.as_slice()),
            None => self.uncached.get(path).map(Vec::as_slice),
        }
    }

    /// Forgets files not in `paths`, and keys no remembered file holds.
    pub fn retain(&mut self, paths: &[PathBuf]) {
        let keep: HashSet<&PathBuf> = paths.iter().collect();
        self.files.retain(|p, _| keep.contains(p));
        self.uncached.clear();
        self.keys.retain(|_, k| Arc::strong_count(k) > 1);
    }
}

/// The buffers of the reads of one file, reused from file to file.
#[derive(Default)]
struct Reads {
    /// The first read: new entries, values and sequence counters.
    first: Vec<u8>,
    /// The second read of a histogram or summary file.
    second: Vec<u8>,
    /// A child's bytes read again.
    child: Vec<u8>,
}

/// How long a child caught mid-update is read again, waiting for its writer (which may be
/// descheduled in the middle of an update) before its values are taken as they are.
const CHILD_PATIENCE: Duration = Duration::from_millis(2);
/// The same, for a child read for the first time (no earlier values to fall back on).
const FIRST_READ_PATIENCE: Duration = Duration::from_millis(20);
/// Scrapes in a row that may show a child's values of an earlier scrape because its writer
/// kept updating it through every read.
const STALE_SCRAPES: u8 = 3;

/// The values of a histogram or summary file, each child from one moment. The file is read
/// twice; a child whose sequence counter is even and whose values and counter are the same in
/// both reads takes them: every value (each only grows: the counts, the counter, and a sum of
/// observations of one sign) held still from its first read to its second, so all of them
/// held the values of one moment between the two reads, when no update was under way. (A sum
/// of observations of both signs could come back to the same value over several updates; a
/// histogram's or summary's sum lies before its counter in the file, and the kernel copies a
/// read in order, so the second read's sum was read before its counter, with no update
/// started in between.)
///
/// A child that changed is read again by itself, between two reads of its counter. Reads
/// are positional copies of the file (not a mapping, which a truncation would turn into
/// SIGBUS), each a system call, so a child may not hold still through any read for
/// `CHILD_PATIENCE` (`FIRST_READ_PATIENCE` the first time): it keeps the values of the
/// previous scrape, which were from one moment (while its writer is stopped mid-update, or
/// for `STALE_SCRAPES` scrapes in a row while it keeps updating, so that a busy child does
/// not look frozen), else takes the last read.
fn read_children(file: &mut CachedFile, used: usize, reads: &mut Reads) -> Result<(), FileError> {
    // Keeps the second read's loads after the first's (weakly ordered CPUs).
    fence(Ordering::SeqCst);
    file.read_prefix(used, &mut reads.second)?;
    let CachedFile {
        file: handle,
        entries,
        children: Some(children),
        ..
    } = file
    else {
        return Ok(());
    };
    let (first, second) = (&reads.first[..used], &reads.second[..]);
    for child in &mut children.list {
        let Some(sequence) = child.sequence else {
            // No `_sum` entry (not written by a histogram or summary): nothing to check.
            set_values(entries, second, Some((&child.entries, 0)))?;
            continue;
        };
        let counter = read_u64(second, sequence);
        if held_still(read_u64(first, sequence), counter)
            && child.entries.iter().all(|&i| {
                let at = entries[i].value_offset;
                first.get(at..at + 8) == second.get(at..at + 8)
            })
        {
            set_values(entries, second, Some((&child.entries, 0)))?;
            child.read_consistent(counter);
        } else if let Some(counter) = read_child_again(handle, child, sequence, &mut reads.child)? {
            set_values(entries, &reads.child, Some((&child.entries, child.start)))?;
            child.read_consistent(Some(counter));
        } else if child.keeps_previous_values(counter) {
            continue;
        } else {
            set_values(entries, second, Some((&child.entries, 0)))?;
            child.consistent = false;
            child.counter = counter;
        }
    }
    Ok(())
}

impl ChildEntries {
    fn read_consistent(&mut self, counter: Option<u64>) {
        self.consistent = true;
        self.stale_scrapes = 0;
        self.counter = counter;
    }

    /// Whether a child that did not hold still keeps the values of an earlier scrape: those
    /// were from one moment, and its writer is stopped (the counter has not moved since
    /// then) or has not kept it busy for `STALE_SCRAPES` scrapes already.
    fn keeps_previous_values(&mut self, counter: Option<u64>) -> bool {
        if !self.consistent {
            return false;
        }
        if counter != self.counter {
            if self.stale_scrapes == STALE_SCRAPES {
                return false;
            }
            self.stale_scrapes += 1;
            self.counter = counter;
        }
        true
    }
}

/// Whether a sequence counter read before and after some reads shows no update during them.
fn held_still(before: Option<u64>, after: Option<u64>) -> bool {
    before.is_some_and(|b| b.is_multiple_of(2)) && before == after
}

/// Reads a child's bytes (into `bytes`) between two reads of its counter until it holds
/// still (its counter then), for `CHILD_PATIENCE` at most.
fn read_child_again(
    file: &File,
    child: &ChildEntries,
    sequence: usize,
    bytes: &mut Vec<u8>,
) -> io::Result<Option<u64>> {
    let len = child.end - child.start;
    let patience = match child.counter {
        None => FIRST_READ_PATIENCE,
        Some(_) => CHILD_PATIENCE,
    };
    let deadline = Instant::now() + patience;
    for attempt in 0.. {
        // At once (it most likely just moved), then giving its writer the processor.
        match attempt {
            0 => {}
            1..=4 => std::thread::yield_now(),
            _ => std::thread::sleep(Duration::from_micros(50)),
        }
        let before = read_counter(file, sequence)?;
        fence(Ordering::SeqCst);
        bytes.clear();
        read_at_most(file, child.start, len, bytes)?;
        fence(Ordering::SeqCst);
        if bytes.len() == len && held_still(before, read_counter(file, sequence)?) {
            return Ok(before);
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(None)
}

fn read_counter(file: &File, at: usize) -> io::Result<Option<u64>> {
    let mut word = Vec::with_capacity(8);
    read_at_most(file, at, 8, &mut word)?;
    Ok(read_u64(&word, 0))
}

/// Values and timestamps of `entries` (all, or those listed) from `bytes`, the file's bytes
/// from offset `base`.
fn set_values(
    entries: &mut [CachedEntry],
    bytes: &[u8],
    only: Option<(&[usize], usize)>,
) -> Result<(), FileError> {
    let set = |entry: &mut CachedEntry, base: usize| -> Result<(), FileError> {
        let at = entry.value_offset.checked_sub(base);
        (entry.value, entry.timestamp) = at
            .and_then(|at| read_value(bytes, at))
            .ok_or_else(|| FileError::new("Entry out of range."))?;
        Ok(())
    };
    match only {
        None => entries.iter_mut().try_for_each(|e| set(e, 0)),
        Some((indices, base)) => indices.iter().try_for_each(|&i| set(&mut entries[i], base)),
    }
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn cached_entry(
    keys: &mut HashMap<Box<str>, Arc<CachedKey>>,
    raw: EntryRef<'_>,
) -> Result<CachedEntry, FileError> {
    let key = match keys.get(raw.key) {
        Some(key) => key.clone(),
        None => {
            let key = Arc::new(CachedKey {
                text: raw.key.into(),
                key: parse_sorted_key(raw.key).ok_or_else(|| {
                    let offset = entry_start(raw.value_offset, raw.key.len());
                    FileError::new(format!("Invalid key at offset {offset}: {}", raw.key))
                })?,
            });
            keys.insert(raw.key.into(), key.clone());
            key
        }
    };
    Ok(CachedEntry {
        key,
        value_offset: raw.value_offset,
        value: raw.value,
        timestamp: raw.timestamp,
    })
}

/// `parse_key` with labels sorted; an empty metric name is refused too (`Metric()` raises).
fn parse_sorted_key(text: &str) -> Option<Key> {
    let mut key = parse_key(text).filter(|k| !k.metric_name.is_empty())?;
    key.labels.sort_by(|a, b| a.0.cmp(&b.0));
    Some(key)
}

#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// Stable Rust has no file index elsewhere (Windows' is unstable): files are parsed afresh.
#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The bytes `MmapedDict` writes for `entries`, in a file of `capacity` bytes.
#[cfg(test)]
pub(crate) fn encode_file(entries: &[(&str, f64, f64)], capacity: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER_LEN];
    for (key, value, timestamp) in entries {
        bytes.extend_from_slice(&(key.len() as i32).to_ne_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.resize(bytes.len() + 8 - (key.len() + 4) % 8, b' ');
        bytes.extend_from_slice(&value.to_ne_bytes());
        bytes.extend_from_slice(&timestamp.to_ne_bytes());
    }
    let used = bytes.len() as i32;
    bytes[..4].copy_from_slice(&used.to_ne_bytes());
    bytes.resize(bytes.len().max(capacity), 0);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_and_values(bytes: &[u8]) -> Vec<(String, f64, f64)> {
        read_entries(bytes)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.timestamp))
            .collect()
    }

    fn set_used(bytes: &mut [u8], used: i32) {
        bytes[..4].copy_from_slice(&used.to_ne_bytes());
    }

    #[test]
    fn every_padding_length() {
        // Key lengths 0..=16 cover pads of 8, 7, ..., 1 twice.
        let keys: Vec<String> = (0..=16).map(|n| "k".repeat(n)).collect();
        let entries: Vec<(&str, f64, f64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i as f64 + 0.5, i as f64 * 2.0))
            .collect();
        let bytes = encode_file(&entries, 0);
        let read = read_entries(&bytes).unwrap();
        assert_eq!(read.len(), entries.len());
        let mut pos = HEADER_LEN;
        for (entry, (key, value, timestamp)) in read.iter().zip(&entries) {
            let pad = 8 - (key.len() + 4) % 8;
            assert!((1..=8).contains(&pad));
            assert_eq!(entry.value_offset, pos + 4 + key.len() + pad);
            assert_eq!(entry.value_offset % 8, 0);
            assert_eq!(
                (entry.key.as_str(), entry.value, entry.timestamp),
                (*key, *value, *timestamp)
            );
            pos = entry.value_offset + 16;
        }
    }

    #[test]
    fn empty_and_fresh_files_have_no_entries() {
        assert_eq!(read_entries(&[]).unwrap(), []);
        assert_eq!(read_entries(&[0; 64]).unwrap(), []);
        let mut bytes = encode_file(&[("a", 1.0, 0.0)], 64);
        for used in [8, 3, 0, -8, i32::MIN] {
            set_used(&mut bytes, used);
            assert_eq!(read_entries(&bytes).unwrap(), [], "used={used}");
        }
    }

    #[test]
    fn bytes_past_used_are_ignored() {
        let mut bytes = encode_file(&[("a", 1.0, 0.0), ("b", 2.0, 0.0)], 4096);
        let second = read_entries(&bytes).unwrap()[1].value_offset - 8;
        set_used(&mut bytes, second as i32);
        assert_eq!(keys_and_values(&bytes), [("a".to_owned(), 1.0, 0.0)]);
    }

    fn error(bytes: &[u8]) -> String {
        read_entries(bytes).unwrap_err().message
    }

    #[test]
    fn truncated_files_are_errors() {
        let bytes = encode_file(&[("abc", 1.0, 0.0)], 0);
        assert_eq!(bytes.len(), 32);
        assert!(error(&bytes[..31]).starts_with("File is truncated: its header says 32"));
        assert!(error(&bytes[..3]).starts_with("File is truncated: no complete header"));
    }

    #[test]
    fn corrupt_entries_are_errors() {
        const BEYOND: &str = "Read beyond file size detected, file is corrupted.";
        let good = encode_file(&[("abc", 1.0, 0.0), ("defg", 2.0, 0.0)], 128);
        // `used` in the middle of the second entry.
        let mut bytes = good.clone();
        set_used(&mut bytes, 32 + 20);
        assert_eq!(error(&bytes), BEYOND);
        // `used` leaves less than a length field.
        set_used(&mut bytes, 32 + 2);
        assert_eq!(error(&bytes), BEYOND);
        // Key length past `used`, and one that would overflow.
        for len in [1000, i32::MAX] {
            let mut bytes = good.clone();
            bytes[32..36].copy_from_slice(&len.to_ne_bytes());
            assert_eq!(error(&bytes), BEYOND);
        }
        let mut bytes = good.clone();
        bytes[32..36].copy_from_slice(&(-4i32).to_ne_bytes());
        assert_eq!(error(&bytes), "Negative key length at offset 32.");
        let mut bytes = good;
        bytes[13] = 0xff;
        assert_eq!(error(&bytes), "Invalid UTF-8 in the key at offset 8.");
    }

    /// Any damage gives an error or entries, never a panic.
    #[test]
    fn damaged_bytes_never_panic() {
        let good = encode_file(&[("abc", 1.0, 0.0), ("de", 2.0, 0.0), ("", 3.0, 0.0)], 96);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed >> 8) as usize % bytes.len();
                bytes[at] = (seed >> 40) as u8;
            }
            let cut = (seed >> 20) as usize % (bytes.len() + 1);
            let _ = read_entries(&bytes[..cut]);
            let _ = read_entries(&bytes);
        }
    }

    /// Files written by prometheus_client's `MmapedDict` read back the same.
    #[test]
    fn reads_files_written_by_mmaped_dict() {
        let script = r#"
import os, sys
from prometheus_client.mmap_dict import MmapedDict
path = sys.stdin.read()
d = MmapedDict(path)
for n in range(17):
    d.write_value('é' * (n % 3) + 'k' * n, n + 0.25, n * 3.0)
d.close()
for key, value, ts, pos in MmapedDict.read_all_values_from_file(path):
    print(ascii(key), value, ts, pos)
"#;
        let file = TempFile::new("written_by_python.db");
        let Some(output) = crate::core::format::run_python(script, file.0.to_str().unwrap()) else {
            return;
        };
        let bytes = std::fs::read(&file.0).unwrap();
        assert_eq!(bytes.len(), 65536);
        let entries = read_entries(&bytes).unwrap();
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(entries.len(), 17);
        assert_eq!(lines.len(), 17);
        for (n, (entry, line)) in entries.iter().zip(lines).enumerate() {
            let key = "é".repeat(n % 3) + &"k".repeat(n);
            assert_eq!(
                (entry.key.as_str(), entry.value, entry.timestamp),
                (key.as_str(), n as f64 + 0.25, n as f64 * 3.0)
            );
            assert!(
                line.ends_with(&format!(" {}", entry.value_offset)),
                "{line}"
            );
        }
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> TempFile {
            let name = format!("fastprom-mpfile-{}-{name}", std::process::id());
            TempFile(std::env::temp_dir().join(name))
        }

        /// Rewrites the file in place (same inode).
        fn overwrite(&self, bytes: &[u8]) {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&self.0)
                .unwrap();
            file.write_all(bytes).unwrap();
            file.set_len(bytes.len() as u64).unwrap();
        }

        /// Replaces the file by a new one (new inode).
        fn replace(&self, bytes: &[u8]) {
            let temporary = self.0.with_extension("tmp");
            std::fs::write(&temporary, bytes).unwrap();
            std::fs::rename(&temporary, &self.0).unwrap();
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn cached(cache: &FileCache, path: &Path) -> Vec<(String, f64, f64)> {
        cache
            .entries(path)
            .unwrap()
            .iter()
            .map(|e| (e.key.text.to_string(), e.value, e.timestamp))
            .collect()
    }

    fn key(name: &str, le: &str) -> String {
        crate::core::multiprocess::key::mmap_key("m", name, &[("z", "1"), ("le", le)], "h")
    }

    #[test]
    fn cache_follows_growth_and_replacement() {
        let file = TempFile::new("grow.db");
        let (a, b, c) = (
            key("m_bucket", "1.0"),
            key("m_bucket", "+Inf"),
            key("m_sum", ""),
        );
        let mut cache = FileCache::new();
        assert_eq!(cache.refresh(&file.0), Ok(false));
        file.overwrite(&encode_file(&[(&a, 1.0, 0.0)], 4096));
        assert_eq!(cache.refresh(&file.0), Ok(true));
        assert_eq!(cached(&cache, &file.0), [(a.clone(), 1.0, 0.0)]);
        let parsed = &cache.entries(&file.0).unwrap()[0].key.key;
        assert_eq!(
            parsed.labels,
            [("le".into(), "1.0".into()), ("z".into(), "1".into())]
        );
        // Grown in place (beyond the first page too): the new tail appears, values are fresh.
        let long = "x".repeat(5000);
        let grown = [(a.as_str(), 2.0, 0.0), (&b, 3.0, 7.0), (&long, 4.0, 0.0)];
        file.overwrite(&encode_file(&grown, 0));
        assert!(cache.refresh(&file.0).is_err(), "a bad key is an error");
        assert!(
            cache.entries(&file.0).is_none(),
            "and the file is forgotten"
        );
        let grown = [(a.as_str(), 2.0, 0.0), (&b, 3.0, 7.0), (&c, 4.0, 0.0)];
        file.overwrite(&encode_file(&grown, 8192));
        cache.refresh(&file.0).unwrap();
        assert_eq!(
            cached(&cache, &file.0),
            grown.map(|(k, v, t)| (k.to_owned(), v, t))
        );
        file.overwrite(&encode_file(
            &[(&a, 5.0, 0.0), (&b, 6.0, 0.0), (&c, 7.0, 0.0)],
            8192,
        ));
        cache.refresh(&file.0).unwrap();
        assert_eq!(cached(&cache, &file.0)[2], (c.clone(), 7.0, 0.0));
        // Shrunk in place (no writer does that): an error once, then read afresh. Without a
        // file identity (non-Unix) every scrape reads afresh.
        file.overwrite(&encode_file(&[(&c, 9.0, 0.0)], 64));
        assert_eq!(cache.refresh(&file.0).is_err(), cfg!(unix));
        cache.refresh(&file.0).unwrap();
        assert_eq!(cached(&cache, &file.0), [(c.clone(), 9.0, 0.0)]);
        // Replaced by a new file (a new inode: the cache holds the old one open).
        let replaced = [(a.as_str(), 1.0, 0.0), (&a, 1.5, 0.0), (&b, 2.0, 0.0)];
        file.replace(&encode_file(&replaced, 4096));
        cache.refresh(&file.0).unwrap();
        assert_eq!(
            cached(&cache, &file.0),
            replaced.map(|(k, v, t)| (k.to_owned(), v, t))
        );
        // Deleted: forgotten; keys no file holds are dropped by `retain`.
        std::fs::remove_file(&file.0).unwrap();
        assert_eq!(cache.refresh(&file.0), Ok(false));
        assert!(cache.entries(&file.0).is_none());
        assert_eq!(cache.keys.len(), 3);
        cache.retain(&[]);
        assert!(cache.keys.is_empty());
    }

    /// A histogram file with one child: `_sum` (its timestamp is the sequence counter), then
    /// the `1.0` and `+Inf` buckets.
    fn histogram_file(counter: u64, sum: f64, buckets: [f64; 2]) -> Vec<u8> {
        use crate::core::multiprocess::key::mmap_key;
        let sum_key = mmap_key("m", "m_sum", &[("z", "1")], "h");
        let (one, inf) = (key("m_bucket", "1.0"), key("m_bucket", "+Inf"));
        let entries = [
            (sum_key.as_str(), sum, f64::from_bits(counter)),
            (one.as_str(), buckets[0], 0.0),
            (inf.as_str(), buckets[1], 0.0),
        ];
        encode_file(&entries, 4096)
    }

    fn values(cache: &FileCache, path: &Path) -> Vec<f64> {
        cached(cache, path).into_iter().map(|(_, v, _)| v).collect()
    }

    #[test]
    fn a_child_caught_mid_update_keeps_its_values_of_one_moment() {
        let dir = std::env::temp_dir().join(format!("fastprom-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = TempFile(dir.join("histogram_1.db"));
        let mut cache = FileCache::new();
        file.overwrite(&histogram_file(2, 0.5, [2.0, 0.0]));
        cache.refresh(&file.0).unwrap();
        assert_eq!(values(&cache, &file.0), [0.5, 2.0, 0.0]);
        // The writer stopped mid-update (odd counter, a bucket counted, the sum not yet): the
        // values of the previous scrape, for as long as it stays stopped.
        file.overwrite(&histogram_file(3, 0.5, [2.0, 1.0]));
        for _ in 0..=STALE_SCRAPES + 1 {
            cache.refresh(&file.0).unwrap();
            assert_eq!(values(&cache, &file.0), [0.5, 2.0, 0.0]);
        }
        // A fresh reader has no earlier values: it takes what it read.
        let mut fresh = FileCache::new();
        fresh.refresh(&file.0).unwrap();
        assert_eq!(values(&fresh, &file.0), [0.5, 2.0, 1.0]);
        // Done (even counter): the new values.
        file.overwrite(&histogram_file(4, 3.0, [2.0, 1.0]));
        cache.refresh(&file.0).unwrap();
        assert_eq!(values(&cache, &file.0), [0.5 + 2.5, 2.0, 1.0]);
        // A writer that keeps moving its counter without ever holding still for a read: the
        // earlier values for `STALE_SCRAPES` scrapes, then the last read.
        for counter in 0..STALE_SCRAPES {
            let odd = 5 + 2 * u64::from(counter);
            file.overwrite(&histogram_file(odd, 3.0, [3.0, 1.0]));
            cache.refresh(&file.0).unwrap();
            assert_eq!(values(&cache, &file.0), [3.0, 2.0, 1.0]);
        }
        file.overwrite(&histogram_file(99, 3.0, [3.0, 1.0]));
        cache.refresh(&file.0).unwrap();
        assert_eq!(values(&cache, &file.0), [3.0, 3.0, 1.0]);
        drop(file);
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn children_are_grouped_by_their_labels() {
        use crate::core::multiprocess::key::mmap_key;
        let dir = std::env::temp_dir().join(format!("fastprom-groups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut keys = Vec::new();
        for le in ["a", "b"] {
            for sample in ["s_count", "s_sum"] {
                keys.push(mmap_key("s", sample, &[("le", le)], "h"));
            }
        }
        let entries: Vec<(&str, f64, f64)> = keys.iter().map(|k| (k.as_str(), 1.0, 0.0)).collect();
        let bytes = encode_file(&entries, 4096);
        let file = TempFile(dir.join("summary_1.db"));
        file.overwrite(&bytes);
        let mut cache = FileCache::new();
        cache.refresh(&file.0).unwrap();
        // A summary's `le` is a label like any other: two children, each with its counter.
        let children = cache.files[&file.0].children.as_ref().unwrap();
        let groups: Vec<(&[usize], Option<usize>)> = (children.list.iter())
            .map(|c| (c.entries.as_slice(), c.sequence))
            .collect();
        let counter = |i: usize| Some(read_entries(&bytes).unwrap()[i].value_offset + 8);
        assert_eq!(
            groups,
            [(&[0, 1][..], counter(1)), (&[2, 3][..], counter(3))]
        );
        drop(file);
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn cache_reports_corruption_and_recovers() {
        let file = TempFile::new("corrupt.db");
        let a = key("m_sum", "");
        let mut cache = FileCache::new();
        file.overwrite(&encode_file(&[(&a, 1.0, 0.0)], 64));
        cache.refresh(&file.0).unwrap();
        let mut bytes = encode_file(&[(&a, 1.0, 0.0)], 64);
        set_used(&mut bytes, 1000);
        file.overwrite(&bytes);
        assert!(cache
            .refresh(&file.0)
            .unwrap_err()
            .message
            .contains("truncated"));
        assert!(cache.entries(&file.0).is_none());
        file.overwrite(&encode_file(&[(&a, 2.0, 0.0)], 64));
        cache.refresh(&file.0).unwrap();
        assert_eq!(cached(&cache, &file.0), [(a, 2.0, 0.0)]);
        let dir = file.0.parent().unwrap();
        assert!(cache.refresh(dir).is_err(), "a directory is an error");
    }
}
