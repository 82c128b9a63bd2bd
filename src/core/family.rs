//! Metric families and their children (one child per label-value set).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::{Equivalent, IndexSet};
use once_cell::race::OnceBox;

use super::cell::{add_f64, load_f64, store_f64};
use super::counter::CounterCells;
use super::format::float_to_go_string;
use super::labels::{hash_values, LabelValues};
use super::model::{Exemplar, FamilySource, MetricType, NativeHistogramVisitor, Sample};
use super::multiprocess::mapped::{self, MappedSpec, Slots};
use super::multiprocess::sketch::MappedSketch;
use super::native_histogram::NativeConfig;
use super::observations::{MappedObservations, ObservationCells, Observations, ObservationsPlan};
use super::quantiles::{clock, QuantileSpec};

/// The value cells of one child.
pub enum ChildValue {
    Counter(CounterCells),
    Gauge(AtomicU64),
    Summary(ObservationCells),
    Histogram(ObservationCells),
    /// Multiprocess mode: a slot in this process's `counter` file.
    MappedCounter(Arc<Slots>),
    /// Multiprocess mode: a slot (and its timestamp) in this process's `gauge_{mode}` file.
    MappedGauge(Arc<Slots>),
}

/// One time series set: a labelled child, or the single child of an unlabelled metric.
/// Small on purpose (a family may hold millions): label values in one allocation, the value
/// cells inline (a histogram's or summary's made at its first observation), and what few
/// children use in a box made on first use.
pub struct Child {
    /// Label values in label-name order (empty for an unlabelled metric).
    labels: LabelValues,
    pub value: ChildValue,
    created: AtomicU64,
    rare: OnceBox<Rare>,
    /// An opaque word for the binding layer (the address of a live handle object, or 0);
    /// the core never reads it.
    handle: AtomicUsize,
}

/// The parts of a child that most children never use.
#[derive(Default)]
struct Rare {
    /// Exemplars per bucket (slot 0 for a counter).
    exemplars: Mutex<Vec<Option<Exemplar>>>,
    /// A Python callback supplies this child's samples (`Gauge.set_function`).
    python_samples: AtomicBool,
}

/// Counts children whose samples moved to Python, so a family knows when to look for one
/// among its children (a child does not know its family).
static PYTHON_SAMPLE_MARKS: AtomicU64 = AtomicU64::new(0);

/// What `Child::visit` reports for each sample, before family labels are added.
pub struct ChildSample<'a> {
    pub suffix: &'static str,
    /// The bucket index of a `_bucket` sample (its `le` label).
    pub bucket: Option<usize>,
    pub value: f64,
    pub exemplar: Option<&'a Exemplar>,
}

impl Child {
    pub fn counter<S: AsRef<str>>(labels: &[S], created: f64) -> Child {
        Child::new(
            labels,
            ChildValue::Counter(CounterCells::default()),
            created,
        )
    }

    pub fn gauge<S: AsRef<str>>(labels: &[S]) -> Child {
        Child::new(labels, ChildValue::Gauge(AtomicU64::new(0)), 0.0)
    }

    /// A summary child; it estimates quantiles if `plan` has objectives.
    pub fn summary<S: AsRef<str>>(
        labels: &[S],
        created: f64,
        plan: &Arc<ObservationsPlan>,
    ) -> Child {
        let cells = ObservationCells::new(plan.clone());
        Child::new(labels, ChildValue::Summary(cells), created)
    }

    /// A histogram child; it keeps native buckets too if `plan` has them.
    pub fn histogram<S: AsRef<str>>(
        labels: &[S],
        created: f64,
        plan: &Arc<ObservationsPlan>,
    ) -> Child {
        let cells = ObservationCells::new(plan.clone());
        Child::new(labels, ChildValue::Histogram(cells), created)
    }

