//! Bucket indices of native histograms.
//!
//! Schema `s` splits every power of two into `2^s` buckets (for `s <= 0`, one bucket spans
//! `2^-s` powers of two). Bucket `i` holds `(base^(i-1), base^i]` with `base = 2^(2^-s)`, so
//! bucket 0 ends at 1. The index comes from the float's exponent plus, for `s > 0`, the
//! position of its mantissa among the `2^s` bounds of one octave.

use std::sync::OnceLock;

pub const MIN_SCHEMA: i32 = -4;
pub const MAX_SCHEMA: i32 = 8;
/// 2^-128, client_golang's default zero threshold.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938735877055719e-39;

/// The schema whose base is the largest not above `factor`, clamped to the valid range; `None`
/// when `factor <= 1` (native buckets off), as client_golang's bucket factor knob.
pub fn schema_for_factor(factor: f64) -> Option<i32> {
    if factor.is_nan() || factor <= 1.0 {
        return None;
    }
    let schema = -(factor.log2().log2().floor());
    Some(schema.clamp(MIN_SCHEMA as f64, MAX_SCHEMA as f64) as i32)
}

/// Slots per schema row: room for the 2^8 + 1 bounds and the 2^9 mantissa segments, so an
/// index masked with `ROW - 1` needs no bounds check.
const ROW: usize = 512;

/// For each positive schema `s` (row `s - 1`): the octave's bounds and, per mantissa segment,
/// the first bound in it.
pub struct IndexTables {
    /// `2^(j/2^s)` for `j` in `0..=2^s` (the last is 2): bucket bounds for mantissas in [1, 2).
    bounds: Box<[[f64; ROW]]>,
    /// For each of the `2^(s+1)` equal segments of [1, 2): the smallest `j` with
    /// `bounds[j] >= segment start`. Bounds are further apart than a segment is wide, so a
    /// mantissa is at most one bound past it.
    first_bound: Box<[[u16; ROW]]>,
}

impl IndexTables {
    /// The tables, built on first use.
    pub fn get() -> &'static IndexTables {
        static TABLES: OnceLock<IndexTables> = OnceLock::new();
        TABLES.get_or_init(IndexTables::build)
    }

    fn build() -> IndexTables {
        let rows = MAX_SCHEMA as usize;
        let mut bounds = vec![[f64::INFINITY; ROW]; rows].into_boxed_slice();
        let mut first_bound = vec![[0u16; ROW]; rows].into_boxed_slice();
        for schema in 1..=MAX_SCHEMA {
            let row = (schema - 1) as usize;
            let per_octave = 1usize << schema;
            for j in 0..=per_octave {
                bounds[row][j] = (j as f64 / per_octave as f64).exp2();
            }
            let segments = 2 * per_octave;
            for seg in 0..segments {
                let start = 1.0 + seg as f64 / segments as f64;
                let first = bounds[row].iter().position(|b| *b >= start).unwrap();
                first_bound[row][seg] = first as u16;
            }
        }
        IndexTables {
            bounds,
            first_bound,
        }
    }

    fn bound(&self, schema: i32, j: usize) -> f64 {
        self.bounds[(schema - 1) as usize][j]
    }
}

const MANTISSA_BITS: u32 = 52;
const MANTISSA_MASK: u64 = (1 << MANTISSA_BITS) - 1;
const EXPONENT_MAX: u64 = 0x7ff;

/// The bucket index of `v > 0` (`+Inf` goes one past the bucket of `f64::MAX`, as Go does).
#[inline]
pub fn bucket_index(v: f64, schema: i32) -> i32 {
    bucket_index_in(IndexTables::get(), v, schema)
}

/// [`bucket_index`] with the tables at hand (the observe path keeps them).
#[inline]
pub fn bucket_index_in(tables: &IndexTables, v: f64, schema: i32) -> i32 {
    let bits = v.to_bits();
    let biased = bits >> MANTISSA_BITS;
    if biased == 0 || biased == EXPONENT_MAX {
        return unusual_bucket_index(v, schema);
    }
    index_of(tables, bits & MANTISSA_MASK, biased as i32 - 1023, schema)
}

