//! Multiprocess mode's bindings: the collector's reader, compaction and the directory lock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::errors::multiprocess_file_error;
use super::python;
use crate::core::fork;
use crate::core::model::OwnedFamily;
use crate::core::multiprocess::compact::{compact, DirectoryLock};
use crate::core::multiprocess::file::FileCache;
use crate::core::multiprocess::merge::{merge, sorted_for_render, Merged, MergedFamily};

/// Folds dead processes' files into the archives (all dead ones when `pids` is None).
/// A `values.MultiProcessValue` class (by key) names its files with `identifier` now.
#[pyfunction]
pub fn multiprocess_identity(key: &str, identifier: &str) -> PyResult<()> {
    crate::core::multiprocess::mapped::set_identity(key, identifier)
        .map_err(multiprocess_file_error)
}

#[pyfunction]
#[pyo3(signature = (path, pids = None))]
pub fn compact_directory(py: Python<'_>, path: PathBuf, pids: Option<Vec<u32>>) -> PyResult<usize> {
    py.detach(|| compact(&path, pids.as_deref()))
        .map_err(multiprocess_file_error)
}

/// A shared lock on a multiprocess directory, held while a collector reads it.
#[pyclass(frozen, module = "fastprom._native")]
pub struct SharedDirectoryLock {
    path: PathBuf,
    lock: Mutex<Option<DirectoryLock>>,
}

#[pymethods]
impl SharedDirectoryLock {
    #[new]
    fn new(path: PathBuf) -> SharedDirectoryLock {
        SharedDirectoryLock {
            path,
            lock: Mutex::new(None),
        }
    }

    /// Taken where it can be: a deleted or read-only directory is read without it.
    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        let lock = slf
            .py()
            .detach(|| DirectoryLock::shared_if_possible(&this.path))
            .map_err(multiprocess_file_error)?;
        *this.lock.lock().unwrap_or_else(|e| e.into_inner()) = lock;
        Ok(())
    }

    fn __exit__(
        &self,
        _kind: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) {
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Reads and merges multiprocess files, remembering the keys of the entries it has seen.
#[pyclass(frozen, module = "fastprom._native")]
pub struct MultiProcessReader {
    cache: Arc<Mutex<FileCache>>,
}

/// The cache of a directory, shared by every reader of it: BentoML, for one, makes a new
/// collector for every scrape.
fn directory_cache(directory: PathBuf) -> Arc<Mutex<FileCache>> {
    let mut caches = directory_caches();
    forget_deleted_directories(&mut caches);
    caches.entry(directory).or_default().clone()
}

type DirectoryCaches = HashMap<PathBuf, Arc<Mutex<FileCache>>>;

fn directory_caches() -> MutexGuard<'static, DirectoryCaches> {
    static CACHES: OnceLock<Mutex<DirectoryCaches>> = OnceLock::new();
    let caches = CACHES.get_or_init(Default::default);
    caches.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops the caches of directories that are gone, with the files they keep open. A collector
/// still reading one keeps its cache (emptied by its next scrape).
fn forget_deleted_directories(caches: &mut DirectoryCaches) {
    caches.retain(|directory, _| directory.is_dir());
}

/// Merged families for the exposition writers: rendered without building Python objects.
#[pyclass(frozen, module = "fastprom._native")]
pub struct MergedFamilies {
    families: Mutex<Vec<MergedFamily>>,
}

impl MergedFamilies {
    pub fn take(&self) -> Vec<MergedFamily> {
        std::mem::take(&mut *self.families.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

type Skipped = Vec<(String, String)>;

#[pymethods]
impl MultiProcessReader {
    /// A reader of `directory` shares its cache; without one, the reader has its own.
    #[new]
    #[pyo3(signature = (directory = None))]
    fn new(directory: Option<PathBuf>) -> MultiProcessReader {
        let cache = match directory {
            Some(directory) => directory_cache(directory),
            None => Arc::default(),
        };
        MultiProcessReader { cache }
    }

    /// `(metrics, skipped)`: the merged `Metric` objects, and `(path, reason)` of each file
    /// that could not be read.
    fn merge<'py>(
        &self,
        py: Python<'py>,
        files: Vec<PathBuf>,
        accumulate: bool,
    ) -> PyResult<(Bound<'py, PyList>, Skipped)> {
        let merged = self.read(py, &files, accumulate);
        let metrics = PyList::empty(py);
        for family in &merged.families {
            metrics.append(to_metric(py, family)?)?;
        }
        Ok((metrics, skipped(merged)))
    }

    /// `(families, skipped)` with families ready for the native writers.
    fn families(&self, py: Python<'_>, files: Vec<PathBuf>) -> PyResult<(MergedFamilies, Skipped)> {
        let mut merged = self.read(py, &files, true);
        let mut families = std::mem::take(&mut merged.families);
        sorted_for_render(&mut families);
        let native = std::mem::take(&mut merged.native);
        let families = MergedFamilies {
            families: Mutex::new(MergedFamily::attach(families, native)),
        };
        Ok((families, skipped(merged)))
    }
}

impl MultiProcessReader {
    fn read(&self, py: Python<'_>, files: &[PathBuf], accumulate: bool) -> Merged {
        py.detach(|| {
            let _fork_guard = fork::guard();
            forget_deleted_directories(&mut directory_caches());
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            merge(files, accumulate, &mut cache)
        })
    }
}

fn skipped(merged: Merged) -> Skipped {
    merged
        .warnings
        .into_iter()
        .map(|(path, reason)| (path.display().to_string(), reason))
        .collect()
}

/// `Metric(name, documentation, type)` with `Sample(name, labels, value)`s.
fn to_metric<'py>(py: Python<'py>, family: &OwnedFamily) -> PyResult<Bound<'py, PyAny>> {
    let metric = py
        .import(intern!(py, "fastprom.metrics_core"))?
        .getattr(intern!(py, "Metric"))?
        .call1((
            family.name.as_str(),
            family.documentation.as_str(),
            family.metric_type.as_str(),
        ))?;
    let samples = PyList::empty(py);
    for s in &family.samples {
        let labels = PyDict::new(py);
        for (k, v) in &s.labels {
            labels.set_item(k, v)?;
        }
        samples.append(python::sample(
            py,
            &s.name,
            labels,
            s.value.unwrap_or(0.0),
            None,
        )?)?;
    }
    metric.setattr(intern!(py, "samples"), samples)?;
    Ok(metric)
}
