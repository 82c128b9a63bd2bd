//! The writing side of multiprocess mode: this process's `.db` files, memory-mapped, with one
//! 8-byte atomic value slot per entry (the timestamp slot follows it).
//!
//! The layout is prometheus_client's (`mmap_dict.py`), so its collector reads our files. Each
//! file is mapped once with a large reserved length; growing the file (`ftruncate`, doubling as
//! the reference does) never moves the mapping, so a slot's address stays valid for the life of
//! the process and an update is one atomic operation on it. Entries are appended under the
//! file's lock and published by storing the new `used` length last.
//!
//! A file rewritten by `remove` is replaced by a new one and its slots move there. Renders read
//! slots without the GIL, so the old mapping is released only once every render that began
//! before the move has ended: renders hold a `ReadGuard` (see `pin`).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use memmap2::MmapRaw;

use super::file::read_entries;
use super::key::mmap_key;
use crate::core::format::float_to_go_string;
use crate::core::model::MetricType;

const INITIAL_SIZE: usize = 1 << 16;
/// Address space reserved per file: 1 GiB, about ten million entries.
const RESERVED: usize = 1 << 30;
const HEADER: usize = 8;

/// One `.db` file of this process, mapped until it is dropped (the descriptor is closed then
/// too). The mapping is shared memory accessed through atomics (slots, `used`) or under
/// `index`'s lock (appending entries).
pub struct MappedFile {
    map: MmapRaw,
    file: File,
    index: Mutex<Index>,
}

struct Index {
    capacity: usize,
    used: usize,
    /// Offset of each key's value slot.
    positions: HashMap<String, usize>,
}

impl MappedFile {
    /// Opens (or creates) a file; an existing one keeps its entries and values, as the
    /// reference does when a pid comes back.
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let length = file.metadata()?.len() as usize;
        let existing = if length > 0 {
            std::fs::read(path)?
        } else {
            Vec::new()
        };
        let capacity = length.max(INITIAL_SIZE);
        if capacity > RESERVED {
            return Err(io::Error::other("multiprocess file larger than 1 GiB"));
        }
        allocate(&file, capacity)?;
        let mapped = MappedFile {
            map: reserve(&file)?,
            file,
            index: Mutex::new(Index {
                capacity,
                used: HEADER,
                positions: HashMap::new(),
            }),
        };
        mapped.load(&existing)?;
        Ok(mapped)
    }

    /// Takes over the entries of an existing file; a fresh one gets its header.
    fn load(&self, existing: &[u8]) -> io::Result<()> {
        let mut index = self.lock();
        let used = existing
            .get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        if used > 0 {
            let entries = read_entries(existing).map_err(|e| io::Error::other(e.message))?;
            for entry in entries {
                index.positions.insert(entry.key, entry.value_offset);
            }
            index.used = used as usize;
        }
        self.used_slot().store(index.used as u32, Ordering::Release);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn used_slot(&self) -> &AtomicU32 {
        // SAFETY: offset 0 of a mapping of at least INITIAL_SIZE bytes, 8-aligned.
        unsafe { &*(self.base() as *const AtomicU32) }
    }

    /// `'static` by convention: a slot is valid while its file is open, and after that until
    /// the renders that could have read it end (`retire`). Slots are only used with the GIL
    /// held or under a `ReadGuard`.
    fn slot_at(&self, offset: usize) -> &'static AtomicU64 {
        // SAFETY: offsets come from entries inside the file, 8-aligned.
        unsafe { &*(self.base().add(offset) as *const AtomicU64) }
    }

    /// A copy of the used part of the file.
    fn used_bytes(&self) -> Vec<u8> {
        let used = self.lock().used;
        // SAFETY: the first `used` bytes are inside the file and the mapping.
        unsafe { std::slice::from_raw_parts(self.base(), used) }.to_vec()
    }

    /// The value slot of `key`, appending the entry (value and timestamp 0.0) if it is new.
    pub fn slot(&self, key: &str) -> io::Result<&'static AtomicU64> {
        let mut index = self.lock();
        if let Some(&offset) = index.positions.get(key) {
            return Ok(self.slot_at(offset));
        }
        let entry = encode_entry(key, 0.0, 0.0);
        let start = index.used;
        let needed = start + entry.len();
        if needed > index.capacity {
            let mut capacity = index.capacity;
            while needed > capacity {
                capacity *= 2;
            }
            if capacity > RESERVED {
                return Err(io::Error::other("multiprocess file would exceed 1 GiB"));
            }
            allocate(&self.file, capacity)?;
            index.capacity = capacity;
        }
        // SAFETY: [start, needed) lies inside the file and the mapping; only this lock writes
        // beyond `used`, and readers do not look there until `used` is published.
        unsafe {
            std::ptr::copy_nonoverlapping(entry.as_ptr(), self.base().add(start), entry.len())
        };
        index.used = needed;
        self.used_slot().store(needed as u32, Ordering::Release);
        let offset = needed - 16;
        index.positions.insert(key.to_string(), offset);
        Ok(self.slot_at(offset))
    }
}