/// Subnormals (normalised first) and `+Inf`.
#[cold]
#[inline(never)]
fn unusual_bucket_index(v: f64, schema: i32) -> i32 {
    if v == f64::INFINITY {
        return bucket_index(f64::MAX, schema) + 1;
    }
    let bits = (v * 2f64.powi(64)).to_bits();
    let biased = (bits >> MANTISSA_BITS) as i32;
    index_of(
        IndexTables::get(),
        bits & MANTISSA_MASK,
        biased - 1023 - 64,
        schema,
    )
}

/// The index of `(1 + mantissa / 2^52) * 2^exponent`.
#[inline]
fn index_of(tables: &IndexTables, mantissa: u64, exponent: i32, schema: i32) -> i32 {
    if schema > 0 {
        let row = (schema - 1) as usize & (MAX_SCHEMA as usize - 1);
        let segment = (mantissa >> (MANTISSA_BITS - 1 - schema as u32)) as usize;
        let mut j = tables.first_bound[row][segment & (ROW - 1)] as usize;
        let m = f64::from_bits(mantissa | (1023u64 << MANTISSA_BITS));
        if m > tables.bounds[row][j & (ROW - 1)] {
            j += 1;
        }
        j as i32 + (exponent << schema)
    } else {
        // ceil(log2 v), then ceil of that over the 2^-s octaves per bucket.
        let octave = exponent + (mantissa != 0) as i32;
        let shift = -schema;
        (octave + (1 << shift) - 1) >> shift
    }
}

/// The inclusive upper bound of bucket `index` (`+Inf` past the largest float).
pub fn upper_bound(index: i32, schema: i32) -> f64 {
    if schema > 0 {
        let per_octave = 1i32 << schema;
        let (octave, j) = (index.div_euclid(per_octave), index.rem_euclid(per_octave));
        scale_by_power_of_two(IndexTables::get().bound(schema, j as usize), octave)
    } else {
        scale_by_power_of_two(1.0, index.saturating_mul(1 << -schema))
    }
}

/// The exclusive lower bound of bucket `index`.
pub fn lower_bound(index: i32, schema: i32) -> f64 {
    upper_bound(index - 1, schema)
}

