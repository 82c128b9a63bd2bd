//! The OpenMetrics text format (`prometheus_client.openmetrics.exposition.generate_latest`).

use crate::core::escape::{
    is_valid_legacy_metric_name_parts, write_escaped_parts, write_help_openmetrics,
    write_label_value, write_labels, write_metric_name, write_metric_name_parts, Runes,
};
use crate::core::format::write_go_float;
use crate::core::model::{Escaping, Exemplar, FamilySource, MetricType, RenderError, Sample};

/// Renders `families` in OpenMetrics, ending with `# EOF`. Native-histogram samples are written
/// only when `native_histograms` is set (version >= 2.0.0) and skipped otherwise.
pub fn write_openmetrics(
    out: &mut Vec<u8>,
    families: &[&dyn FamilySource],
    escaping: Escaping,
    native_histograms: bool,
) -> Result<(), RenderError> {
    for (index, family) in families.iter().enumerate() {
        write_family(out, *family, escaping, native_histograms).map_err(|message| RenderError {
            family: index,
            message,
        })?;
    }
    out.extend_from_slice(b"# EOF\n");
    Ok(())
}

/// `_is_valid_exemplar_metric`: whether `sample` may carry exemplars.
pub fn exemplar_allowed(metric_type: MetricType, family_name: &str, sample: &Sample<'_>) -> bool {
    match metric_type {
        MetricType::Counter => sample.name_ends_with("_total"),
        MetricType::GaugeHistogram => sample.name_ends_with("_bucket"),
        MetricType::Histogram => {
            sample.name_ends_with("_bucket") || sample.name_is(family_name, "")
        }
        _ => false,
    }
}

fn write_header_line(out: &mut Vec<u8>, tag: &[u8], name: &str, rest: &str, e: Escaping) {
    out.extend_from_slice(tag);
    write_metric_name(out, name, e);
    out.push(b' ');
    out.extend_from_slice(rest.as_bytes());
    out.push(b'\n');
}

fn write_family(
    out: &mut Vec<u8>,
    family: &dyn FamilySource,
    escaping: Escaping,
    native_histograms: bool,
) -> Result<(), String> {
    let name = family.name();
    out.extend_from_slice(b"# HELP ");
    write_metric_name(out, name, escaping);
    out.push(b' ');
    write_help_openmetrics(out, family.documentation());
    out.push(b'\n');
    let metric_type = family.metric_type();
    write_header_line(out, b"# TYPE ", name, metric_type.as_str(), escaping);
    let unit = family.unit();
    if !unit.is_empty() {
        write_header_line(out, b"# UNIT ", name, unit, escaping);
    }

    let ctx = SampleContext {
        family_name: name,
        metric_type,
        escaping,
        native_histograms,
    };
    let mut result = Ok(());
    family.visit_samples(&mut |sample| {
        if result.is_ok() {
            result = ctx.write(out, sample);
        }
    });
    result
}

struct SampleContext<'a> {
    family_name: &'a str,
    metric_type: MetricType,
    escaping: Escaping,
    native_histograms: bool,
}

impl SampleContext<'_> {
    fn exemplar_error(&self) -> String {
        format!(
            "Metric {} has exemplars, but is not a histogram bucket or counter",
            self.family_name
        )
    }

    fn write(&self, out: &mut Vec<u8>, s: &Sample<'_>) -> Result<(), String> {
        let allowed = || exemplar_allowed(self.metric_type, self.family_name, s);
        // The reference validates the sample's exemplar before skipping native histograms, and
        // the native histogram's exemplars only when it is written.
        if s.exemplar.is_some() && !allowed() {
            return Err(self.exemplar_error());
        }
        if s.native_histogram.is_some() && !self.native_histograms {
            return Ok(());
        }
        let nh_exemplars = s.native_histogram.map_or(&[][..], |h| &h.exemplars[..]);
        if !nh_exemplars.is_empty() && !allowed() {
            return Err(self.exemplar_error());
        }

        self.write_name_and_labels(out, s);
        out.push(b' ');
        if let Some(histogram) = s.native_histogram {
            out.extend_from_slice(histogram.body.as_bytes());
        } else if let Some(value) = s.value {
            write_go_float(out, value);
        }
        if let Some(ts) = s.timestamp {
            out.push(b' ');
            out.extend_from_slice(ts.openmetrics.as_bytes());
        }
        for exemplar in s.exemplar.into_iter().chain(nh_exemplars) {
            write_exemplar(out, exemplar);
        }
        out.push(b'\n');
        Ok(())
    }

    fn write_name_and_labels(&self, out: &mut Vec<u8>, s: &Sample<'_>) {
        let escaping = self.escaping;
        if escaping != Escaping::AllowUtf8 || is_valid_legacy_metric_name_parts(s.name, s.suffix) {
            // Sample names use the label-name rune set, so ':' is escaped too.
            write_escaped_parts(out, s.name, s.suffix, escaping, Runes::Label);
            if !s.labels.is_empty() {
                out.push(b'{');
                write_labels(out, s.labels, escaping);
                out.push(b'}');
            }
            return;
        }
        // A UTF-8 name goes quoted inside the braces (which an empty name without labels omits).
        let empty_name = s.name.is_empty() && s.suffix.is_empty();
        if empty_name && s.labels.is_empty() {
            return;
        }
        out.push(b'{');
        write_metric_name_parts(out, s.name, s.suffix, escaping);
        if !s.labels.is_empty() {
            out.push(b',');
            write_labels(out, s.labels, escaping);
        }
        out.push(b'}');
    }
}

