//! Float formatting: Python's `repr(float)` and prometheus_client's `floatToGoString`.

use std::fmt::Write as _;

/// Integers below 2**53 are exact, so their shortest repr is the integer itself.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// A small stack buffer implementing `fmt::Write`, so formatting never allocates.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            buf: [0; 40],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn parse_exponent(text: &[u8]) -> i32 {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Shortest round-trip digits of a finite positive float: value = 0.DIGITS * 10**decpt.
struct Decimal {
    digits: [u8; 20],
    len: usize,
    decpt: i32,
}

impl Decimal {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.len]
    }

    fn from_float(v: f64) -> Decimal {
        // ryu prints the shortest round-trip digits, as `ddd.ddd` or `d.ddde[-]x`.
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(v.abs()).as_bytes();
        let (mantissa, exp) = match text.iter().position(|&b| b == b'e') {
            Some(e) => (&text[..e], parse_exponent(&text[e + 1..])),
            None => (text, 0),
        };
        let point = mantissa
            .iter()
            .position(|&b| b == b'.')
            .unwrap_or(mantissa.len());
        let mut dec = Decimal {
            digits: [0; 20],
            len: 0,
            decpt: point as i32 + exp,
        };
        for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
            if dec.len == 0 && b == b'0' {
                dec.decpt -= 1; // a leading zero: the point is one place further left
            } else if dec.len < dec.digits.len() {
                dec.digits[dec.len] = b;
                dec.len += 1;
            }
        }
        while dec.len > 1 && dec.digits[dec.len - 1] == b'0' {
            dec.len -= 1;
        }
        dec.prefer_even_on_tie(v);
        dec
    }

    fn as_u64(&self) -> u64 {
        self.digits()
            .iter()
            .fold(0, |n, &d| n * 10 + u64::from(d - b'0'))
    }

    /// Python's dtoa breaks an exact tie between two shortest candidates toward the even last
    /// digit; Rust's formatter rounds it up.
    fn prefer_even_on_tie(&mut self, v: f64) {
        let digits = self.as_u64();
        if digits & 1 == 0 {
            return;
        }
        let exp10 = self.decpt - self.len as i32;
        for other in [digits - 1, digits + 1] {
            if is_exact_midpoint(v, digits + other, exp10) && round_trips(other, exp10, v) {
                self.set_digits(other);
                return;
            }
        }
    }

    /// Replaces the digits with those of `n` (trailing zeros dropped), keeping the scale.
    fn set_digits(&mut self, n: u64) {
        let mut tmp = [0u8; 20];
        let text = write_u64_into(&mut tmp, n);
        let used = text.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);
        self.decpt += text.len() as i32 - self.len as i32;
        self.digits[..used].copy_from_slice(&text[..used]);
        self.len = used;
    }

    /// The digits of an exact integer in 1..2**53.
    fn from_integer(n: u64) -> Decimal {
        let mut dec = Decimal {
            digits: [0; 20],
            len: 0,
            decpt: 0,
        };
        dec.set_digits(n);
        dec
    }
}

/// Whether `2 * v == odd * 10**exp10` exactly (`odd` is the sum of two adjacent candidates).
fn is_exact_midpoint(v: f64, odd: u64, exp10: i32) -> bool {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let shift = mantissa.trailing_zeros();
    let mantissa_odd = u128::from(mantissa >> shift);
    // 2v = mantissa_odd * 2**twos; odd * 10**exp10 = odd * 5**exp10 * 2**exp10.
    let twos = exp2 + shift as i32 + 1;
    let pow5 = |n: i32| 5u128.checked_pow(n as u32);
    if exp10 >= 0 {
        twos == exp10
            && pow5(exp10)
                .and_then(|p| p.checked_mul(u128::from(odd)))
                .is_some_and(|rhs| rhs == mantissa_odd)
    } else {
        twos == exp10
            && pow5(-exp10)
                .and_then(|p| p.checked_mul(mantissa_odd))
                .is_some_and(|lhs| lhs == u128::from(odd))
    }
}

/// Whether `digits * 10**exp10` parses back to `v`.
fn round_trips(digits: u64, exp10: i32, v: f64) -> bool {
    let mut text = StackBuf::new();
    if write!(text, "{digits}e{exp10}").is_err() {
        return false;
    }
    let parsed = std::str::from_utf8(text.as_bytes())
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    parsed == Some(v)
}