/// `i32 length, key, spaces to an 8-byte boundary, f64 value, f64 timestamp`, native byte
/// order.
pub(super) fn encode_entry(key: &str, value: f64, timestamp: f64) -> Vec<u8> {
    let key = key.as_bytes();
    let padding = 8 - (key.len() + 4) % 8;
    let mut entry = Vec::with_capacity(4 + key.len() + padding + 16);
    entry.extend_from_slice(&(key.len() as i32).to_ne_bytes());
    entry.extend_from_slice(key);
    entry.resize(entry.len() + padding, b' ');
    entry.extend_from_slice(&value.to_ne_bytes());
    entry.extend_from_slice(&timestamp.to_ne_bytes());
    entry
}

/// A whole file: header, entries, zeros up to the reference's capacity (64 KiB, doubled).
pub(super) fn encode_file<'a>(entries: impl Iterator<Item = (&'a str, f64, f64)>) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER];
    for (key, value, timestamp) in entries {
        bytes.extend_from_slice(&encode_entry(key, value, timestamp));
    }
    let used = bytes.len();
    bytes[..4].copy_from_slice(&(used as i32).to_ne_bytes());
    let mut capacity = INITIAL_SIZE;
    while capacity < used {
        capacity *= 2;
    }
    bytes.resize(capacity, 0);
    bytes
}

/// Makes the file `capacity` bytes long with its blocks allocated, so that a full disk is an
/// error here rather than a SIGBUS when a mapped page is first written. Filesystems without
/// `fallocate` get a plain (sparse) extension.
#[cfg(target_os = "linux")]
fn allocate(file: &File, capacity: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fallocate on a descriptor we own.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, capacity as libc::off_t) } {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(capacity as u64),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// Where `posix_fallocate` does not exist (macOS has none in libc): the file grows by writing
/// zeros past its current end, which allocates the blocks just the same, so a full disk is
/// still an error here and not a SIGBUS later.
#[cfg(not(target_os = "linux"))]
fn allocate(file: &File, capacity: usize) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    let end = file.seek(SeekFrom::End(0))? as usize;
    if end < capacity {
        let zeros = vec![0u8; 1 << 16];
        let mut remaining = capacity - end;
        while remaining > 0 {
            let n = remaining.min(zeros.len());
            file.write_all(&zeros[..n])?;
            remaining -= n;
        }
        file.sync_data()?;
    }
    Ok(())
}

/// Maps `RESERVED` bytes of the file, far beyond its end, so that it can grow without the
/// mapping moving. POSIX systems allow mapping past the end of a file (pages there are never
/// touched until the file has grown over them).
#[cfg(unix)]
fn reserve(file: &File) -> io::Result<MmapRaw> {
    memmap2::MmapOptions::new().len(RESERVED).map_raw(file)
}

/// Windows maps no further than a file's end and cannot resize a mapped file, so slots could
/// not stay put while the file grows: multiprocess mode says so rather than misbehave.
#[cfg(not(unix))]
fn reserve(_file: &File) -> io::Result<MmapRaw> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "multiprocess mode needs a POSIX system (files are mapped beyond their end to grow)",
    ))
}

/// Memory that renders may be reading without the GIL: the files retired while it was
/// current. Dropped (unmapping them) when the last render that pinned it ends.
///
/// A render loads slot pointers all along (a snapshot retried while a writer is mid-update
/// loads them again), so it may read a file made current after it began and retired later:
/// each epoch keeps the next one alive, and a render holds every file retired until it ends.
#[derive(Default)]
struct Epoch {
    retired: Mutex<Vec<Arc<MappedFile>>>,
    next: OnceLock<Arc<Epoch>>,
}

