//! Metric families and their children (one child per label-value set).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::IndexMap;

use super::cell::{add_f64, add_u64, load_f64, load_u64, store_f64, zeroed};
use super::format::float_to_go_string;
use super::hotcold::HotCold;
use super::model::{Exemplar, FamilySource, MetricType, Sample};

/// The value cells of one child.
pub enum ChildValue {
    /// Slot 0: f64 sum of fractional increments; slot 1: integer increments.
    Counter(Box<[AtomicU64]>),
    Gauge(AtomicU64),
    Summary(HotCold),
    Histogram(HotCold),
}

/// One time series set: a labelled child, or the single child of an unlabelled metric.
pub struct Child {
    pub value: ChildValue,
    created: AtomicU64,
    /// Exemplars per bucket (slot 0 for a counter); empty until one is set.
    exemplars: Mutex<Vec<Option<Exemplar>>>,
    has_exemplar: AtomicBool,
    /// A Python callback supplies this child's samples (`Gauge.set_function`).
    python_samples: AtomicBool,
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
    pub fn counter(created: f64) -> Child {
        Child::new(ChildValue::Counter(zeroed(2)), created)
    }

    pub fn gauge() -> Child {
        Child::new(ChildValue::Gauge(AtomicU64::new(0)), 0.0)
    }

    pub fn summary(created: f64) -> Child {
        Child::new(ChildValue::Summary(HotCold::new(&[])), created)
    }

    pub fn histogram(created: f64, bounds: &[f64]) -> Child {
        Child::new(ChildValue::Histogram(HotCold::new(bounds)), created)
    }

    fn new(value: ChildValue, created: f64) -> Child {
        Child {
            value,
            created: AtomicU64::new(created.to_bits()),
            exemplars: Mutex::new(Vec::new()),
            has_exemplar: AtomicBool::new(false),
            python_samples: AtomicBool::new(false),
        }
    }

    pub fn created(&self) -> f64 {
        load_f64(&self.created)
    }

    pub fn set_created(&self, t: f64) {
        store_f64(&self.created, t)
    }

    pub fn set_python_samples(&self) {
        self.python_samples.store(true, Ordering::Release)
    }

    pub fn has_python_samples(&self) -> bool {
        self.python_samples.load(Ordering::Acquire)
    }

    /// A counter's whole increments take the integer slot; others go to the float slot.
    #[inline]
    pub fn counter_inc_int(&self, n: u64) {
        if let ChildValue::Counter(slots) = &self.value {
            add_u64(&slots[1], n)
        }
    }

    #[inline]
    pub fn counter_inc(&self, v: f64) {
        if let ChildValue::Counter(slots) = &self.value {
            add_f64(&slots[0], v)
        }
    }

    /// The single value of a counter or gauge.
    pub fn get(&self) -> f64 {
        match &self.value {
            ChildValue::Counter(slots) => load_f64(&slots[0]) + load_u64(&slots[1]) as f64,
            ChildValue::Gauge(slot) => load_f64(slot),
            ChildValue::Summary(h) | ChildValue::Histogram(h) => h.snapshot().sum,
        }
    }

    /// Replaces the value of a counter or gauge.
    pub fn set(&self, v: f64) {
        match &self.value {
            ChildValue::Counter(slots) => {
                store_f64(&slots[0], v);
                slots[1].store(0, Ordering::Relaxed);
            }
            ChildValue::Gauge(slot) => store_f64(slot, v),
            ChildValue::Summary(h) | ChildValue::Histogram(h) => h.set_part(None, v),
        }
    }

    #[inline]
    pub fn gauge_add(&self, v: f64) {
        if let ChildValue::Gauge(slot) = &self.value {
            add_f64(slot, v)
        }
    }

    pub fn set_exemplar(&self, slot: usize, exemplar: Exemplar) {
        let mut all = self.lock_exemplars();
        if all.len() <= slot {
            all.resize(slot + 1, None);
        }
        all[slot] = Some(exemplar);
        self.has_exemplar.store(true, Ordering::Release);
    }

    pub fn exemplar(&self, slot: usize) -> Option<Exemplar> {
        if !self.has_exemplar.load(Ordering::Acquire) {
            return None;
        }
        self.lock_exemplars().get(slot).cloned().flatten()
    }