/// `x * 2^e` without overflowing the intermediate power.
fn scale_by_power_of_two(mut x: f64, mut e: i32) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// The index at `schema - by` of the bucket `index` at `schema`: the wider bucket holding it.
pub fn coarser_index(index: i32, by: u32) -> i32 {
    ((index - 1) >> by) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, searched: the smallest `i` with `v <= upper_bound(i)`.
    fn index_by_search(v: f64, schema: i32) -> i32 {
        let (mut lo, mut hi) = (-300_000i32, 300_000i32);
        while lo < hi {
            let mid = lo + (hi - lo).div_euclid(2);
            if v <= upper_bound(mid, schema) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    #[test]
    fn factor_picks_the_largest_base_not_above_it() {
        assert_eq!(schema_for_factor(1.1), Some(3));
        assert_eq!(schema_for_factor(2.0), Some(0));
        assert_eq!(schema_for_factor(4.0), Some(-1));
        assert_eq!(schema_for_factor(65536.0), Some(-4));
        assert_eq!(schema_for_factor(1e300), Some(-4));
        assert_eq!(schema_for_factor(1.005), Some(8));
        assert_eq!(schema_for_factor(1.0001), Some(8));
        assert_eq!(schema_for_factor(1.0), None);
        assert_eq!(schema_for_factor(0.5), None);
        assert_eq!(schema_for_factor(f64::NAN), None);
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            let base = upper_bound(1, schema);
            assert_eq!(
                schema_for_factor(base * 1.0000001),
                Some(schema),
                "{schema}"
            );
        }
    }

    #[test]
    fn known_buckets() {
        // Bucket 0 ends at 1 for every schema; 1 itself is in it, just above is not.
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            assert_eq!(bucket_index(1.0, schema), 0);
            assert_eq!(bucket_index(1.0 + f64::EPSILON, schema), 1);
            assert_eq!(bucket_index(1.0 - f64::EPSILON / 2.0, schema), 0);
        }
        assert_eq!(bucket_index(2.0, 0), 1);
        assert_eq!(bucket_index(2.0001, 0), 2);
        assert_eq!(bucket_index(0.5, 0), -1);
        assert_eq!(bucket_index(0.75, 0), 0);
        assert_eq!(bucket_index(std::f64::consts::SQRT_2, 1), 1);
        assert_eq!(bucket_index(1.5, 1), 2);
        assert_eq!(bucket_index(3.0, 3), 13); // 2^(12/8) = 2.83 < 3 <= 2^(13/8) = 3.08
        assert_eq!(bucket_index(16.0, -2), 1); // buckets of 4 octaves: (1, 16]
        assert_eq!(bucket_index(17.0, -2), 2);
        assert_eq!(bucket_index(1.0 / 16.0, -2), -1);
        assert_eq!(bucket_index(1.0 / 17.0, -2), -1);
        assert_eq!(bucket_index(1.0 / 256.0, -2), -2);
        assert_eq!(upper_bound(1, 1), std::f64::consts::SQRT_2);
        assert_eq!(upper_bound(-1, 1), std::f64::consts::FRAC_1_SQRT_2);
    }

    #[test]
    fn bounds_are_the_nearest_floats_to_the_powers_of_the_base() {
        // 2^(j/2^s) rounded to nearest, from 60-digit decimal arithmetic.
        let known = [
            (3, 1, 1.0905077326652577),
            (2, 1, 1.189207115002721),
            (2, 3, 1.681792830507429),
            (5, 17, 1.4451808069770467),
            (8, 1, 1.0027112750502025),
            (8, 255, 1.9945921121709402),
        ];
        for (schema, j, bound) in known {
            assert_eq!(upper_bound(j, schema), bound, "schema {schema} j {j}");
            assert_eq!(upper_bound(j - (3 << schema), schema), bound / 8.0);
        }
        // Each schema's bounds are every other bound of the next finer schema.
        for schema in 1..MAX_SCHEMA {
            for j in -300..300 {
                assert_eq!(upper_bound(j, schema), upper_bound(2 * j, schema + 1));
            }
        }
    }

    #[test]
    fn powers_of_the_base_are_upper_bounds() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            for i in (-2000..2000).step_by(7) {
                let bound = upper_bound(i, schema);
                if bound == 0.0 || bound.is_infinite() {
                    continue;
                }
                assert_eq!(
                    bucket_index(bound, schema),
                    i,
                    "schema {schema} bound {bound}"
                );
                let above = f64::from_bits(bound.to_bits() + 1);
                assert_eq!(
                    bucket_index(above, schema),
                    i + 1,
                    "schema {schema} {above}"
                );
            }
        }
    }

    #[test]
    fn index_matches_the_definition_on_many_values() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Positive floats of every exponent, subnormals included.
            let v = f64::from_bits(x & 0x7FEF_FFFF_FFFF_FFFF);
            if v == 0.0 {
                continue;
            }
            for schema in MIN_SCHEMA..=MAX_SCHEMA {
                assert_eq!(
                    bucket_index(v, schema),
                    index_by_search(v, schema),
                    "{v:e} {schema}"
                );
            }
        }
    }

    #[test]
    fn extremes() {
        let smallest = f64::from_bits(1); // 2^-1074
        assert_eq!(bucket_index(smallest, 0), -1074);
        assert_eq!(bucket_index(smallest, 3), -1074 * 8);
        assert_eq!(bucket_index(f64::MIN_POSITIVE, 0), -1022);
        assert_eq!(bucket_index(f64::MIN_POSITIVE * 0.75, 0), -1022);
        assert_eq!(bucket_index(f64::MAX, 0), 1024);
        assert_eq!(bucket_index(f64::INFINITY, 0), 1025);
        assert_eq!(bucket_index(f64::MAX, 3), 1024 * 8);
        assert_eq!(bucket_index(f64::INFINITY, 3), 1024 * 8 + 1);
        assert_eq!(bucket_index(f64::MAX, -4), 64);
        assert_eq!(bucket_index(f64::INFINITY, -4), 65);
        assert_eq!(bucket_index(smallest, -4), -67); // ceil(-1074 / 16)
    }

    #[test]
    fn coarser_index_holds_the_bucket() {
        for schema in (MIN_SCHEMA + 1)..=MAX_SCHEMA {
            for i in -300..300 {
                for by in 1..=(schema - MIN_SCHEMA) as u32 {
                    let wide = coarser_index(i, by);
                    let coarse = schema - by as i32;
                    assert!(upper_bound(i, schema) <= upper_bound(wide, coarse));
                    assert!(lower_bound(i, schema) >= lower_bound(wide, coarse));
                }
            }
        }
    }
}