/// ` # {k="v",...} value[ timestamp]`; exemplar label names are written unescaped.
fn write_exemplar(out: &mut Vec<u8>, exemplar: &Exemplar) {
    out.extend_from_slice(b" # {");
    for (i, (key, value)) in exemplar.labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"=\"");
        write_label_value(out, value);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
    write_go_float(out, exemplar.value);
    if let Some(ts) = &exemplar.timestamp {
        out.push(b' ');
        out.extend_from_slice(ts.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{NativeHistogram, OwnedFamily, OwnedSample, SampleTimestamp};

    fn sample<'a>(name: &'a str, suffix: &'a str) -> Sample<'a> {
        Sample {
            name,
            suffix,
            labels: &[],
            value: Some(1.0),
            timestamp: None,
            exemplar: None,
            native_histogram: None,
        }
    }

    #[test]
    fn exemplar_rules() {
        use MetricType::*;
        assert!(exemplar_allowed(Counter, "c", &sample("c", "_total")));
        assert!(!exemplar_allowed(Counter, "c", &sample("c", "_created")));
        assert!(exemplar_allowed(Histogram, "h", &sample("h", "_bucket")));
        assert!(exemplar_allowed(Histogram, "h", &sample("h", "")));
        assert!(!exemplar_allowed(Histogram, "h", &sample("h", "_sum")));
        assert!(exemplar_allowed(
            GaugeHistogram,
            "g",
            &sample("g_bucket", "")
        ));
        assert!(!exemplar_allowed(GaugeHistogram, "g", &sample("g", "")));
        assert!(!exemplar_allowed(Gauge, "g", &sample("g", "")));
    }

    fn owned(name: &str, value: Option<f64>) -> OwnedSample {
        OwnedSample {
            name: name.into(),
            labels: vec![("a".into(), "x\"y".into())],
            value,
            timestamp: None,
            exemplar: None,
            native_histogram: None,
        }
    }

    fn render(family: &OwnedFamily, escaping: Escaping, native: bool) -> String {
        let mut out = Vec::new();
        write_openmetrics(&mut out, &[family], escaping, native).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counter_with_exemplar_and_unit() {
        let mut total = owned("req_seconds_total", Some(3.0));
        total.exemplar = Some(Exemplar {
            labels: vec![("trace".into(), "a\nb".into())],
            value: 1234567.0,
            timestamp: Some("1.5".into()),
        });
        total.timestamp = Some(SampleTimestamp {
            millis: "2500".into(),
            openmetrics: "2.5".into(),
        });
        let family = OwnedFamily {
            name: "req_seconds".into(),
            documentation: "say \"hi\"".into(),
            metric_type: MetricType::Counter,
            unit: "seconds".into(),
            samples: vec![total],
        };
        let want = "# HELP req_seconds say \\\"hi\\\"\n\
            # TYPE req_seconds counter\n\
            # UNIT req_seconds seconds\n\
            req_seconds_total{a=\"x\\\"y\"} 3.0 2.5 # {trace=\"a\\nb\"} 1.234567e+06 1.5\n\
            # EOF\n";
        assert_eq!(render(&family, Escaping::Underscores, false), want);
    }

    #[test]
    fn native_histograms_and_missing_values() {
        let mut nh = owned("h", None);
        nh.native_histogram = Some(NativeHistogram {
            body: "{count:1,sum:2.0,schema:0,zero_threshold:0.0,zero_count:0}".into(),
            exemplars: vec![],
        });
        let family = OwnedFamily {
            name: "h".into(),
            documentation: String::new(),
            metric_type: MetricType::Histogram,
            unit: String::new(),
            samples: vec![nh, owned("h_sum", None)],
        };
        let head = "# HELP h \n# TYPE h histogram\n";
        let v1 = format!("{head}h_sum{{a=\"x\\\"y\"}} \n# EOF\n");
        assert_eq!(render(&family, Escaping::Underscores, false), v1);
        let v2 = format!(
            "{head}h{{a=\"x\\\"y\"}} {{count:1,sum:2.0,schema:0,zero_threshold:0.0,zero_count:0}}\n\
             h_sum{{a=\"x\\\"y\"}} \n# EOF\n"
        );
        assert_eq!(render(&family, Escaping::Underscores, true), v2);
    }

    #[test]
    fn invalid_exemplar_names_the_family() {
        let mut gauge = owned("g", Some(1.0));
        gauge.exemplar = Some(Exemplar {
            labels: vec![],
            value: 1.0,
            timestamp: None,
        });
        let family = OwnedFamily {
            name: "g".into(),
            documentation: String::new(),
            metric_type: MetricType::Gauge,
            unit: String::new(),
            samples: vec![gauge],
        };
        let mut out = Vec::new();
        let err = write_openmetrics(&mut out, &[&family, &family], Escaping::Underscores, true)
            .unwrap_err();
        assert_eq!(err.family, 0);
        assert_eq!(
            err.message,
            "Metric g has exemplars, but is not a histogram bucket or counter"
        );
    }

    #[test]
    fn colon_in_sample_name() {
        let family = OwnedFamily {
            name: "a:b".into(),
            documentation: String::new(),
            metric_type: MetricType::Gauge,
            unit: String::new(),
            samples: vec![owned("a:b", Some(1.0))],
        };
        let got = render(&family, Escaping::Underscores, false);
        assert!(
            got.contains("# TYPE a:b gauge\na_b{a=\"x\\\"y\"} 1.0\n"),
            "{got}"
        );
    }
}
