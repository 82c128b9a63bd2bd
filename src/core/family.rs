//! Metric families and their children (one child per label-value set).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use indexmap::{Equivalent, IndexSet};

use super::cell::{add_f64, load_f64, store_f64};
use super::counter::CounterCells;
use super::format::float_to_go_string;
use super::model::{Exemplar, FamilySource, MetricType, NativeHistogramVisitor, Sample};
use super::multiprocess::mapped::{self, MappedSpec, Slots};
use super::multiprocess::sketch::MappedSketch;
use super::native_histogram::{NativeConfig, SparseHistogram};
use super::observations::{MappedObservations, Observations};
use super::quantiles::{clock, QuantileSpec};

/// The value cells of one child.
pub enum ChildValue {
    Counter(CounterCells),
    Gauge(AtomicU64),
    Summary(Box<Observations>),
    Histogram(Box<Observations>),
    /// Multiprocess mode: a slot in this process's `counter` file.
    MappedCounter(Arc<Slots>),
    /// Multiprocess mode: a slot (and its timestamp) in this process's `gauge_{mode}` file.
    MappedGauge(Arc<Slots>),
}

/// One time series set: a labelled child, or the single child of an unlabelled metric.
pub struct Child {
    /// Label values in label-name order (empty for an unlabelled metric).
    pub label_values: Box<[String]>,
    pub value: ChildValue,
    created: AtomicU64,
    /// Exemplars per bucket (slot 0 for a counter); empty until one is set.
    /// Exemplars per bucket (slot 0 for a counter), allocated at the first one.
    exemplars: OnceLock<Box<Mutex<Vec<Option<Exemplar>>>>>,
    /// A Python callback supplies this child's samples (`Gauge.set_function`).
    python_samples: AtomicBool,
    /// The flag of the family this child belongs to, which it raises too.
    family_python_samples: OnceLock<Arc<AtomicBool>>,
    /// An opaque word for the binding layer (the address of a live handle object, or 0);
    /// the core never reads it.
    handle: AtomicUsize,
}

/// What `Child::visit` reports for each sample, before family labels are added.
pub struct ChildSample<'a> {
    pub suffix: &'static str,
    /// The bucket index of a `_bucket` sample (its `le` label).
    pub bucket: Option<usize>,
    pub value: f64,
    pub exemplar: Option<&'a Exemplar>,
}

impl Child {
    pub fn counter(labels: Vec<String>, created: f64) -> Child {
        Child::new(
            labels,
            ChildValue::Counter(CounterCells::default()),
            created,
        )
    }

    pub fn gauge(labels: Vec<String>) -> Child {
        Child::new(labels, ChildValue::Gauge(AtomicU64::new(0)), 0.0)
    }

    pub fn summary(labels: Vec<String>, created: f64) -> Child {
        Child::new(
            labels,
            ChildValue::Summary(Box::new(Observations::local(&[]))),
            created,
        )
    }

    /// A histogram child that also keeps native buckets.
    pub fn histogram_with_native(
        labels: Vec<String>,
        created: f64,
        bounds: &[f64],
        native: NativeConfig,
    ) -> Child {
        let observations = Observations::WithNative(
            Box::new(Observations::local(bounds)),
            Box::new(SparseHistogram::new(native)),
        );
        Child::new(
            labels,
            ChildValue::Histogram(Box::new(observations)),
            created,
        )
    }

    /// A summary child that also estimates the quantiles of `spec`.
    pub fn summary_with_quantiles(labels: Vec<String>, created: f64, spec: &QuantileSpec) -> Child {
        let observations =
            Observations::WithQuantiles(Box::new(Observations::local(&[])), Box::new(spec.start()));
        Child::new(labels, ChildValue::Summary(Box::new(observations)), created)
    }

    pub fn histogram(labels: Vec<String>, created: f64, bounds: &[f64]) -> Child {
        Child::new(
            labels,
            ChildValue::Histogram(Box::new(Observations::local(bounds))),
            created,
        )
    }

