//! Content negotiation of a scrape: the format, name escaping and `Content-Type` that answer an
//! `Accept` header, and whether the answer may be gzipped, by prometheus_client's rules.
//!
//! The entries of the header are tried in order (q-values play no part); the first one that
//! names a served media type with a usable version wins, and nothing usable gives the 0.0.4
//! text format. Beyond the reference, an entry asking for Prometheus' delimited protobuf
//! (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`, which Prometheus asks for first when it ingests native histograms)
//! gets it; no other scraper asks for it. Versions compare as prometheus_client's `parse_version` tuples do: dotted
//! parts that Python's `int()` reads are numbers, the others strings, and a string met where a
//! number is compared makes Python raise `TypeError` ([`Incomparable`]).

use std::cmp::Ordering;

pub const TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_1_0_0: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const UNDERSCORES: &str = "underscores";
const ESCAPING_SCHEMES: [&str; 4] = ["allow-utf-8", UNDERSCORES, "dots", "values"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    OpenMetrics,
    Protobuf,
}

/// What a scrape is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub kind: Kind,
    /// One of the four escaping scheme names.
    pub escaping: &'static str,
    /// The OpenMetrics version asked for; `None` for text.
    pub version: Option<String>,
    pub content_type: String,
}

/// A version Python cannot compare with a tuple of numbers (`parse_version(v) >= (1, 0, 0)`
/// raises `TypeError`); it holds the version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incomparable(pub String);

/// The answer to an `Accept` header (`None` or empty: the 0.0.4 text format).
pub fn negotiate(accept: &str) -> Result<Negotiated, Incomparable> {
    for entry in accept.split(',') {
        let parts: Vec<&str> = entry.split(';').collect();
        let escaping = asked_escaping(&parts);
        let kind = match py_strip(parts[0]) {
            "application/openmetrics-text" => Kind::OpenMetrics,
            "text/plain" => Kind::Text,
            "application/vnd.google.protobuf" if asks_for_delimited_families(&parts) => {
                return Ok(Negotiated {
                    kind: Kind::Protobuf,
                    escaping,
                    version: None,
                    content_type: crate::core::protobuf::CONTENT_TYPE.to_string(),
                })
            }
            _ => continue,
        };
        let version = parameter(&parts, "version").unwrap_or("");
        if version.is_empty() {
            if kind == Kind::OpenMetrics {
                return Ok(Negotiated {
                    kind,
                    escaping: UNDERSCORES,
                    version: Some("1.0.0".to_string()),
                    content_type: OPENMETRICS_1_0_0.to_string(),
                });
            }
            continue;
        }
        if !version_at_least(version, &[1, 0, 0])? {
            continue;
        }
        let (content_type, version) = match kind {
            Kind::OpenMetrics => (
                format!("application/openmetrics-text; version={version}; charset=utf-8; escaping={escaping}"),
                Some(version.to_string()),
            ),
            Kind::Text | Kind::Protobuf => (
                format!("text/plain; version=1.0.0; charset=utf-8; escaping={escaping}"),
                None,
            ),
        };
        return Ok(Negotiated {
            kind,
            escaping,
            version,
            content_type,
        });
    }
    Ok(Negotiated {
        kind: Kind::Text,
        escaping: UNDERSCORES,
        version: None,
        content_type: TEXT_0_0_4.to_string(),
    })
}

/// Whether an `Accept-Encoding` header lists gzip (any case, parameters ignored).
pub fn gzip_accepted(accept_encoding: &str) -> bool {
    accept_encoding
        .split(',')
        .any(|coding| py_strip(coding.split(';').next().unwrap_or("")).eq_ignore_ascii_case("gzip"))
}

/// `parse_version(version) >= target` as Python computes it.
pub fn version_at_least(version: &str, target: &[i64]) -> Result<bool, Incomparable> {
    let mut parts = version.split('.');
    for &wanted in target {
        let Some(part) = parts.next() else {
            return Ok(false); // a shorter tuple equal so far is smaller
        };
        match python_int(part) {
            None => return Err(Incomparable(version.to_string())),
            Some(n) => match n.cmp(&(wanted as i128)) {
                Ordering::Equal => continue,
                other => return Ok(other == Ordering::Greater),
            },
        }
    }
    Ok(true)
}

/// The escaping scheme an entry asks for when it names a known one, else `underscores`.
fn asked_escaping(parts: &[&str]) -> &'static str {
    parameter(parts, "escaping")
        .and_then(|asked| ESCAPING_SCHEMES.iter().find(|s| **s == asked).copied())
        .unwrap_or(UNDERSCORES)
}

/// Whether a protobuf entry's parameters name the one message stream served.
fn asks_for_delimited_families(parts: &[&str]) -> bool {
    parameter(parts, "proto") == Some("io.prometheus.client.MetricFamily")
        && parameter(parts, "encoding") == Some("delimited")
}