    /// A child whose cells are slots of this process's multiprocess file; a histogram's native
    /// buckets (if `plan` has them) go to this process's side file, and a summary with
    /// quantiles keeps a sketch of its observations in a side file too.
    pub fn mapped(
        spec: &MappedSpec,
        labelnames: &[String],
        labels: &[String],
        plan: &Arc<ObservationsPlan>,
        created: f64,
    ) -> std::io::Result<Child> {
        let bounds = plan.bounds();
        let slots = spec.series_slots(labelnames, labels, bounds)?;
        let made = |cells| ObservationCells::with(cells, plan.clone());
        let observations = |slots, bounds: &[f64]| {
            Box::new(Observations::Mapped(MappedObservations::new(slots, bounds)))
        };
        let value = match (spec.metric_type, plan.native(), plan.quantiles()) {
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
                    labels,
                    objectives,
                    max_age,
                    age_buckets,
                )?;
                let cells = MappedObservations::with_sketch(slots, sketch);
                ChildValue::Summary(made(Observations::Mapped(cells)))
            }
            (MetricType::Summary, _, None) => ChildValue::Summary(made(*observations(slots, &[]))),
            (_, Some(config), _) => {
                let native = spec.native_slots(labelnames, labels, *config)?;
                ChildValue::Histogram(made(Observations::WithMappedNative(
                    observations(slots, bounds),
                    Box::new(native),
                )))
            }
            (_, None, _) => ChildValue::Histogram(made(*observations(slots, bounds))),
        };
        Ok(Child::new(labels, value, created))
    }

    /// A child with the given cells.
    pub fn new<S: AsRef<str>>(labels: &[S], value: ChildValue, created: f64) -> Child {
        Child {
            labels: LabelValues::new(labels),
            value,
            created: AtomicU64::new(created.to_bits()),
            rare: OnceBox::new(),
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

    /// The label values, in label-name order.
    pub fn label_values(&self) -> &LabelValues {
        &self.labels
    }

    fn rare(&self) -> &Rare {
        self.rare.get_or_init(Box::default)
    }

    pub fn created(&self) -> f64 {
        load_f64(&self.created)
    }

    pub fn set_created(&self, t: f64) {
        store_f64(&self.created, t)
    }

    pub fn set_python_samples(&self) {
        self.rare().python_samples.store(true, Ordering::Release);
        PYTHON_SAMPLE_MARKS.fetch_add(1, Ordering::AcqRel);
    }

    pub fn has_python_samples(&self) -> bool {
        let rare = self.rare.get();
        rare.is_some_and(|r| r.python_samples.load(Ordering::Acquire))
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
        let mut all = self
            .rare()
            .exemplars
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if all.len() <= slot {
            all.resize(slot + 1, None);
        }
        all[slot] = Some(exemplar);
    }

    pub fn exemplar(&self, slot: usize) -> Option<Exemplar> {
        self.lock_exemplars()?.get(slot).cloned().flatten()
    }

    fn lock_exemplars(&self) -> Option<MutexGuard<'_, Vec<Option<Exemplar>>>> {
        let all = &self.rare.get()?.exemplars;
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
        self.0.labels.hash(state)
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Keyed) -> bool {
        self.0.labels == other.0.labels
    }
}

impl Eq for Keyed {}

/// Label values to find a child by, borrowed (`&[&str]`, `&[String]`): it hashes as the
/// child's `LabelValues` do (both use `labels::hash_values`).
struct ValuesKey<'a, S>(&'a [S]);

impl<S: AsRef<str>> Hash for ValuesKey<'_, S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_values(self.0.len(), self.0.iter().map(AsRef::as_ref), state)
    }
}