/// Writes `n` in decimal at the end of `buf` and returns that slice.
fn write_u64_into(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[pos..]
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(write_u64_into(&mut buf, n));
}

fn write_zeros(out: &mut Vec<u8>, count: i32) {
    for _ in 0..count {
        out.push(b'0');
    }
}

/// Exponent as Python prints it: sign and at least two digits.
fn write_exponent(out: &mut Vec<u8>, exp: i32) {
    out.push(b'e');
    out.push(if exp < 0 { b'-' } else { b'+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push(b'0');
    }
    write_u64(out, abs as u64);
}

/// `d[.ddd]` from the digits.
fn write_mantissa(out: &mut Vec<u8>, digits: &[u8]) {
    out.push(digits[0]);
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
}

/// Python's repr layout for the digits of a positive number.
fn write_repr_decimal(out: &mut Vec<u8>, dec: &Decimal) {
    let digits = dec.digits();
    let decpt = dec.decpt;
    let len = digits.len() as i32;
    if !(-4 < decpt && decpt <= 16) {
        write_mantissa(out, digits);
        write_exponent(out, decpt - 1);
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        write_zeros(out, -decpt);
        out.extend_from_slice(digits);
    } else if decpt >= len {
        out.extend_from_slice(digits);
        write_zeros(out, decpt - len);
        out.extend_from_slice(b".0");
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

/// Writes `v` exactly as Python's `repr(float)` does.
pub fn write_python_float_repr(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if v.is_sign_negative() {
        out.push(b'-');
    }
    let abs = v.abs();
    if abs.is_infinite() {
        out.extend_from_slice(b"inf");
    } else if abs < EXACT_INT_LIMIT && abs.fract() == 0.0 {
        write_u64(out, abs as u64);
        out.extend_from_slice(b".0");
    } else {
        write_repr_decimal(out, &Decimal::from_float(abs));
    }
}

pub fn python_float_repr(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_python_float_repr(&mut out, v);
    String::from_utf8(out).expect("float repr is ASCII")
}

/// `floatToGoString` of a non-integer in [1e6, 1e16) (timestamps: every `_created` line) from
/// ryu's digits as printed, `iii.fff` in this range. False, with nothing written, when the last
/// digit may be one side of a tie that Python breaks toward the even digit (the general path
/// decides those).
fn write_go_positional(out: &mut Vec<u8>, v: f64) -> bool {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(v).as_bytes();
    let Some(point) = text.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (int, frac) = (&text[..point], &text[point + 1..]);
    match frac.last() {
        Some(b'0') | None => return false,
        Some(last) if (last - b'0') % 2 == 1 => {
            let digits = int
                .iter()
                .chain(frac)
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            let exp10 = -(frac.len() as i32);
            if is_exact_midpoint(v, 2 * digits - 1, exp10)
                || is_exact_midpoint(v, 2 * digits + 1, exp10)
            {
                return false;
            }
        }
        Some(_) => {}
    }
    out.reserve(text.len() + 4);
    out.push(int[0]);
    out.push(b'.');
    out.extend_from_slice(&int[1..]);
    out.extend_from_slice(frac);
    write_exponent(out, point as i32 - 1);
    true
}

/// Writes `v` as `prometheus_client.utils.floatToGoString` does.
pub fn write_go_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else if (1e6..1e16).contains(&v) {
        // The reference rewrites positive reprs with more than six integer digits; below 1e16
        // repr is positional, so that is exactly this range.
        if v.fract() != 0.0 && write_go_positional(out, v) {
            return;
        }
        let dec = if v.fract() == 0.0 {
            Decimal::from_integer(v as u64)
        } else {
            Decimal::from_float(v)
        };
        write_mantissa(out, dec.digits());
        write_exponent(out, dec.decpt - 1);
    } else {
        write_python_float_repr(out, v);
    }
}

pub fn float_to_go_string(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_go_float(&mut out, v);
    String::from_utf8(out).expect("float text is ASCII")
}

/// Runs `python3 -c script` with `input` on stdin; `None` (test skipped) when python3 or
/// prometheus_client is unavailable.
#[cfg(test)]
pub(crate) fn run_python(script: &str, input: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            eprintln!("python3 not found; skipping differential test");
            return None;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python3 output");
    writer.join().expect("writer thread").expect("write stdin");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        eprintln!("prometheus_client not installed; skipping differential test");
        return None;
    }
    assert!(output.status.success(), "python3 failed: {stderr}");
    Some(String::from_utf8(output.stdout).expect("utf-8 output"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_table() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (123.0, "123.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (0.1 + 0.2, "0.30000000000000004"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992.0"),
            (-2.5, "-2.5"),
            (123456.7, "123456.7"),
        ];
        for &(v, want) in cases {
            assert_eq!(python_float_repr(v), want, "repr({v:e})");
        }
    }

    #[test]
    fn go_table() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (1e-07, "1e-07"),
            (1e-05, "1e-05"),
            (100000.0, "100000.0"),
            (123456.7, "123456.7"),
            (999999.0, "999999.0"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1234567.8, "1.2345678e+06"),
            (123456789.0, "1.23456789e+08"),
            (1e7, "1e+07"),
            (1.5e10, "1.5e+10"),
            (1e15, "1e+15"),
            (1e16, "1e+16"),
            (1152921504606846976.0, "1.152921504606847e+18"),
            (-1234567.0, "-1234567.0"),
            (-1e20, "-1e+20"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1795455629.6996083, "1.7954556296996083e+09"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.005, "0.005"),
            (2.5, "2.5"),
            (7.5, "7.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for &(v, want) in cases {
            assert_eq!(float_to_go_string(v), want, "floatToGoString({v:e})");
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn sample_values() -> Vec<f64> {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut values = vec![0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        values.extend([f64::MIN_POSITIVE, f64::MAX, f64::MIN, f64::EPSILON, 5e-324]);
        for exp in -30..=30 {
            let p = 10f64.powi(exp);
            for v in [p, -p, p * 1.5, p * 7.0 / 3.0] {
                let bits = v.to_bits();
                values.extend([v, f64::from_bits(bits + 1), f64::from_bits(bits - 1)]);
            }
        }
        for exp in -1074..1024 {
            values.push(2f64.powi(exp));
        }
        for _ in 0..2000 {
            values.push(f64::from_bits(rng.next()));
        }
        for _ in 0..1000 {
            let n = rng.next();
            values.push((n % 100_000_000_000) as f64);
            values.push((n % 1_000_000) as f64 / 1000.0);
            values.push((n >> 11) as f64 * 2f64.powi(-53) * 1e9);
            values.push(f64::from_bits(n) % 1e17);
            // Short exact binary values are where ties between candidates happen.
            let odd = (n % 4096) | 1;
            let exp = (n >> 20) % 200;
            values.push(odd as f64 * 2f64.powi(exp as i32 - 100));
            values.push((n % 10_000_000_000_000_000) as f64 + 0.25 * ((n >> 60) % 4) as f64);
            // Timestamps (`_created`): seconds since the epoch to the microsecond and finer.
            values.push(1.6e9 + (n % 400_000_000_000_000) as f64 * 1e-6);
            values.push(1e6 + (n % 1_000_000_000) as f64 / 64.0);
        }
        values
    }

    #[test]
    fn matches_python() {
        let values = sample_values();
        let input: String = values
            .iter()
            .map(|v| format!("{:016x}\n", v.to_bits()))
            .collect();
        let script = "import sys, struct\n\
            from prometheus_client.utils import floatToGoString\n\
            for line in sys.stdin:\n\
            \x20   v = struct.unpack('<d', bytes.fromhex(line.strip())[::-1])[0]\n\
            \x20   print(repr(v), floatToGoString(v))\n";
        let Some(output) = run_python(script, &input) else {
            return;
        };
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), values.len());
        for (v, line) in values.iter().zip(lines) {
            let (repr, go) = line.split_once(' ').expect("two fields");
            assert_eq!(
                python_float_repr(*v),
                repr,
                "repr of bits {:016x}",
                v.to_bits()
            );
            assert_eq!(
                float_to_go_string(*v),
                go,
                "go of bits {:016x}",
                v.to_bits()
            );
        }
    }
}