    fn lock_exemplars(&self) -> MutexGuard<'_, Vec<Option<Exemplar>>> {
        self.exemplars.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports this child's samples in the reference's order (`_child_samples`).
    pub fn visit(&self, use_created: bool, visit: &mut dyn FnMut(&ChildSample<'_>)) {
        let exemplars = if self.has_exemplar.load(Ordering::Acquire) {
            Some(self.lock_exemplars())
        } else {
            None
        };
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
            ChildValue::Counter(_) => {
                let total = ChildSample {
                    exemplar: exemplar(0),
                    ..plain("_total", self.get())
                };
                visit(&total);
            }
            ChildValue::Gauge(slot) => visit(&plain("", load_f64(slot))),
            ChildValue::Summary(h) => {
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
        if use_created && !matches!(self.value, ChildValue::Gauge(_)) {
            visit(&plain("_created", self.created()));
        }
    }
}

/// A metric registered in a registry: its metadata and children in insertion order.
pub struct Family {
    pub name: String,
    pub documentation: String,
    pub unit: String,
    pub metric_type: MetricType,
    pub labelnames: Vec<String>,
    /// Label name indexes in sorted name order, and where `le` falls among them.
    sorted_labels: Vec<usize>,
    le_position: usize,
    /// `le` label values of a histogram's buckets.
    le_values: Vec<String>,
    children: Mutex<IndexMap<Vec<String>, Arc<Child>>>,
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
        let mut sorted_labels: Vec<usize> = (0..labelnames.len()).collect();
        sorted_labels.sort_by(|a, b| labelnames[*a].cmp(&labelnames[*b]));
        let le_position = sorted_labels
            .iter()
            .position(|i| labelnames[*i].as_str() > "le")
            .unwrap_or(sorted_labels.len());
        Family {
            name,
            documentation,
            unit,
            metric_type,
            labelnames,
            sorted_labels,
            le_position,
            le_values: bounds.iter().map(|b| float_to_go_string(*b)).collect(),
            children: Mutex::new(IndexMap::new()),
        }
    }

    fn lock_children(&self) -> MutexGuard<'_, IndexMap<Vec<String>, Arc<Child>>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a child; a child already present under these values stays.
    pub fn insert(&self, values: Vec<String>, child: Arc<Child>) {
        self.lock_children().entry(values).or_insert(child);
    }

    pub fn remove(&self, values: &[String]) {
        self.lock_children().shift_remove(values);
    }

    pub fn clear(&self) {
        self.lock_children().clear();
    }

    /// The children as they are now, so rendering holds no lock.
    pub fn children(&self) -> Vec<(Vec<String>, Arc<Child>)> {
        let children = self.lock_children();
        children
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A family and a snapshot of its children, ready for a writer.
pub struct FamilyView {
    pub family: Arc<Family>,
    pub children: Vec<(Vec<String>, Arc<Child>)>,
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

    /// Whether some child's samples come from Python (the view cannot render those).
    pub fn needs_python(&self) -> bool {
        self.children.iter().any(|(_, c)| c.has_python_samples())
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

    fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>)) {
        let family = &*self.family;
        let mut base: Vec<(&str, &str)> = Vec::with_capacity(family.labelnames.len() + 1);
        let mut with_le: Vec<(&str, &str)> = Vec::with_capacity(family.labelnames.len() + 1);
        for (values, child) in &self.children {
            base.clear();
            let value = |i: usize| values.get(i).map_or("", String::as_str);
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
                        with_le.push(("le", le.as_str()));
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

    #[test]
    fn counter_family_renders_children_in_insertion_order() {
        let f = Arc::new(Family::new(
            "c".into(),
            "d".into(),
            "".into(),
            MetricType::Counter,
            vec!["b".into(), "a".into()],
            &[],
        ));
        let x = Arc::new(Child::counter(5.0));
        x.counter_inc_int(2);
        x.counter_inc(0.5);
        f.insert(vec!["2".into(), "1".into()], x);
        f.insert(vec!["4".into(), "3".into()], Arc::new(Child::counter(6.0)));
        let view = FamilyView::new(f.clone(), true);
        assert_eq!(
            collect(&view),
            vec![
                r#"c_total ["a=1", "b=2"] 2.5"#,
                r#"c_created ["a=1", "b=2"] 5"#,
                r#"c_total ["a=3", "b=4"] 0"#,
                r#"c_created ["a=3", "b=4"] 6"#,
            ]
        );
        f.remove(&["2".to_string(), "1".to_string()]);
        assert_eq!(FamilyView::new(f.clone(), false).children.len(), 1);
    }

    #[test]
    fn histogram_inserts_le_in_sorted_position() {
        let f = Arc::new(Family::new(
            "h".into(),
            "d".into(),
            "".into(),
            MetricType::Histogram,
            vec!["z".into(), "a".into()],
            &[1.0, f64::INFINITY],
        ));
        let child = Arc::new(Child::histogram(1.0, &[1.0, f64::INFINITY]));
        child.observe_for_test(0.5);
        child.observe_for_test(3.0);
        f.insert(vec!["zv".into(), "av".into()], child);
        assert_eq!(
            collect(&FamilyView::new(f.clone(), false)),
            vec![
                r#"h_bucket ["a=av", "le=1.0", "z=zv"] 1"#,
                r#"h_bucket ["a=av", "le=+Inf", "z=zv"] 2"#,
                r#"h_count ["a=av", "z=zv"] 2"#,
                r#"h_sum ["a=av", "z=zv"] 3.5"#,
            ]
        );
    }

    impl Child {
        fn observe_for_test(&self, v: f64) {
            if let ChildValue::Histogram(h) = &self.value {
                h.observe(v)
            }
        }
    }
}