impl Drop for Epoch {
    /// Unlinks the chain of later epochs one by one (dropped recursively, a long chain would
    /// overflow the stack).
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(epoch) = next {
            next = match Arc::try_unwrap(epoch) {
                Ok(mut epoch) => epoch.next.take(),
                Err(_) => None, // still pinned: that render's end drops the rest
            };
        }
    }
}

/// The epoch renders pin now; retiring a file starts a new one.
#[derive(Default)]
struct Epochs {
    current: Mutex<Arc<Epoch>>,
}

impl Epochs {
    fn current(&self) -> MutexGuard<'_, Arc<Epoch>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pin(&self) -> ReadGuard {
        ReadGuard {
            _epoch: self.current().clone(),
        }
    }

    /// Releases `file`, whose slots have all moved elsewhere, once the renders that began
    /// before the move have ended: renders that begin from now on pin a new epoch and load the
    /// new pointers (the epoch's lock orders them after the move).
    fn retire(&self, file: Arc<MappedFile>) {
        let next = Arc::new(Epoch::default());
        let old = std::mem::replace(&mut *self.current(), next.clone());
        old.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(file);
        let _ = old.next.set(next);
    }
}

fn epochs() -> &'static Epochs {
    static EPOCHS: OnceLock<Epochs> = OnceLock::new();
    EPOCHS.get_or_init(Default::default)
}

/// Keeps the slots a render may read valid until it is dropped.
pub struct ReadGuard {
    _epoch: Arc<Epoch>,
}

/// Taken before reading slots without the GIL (a render), held until the reading is done.
pub fn pin() -> ReadGuard {
    epochs().pin()
}

/// Which file of a process an entry lives in: `counter`, `gauge_livesum`, `histogram`, ...
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub directory: PathBuf,
    pub prefix: String,
    /// The process part of the file name; `None` is this process's pid, which follows forks.
    /// `Some` is the key of a `values.MultiProcessValue(process_identifier)` class, whose
    /// current identifier names the files ([`set_identity`]).
    pub process: Option<String>,
    /// `db` for the reference's files; fastprom's own side files (which prometheus_client's
    /// `*.db` glob must not see) use another extension.
    pub extension: &'static str,
}

/// The files of the current process, and every live set of slots so that a forked child can
/// point them at its own files.
struct Files {
    pid: u32,
    open: HashMap<FileId, Arc<MappedFile>>,
    slots: Vec<Weak<Slots>>,
    /// Files replaced by a `remove` that failed to move every slot to the new file: kept
    /// mapped so that no slot dangles.
    stranded: Vec<Arc<MappedFile>>,
    /// The identifier each `MultiProcessValue` class (by key) names its files with now.
    identities: HashMap<String, String>,
}