/// The value after `name=` in the first `;`-part that starts with it once stripped.
fn parameter<'a>(parts: &[&'a str], name: &str) -> Option<&'a str> {
    parts.iter().find_map(|part| {
        py_strip(part)
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// Python's `str.isspace()`: Unicode white space and the four ASCII separators 0x1C-0x1F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Python's `int(s)` in base 10, saturated to the i128 range, or `None` where it raises:
/// surrounding white space, one sign, ASCII digits with single underscores between them.
/// (Python also reads other scripts' decimal digits; an HTTP header decoded as Latin-1, as
/// WSGI servers decode it, has none.)
fn python_int(s: &str) -> Option<i128> {
    let s = py_strip(s);
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i128 = 0;
    let mut last_was_digit = false;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => {
                value = value.saturating_mul(10).saturating_add((b - b'0') as i128);
                last_was_digit = true;
            }
            b'_' if last_was_digit => last_was_digit = false,
            _ => return None,
        }
    }
    last_was_digit.then_some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(accept: &str) -> (Kind, &'static str, Option<String>, String) {
        let n = negotiate(accept).unwrap();
        (n.kind, n.escaping, n.version, n.content_type)
    }

    #[test]
    fn empty_and_unknown_headers_get_the_old_text_format() {
        for accept in [
            "",
            "*/*",
            "application/json",
            "text/plain",
            "text/plain; version=0.0.4",
        ] {
            assert_eq!(chosen(accept).3, TEXT_0_0_4, "{accept}");
        }
    }

    #[test]
    fn openmetrics_without_a_version_is_1_0_0() {
        let (kind, escaping, version, content_type) = chosen("application/openmetrics-text");
        assert_eq!(kind, Kind::OpenMetrics);
        assert_eq!(
            (escaping, version.as_deref()),
            ("underscores", Some("1.0.0"))
        );
        assert_eq!(content_type, OPENMETRICS_1_0_0);
    }

    #[test]
    fn versions_and_escaping_are_taken_from_the_first_usable_entry() {
        let (kind, escaping, version, content_type) = chosen(
            "text/plain;version=0.0.4, application/openmetrics-text; version=2.0.0; escaping=dots",
        );
        assert_eq!(
            (kind, escaping, version.as_deref()),
            (Kind::OpenMetrics, "dots", Some("2.0.0"))
        );
        assert_eq!(
            content_type,
            "application/openmetrics-text; version=2.0.0; charset=utf-8; escaping=dots"
        );
        let (kind, escaping, _, content_type) = chosen("text/plain; version=1.0.0; escaping=bogus");
        assert_eq!((kind, escaping), (Kind::Text, "underscores"));
        assert_eq!(
            content_type,
            "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"
        );
    }

    #[test]
    fn versions_compare_as_python_tuples() {
        assert_eq!(version_at_least("1.0.0", &[1, 0, 0]), Ok(true));
        assert_eq!(version_at_least("1.0", &[1, 0, 0]), Ok(false));
        assert_eq!(version_at_least("1.0.0.1", &[1, 0, 0]), Ok(true));
        assert_eq!(version_at_least("0.9.x", &[1, 0, 0]), Ok(false));
        assert_eq!(version_at_least(" +1_0 ", &[1, 0, 0]), Ok(true));
        assert_eq!(version_at_least("2", &[2, 0, 0]), Ok(false));
        assert_eq!(
            version_at_least("99999999999999999999999999999999999999999", &[1]),
            Ok(true)
        );
        for odd in ["1.x", "x", "1..0", "1_", "_1", "1__0", "-", ""] {
            assert!(version_at_least(odd, &[1, 0, 0]).is_err(), "{odd}");
        }
    }

    #[test]
    fn protobuf_is_served_only_when_asked_for_first() {
        let prometheus = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                          encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let (kind, _, _, content_type) = chosen(prometheus);
        assert_eq!(kind, Kind::Protobuf);
        assert_eq!(content_type, crate::core::protobuf::CONTENT_TYPE);
        let text_first = "text/plain;version=1.0.0, application/vnd.google.protobuf;\
                          proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(chosen(text_first).0, Kind::Text);
        for other in [
            "application/vnd.google.protobuf",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
        ] {
            assert_eq!(chosen(other).3, TEXT_0_0_4, "{other}");
        }
    }

    #[test]
    fn gzip_is_found_in_any_case_with_parameters() {
        assert!(gzip_accepted("deflate, GZip;q=1.0"));
        assert!(gzip_accepted(" gzip "));
        assert!(!gzip_accepted("x-gzip, br"));
        assert!(!gzip_accepted(""));
    }
}