impl<S: AsRef<str>> Equivalent<Keyed> for ValuesKey<'_, S> {
    fn equivalent(&self, key: &Keyed) -> bool {
        key.0.labels.equals(self.0)
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
    /// The `le` values of a histogram's buckets, or the `quantile` values of a summary's
    /// objectives: the label of a `ChildSample`'s `bucket`.
    le_values: Vec<String>,
    bucket_label: &'static str,
    /// What a histogram's or summary's children are made of: bucket bounds, native bucket
    /// settings, quantile objectives.
    plan: Arc<ObservationsPlan>,
    /// Hashed with foldhash: keyed per process like std's SipHash (label values may come from
    /// requests), and several times faster on short strings (every `labels()` hashes them).
    children: Mutex<IndexSet<Keyed, ChildHasher>>,
    /// Some child's samples come from Python (it stays set after that child is removed).
    python_samples: AtomicBool,
    /// The `PYTHON_SAMPLE_MARKS` count when the children were last looked through.
    marks_seen: AtomicU64,
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
            plan: Arc::new(ObservationsPlan::new(bounds, None, None)),
            le_values: bounds.iter().map(|b| float_to_go_string(*b)).collect(),
            bucket_label: "le",
            children: Mutex::new(IndexSet::default()),
            python_samples: AtomicBool::new(false),
            marks_seen: AtomicU64::new(0),
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
        let plan = &self.plan;
        self.plan = Arc::new(ObservationsPlan::new(
            plan.bounds(),
            plan.native().copied(),
            Some(spec),
        ));
        self
    }

    pub fn quantiles(&self) -> Option<&QuantileSpec> {
        self.plan.quantiles()
    }

    /// A histogram family whose children keep native buckets too.
    pub fn with_native(mut self, config: NativeConfig) -> Family {
        let plan = &self.plan;
        self.plan = Arc::new(ObservationsPlan::new(
            plan.bounds(),
            Some(config),
            plan.quantiles().cloned(),
        ));
        self
    }

    pub fn native(&self) -> Option<&NativeConfig> {
        self.plan.native()
    }

    /// What this family's histogram or summary children are made of.
    pub fn observations_plan(&self) -> &Arc<ObservationsPlan> {
        &self.plan
    }

    fn lock_children(&self) -> MutexGuard<'_, IndexSet<Keyed, ChildHasher>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a child; a child already present under the same label values stays.
    pub fn insert(&self, child: Arc<Child>) {
        self.note_python_samples(&child);
        self.lock_children().insert(Keyed(child));
    }

    /// Whether some child's samples come from Python, so only Python can collect this family.
    pub fn bounds(&self) -> &[f64] {
        self.plan.bounds()
    }

    pub fn needs_python(&self) -> bool {
        if self.python_samples.load(Ordering::Acquire) {
            return true;
        }
        // Some child somewhere moved to Python since the last look: is it one of ours?
        let marks = PYTHON_SAMPLE_MARKS.load(Ordering::Acquire);
        if self.marks_seen.load(Ordering::Acquire) == marks {
            return false;
        }
        let found = self
            .lock_children()
            .iter()
            .any(|k| k.0.has_python_samples());
        if found {
            self.python_samples.store(true, Ordering::Release);
        }
        // A mark made meanwhile leaves `marks_seen` behind it, so the next call looks again.
        self.marks_seen.store(marks, Ordering::Release);
        found
    }

    /// A child that joins already moved to Python: no new mark will tell us.
    fn note_python_samples(&self, child: &Child) {
        if child.has_python_samples() {
            self.python_samples.store(true, Ordering::Release);
        }
    }

    /// The child with these label values (`&[&str]`, `&[String]`), if there is one.
    pub fn get<S: AsRef<str>>(&self, values: &[S]) -> Option<Arc<Child>> {
        let children = self.lock_children();
        children.get(&ValuesKey(values)).map(|k| k.0.clone())
    }

    /// Runs `found` on the child labelled `values`, under the family's lock.
    #[inline]
    pub fn with_child<R>(
        &self,
        values: &[&str],
        found: impl FnOnce(&Arc<Child>) -> R,
    ) -> Option<R> {
        self.lock_children()
            .get(&ValuesKey(values))
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
        if let Some(existing) = children.get(&ValuesKey(values)) {
            return Ok((found(&existing.0), false));
        }
        let child = Arc::new(make()?);
        self.note_python_samples(&child);
        let result = found(&child);
        children.insert(Keyed(child));
        Ok((result, true))
    }

    /// Adds a child, replacing one under the same label values; returns the replaced one.
    pub fn replace_child(&self, child: Arc<Child>) -> Option<Arc<Child>> {
        self.note_python_samples(&child);
        let (_, replaced) = self.lock_children().replace_full(Keyed(child));
        replaced.map(|k| k.0)
    }

    /// Removes the child with these label values (`&[&str]`, `&[String]`); returns it.
    pub fn remove<S: AsRef<str>>(&self, values: &[S]) -> Option<Arc<Child>> {
        self.lock_children()
            .shift_take(&ValuesKey(values))
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
            self.note_python_samples(&child);
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
            return self.get(&wanted).into_iter().collect();
        }
        // Repeated names: a child matches when each distinct name's last value matches.
        let matches = |c: &Child| {
            self.sorted_labels
                .iter()
                .all(|i| c.labels.get(*i) == Some(wanted[*i]))
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
            let values: Vec<&str> = child.labels.iter().collect();
            let value = |i: usize| values.get(i).copied().unwrap_or("");
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
        let mut values: Vec<&str> = Vec::with_capacity(family.labelnames.len());
        for child in &self.children {
            base.clear();
            values.clear();
            values.extend(child.labels.iter());
            let value = |i: usize| values.get(i).copied().unwrap_or("");
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
    use crate::core::quantiles::Objective;

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
        let x = Arc::new(Child::counter(&["2", "1"], 5.0));
        x.counter_inc_int(2);
        x.counter_inc(0.5);
        f.insert(x.clone());
        f.insert(Arc::new(Child::counter(&["4", "3"], 6.0)));
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
        assert!(f.get(&["2", "1"]).is_some_and(|c| Arc::ptr_eq(&c, &x)));
        assert!(f.get(&["1", "2"]).is_none());
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
        let child = Arc::new(Child::histogram(&["zv", "av"], 1.0, f.observations_plan()));
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
            || Ok::<_, ()>(Child::counter(&["x", "y"], 1.0)),
            |c| c.claim_handle(7),
        );
        assert_eq!(made, Ok((None, true)));
        let again = f.get_or_insert_with(&["x", "y"], || Err(()), |c| c.handle());
        assert_eq!(again, Ok((7, false)));
        // Owned and borrowed keys meet: lookups by either find the same child.
        assert_eq!(f.with_child(&["x", "y"], |c| c.handle()), Some(7));
        assert_eq!(f.with_child(&["x", "yy"], |c| c.handle()), None);
        assert_eq!(f.with_child(&["xy"], |c| c.handle()), None);
        f.insert(Arc::new(Child::counter(&["p", "q"], 1.0)));
        assert!(f.with_child(&["p", "q"], |_| ()).is_some());
        let replaced = f.replace_child(Arc::new(Child::counter(&["x", "y"], 2.0)));
        assert_eq!(replaced.map(|c| c.handle()), Some(7));
        assert_eq!(f.with_child(&["x", "y"], |c| c.handle()), Some(0));
        assert_eq!(f.children()[0].created(), 2.0);
        assert!(f.remove(&["x", "y"]).is_some());
        assert!(f.remove(&strings(&["p", "q"])).is_some());
        assert!(f.is_empty());
    }

    #[test]
    fn handle_word_is_cleared_only_by_its_owner() {
        let c = Child::gauge(&["a"]);
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
        f.insert(Arc::new(Child::gauge(&["a", "b"])));
        assert_eq!(
            collect(&FamilyView::new(f.clone(), false)),
            vec![r#"m ["l=b"] 0"#]
        );
        assert_eq!(find_sample(&f, false, "m", &[("l", "b")]), Some(0.0));
    }

    fn cells(child: &Child) -> &ObservationCells {
        match &child.value {
            ChildValue::Histogram(h) | ChildValue::Summary(h) => h,
            _ => panic!("not a histogram or summary"),
        }
    }

    fn native_lines(view: &FamilyView) -> Vec<String> {
        let mut out = Vec::new();
        view.visit_native_histograms(&mut |labels, snapshot| {
            out.push(format!("{labels:?} {snapshot:?}"));
        });
        out
    }

    fn observing_families() -> Vec<Arc<Family>> {
        let bounds = [0.5, 1.0, f64::INFINITY];
        let objectives = vec![
            Objective {
                quantile: 0.5,
                error: 0.05,
            },
            Objective {
                quantile: 0.9,
                error: 0.01,
            },
        ];
        let with = |f: Family| Arc::new(f);
        let plain =
            |t, b: &[f64]| Family::new("m".into(), "d".into(), "".into(), t, strings(&["l"]), b);
        vec![
            with(plain(MetricType::Histogram, &bounds)),
            with(plain(MetricType::Histogram, &bounds).with_native(NativeConfig::with_schema(3))),
            with(plain(MetricType::Summary, &[])),
            with(
                plain(MetricType::Summary, &[])
                    .with_quantiles(QuantileSpec::new(objectives, 600.0, 5)),
            ),
        ]
    }

    fn observing_child(f: &Family, value: &str) -> Arc<Child> {
        let plan = f.observations_plan();
        Arc::new(match f.metric_type {
            MetricType::Histogram => Child::histogram(&[value], 2.0, plan),
            _ => Child::summary(&[value], 2.0, plan),
        })
    }

    #[test]
    fn unobserved_children_hold_no_cells_and_render_as_fresh_ones() {
        for f in observing_families() {
            let unobserved = observing_child(&f, "x");
            let fresh = observing_child(&f, "x");
            // A change that leaves every value at zero: the cells are made, as they were for
            // every child before they became lazy.
            cells(&fresh).add_to_sum(0.0);
            assert!(cells(&fresh).is_made());
            let render = |child: &Arc<Child>| {
                f.replace(vec![child.clone()]);
                let view = FamilyView::new(f.clone(), true);
                (collect(&view), native_lines(&view))
            };
            let (lines, native) = render(&unobserved);
            assert_eq!((lines.clone(), native.clone()), render(&fresh));
            assert!(!lines.is_empty());
            assert_eq!(native.len(), usize::from(f.native().is_some()));
            assert_eq!(find_sample(&f, true, "m_created", &[("l", "x")]), Some(2.0));
            assert!(!cells(&unobserved).is_made(), "rendering makes no cells");
        }
    }

    #[test]
    fn threads_observing_a_new_child_at_once_lose_nothing() {
        const THREADS: usize = 4;
        for f in observing_families() {
            for round in 0..20 {
                let child = observing_child(&f, &round.to_string());
                let start = Arc::new(std::sync::Barrier::new(THREADS));
                let threads: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let (child, start) = (child.clone(), start.clone());
                        std::thread::spawn(move || {
                            start.wait();
                            (0..100).for_each(|_| cells(&child).observe(0.75));
                        })
                    })
                    .collect();
                threads.into_iter().for_each(|t| t.join().unwrap());
                let snap = cells(&child).snapshot();
                assert_eq!(snap.observations, 400);
                assert_eq!(snap.sum, 300.0);
                if f.metric_type == MetricType::Histogram {
                    assert_eq!(snap.buckets, vec![0, 400, 0]);
                }
                if let Some(native) = cells(&child).native() {
                    assert_eq!(native.snapshot().count, 400);
                }
            }
        }
    }

    #[test]
    fn a_child_moved_to_python_marks_its_family_only() {
        let f = family(MetricType::Gauge, &["l"], &[]);
        let other = family(MetricType::Gauge, &["l"], &[]);
        let a = Arc::new(Child::gauge(&["a"]));
        f.insert(a.clone());
        other.insert(Arc::new(Child::gauge(&["a"])));
        assert!(!f.needs_python());
        a.set_python_samples();
        assert!(f.needs_python());
        assert!(!other.needs_python());
        f.remove(&["a"]);
        assert!(f.needs_python(), "stays set after the child leaves");
        // Marked before it joins a family that already looked.
        let late = Arc::new(Child::gauge(&["b"]));
        late.set_python_samples();
        assert!(!other.needs_python());
        other.insert(late);
        assert!(other.needs_python());
    }
}