fn files() -> MutexGuard<'static, Files> {
    static FILES: OnceLock<Mutex<Files>> = OnceLock::new();
    FILES
        .get_or_init(|| {
            Mutex::new(Files {
                pid: std::process::id(),
                open: HashMap::new(),
                slots: Vec::new(),
                stranded: Vec::new(),
                identities: HashMap::new(),
            })
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

impl Files {
    fn path(&self, id: &FileId) -> PathBuf {
        let file_name = match &id.process {
            Some(key) => {
                let identifier = self
                    .identities
                    .get(key)
                    .map_or(key.as_str(), String::as_str);
                format!("{}_{}.{}", id.prefix, identifier, id.extension)
            }
            None => format!("{}_{}.{}", id.prefix, self.pid, id.extension),
        };
        id.directory.join(file_name)
    }

    fn file(&mut self, id: &FileId) -> io::Result<Arc<MappedFile>> {
        if let Some(file) = self.open.get(id) {
            return Ok(file.clone());
        }
        let file = Arc::new(MappedFile::open(&self.path(id))?);
        self.open.insert(id.clone(), file.clone());
        Ok(file)
    }

    fn resolve(&mut self, id: &FileId, keys: &[String]) -> io::Result<Vec<&'static AtomicU64>> {
        let file = self.file(id)?;
        keys.iter().map(|key| file.slot(key)).collect()
    }

    fn live_slots(&self) -> Vec<Arc<Slots>> {
        self.slots
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.detached.get().is_none())
            .collect()
    }

    /// Points every live slot of file `id` (or of every file) at the entries of its key in the
    /// files now open.
    fn repoint(&mut self, id: Option<&FileId>) -> io::Result<()> {
        for slots in self.live_slots() {
            if id.is_some_and(|id| *id != slots.file) {
                continue;
            }
            let resolved = self.resolve(&slots.file, &slots.keys)?;
            for (pointer, slot) in slots.pointers.iter().zip(resolved) {
                pointer.store(
                    slot as *const AtomicU64 as *mut AtomicU64,
                    Ordering::Relaxed,
                );
            }
        }
        Ok(())
    }

    /// Writes file `id` again without the entries of `removed`, values kept, and replaces it
    /// by rename so readers see the old file or the new one.
    fn rewrite_without(&mut self, id: &FileId, removed: &HashSet<&str>) -> io::Result<()> {
        let Some(old) = self.open.get(id).cloned() else {
            return Ok(());
        };
        let entries = read_entries(&old.used_bytes()).map_err(|e| io::Error::other(e.message))?;
        let kept = entries.iter().filter(|e| !removed.contains(e.key.as_str()));
        let contents = encode_file(kept.map(|e| (e.key.as_str(), e.value, e.timestamp)));
        let path = self.path(id);
        let temporary = path.with_extension("db.tmp");
        std::fs::write(&temporary, contents)?;
        std::fs::rename(&temporary, &path)?;
        self.open
            .insert(id.clone(), Arc::new(MappedFile::open(&path)?));
        match self.repoint(Some(id)) {
            Ok(()) => epochs().retire(old),
            Err(e) => {
                self.stranded.push(old);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The keys of this process's file `id` that start with `prefix` (a scan of them all).
pub fn keys_with_prefix(id: &FileId, prefix: &str) -> io::Result<Vec<String>> {
    let file = files().file(id)?;
    let index = file.lock();
    let keys = index.positions.keys().filter(|k| k.starts_with(prefix));
    Ok(keys.cloned().collect())
}

/// Multiprocess `remove`/`clear`: the children's entries leave this process's files, so their
/// series leave every collector's output. Their cells are detached: a handle kept on a removed
/// child still works but is no longer exported, as in single-process mode.
///
/// Called with the GIL held, which every update of a mapped cell also holds: no update can
/// land in a file while it is being rewritten.
pub fn remove(removed: &[Arc<Slots>]) -> io::Result<()> {
    let mut files = files();
    let mut by_file: HashMap<FileId, HashSet<&str>> = HashMap::new();
    for slots in removed {
        slots.detach();
        let keys = by_file.entry(slots.file.clone()).or_default();
        keys.extend(slots.keys.iter().map(String::as_str));
    }
    for (id, keys) in &by_file {
        files.rewrite_without(id, keys)?;
    }
    Ok(())
}

/// The value slots of one child (a counter's total; a histogram's sum and buckets; ...), in
/// one file. Each is a pointer so that a forked child can move it to its own file.
pub struct Slots {
    file: FileId,
    keys: Box<[String]>,
    pointers: Box<[AtomicPtr<AtomicU64>]>,
    /// Process memory the pointers move to once the child is removed (value, timestamp pairs).
    detached: OnceLock<Box<[AtomicU64]>>,
}

impl Slots {
    /// Creates (or finds) the entries of `keys` in this process's file.
    pub fn new(file: FileId, keys: Vec<String>) -> io::Result<Arc<Slots>> {
        let mut files = files();
        let resolved = files.resolve(&file, &keys)?;
        let pointers = resolved
            .into_iter()
            .map(|slot| AtomicPtr::new(slot as *const AtomicU64 as *mut AtomicU64))
            .collect();
        let slots = Arc::new(Slots {
            file,
            keys: keys.into_boxed_slice(),
            pointers,
            detached: OnceLock::new(),
        });
        if files.slots.len() >= 64 && files.slots.len().is_power_of_two() {
            files.slots.retain(|s| s.strong_count() > 0);
        }
        files.slots.push(Arc::downgrade(&slots));
        Ok(slots)
    }

    /// The value slot `i`.
    #[inline]
    pub fn value(&self, i: usize) -> &AtomicU64 {
        // SAFETY: pointers always point into a live mapping (see `MappedFile::slot_at`).
        unsafe { &*self.pointers[i].load(Ordering::Relaxed) }
    }

    /// The timestamp slot that follows value slot `i`.
    #[inline]
    pub fn timestamp(&self, i: usize) -> &AtomicU64 {
        // SAFETY: every value slot is followed by its timestamp in the same entry.
        unsafe { &*self.pointers[i].load(Ordering::Relaxed).add(1) }
    }

    pub fn len(&self) -> usize {
        self.pointers.len()
    }

    /// Moves the cells into process memory, values kept: the entries are about to leave the
    /// file.
    fn detach(&self) {
        let cells = self
            .detached
            .get_or_init(|| crate::core::cell::zeroed(2 * self.pointers.len()));
        for (i, pointer) in self.pointers.iter().enumerate() {
            cells[2 * i].store(self.value(i).load(Ordering::Relaxed), Ordering::Relaxed);
            cells[2 * i + 1].store(self.timestamp(i).load(Ordering::Relaxed), Ordering::Relaxed);
            pointer.store(
                &cells[2 * i] as *const AtomicU64 as *mut AtomicU64,
                Ordering::Relaxed,
            );
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pointers.is_empty()
    }

    /// Whether `remove` has taken these slots out of the file.
    pub fn is_detached(&self) -> bool {
        self.detached.get().is_some()
    }
}

/// How a metric stores its children in multiprocess mode: which file, and what goes into the
/// entries' keys besides the labels.
pub struct MappedSpec {
    pub file: FileId,
    pub metric_name: String,
    pub help: String,
    pub metric_type: MetricType,
}

impl MappedSpec {
    /// `file_prefix` is `counter`, `histogram`, `summary` or `gauge_{mode}`.
    pub fn new(
        directory: PathBuf,
        file_prefix: String,
        process: Option<String>,
        metric_name: String,
        help: String,
        metric_type: MetricType,
    ) -> MappedSpec {
        MappedSpec {
            file: FileId {
                directory,
                prefix: file_prefix,
                process,
                extension: "db",
            },
            metric_name,
            help,
            metric_type,
        }
    }

    /// The slots of one series in this process's file, created (at 0.0) in the reference's
    /// order: a counter's `_total`, a gauge's value, a summary's `_count` then `_sum`, a
    /// histogram's `_sum` then a bucket per bound.
    pub fn series_slots(
        &self,
        labelnames: &[String],
        labels: &[String],
        bounds: &[f64],
    ) -> io::Result<Arc<Slots>> {
        let name = self.metric_name.as_str();
        let pairs = label_dict(labelnames, labels);
        let key = |suffix: &str| mmap_key(name, &format!("{name}{suffix}"), &pairs, &self.help);
        let keys = match self.metric_type {
            MetricType::Counter => vec![key("_total")],
            MetricType::Gauge => vec![key("")],
            MetricType::Summary => vec![key("_count"), key("_sum")],
            _ => {
                let mut keys = vec![key("_sum")];
                let bucket_name = format!("{name}_bucket");
                for bound in bounds {
                    let le = float_to_go_string(*bound);
                    let mut with_le = pairs.clone();
                    with_le.retain(|(k, _)| *k != "le");
                    with_le.push(("le", le.as_str()));
                    keys.push(mmap_key(name, &bucket_name, &with_le, &self.help));
                }
                keys
            }
        };
        Slots::new(self.file.clone(), keys)
    }
}

/// `dict(zip(labelnames, labelvalues))`: a repeated name keeps its last value.
pub(super) fn label_dict<'a>(
    labelnames: &'a [String],
    labels: &'a [String],
) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(labels.len());
    for (name, value) in labelnames.iter().zip(labels) {
        match pairs.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value,
            None => pairs.push((name, value)),
        }
    }
    pairs
}

/// The identifier of the `MultiProcessValue` class keyed `key` is `identifier` now (its first,
/// or a new one, as in a forked worker of a server that numbers its workers): its metrics write
/// to files named after it from now on, each value starting from what that file holds, as the
/// reference's values do when they see the identifier change.
pub fn set_identity(key: &str, identifier: &str) -> io::Result<()> {
    let mut files = files();
    if files.identities.get(key).map(String::as_str) == Some(identifier) {
        return Ok(());
    }
    files
        .identities
        .insert(key.to_string(), identifier.to_string());
    let moved: Vec<FileId> = files
        .open
        .keys()
        .filter(|id| id.process.as_deref() == Some(key))
        .cloned()
        .collect();
    for id in moved {
        let Some(old) = files.open.remove(&id) else {
            continue;
        };
        match files.repoint(Some(&id)) {
            Ok(()) => epochs().retire(old),
            Err(e) => {
                files.stranded.push(old);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// After `fork()`, in the child: this process writes its own files from now on, starting from
/// zero as the reference's children do; the parent's files keep the parent's values. Runs
/// while the child has one thread.
pub fn after_fork_in_child() -> io::Result<()> {
    let mut files = files();
    files.pid = std::process::id();
    let parents = std::mem::take(&mut files.open);
    let moved = files.repoint(None);
    // With one thread there is no render to wait for; on failure some slots are still there.
    match moved {
        Ok(()) => drop(parents),
        Err(_) => files.stranded.extend(parents.into_values()),
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::{add_f64, load_f64};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fastprom-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn entries_have_the_reference_layout() {
        let dir = temp_dir("layout");
        let path = dir.join("counter_1.db");
        let file = MappedFile::open(&path).unwrap();
        add_f64(file.slot("abc").unwrap(), 2.5);
        add_f64(file.slot("abcd").unwrap(), 1.0);
        add_f64(file.slot("abc").unwrap(), 1.0);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), INITIAL_SIZE);
        // entry 1: 4 + 3 + pad 1 + 16 = 24 bytes at 8; entry 2: 4 + 4 + pad 8 + 16 = 32 at 32.
        assert_eq!(i32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 64);
        assert_eq!(&bytes[8..16], b"\x03\0\0\0abc ");
        assert_eq!(f64::from_ne_bytes(bytes[16..24].try_into().unwrap()), 3.5);
        assert_eq!(&bytes[32..48], b"\x04\0\0\0abcd        ");
        let entries = read_entries(&bytes).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[1].key.as_str(), entries[1].value), ("abcd", 1.0));
    }

    #[test]
    fn a_retired_file_lives_until_the_renders_that_pinned_it_end() {
        let dir = temp_dir("retire");
        let epochs = Epochs::default();
        let file = Arc::new(MappedFile::open(&dir.join("counter_3.db")).unwrap());
        add_f64(file.slot("a").unwrap(), 2.0);
        let released = Arc::downgrade(&file);
        let early = epochs.pin();
        epochs.retire(file);
        let late = epochs.pin();
        let still_mapped = released
            .upgrade()
            .expect("a render that began before still reads it");
        assert_eq!(load_f64(still_mapped.slot("a").unwrap()), 2.0);
        drop(still_mapped);
        drop(late);
        assert!(released.upgrade().is_some());
        drop(early);
        assert!(
            released.upgrade().is_none(),
            "unmapped once that render ended"
        );
        // A render keeps the files retired after it began too: it may have loaded their
        // pointers (a retried snapshot loads them again).
        let render = epochs.pin();
        let later = Arc::new(MappedFile::open(&dir.join("counter_5.db")).unwrap());
        let later_released = Arc::downgrade(&later);
        epochs.retire(Arc::new(
            MappedFile::open(&dir.join("counter_6.db")).unwrap(),
        ));
        epochs.retire(later);
        assert!(
            later_released.upgrade().is_some(),
            "retired after the render began, while it runs"
        );
        drop(render);
        assert!(later_released.upgrade().is_none(), "unmapped once it ended");
        let unpinned = Arc::new(MappedFile::open(&dir.join("counter_4.db")).unwrap());
        let released = Arc::downgrade(&unpinned);
        epochs.retire(unpinned);
        assert!(released.upgrade().is_none(), "no render: released at once");
    }

    #[test]
    fn files_grow_by_doubling_and_slots_stay_put() {
        let dir = temp_dir("grow");
        let path = dir.join("counter_2.db");
        let file = MappedFile::open(&path).unwrap();
        let first = file.slot("first").unwrap();
        for i in 0..5000 {
            add_f64(file.slot(&format!("key-{i:05}")).unwrap(), i as f64);
        }
        add_f64(first, 7.0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 18);
        let reopened = MappedFile::open(&path).unwrap();
        assert_eq!(load_f64(reopened.slot("first").unwrap()), 7.0);
        assert_eq!(load_f64(reopened.slot("key-04999").unwrap()), 4999.0);
    }
}