    /// A child whose cells are slots of this process's multiprocess file; a histogram's native
    /// buckets (if `native`) go to this process's side file, and a summary with `quantiles`
    /// keeps a sketch of its observations in a side file too.
    pub fn mapped(
        spec: &MappedSpec,
        labelnames: &[String],
        labels: Vec<String>,
        bounds: &[f64],
        native: Option<&NativeConfig>,
        quantiles: Option<&QuantileSpec>,
        created: f64,
    ) -> std::io::Result<Child> {
        let slots = spec.series_slots(labelnames, &labels, bounds)?;
        let observations = |slots, bounds: &[f64]| {
            Box::new(Observations::Mapped(MappedObservations::new(slots, bounds)))
        };
        let value = match (spec.metric_type, native, quantiles) {
            (MetricType::Counter, ..) => ChildValue::MappedCounter(slots),
            (MetricType::Gauge, ..) => ChildValue::MappedGauge(slots),
            (MetricType::Summary, _, Some(quantiles)) => {
                let objectives = quantiles
                    .objectives
                    .iter()
                    .map(|o| (o.quantile, o.error))
                    .collect();
                let (max_age, age_buckets) = (quantiles.max_age, quantiles.age_buckets);
                let sketch = MappedSketch::for_series(
                    spec,
                    labelnames,
                    &labels,
                    objectives,
                    max_age,
                    age_buckets,
                )?;
                let cells = MappedObservations::with_sketch(slots, sketch);
                ChildValue::Summary(Box::new(Observations::Mapped(cells)))
            }
            (MetricType::Summary, _, None) => ChildValue::Summary(observations(slots, &[])),
            (_, Some(config), _) => {
                let native = spec.native_slots(labelnames, &labels, *config)?;
                ChildValue::Histogram(Box::new(Observations::WithMappedNative(
                    observations(slots, bounds),
                    Box::new(native),
                )))
            }
            (_, None, _) => ChildValue::Histogram(observations(slots, bounds)),
        };
        Ok(Child::new(labels, value, created))
    }

    /// A child with the given cells.
    pub fn new(labels: Vec<String>, value: ChildValue, created: f64) -> Child {
        Child {
            label_values: labels.into_boxed_slice(),
            value,
            created: AtomicU64::new(created.to_bits()),
            exemplars: OnceLock::new(),
            python_samples: AtomicBool::new(false),
            family_python_samples: OnceLock::new(),
            handle: AtomicUsize::new(0),
        }
    }

    /// The binding layer's handle word (0: none).
    #[inline]
    pub fn handle(&self) -> usize {
        self.handle.load(Ordering::Acquire)
    }

    /// Sets the handle word to `handle` unless another handle holds it: returns that one.
    pub fn claim_handle(&self, handle: usize) -> Option<usize> {
        match self
            .handle
            .compare_exchange(0, handle, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(current) if current == handle => None,
            Err(current) => Some(current),
        }
    }

