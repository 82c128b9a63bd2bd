//! Counter cells: an integer cell for whole increments and a float cell for the rest.
//!
//! Whole increments take a wait-free `fetch_add` on the integer cell. The reference adds every
//! amount to one float, so to give the same value bit for bit the counter moves to the float
//! cell for good at its first fractional increment, or when the integer total would pass 2^53
//! (beyond which floats cannot hold every integer). Up to that point both sums are exact.

use std::sync::atomic::{AtomicU64, Ordering};

use super::cell::{add_f64, add_u64, load_f64, load_u64, store_f64};

const FLOAT: usize = 0;
const INT: usize = 1;
/// 0 while whole increments use the integer cell, 1 once everything goes to the float cell.
const MODE: usize = 2;
const EXACT_LIMIT: u64 = 1 << 53;

#[derive(Default)]
pub struct CounterCells {
    slots: [AtomicU64; 3],
}

impl CounterCells {
    #[inline]
    pub fn inc_int(&self, n: u64) {
        if self.slots[MODE].load(Ordering::Relaxed) == 0 {
            let total = load_u64(&self.slots[INT]).checked_add(n);
            if total.is_some_and(|t| t < EXACT_LIMIT) {
                add_u64(&self.slots[INT], n);
                return;
            }
            self.use_float_cell();
        }
        add_f64(&self.slots[FLOAT], n as f64);
    }

    #[inline]
    pub fn inc(&self, v: f64) {
        if self.slots[MODE].load(Ordering::Relaxed) == 0 {
            self.use_float_cell();
        }
        add_f64(&self.slots[FLOAT], v);
    }

    /// Moves the integer total into the float cell (once).
    fn use_float_cell(&self) {
        if self.slots[MODE].swap(1, Ordering::AcqRel) == 0 {
            let whole = self.slots[INT].swap(0, Ordering::AcqRel);
            add_f64(&self.slots[FLOAT], whole as f64);
        }
    }

    pub fn get(&self) -> f64 {
        load_f64(&self.slots[FLOAT]) + load_u64(&self.slots[INT]) as f64
    }

    /// Replaces the value (`reset()` sets 0, which gives the integer cell back).
    pub fn set(&self, v: f64) {
        self.slots[INT].store(0, Ordering::Relaxed);
        store_f64(&self.slots[FLOAT], v);
        self.slots[MODE].store(u64::from(v != 0.0), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's arithmetic: one float, every amount added in order.
    fn reference(amounts: &[f64]) -> f64 {
        amounts.iter().fold(0.0, |acc, a| acc + a)
    }

    fn counter(amounts: &[f64]) -> f64 {
        let c = CounterCells::default();
        for a in amounts {
            if a.fract() == 0.0 && *a >= 0.0 && *a < 1e19 {
                c.inc_int(*a as u64)
            } else {
                c.inc(*a)
            }
        }
        c.get()
    }

    #[test]
    fn same_value_as_one_float_bit_for_bit() {
        let cases: &[&[f64]] = &[
            &[1.0, 2.0, 3.0],
            &[0.1, 1.0, 0.2],
            &[9007199254740993.0, 3.0],
            &[9007199254740990.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            &[4503599627370496.0, 4503599627370496.0, 1.0],
            &[1.0, 0.5, 7.0, 1e-9, 3.0],
            &[1e20, 1.0],
        ];
        for amounts in cases {
            assert_eq!(
                counter(amounts).to_bits(),
                reference(amounts).to_bits(),
                "{amounts:?}"
            );
        }
    }

    #[test]
    fn reset_returns_to_the_integer_cell() {
        let c = CounterCells::default();
        c.inc(0.5);
        c.set(0.0);
        c.inc_int(2);
        assert_eq!(c.slots[MODE].load(Ordering::Relaxed), 0);
        assert_eq!(c.get(), 2.0);
    }
}
