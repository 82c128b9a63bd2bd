//! The exemplars of a native histogram: a small reservoir (client_golang's rules). Native
//! exemplars always carry a timestamp. When full, a new exemplar replaces the oldest if that
//! is past its time to live; otherwise the pair of exemplars closest together on a log
//! scale loses its older member, so the kept values stay spread over the distribution.

use std::time::Duration;

use crate::core::format::python_float_repr;
use crate::core::model::Exemplar;

pub const DEFAULT_MAX_EXEMPLARS: usize = 10;
pub const DEFAULT_EXEMPLAR_TTL: Duration = Duration::from_secs(5 * 60);

struct Kept {
    value: f64,
    /// Seconds since the epoch.
    time: f64,
    labels: Vec<(String, String)>,
}

pub struct Reservoir {
    max: usize,
    ttl: Duration,
    /// Sorted by value.
    kept: Vec<Kept>,
}

/// How far apart two values are on a log scale; values of different signs (or zero) are
/// taken as far apart.
fn log_distance(a: f64, b: f64) -> f64 {
    if a == b {
        return 0.0;
    }
    if a * b <= 0.0 || a.is_nan() || b.is_nan() {
        return f64::INFINITY;
    }
    (a.abs().ln() - b.abs().ln()).abs()
}

impl Reservoir {
    pub fn new(max: usize, ttl: Duration) -> Reservoir {
        Reservoir {
            max,
            ttl,
            kept: Vec::new(),
        }
    }

    /// Offers an exemplar observed at `time` (seconds since the epoch, also "now").
    pub fn add(&mut self, value: f64, labels: Vec<(String, String)>, time: f64) {
        if self.max == 0 {
            return;
        }
        if self.kept.len() >= self.max {
            self.make_room(value, time);
        }
        let at = self.kept.partition_point(|k| k.value < value);
        self.kept.insert(
            at,
            Kept {
                value,
                time,
                labels,
            },
        );
    }

    /// Drops one exemplar (the oldest when expired, else the older of the closest pair,
    /// counting the incoming value), or rejects the newcomer when it is that older member.
    fn make_room(&mut self, value: f64, now: f64) {
        let oldest = (0..self.kept.len())
            .min_by(|&a, &b| self.kept[a].time.total_cmp(&self.kept[b].time))
            .unwrap();
        if now - self.kept[oldest].time > self.ttl.as_secs_f64() {
            self.kept.remove(oldest);
            return;
        }
        // The newcomer is the newest, so in its own closest pair the other one goes.
        let at = self.kept.partition_point(|k| k.value < value);
        let mut drop = None;
        let mut closest = f64::INFINITY;
        for i in 0..self.kept.len() {
            if i + 1 < self.kept.len() {
                let d = log_distance(self.kept[i].value, self.kept[i + 1].value);
                if d < closest {
                    closest = d;
                    let older = if self.kept[i].time <= self.kept[i + 1].time {
                        i
                    } else {
                        i + 1
                    };
                    drop = Some(older);
                }
            }
        }
        for neighbour in [at.checked_sub(1), Some(at)].into_iter().flatten() {
            if neighbour < self.kept.len() {
                let d = log_distance(self.kept[neighbour].value, value);
                if d < closest {
                    closest = d;
                    drop = Some(neighbour);
                }
            }
        }
        self.kept.remove(drop.unwrap_or(oldest));
    }

    /// The kept exemplars, by value.
    pub fn exemplars(&self) -> Vec<Exemplar> {
        self.kept
            .iter()
            .map(|k| Exemplar {
                labels: k.labels.clone(),
                value: k.value,
                timestamp: Some(python_float_repr(k.time)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(r: &Reservoir) -> Vec<f64> {
        r.exemplars().iter().map(|e| e.value).collect()
    }

    #[test]
    fn keeps_up_to_the_maximum_sorted_with_timestamps() {
        let mut r = Reservoir::new(3, DEFAULT_EXEMPLAR_TTL);
        r.add(5.0, vec![("trace_id".into(), "a".into())], 100.0);
        r.add(0.5, vec![], 101.5);
        assert_eq!(values(&r), vec![0.5, 5.0]);
        let e = r.exemplars();
        assert_eq!(e[0].timestamp.as_deref(), Some("101.5"));
        assert_eq!(e[1].labels, vec![("trace_id".to_string(), "a".to_string())]);
        let mut off = Reservoir::new(0, DEFAULT_EXEMPLAR_TTL);
        off.add(1.0, vec![], 1.0);
        assert!(off.exemplars().is_empty());
    }

    #[test]
    fn an_expired_oldest_makes_room() {
        let mut r = Reservoir::new(2, Duration::from_secs(10));
        r.add(1.0, vec![], 100.0);
        r.add(1.1, vec![], 105.0);
        r.add(1000.0, vec![], 111.0); // 1.0 is 11 s old: it goes
        assert_eq!(values(&r), vec![1.1, 1000.0]);
    }

    #[test]
    fn otherwise_the_older_of_the_closest_pair_goes() {
        let mut r = Reservoir::new(3, Duration::from_secs(3600));
        r.add(1.0, vec![], 100.0);
        r.add(1.05, vec![], 101.0);
        r.add(100.0, vec![], 102.0);
        r.add(10.0, vec![], 103.0); // closest pair: 1.0 / 1.05, 1.0 is older
        assert_eq!(values(&r), vec![1.05, 10.0, 100.0]);
        r.add(10.5, vec![], 104.0); // closest: 10 and the newcomer: 10 goes
        assert_eq!(values(&r), vec![1.05, 10.5, 100.0]);
        // Different signs are far apart; ln(100 / 10.5) = 2.25 < ln(10.5 / 1.05) = 2.30, and
        // of 10.5 (t=104) and 100 (t=102), 100 is older.
        r.add(-2.0, vec![], 105.0);
        assert_eq!(values(&r), vec![-2.0, 1.05, 10.5]);
    }
}
