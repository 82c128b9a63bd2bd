//! `metric._value`, `hist._sum`, `summary._count`, `hist._buckets[i]`: views of one cell with the
//! reference's value-object API (`inc`, `set`, `get`, `set_exemplar`, `get_exemplar`).

use std::sync::Arc;

use pyo3::prelude::*;

use super::amount;
use super::python;
use crate::core::family::{Child, ChildValue};
use crate::core::model::Exemplar;
use crate::core::observations::ObservationCells;

#[derive(Clone, Copy)]
pub enum Part {
    /// A counter's or gauge's value.
    Main,
    Sum,
    /// A summary's observation count.
    Count,
    /// One histogram bucket (not cumulative).
    Bucket(usize),
}

#[pyclass(frozen, module = "fastprom._native", name = "Value")]
pub struct ValueView {
    child: Arc<Child>,
    part: Part,
}

impl ValueView {
    pub fn new(child: Arc<Child>, part: Part) -> ValueView {
        ValueView { child, part }
    }

    fn hotcold(&self) -> Option<&ObservationCells> {
        match &self.child.value {
            ChildValue::Summary(h) | ChildValue::Histogram(h) => Some(h),
            _ => None,
        }
    }

    fn exemplar_slot(&self) -> usize {
        match self.part {
            Part::Bucket(i) => i,
            _ => 0,
        }
    }
}

#[pymethods]
impl ValueView {
    fn inc(&self, amount: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = amount::to_f64(amount)?;
        match (self.part, self.hotcold()) {
            (Part::Main, _) => match &self.child.value {
                ChildValue::Counter(_) | ChildValue::MappedCounter(_) => self.child.counter_inc(v),
                _ => self.child.gauge_add(v),
            },
            (Part::Sum, Some(h)) => h.add_to_sum(v),
            (Part::Count, Some(h)) => h.add_observations(v.max(0.0) as u64),
            (Part::Bucket(i), Some(h)) => h.add_to_bucket(i, v.max(0.0) as u64),
            _ => {}
        }
        Ok(())
    }

    #[pyo3(signature = (value, timestamp = None))]
    fn set(&self, value: &Bound<'_, PyAny>, timestamp: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = amount::to_f64(value)?;
        // Only multiprocess gauges keep the timestamp (`timestamp or 0.0`, as the reference).
        let timestamp = match timestamp {
            Some(t) if t.is_truthy()? => amount::to_f64(t)?,
            _ => 0.0,
        };
        match (self.part, self.hotcold()) {
            (Part::Main, _) => self.child.set_at(v, timestamp),
            (Part::Sum, Some(h)) => h.set_part(None, v),
            (Part::Count, Some(h)) => {
                let now = h.snapshot().observations as f64;
                if v > now {
                    h.add_observations((v - now) as u64);
                }
            }
            (Part::Bucket(i), Some(h)) => h.set_part(Some(i), v),
            _ => {}
        }
        Ok(())
    }

    fn get(&self) -> f64 {
        match (self.part, self.hotcold()) {
            (Part::Main, _) => self.child.get(),
            (Part::Sum, Some(h)) => h.snapshot().sum,
            (Part::Count, Some(h)) => h.snapshot().observations as f64,
            (Part::Bucket(i), Some(h)) => h.snapshot().buckets.get(i).copied().unwrap_or(0) as f64,
            _ => 0.0,
        }
    }

    /// Takes an `Exemplar(labels, value, timestamp)`.
    fn set_exemplar(&self, exemplar: &Bound<'_, PyAny>) -> PyResult<()> {
        let labels: Vec<(String, String)> = exemplar
            .getattr("labels")?
            .extract::<std::collections::BTreeMap<String, String>>()?
            .into_iter()
            .collect();
        let timestamp = exemplar.getattr("timestamp")?;
        let stored = Exemplar {
            labels,
            value: amount::float_of(&exemplar.getattr("value")?)?,
            timestamp: if timestamp.is_none() {
                None
            } else {
                Some(timestamp.str()?.to_string())
            },
        };
        self.child.set_exemplar(self.exemplar_slot(), stored);
        Ok(())
    }

    fn get_exemplar<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.child
            .exemplar(self.exemplar_slot())
            .map(|e| python::exemplar(py, &e, None))
            .transpose()
    }
}