    /// Clears the handle word if it still holds `handle`.
    pub fn clear_handle(&self, handle: usize) {
        let _ = self
            .handle
            .compare_exchange(handle, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn created(&self) -> f64 {
        load_f64(&self.created)
    }

    pub fn set_created(&self, t: f64) {
        store_f64(&self.created, t)
    }

    pub fn set_python_samples(&self) {
        self.python_samples.store(true, Ordering::Release);
        if let Some(flag) = self.family_python_samples.get() {
            flag.store(true, Ordering::Release);
        }
    }

    /// Joins a family: from now on a Python sample source here marks the family too.
    fn join(&self, family_flag: &Arc<AtomicBool>) {
        let flag = self
            .family_python_samples
            .get_or_init(|| family_flag.clone());
        if self.has_python_samples() {
            flag.store(true, Ordering::Release);
        }
    }

    pub fn has_python_samples(&self) -> bool {
        self.python_samples.load(Ordering::Acquire)
    }

    /// A counter's whole increments take the integer slot; others go to the float slot.
    #[inline]
    pub fn counter_inc_int(&self, n: u64) {
        match &self.value {
            ChildValue::Counter(c) => c.inc_int(n),
            ChildValue::MappedCounter(s) => add_f64(s.value(0), n as f64),
            _ => {}
        }
    }

    #[inline]
    pub fn counter_inc(&self, v: f64) {
        match &self.value {
            ChildValue::Counter(c) => c.inc(v),
            ChildValue::MappedCounter(s) => add_f64(s.value(0), v),
            _ => {}
        }
    }

    /// Whether the cells live in a multiprocess file (which keeps no exemplars).
    pub fn is_mapped(&self) -> bool {
        self.mapped_slots().is_some()
    }

    /// The slots of a child whose cells live in a multiprocess file.
    pub fn mapped_slots(&self) -> Option<&Arc<Slots>> {
        match &self.value {
            ChildValue::MappedCounter(s) | ChildValue::MappedGauge(s) => Some(s),
            ChildValue::Summary(o) | ChildValue::Histogram(o) => o.mapped_slots(),
            _ => None,
        }
    }

    /// Multiprocess mode: the child leaves the files. Its value slots, a histogram's native
    /// buckets', and a summary's sketch's (which stops making new entries), for
    /// `mapped::remove`.
    pub fn slots_to_remove(&self) -> Vec<Arc<Slots>> {
        let mut slots: Vec<Arc<Slots>> = self.mapped_slots().cloned().into_iter().collect();
        match &self.value {
            ChildValue::Histogram(o) => {
                slots.extend(o.mapped_native().map(|n| n.slots()).unwrap_or_default())
            }
            ChildValue::Summary(o) => slots.extend(
                o.mapped_sketch()
                    .map(MappedSketch::remove)
                    .unwrap_or_default(),
            ),
            _ => {}
        }
        slots
    }

    /// The single value of a counter or gauge.
    pub fn get(&self) -> f64 {
        match &self.value {
            ChildValue::Counter(c) => c.get(),
            ChildValue::Gauge(slot) => load_f64(slot),
            ChildValue::MappedCounter(s) | ChildValue::MappedGauge(s) => load_f64(s.value(0)),
            ChildValue::Summary(h) | ChildValue::Histogram(h) => h.snapshot().sum,
        }
    }

    /// Replaces the value of a counter or gauge.
    pub fn set(&self, v: f64) {
        self.set_at(v, 0.0)
    }

    /// Replaces the value; a multiprocess gauge also records `timestamp` (its `mostrecent`
    /// modes keep the value with the latest one).
    pub fn set_at(&self, v: f64, timestamp: f64) {
        match &self.value {
            ChildValue::Counter(c) => c.set(v),
            ChildValue::Gauge(slot) => store_f64(slot, v),
            ChildValue::MappedCounter(s) => store_f64(s.value(0), v),
            ChildValue::MappedGauge(s) => {
                store_f64(s.value(0), v);
                store_f64(s.timestamp(0), timestamp);
            }
            ChildValue::Summary(h) | ChildValue::Histogram(h) => h.set_part(None, v),
        }
    }

    #[inline]
    pub fn gauge_add(&self, v: f64) {
        match &self.value {
            ChildValue::Gauge(slot) => add_f64(slot, v),
            ChildValue::MappedGauge(s) => add_f64(s.value(0), v),
            _ => {}
        }
    }

    pub fn set_exemplar(&self, slot: usize, exemplar: Exemplar) {
        if self.is_mapped() {
            return;
        }
        let all = self.exemplars.get_or_init(Box::default);
        let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() <= slot {
            all.resize(slot + 1, None);
        }
        all[slot] = Some(exemplar);
    }

    pub fn exemplar(&self, slot: usize) -> Option<Exemplar> {
        self.lock_exemplars()?.get(slot).cloned().flatten()
    }

    fn lock_exemplars(&self) -> Option<MutexGuard<'_, Vec<Option<Exemplar>>>> {
        let all = self.exemplars.get()?;
        Some(all.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The label of the samples `visit` reports with `bucket: Some(i)`: a histogram's `le`, or
    /// a summary's `quantile`.
    pub fn bucket_label(&self, i: usize) -> Option<(&'static str, String)> {
        match &self.value {
            ChildValue::Histogram(h) => Some(("le", float_to_go_string(*h.bounds().get(i)?))),
            ChildValue::Summary(h) => {
                let objective = h.quantiles()?.objectives().get(i)?;
                Some(("quantile", float_to_go_string(objective.quantile)))
            }
            _ => None,
        }
    }

    /// Reports this child's samples in the reference's order (`_child_samples`).
    pub fn visit(&self, use_created: bool, visit: &mut dyn FnMut(&ChildSample<'_>)) {
        let exemplars = self.lock_exemplars();
        let exemplar = |i: usize| {
            exemplars
                .as_ref()
                .and_then(|e| e.get(i))
                .and_then(|e| e.as_ref())
        };
        let plain = |suffix, value| ChildSample {
            suffix,
            bucket: None,
            value,
            exemplar: None,
        };
        match &self.value {
            ChildValue::MappedCounter(_) => visit(&plain("_total", self.get())),
            ChildValue::MappedGauge(_) => visit(&plain("", self.get())),
            ChildValue::Counter(_) => {
                let total = ChildSample {
                    exemplar: exemplar(0),
                    ..plain("_total", self.get())
                };
                visit(&total);
            }
            ChildValue::Gauge(slot) => visit(&plain("", load_f64(slot))),
            ChildValue::Summary(h) => {
                if let Some(quantiles) = h.quantiles() {
                    for (i, (_, value)) in quantiles.quantiles(clock()).into_iter().enumerate() {
                        let quantile = ChildSample {
                            bucket: Some(i),
                            ..plain("", value)
                        };
                        visit(&quantile);
                    }
                }
                let snap = h.snapshot();
                visit(&plain("_count", snap.observations as f64));
                visit(&plain("_sum", snap.sum));
            }
            ChildValue::Histogram(h) => {
                let snap = h.snapshot();
                let mut cumulative = 0u64;
                for (i, count) in snap.buckets.iter().enumerate() {
                    cumulative += count;
                    let bucket = ChildSample {
                        bucket: Some(i),
                        exemplar: exemplar(i),
                        ..plain("_bucket", cumulative as f64)
                    };
                    visit(&bucket);
                }
                visit(&plain("_count", cumulative as f64));
                if h.bounds().first().is_some_and(|b| *b >= 0.0) {
                    visit(&plain("_sum", snap.sum));
                }
            }
        }
        let is_gauge = matches!(
            self.value,
            ChildValue::Gauge(_) | ChildValue::MappedGauge(_)
        );
        if use_created && !is_gauge {
            visit(&plain("_created", self.created()));
        }
    }
}

/// Where `name` falls among the sorted label names.
fn label_position(labelnames: &[String], sorted_labels: &[usize], name: &str) -> usize {
    sorted_labels
        .iter()
        .position(|i| labelnames[*i].as_str() > name)
        .unwrap_or(sorted_labels.len())
}

type ChildHasher = foldhash::fast::RandomState;

/// A child in a family's set, hashed and compared by its label values.
struct Keyed(Arc<Child>);

impl Hash for Keyed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.label_values.hash(state)
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Keyed) -> bool {
        self.0.label_values == other.0.label_values
    }
}

impl Eq for Keyed {}

impl Borrow<[String]> for Keyed {
    fn borrow(&self) -> &[String] {
        &self.0.label_values
    }
}

/// Label values borrowed from the caller, to look a child up without building its key.
/// It hashes as `[String]` does (a slice hashes its length, then each `str`).
#[derive(Hash)]
struct BorrowedKey<'a>(&'a [&'a str]);

impl Equivalent<Keyed> for BorrowedKey<'_> {
    fn equivalent(&self, key: &Keyed) -> bool {
        let values = &key.0.label_values;
        values.len() == self.0.len() && values.iter().zip(self.0).all(|(a, b)| a == b)
    }
}

/// A metric registered in a registry: its metadata and children in insertion order.
pub struct Family {
    pub name: String,
    pub documentation: String,
    pub unit: String,
    pub metric_type: MetricType,
    pub labelnames: Vec<String>,
    /// Indexes of the distinct label names in sorted name order, and where the label of a
    /// sample's bucket (`le`, or a summary's `quantile`) falls among them.
    sorted_labels: Vec<usize>,
    le_position: usize,
    /// A histogram's bucket upper bounds, and their `le` label values.
    bounds: Vec<f64>,
    /// The `le` values of a histogram's buckets, or the `quantile` values of a summary's
    /// objectives: the label of a `ChildSample`'s `bucket`.
    le_values: Vec<String>,
    bucket_label: &'static str,
    /// A summary's objectives and window, for the children it makes.
    quantiles: Option<QuantileSpec>,
    /// A histogram's native bucket settings, for the children it makes.
    native: Option<NativeConfig>,
    /// Hashed with foldhash: keyed per process like std's SipHash (label values may come from
    /// requests), and several times faster on short strings (every `labels()` hashes them).
    children: Mutex<IndexSet<Keyed, ChildHasher>>,
    /// Some child's samples come from Python (it stays set after that child is removed).
    python_samples: Arc<AtomicBool>,
}

impl Family {
    pub fn new(
        name: String,
        documentation: String,
        unit: String,
        metric_type: MetricType,
        labelnames: Vec<String>,
        bounds: &[f64],
    ) -> Family {
        // A repeated label name keeps its last value, as Python's dict(zip(names, values)) does.
        // Scanning from the end, the first sighting of a name is its last occurrence (linear).
        let mut seen = std::collections::HashSet::with_capacity(labelnames.len());
        let mut sorted_labels: Vec<usize> = (0..labelnames.len())
            .rev()
            .filter(|i| seen.insert(labelnames[*i].as_str()))
            .collect();
        sorted_labels.sort_by(|a, b| labelnames[*a].cmp(&labelnames[*b]));
        let le_position = label_position(&labelnames, &sorted_labels, "le");
        Family {
            name,
            documentation,
            unit,
            metric_type,
            labelnames,
            sorted_labels,
            le_position,
            bounds: bounds.to_vec(),
            le_values: bounds.iter().map(|b| float_to_go_string(*b)).collect(),
            bucket_label: "le",
            quantiles: None,
            native: None,
            children: Mutex::new(IndexSet::default()),
            python_samples: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A summary family whose samples include the quantiles of `spec`, labelled `quantile`.
    pub fn with_quantiles(mut self, spec: QuantileSpec) -> Family {
        self.le_position = label_position(&self.labelnames, &self.sorted_labels, "quantile");
        self.le_values = spec
            .objectives
            .iter()
            .map(|o| float_to_go_string(o.quantile))
            .collect();
        self.bucket_label = "quantile";
        self.quantiles = Some(spec);
        self
    }

    pub fn quantiles(&self) -> Option<&QuantileSpec> {
        self.quantiles.as_ref()
    }

    /// A histogram family whose children keep native buckets too.
    pub fn with_native(mut self, config: NativeConfig) -> Family {
        self.native = Some(config);
        self
    }

    pub fn native(&self) -> Option<&NativeConfig> {
        self.native.as_ref()
    }

    fn lock_children(&self) -> MutexGuard<'_, IndexSet<Keyed, ChildHasher>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a child; a child already present under the same label values stays.
    pub fn insert(&self, child: Arc<Child>) {
        child.join(&self.python_samples);
        self.lock_children().insert(Keyed(child));
    }

    /// Whether some child's samples come from Python, so only Python can collect this family.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    pub fn needs_python(&self) -> bool {
        self.python_samples.load(Ordering::Acquire)
    }

    /// Runs `found` on the child labelled `values`, under the family's lock.
    #[inline]
    pub fn with_child<R>(
        &self,
        values: &[&str],
        found: impl FnOnce(&Arc<Child>) -> R,
    ) -> Option<R> {
        self.lock_children()
            .get(&BorrowedKey(values))
            .map(|k| found(&k.0))
    }

    /// The child labelled `values`, made by `make` (under the family's lock) if missing;
    /// `found` runs on it under the lock too. The flag says whether it was made now.
    pub fn get_or_insert_with<R, E>(
        &self,
        values: &[&str],
        make: impl FnOnce() -> Result<Child, E>,
        found: impl FnOnce(&Arc<Child>) -> R,
    ) -> Result<(R, bool), E> {
        let mut children = self.lock_children();
        if let Some(existing) = children.get(&BorrowedKey(values)) {
            return Ok((found(&existing.0), false));
        }
        let child = Arc::new(make()?);
        child.join(&self.python_samples);
        let result = found(&child);
        children.insert(Keyed(child));
        Ok((result, true))
    }

    /// Adds a child, replacing one under the same label values; returns the replaced one.
    pub fn replace_child(&self, child: Arc<Child>) -> Option<Arc<Child>> {
        child.join(&self.python_samples);
        let (_, replaced) = self.lock_children().replace_full(Keyed(child));
        replaced.map(|k| k.0)
    }

    /// Removes a child; returns it.
    pub fn remove(&self, values: &[String]) -> Option<Arc<Child>> {
        self.lock_children().shift_take(values).map(|k| k.0)
    }

    /// Removes the child labelled `values` (borrowed); returns it.
    pub fn take(&self, values: &[&str]) -> Option<Arc<Child>> {
        self.lock_children()
            .shift_take(&BorrowedKey(values))
            .map(|k| k.0)
    }

    /// Removes every child; returns them.
    pub fn clear(&self) -> Vec<Arc<Child>> {
        self.lock_children().drain(..).map(|k| k.0).collect()
    }

    pub fn len(&self) -> usize {
        self.lock_children().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces all children, in the given order.
    pub fn replace(&self, children: Vec<Arc<Child>>) {
        let mut set = self.lock_children();
        set.clear();
        for child in children {
            child.join(&self.python_samples);
            set.insert(Keyed(child));
        }
    }

    /// The children as they are now, so rendering holds no lock.
    pub fn children(&self) -> Vec<Arc<Child>> {
        self.lock_children().iter().map(|k| k.0.clone()).collect()
    }

    fn has_repeated_labels(&self) -> bool {
        self.sorted_labels.len() != self.labelnames.len()
    }

    /// The children whose label set is exactly `labels` (pairs in any order), first one first.
    fn children_labelled(&self, labels: &[(&str, &str)]) -> Vec<Arc<Child>> {
        if labels.len() != self.sorted_labels.len() {
            return Vec::new();
        }
        let lookup = |name: &str| labels.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let Some(wanted) = self
            .labelnames
            .iter()
            .map(|n| lookup(n))
            .collect::<Option<Vec<&str>>>()
        else {
            return Vec::new();
        };
        if !self.has_repeated_labels() {
            let key: Vec<String> = wanted.iter().map(|v| v.to_string()).collect();
            return self
                .lock_children()
                .get(&key[..])
                .map(|k| vec![k.0.clone()])
                .unwrap_or_default();
        }
        // Repeated names: a child matches when each distinct name's last value matches.
        let matches = |c: &Child| {
            self.sorted_labels
                .iter()
                .all(|i| c.label_values.get(*i).map(String::as_str) == Some(wanted[*i]))
        };
        self.lock_children()
            .iter()
            .filter(|k| matches(&k.0))
            .map(|k| k.0.clone())
            .collect()
    }
}

/// A family and a snapshot of its children, ready for a writer.
pub struct FamilyView {
    pub family: Arc<Family>,
    pub children: Vec<Arc<Child>>,
    pub use_created: bool,
}

impl FamilyView {
    pub fn new(family: Arc<Family>, use_created: bool) -> FamilyView {
        let children = family.children();
        FamilyView {
            family,
            children,
            use_created,
        }
    }
}

impl FamilySource for FamilyView {
    fn name(&self) -> &str {
        &self.family.name
    }
    fn documentation(&self) -> &str {
        &self.family.documentation
    }
    fn metric_type(&self) -> MetricType {
        self.family.metric_type
    }
    fn unit(&self) -> &str {
        &self.family.unit
    }

    fn visit_native_histograms(&self, visit: &mut NativeHistogramVisitor<'_>) {
        let family = &*self.family;
        for child in &self.children {
            let ChildValue::Histogram(h) = &child.value else {
                continue;
            };
            let Some(native) = h.native() else {
                continue;
            };
            let value = |i: usize| child.label_values.get(i).map_or("", String::as_str);
            let labels: Vec<(&str, &str)> = family
                .sorted_labels
                .iter()
                .map(|i| (family.labelnames[*i].as_str(), value(*i)))
                .collect();
            visit(&labels, &native.snapshot());
        }
    }

    fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>)) {
        // Renders run without the GIL: a `remove` may move multiprocess slots meanwhile.
        let _pinned = mapped::pin();
        let family = &*self.family;
        let mut base: Vec<(&str, &str)> = Vec::with_capacity(family.labelnames.len() + 1);
        let mut with_le: Vec<(&str, &str)> = Vec::with_capacity(family.labelnames.len() + 1);
        for child in &self.children {
            base.clear();
            let value = |i: usize| child.label_values.get(i).map_or("", String::as_str);
            base.extend(
                family
                    .sorted_labels
                    .iter()
                    .map(|i| (family.labelnames[*i].as_str(), value(*i))),
            );
            child.visit(self.use_created, &mut |s| {
                let labels = match s.bucket.and_then(|b| family.le_values.get(b)) {
                    Some(le) => {
                        with_le.clear();
                        with_le.extend_from_slice(&base[..family.le_position]);
                        with_le.push((family.bucket_label, le.as_str()));
                        with_le.extend_from_slice(&base[family.le_position..]);
                        &with_le[..]
                    }
                    None => &base[..],
                };
                visit(&Sample {
                    name: &family.name,
                    suffix: s.suffix,
                    labels,
                    value: Some(s.value),
                    timestamp: None,
                    exemplar: s.exemplar,
                    native_histogram: None,
                });
            });
        }
    }
}

/// `registry.get_sample_value` for one family, without building its samples: the value of the
/// first sample named `name` whose labels are exactly `labels` (pairs in any order).
pub fn find_sample(
    family: &Family,
    use_created: bool,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let suffix = name.strip_prefix(family.name.as_str())?;
    let labelled_by_bucket = match family.bucket_label {
        "quantile" => suffix.is_empty(),
        _ => suffix == "_bucket",
    };
    let (le, series) = if labelled_by_bucket {
        let (le, rest): (Vec<_>, Vec<_>) = labels
            .iter()
            .copied()
            .partition(|(k, _)| *k == family.bucket_label);
        (Some(le.first()?.1), rest)
    } else {
        (None, labels.to_vec())
    };
    let bucket = match le {
        Some(le) => Some(family.le_values.iter().position(|v| v == le)?),
        None => None,
    };
    for child in family.children_labelled(&series) {
        let mut found = None;
        child.visit(use_created, &mut |s| {
            if found.is_none() && s.suffix == suffix && s.bucket == bucket {
                found = Some(s.value);
            }
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(view: &FamilyView) -> Vec<String> {
        let mut out = Vec::new();
        view.visit_samples(&mut |s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!(
                "{}{} {:?} {}",
                s.name,
                s.suffix,
                labels,
                s.value.unwrap()
            ));
        });
        out
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn family(metric_type: MetricType, labelnames: &[&str], bounds: &[f64]) -> Arc<Family> {
        Arc::new(Family::new(
            "m".into(),
            "d".into(),
            "".into(),
            metric_type,
            strings(labelnames),
            bounds,
        ))
    }

    #[test]
    fn counter_family_renders_children_in_insertion_order() {
        let f = family(MetricType::Counter, &["b", "a"], &[]);
        let x = Arc::new(Child::counter(strings(&["2", "1"]), 5.0));
        x.counter_inc_int(2);
        x.counter_inc(0.5);
        f.insert(x);
        f.insert(Arc::new(Child::counter(strings(&["4", "3"]), 6.0)));
        assert_eq!(
            collect(&FamilyView::new(f.clone(), true)),
            vec![
                r#"m_total ["a=1", "b=2"] 2.5"#,
                r#"m_created ["a=1", "b=2"] 5"#,
                r#"m_total ["a=3", "b=4"] 0"#,
                r#"m_created ["a=3", "b=4"] 6"#,
            ]
        );
        assert_eq!(
            find_sample(&f, true, "m_total", &[("a", "1"), ("b", "2")]),
            Some(2.5)
        );
        assert_eq!(
            find_sample(&f, false, "m_created", &[("a", "1"), ("b", "2")]),
            None
        );
        assert_eq!(find_sample(&f, true, "m_total", &[("a", "1")]), None);
        f.remove(&strings(&["2", "1"]));
        assert_eq!(FamilyView::new(f.clone(), false).children.len(), 1);
        assert_eq!(
            find_sample(&f, true, "m_total", &[("a", "1"), ("b", "2")]),
            None
        );
    }

    #[test]
    fn histogram_inserts_le_in_sorted_position() {
        let f = family(MetricType::Histogram, &["z", "a"], &[1.0, f64::INFINITY]);
        let child = Arc::new(Child::histogram(
            strings(&["zv", "av"]),
            1.0,
            &[1.0, f64::INFINITY],
        ));
        if let ChildValue::Histogram(h) = &child.value {
            h.observe(0.5);
            h.observe(3.0);
        }
        f.insert(child);
        assert_eq!(
            collect(&FamilyView::new(f.clone(), false)),
            vec![
                r#"m_bucket ["a=av", "le=1.0", "z=zv"] 1"#,
                r#"m_bucket ["a=av", "le=+Inf", "z=zv"] 2"#,
                r#"m_count ["a=av", "z=zv"] 2"#,
                r#"m_sum ["a=av", "z=zv"] 3.5"#,
            ]
        );
        let labels = [("le", "+Inf"), ("z", "zv"), ("a", "av")];
        assert_eq!(find_sample(&f, false, "m_bucket", &labels), Some(2.0));
        assert_eq!(find_sample(&f, false, "m_sum", &labels[1..]), Some(3.5));
        assert_eq!(find_sample(&f, false, "m_bucket", &labels[1..]), None);
    }

    #[test]
    fn borrowed_label_values_find_and_make_children() {
        let f = family(MetricType::Counter, &["a", "b"], &[]);
        let made = f.get_or_insert_with(
            &["x", "y"],
            || Ok::<_, ()>(Child::counter(strings(&["x", "y"]), 1.0)),
            |c| c.claim_handle(7),
        );
        assert_eq!(made, Ok((None, true)));
        let again = f.get_or_insert_with(&["x", "y"], || Err(()), |c| c.handle());
        assert_eq!(again, Ok((7, false)));
        // Owned and borrowed keys meet: lookups by either find the same child.
        assert_eq!(f.with_child(&["x", "y"], |c| c.handle()), Some(7));
        assert_eq!(f.with_child(&["x", "yy"], |c| c.handle()), None);
        assert_eq!(f.with_child(&["xy"], |c| c.handle()), None);
        f.insert(Arc::new(Child::counter(strings(&["p", "q"]), 1.0)));
        assert!(f.with_child(&["p", "q"], |_| ()).is_some());
        let replaced = f.replace_child(Arc::new(Child::counter(strings(&["x", "y"]), 2.0)));
        assert_eq!(replaced.map(|c| c.handle()), Some(7));
        assert_eq!(f.with_child(&["x", "y"], |c| c.handle()), Some(0));
        assert_eq!(f.children()[0].created(), 2.0);
        assert!(f.take(&["x", "y"]).is_some());
        assert!(f.remove(&strings(&["p", "q"])).is_some());
        assert!(f.is_empty());
    }

    #[test]
    fn handle_word_is_cleared_only_by_its_owner() {
        let c = Child::gauge(strings(&["a"]));
        assert_eq!(c.claim_handle(5), None);
        assert_eq!(c.claim_handle(5), None);
        assert_eq!(c.claim_handle(6), Some(5));
        c.clear_handle(6);
        assert_eq!(c.handle(), 5);
        c.clear_handle(5);
        assert_eq!(c.handle(), 0);
    }

    #[test]
    fn repeated_label_names_keep_the_last_value() {
        let f = family(MetricType::Gauge, &["l", "l"], &[]);
        f.insert(Arc::new(Child::gauge(strings(&["a", "b"]))));
        assert_eq!(
            collect(&FamilyView::new(f.clone(), false)),
            vec![r#"m ["l=b"] 0"#]
        );
        assert_eq!(find_sample(&f, false, "m", &[("l", "b")]), Some(0.0));
    }
}
