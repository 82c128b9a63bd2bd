use super::*;
use crate::core::model::{
    BucketSpan as ModelSpan, NativeHistogramVisitor, OwnedFamily, OwnedSample, SampleTimestamp,
};
use crate::core::native_histogram::{NativeConfig, SparseHistogram};

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> OwnedSample {
    OwnedSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value: Some(value),
        timestamp: None,
        exemplar: None,
        native_histogram: None,
    }
}

fn family(
    name: &str,
    metric_type: crate::core::model::MetricType,
    samples: Vec<OwnedSample>,
) -> OwnedFamily {
    OwnedFamily {
        name: name.into(),
        documentation: format!("help of {name}"),
        metric_type,
        unit: String::new(),
        samples,
    }
}

/// Decodes every delimited family in `bytes`, checking nothing is left over.
fn decode_all(mut bytes: &[u8]) -> Vec<pb::MetricFamily> {
    let mut families = Vec::new();
    while !bytes.is_empty() {
        families.push(pb::MetricFamily::decode_length_delimited(&mut bytes).unwrap());
    }
    families
}

fn render(families: &[&dyn FamilySource], escaping: Escaping) -> Vec<pb::MetricFamily> {
    let mut out = Vec::new();
    write_protobuf(&mut out, families, escaping);
    decode_all(&out)
}

fn pair(name: &str, value: &str) -> pb::LabelPair {
    pb::LabelPair {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

fn ts(seconds: i64, nanos: i32) -> Option<pb::Timestamp> {
    Some(pb::Timestamp { seconds, nanos })
}

#[test]
fn wire_bytes_of_a_gauge() {
    let g = family(
        "g",
        crate::core::model::MetricType::Gauge,
        vec![sample("g", &[], 1.0)],
    );
    let mut out = Vec::new();
    write_protobuf(&mut out, &[&g], Escaping::Underscores);
    let help = b"help of g";
    let mut want = vec![0x0a, 0x01, b'g', 0x12, help.len() as u8];
    want.extend_from_slice(help);
    want.extend_from_slice(&[0x18, 0x01]); // type GAUGE
                                           // metric (4): gauge (2) { value (1, fixed64) 1.0 }
    want.extend_from_slice(&[0x22, 0x0b, 0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
    want.insert(0, want.len() as u8);
    assert_eq!(out, want);
}

#[test]
fn wire_bytes_of_native_buckets() {
    let h = pb::Histogram {
        schema: Some(-2),
        positive_span: vec![pb::BucketSpan {
            offset: Some(-1),
            length: Some(2),
        }],
        positive_delta: vec![3, -1],
        ..Default::default()
    };
    let bytes = h.encode_to_vec();
    // schema: field 5 varint, zigzag(-2) = 3; span: field 12 { offset zigzag(-1) = 1, length 2 };
    // deltas unpacked: field 13 varint zigzag(3) = 6, zigzag(-1) = 1.
    let want = [
        0x28, 0x03, 0x62, 0x04, 0x08, 0x01, 0x10, 0x02, 0x68, 0x06, 0x68, 0x01,
    ];
    assert_eq!(bytes, want);
}

#[test]
fn counter_with_exemplar_created_and_timestamp() {
    let mut total = sample("req_total", &[("code", "200"), ("path", "/a\"b")], 3.0);
    total.exemplar = Some(Exemplar {
        labels: vec![("trace_id".into(), "abc".into())],
        value: 0.5,
        timestamp: Some("1700000000.25".into()),
    });
    total.timestamp = Some(SampleTimestamp {
        millis: "1500".into(),
        openmetrics: "1.5".into(),
    });
    let created = sample(
        "req_created",
        &[("code", "200"), ("path", "/a\"b")],
        1699999999.5,
    );
    let other = sample("req_total", &[("code", "500"), ("path", "/")], 0.0);
    let f = family(
        "req",
        crate::core::model::MetricType::Counter,
        vec![total, created, other],
    );
    let got = render(&[&f], Escaping::Underscores);
    let want = pb::MetricFamily {
        name: Some("req_total".into()),
        help: Some("help of req".into()),
        r#type: Some(pb::MetricType::Counter as i32),
        metric: vec![
            pb::Metric {
                label: vec![pair("code", "200"), pair("path", "/a\"b")],
                counter: Some(pb::Counter {
                    value: Some(3.0),
                    exemplar: Some(pb::Exemplar {
                        label: vec![pair("trace_id", "abc")],
                        value: Some(0.5),
                        timestamp: ts(1700000000, 250_000_000),
                    }),
                    created_timestamp: ts(1699999999, 500_000_000),
                }),
                timestamp_ms: Some(1500),
                ..Default::default()
            },
            pb::Metric {
                label: vec![pair("code", "500"), pair("path", "/")],
                counter: Some(pb::Counter {
                    value: Some(0.0),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
        unit: None,
    };
    assert_eq!(got, vec![want]);
}

#[test]
fn classic_histogram_and_summary() {
    use crate::core::model::MetricType as T;
    let l = [("m", "get")];
    let le = |b: &'static str| [("le", b), ("m", "get")];
    let mut inf = sample("lat_bucket", &le("+Inf"), 4.0);
    inf.exemplar = Some(Exemplar {
        labels: vec![],
        value: 99.0,
        timestamp: None,
    });
    let h = family(
        "lat",
        T::Histogram,
        vec![
            sample("lat_bucket", &le("0.1"), 1.0),
            sample("lat_bucket", &le("1.0"), 3.0),
            inf,
            sample("lat_count", &l, 4.0),
            sample("lat_sum", &l, 101.5),
            sample("lat_created", &l, 10.0),
            sample("lat_bucket", &[("le", "+Inf"), ("m", "put")], 0.0),
            sample("lat_count", &[("m", "put")], 0.0),
            sample("lat_sum", &[("m", "put")], 0.0),
        ],
    );
    let s = family(
        "s",
        T::Summary,
        vec![
            sample("s", &[("quantile", "0.5")], 2.0),
            sample("s", &[("quantile", "0.99")], 7.0),
            sample("s_count", &[], 5.0),
            sample("s_sum", &[], 12.0),
        ],
    );
    let got = render(&[&h, &s], Escaping::Underscores);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].r#type, Some(pb::MetricType::Histogram as i32));
    let get = got[0].metric[0].histogram.clone().unwrap();
    assert_eq!(got[0].metric[0].label, vec![pair("m", "get")]);
    assert_eq!((get.sample_count, get.sample_sum), (Some(4), Some(101.5)));
    assert_eq!(get.created_timestamp, ts(10, 0));
    let bounds: Vec<_> = get
        .bucket
        .iter()
        .map(|b| (b.upper_bound, b.cumulative_count))
        .collect();
    // +Inf stays only because it carries an exemplar.
    assert_eq!(
        bounds,
        vec![
            (Some(0.1), Some(1)),
            (Some(1.0), Some(3)),
            (Some(f64::INFINITY), Some(4))
        ]
    );
    assert_eq!(get.bucket[2].exemplar.as_ref().unwrap().value, Some(99.0));
    assert_eq!(get.schema, None, "classic only");
    let put = got[0].metric[1].histogram.clone().unwrap();
    assert!(put.bucket.is_empty());
    assert_eq!(put.sample_count, Some(0));

    let summary = got[1].metric[0].summary.clone().unwrap();
    assert_eq!(got[1].r#type, Some(pb::MetricType::Summary as i32));
    assert_eq!(
        (summary.sample_count, summary.sample_sum),
        (Some(5), Some(12.0))
    );
    let q: Vec<_> = summary
        .quantile
        .iter()
        .map(|q| (q.quantile, q.value))
        .collect();
    assert_eq!(q, vec![(Some(0.5), Some(2.0)), (Some(0.99), Some(7.0))]);
}

#[test]
fn gauge_like_types_and_escaping() {
    use crate::core::model::MetricType as T;
    let info = family(
        "build",
        T::Info,
        vec![sample("build_info", &[("version", "1.0")], 1.0)],
    );
    let states = family(
        "st",
        T::StateSet,
        vec![
            sample("st", &[("st", "a")], 1.0),
            sample("st", &[("st", "b")], 0.0),
        ],
    );
    let mut odd = family(
        "my.metric",
        T::Unknown,
        vec![sample("my.metric", &[("a.b", "x.y")], 2.0)],
    );
    odd.unit = "bytes".into();
    let gh = family(
        "gh",
        T::GaugeHistogram,
        vec![
            sample("gh_bucket", &[("le", "1.0")], 2.0),
            sample("gh_bucket", &[("le", "+Inf")], 3.5),
            sample("gh_gcount", &[], 3.5),
            sample("gh_gsum", &[], 4.0),
        ],
    );
    let got = render(&[&info, &states, &odd, &gh], Escaping::Underscores);
    assert_eq!(got[0].name.as_deref(), Some("build_info"));
    assert_eq!(got[0].r#type, Some(pb::MetricType::Gauge as i32));
    assert_eq!(got[0].metric[0].gauge, Some(pb::Gauge { value: Some(1.0) }));
    assert_eq!(got[1].metric.len(), 2);
    assert_eq!(got[1].metric[1].label, vec![pair("st", "b")]);
    assert_eq!(got[2].name.as_deref(), Some("my_metric"));
    assert_eq!(got[2].r#type, Some(pb::MetricType::Untyped as i32));
    assert_eq!(got[2].unit.as_deref(), Some("bytes"));
    assert_eq!(got[2].metric[0].label, vec![pair("a_b", "x.y")]);
    assert_eq!(
        got[2].metric[0].untyped,
        Some(pb::Untyped { value: Some(2.0) })
    );
    let h = got[3].metric[0].histogram.clone().unwrap();
    assert_eq!(got[3].r#type, Some(pb::MetricType::GaugeHistogram as i32));
    assert_eq!((h.sample_count, h.sample_count_float), (None, Some(3.5)));
    assert_eq!(h.bucket.len(), 1);

    let utf8 = render(&[&odd], Escaping::AllowUtf8);
    assert_eq!(utf8[0].name.as_deref(), Some("my.metric"));
    assert_eq!(utf8[0].metric[0].label, vec![pair("a.b", "x.y")]);
    let values = render(&[&odd], Escaping::Values);
    assert_eq!(values[0].name.as_deref(), Some("U__my_2e_metric"));
}

#[test]
fn families_without_samples_are_left_out() {
    let empty = family("e", crate::core::model::MetricType::Gauge, vec![]);
    let mut out = Vec::new();
    write_protobuf(&mut out, &[&empty], Escaping::Underscores);
    assert!(out.is_empty());
}

/// A histogram family whose children also have native buckets.
struct WithNative {
    classic: OwnedFamily,
    native: Vec<(Vec<(String, String)>, NativeHistogramSnapshot)>,
}

impl FamilySource for WithNative {
    fn name(&self) -> &str {
        self.classic.name()
    }
    fn documentation(&self) -> &str {
        self.classic.documentation()
    }
    fn metric_type(&self) -> crate::core::model::MetricType {
        self.classic.metric_type()
    }
    fn unit(&self) -> &str {
        self.classic.unit()
    }
    fn visit_samples(&self, visit: &mut dyn FnMut(&Sample<'_>)) {
        self.classic.visit_samples(visit)
    }
    fn visit_native_histograms(&self, visit: &mut NativeHistogramVisitor<'_>) {
        for (labels, snapshot) in &self.native {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            visit(&pairs, snapshot);
        }
    }
}

#[test]
fn native_buckets_join_the_classic_metric_of_their_child() {
    use crate::core::model::MetricType as T;
    let sparse = SparseHistogram::new(NativeConfig::with_schema(1));
    for v in [0.0, 1.0, 1.2, 1.3, 3.0, -2.0, f64::NAN] {
        sparse.observe(v);
    }
    let mut snapshot = sparse.snapshot();
    snapshot.exemplars.push(Exemplar {
        labels: vec![("trace_id".into(), "t".into())],
        value: 1.2,
        timestamp: Some("12.5".into()),
    });
    let l = [("k", "v")];
    let classic = family(
        "nh",
        T::Histogram,
        vec![
            sample("nh_bucket", &[("k", "v"), ("le", "+Inf")], 7.0),
            sample("nh_count", &l, 7.0),
            sample("nh_sum", &l, f64::NAN),
        ],
    );
    let empty_zero_width = {
        let mut config = NativeConfig::with_schema(3);
        config.zero_threshold = 0.0;
        SparseHistogram::new(config).snapshot()
    };
    let empty_default = SparseHistogram::new(NativeConfig::with_schema(3)).snapshot();
    let f = WithNative {
        classic,
        native: vec![
            (vec![("k".into(), "v".into())], snapshot.clone()),
            (vec![("k".into(), "w".into())], empty_zero_width),
            (vec![("k".into(), "x".into())], empty_default),
        ],
    };
    let got = render(&[&f], Escaping::Underscores);
    assert_eq!(got[0].metric.len(), 3);
    let h = got[0].metric[0].histogram.clone().unwrap();
    assert_eq!(got[0].metric[0].label, vec![pair("k", "v")]);
    assert_eq!(h.sample_count, Some(7));
    assert!(h.sample_sum.unwrap().is_nan());
    assert_eq!(h.schema, Some(1));
    assert_eq!(h.zero_threshold, Some(snapshot.zero_threshold));
    assert_eq!(h.zero_count, Some(1));
    // Decoded back into the model's shape, the buckets are the snapshot's.
    let back = |spans: &[pb::BucketSpan]| -> Vec<ModelSpan> {
        spans
            .iter()
            .map(|s| ModelSpan {
                offset: s.offset.unwrap(),
                length: s.length.unwrap(),
            })
            .collect()
    };
    assert_eq!(back(&h.positive_span), snapshot.positive_spans);
    assert_eq!(h.positive_delta, snapshot.positive_deltas);
    assert_eq!(back(&h.negative_span), snapshot.negative_spans);
    assert_eq!(h.negative_delta, snapshot.negative_deltas);
    // Schema 1: 1 -> 0; 1.2, 1.3 -> 1; 3 -> 4 (2.83, 4], the gap of two filled; -2 -> 2.
    assert_eq!(
        back(&h.positive_span),
        vec![ModelSpan {
            offset: 0,
            length: 5
        }]
    );
    assert_eq!(h.positive_delta, vec![1, 1, -2, 0, 1]);
    assert_eq!(
        back(&h.negative_span),
        vec![ModelSpan {
            offset: 2,
            length: 1
        }]
    );
    assert_eq!(h.exemplars[0].timestamp, ts(12, 500_000_000));
    assert!(h.bucket.is_empty(), "the +Inf bucket is implied");

    let w = got[0].metric[1].histogram.clone().unwrap();
    assert_eq!(got[0].metric[1].label, vec![pair("k", "w")]);
    assert_eq!(
        (w.sample_count, w.sample_sum, w.zero_threshold),
        (Some(0), Some(0.0), Some(0.0))
    );
    assert_eq!(
        w.positive_span,
        vec![pb::BucketSpan {
            offset: Some(0),
            length: Some(0)
        }],
        "no-op span"
    );
    let x = got[0].metric[2].histogram.clone().unwrap();
    assert!(
        x.positive_span.is_empty(),
        "a non-zero threshold already marks it native"
    );
    assert_eq!(
        x.zero_threshold,
        Some(crate::core::native_histogram::DEFAULT_ZERO_THRESHOLD)
    );
}

#[test]
fn openmetrics_native_histogram_values_are_encoded_too() {
    use crate::core::model::{MetricType as T, NativeHistogram};
    let mut nh = sample("h", &[("a", "b")], 0.0);
    nh.value = None;
    nh.native_histogram = Some(NativeHistogram {
        body: "{count:24,sum:100.0,schema:0,zero_threshold:0.001,zero_count:4,\
               negative_spans:[0:2,1:2],negative_deltas:[2,1,-2,3],\
               positive_spans:[0:2,1:2],positive_deltas:[2,1,-3,3]}"
            .replace(' ', ""),
        exemplars: vec![Exemplar {
            labels: vec![("trace_id".into(), "KOO5S4vxi0o".into())],
            value: 0.67,
            timestamp: Some("1520879607.789".into()),
        }],
    });
    let f = family("h", T::Histogram, vec![nh]);
    let got = render(&[&f], Escaping::Underscores);
    let h = got[0].metric[0].histogram.clone().unwrap();
    assert_eq!(got[0].metric[0].label, vec![pair("a", "b")]);
    assert_eq!((h.sample_count, h.sample_sum), (Some(24), Some(100.0)));
    assert_eq!(
        (h.schema, h.zero_threshold, h.zero_count),
        (Some(0), Some(0.001), Some(4))
    );
    let span = |offset, length| pb::BucketSpan {
        offset: Some(offset),
        length: Some(length),
    };
    assert_eq!(h.negative_span, vec![span(0, 2), span(1, 2)]);
    assert_eq!(h.negative_delta, vec![2, 1, -2, 3]);
    assert_eq!(h.positive_delta, vec![2, 1, -3, 3]);
    assert_eq!(h.exemplars[0].timestamp, ts(1520879607, 789_000_000));
    let plain =
        snapshot_from_openmetrics("{count:1,sum:2.0,schema:3,zero_threshold:0.0,zero_count:0}");
    assert_eq!(plain.map(|s| (s.count, s.schema)), Some((1, 3)));
    assert_eq!(snapshot_from_openmetrics("{count:x}"), None);
    assert_eq!(snapshot_from_openmetrics("count:1"), None);
}

#[test]
fn timestamps_split_into_seconds_and_nanos() {
    assert_eq!(
        timestamp(1.5),
        pb::Timestamp {
            seconds: 1,
            nanos: 500_000_000
        }
    );
    assert_eq!(
        timestamp(-0.25),
        pb::Timestamp {
            seconds: -1,
            nanos: 750_000_000
        }
    );
    assert_eq!(
        timestamp(2.9999999999),
        pb::Timestamp {
            seconds: 3,
            nanos: 0
        }
    );
    let text = |t| timestamp_from_text(t).map(|t| (t.seconds, t.nanos));
    assert_eq!(text("1520879607.789"), Some((1520879607, 789_000_000)));
    assert_eq!(text("12"), Some((12, 0)));
    assert_eq!(text("-1.25"), Some((-2, 750_000_000)));
    assert_eq!(text("1e-05"), Some((0, 10_000)));
    assert_eq!(text("nan"), None);
    assert_eq!(text(""), None);
    assert_eq!(parse_bound("+Inf"), Some(f64::INFINITY));
    assert_eq!(parse_bound("0.25"), Some(0.25));
}

/// The bytes as a real consumer reads them: Debian's Prometheus 2.42 (with native histograms
/// on) scrapes a loopback server serving this writer's output, then answers PromQL about it.
/// `cargo test --lib protobuf::tests::prometheus -- --ignored --nocapture`; skipped when
/// `prometheus` is not installed. Bounded: gives up after 40 s and kills its Prometheus.
mod prometheus {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn exposition() -> Vec<u8> {
        use crate::core::model::MetricType as T;
        let sparse = SparseHistogram::new(NativeConfig::from_factor(1.1).unwrap());
        // 1000 values uniform in (0, 1], one zero and one negative.
        for i in 1..=1000 {
            sparse.observe(i as f64 / 1000.0);
        }
        sparse.observe(0.0);
        sparse.observe_with_exemplar(-3.0, vec![("trace_id".into(), "n1".into())], 1.7e9);
        let native = WithNative {
            classic: family("nh_test_seconds", T::Histogram, vec![]),
            native: vec![(vec![("job_part".into(), "a".into())], sparse.snapshot())],
        };
        // Exemplars and created timestamps must not upset the parser either.
        let mut total = sample("reqs_total", &[("code", "200")], 42.0);
        total.exemplar = Some(Exemplar {
            labels: vec![("trace_id".into(), "c1".into())],
            value: 1.0,
            timestamp: Some("1700000000.5".into()),
        });
        let counter = family(
            "reqs",
            T::Counter,
            vec![total, sample("reqs_created", &[("code", "200")], 1.7e9)],
        );
        let classic = family(
            "classic_seconds",
            T::Histogram,
            vec![
                sample("classic_seconds_bucket", &[("le", "1.0")], 3.0),
                sample("classic_seconds_bucket", &[("le", "+Inf")], 5.0),
                sample("classic_seconds_count", &[], 5.0),
                sample("classic_seconds_sum", &[], 7.5),
            ],
        );
        let mut out = Vec::new();
        write_protobuf(
            &mut out,
            &[&native, &counter, &classic],
            Escaping::Underscores,
        );
        out
    }

    fn serve(listener: TcpListener, body: Vec<u8>, stop: Arc<AtomicBool>) {
        listener.set_nonblocking(true).unwrap();
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    }

    /// The first sample value of an instant query, if any.
    fn query(port: u16, promql: &str) -> Option<f64> {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let request = format!(
            "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).ok()?;
        let value = response.split("\"value\":[").nth(1)?;
        let text = value.split('"').nth(1)?;
        text.parse().ok()
    }

    #[test]
    #[ignore]
    fn prometheus_2_42_reads_the_exposition() {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("prometheus not installed; skipped");
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            let body = exposition();
            std::thread::spawn(move || serve(listener, body, stop))
        };
        let dir = std::env::temp_dir().join(format!("fastprom-nh-{}-{target}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: nh\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let web = free_port();
        let prometheus = Killed(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{web}"))
                .arg("--enable-feature=native-histograms")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut count = None;
        while Instant::now() < deadline && count.is_none() {
            std::thread::sleep(Duration::from_millis(500));
            count = query(web, "histogram_count(nh_test_seconds)");
        }
        let answers = [
            count,
            query(web, "histogram_sum(nh_test_seconds)"),
            query(web, "histogram_quantile(0.5, nh_test_seconds)"),
            query(web, "reqs_total"),
            query(web, "classic_seconds_count"),
            query(web, "classic_seconds_bucket{le=\"1.0\"}"),
        ];
        drop(prometheus);
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("answers: {answers:?}");
        assert_eq!(answers[0], Some(1002.0));
        assert!((answers[1].unwrap() - 497.5).abs() < 1e-9);
        let median = answers[2].unwrap();
        assert!((median - 0.5).abs() < 0.05, "median {median}");
        assert_eq!(answers[3], Some(42.0));
        assert_eq!(answers[4], Some(5.0));
        assert_eq!(answers[5], Some(3.0));
    }
}

/// Observations between the read of the classic count and that of the native buckets: the
/// count is the native one rather than below the buckets' total.
#[test]
fn a_count_read_before_the_native_buckets_never_falls_below_them() {
    use crate::core::model::MetricType as T;
    let sparse = SparseHistogram::new(NativeConfig::with_schema(0));
    for v in [0.0, 1.0, 2.0, 3.0, -5.0, 100.0, f64::NAN] {
        sparse.observe(v);
    }
    let snapshot = sparse.snapshot();
    let with_count = |count: f64| WithNative {
        classic: family("nh", T::Histogram, vec![sample("nh_count", &[], count)]),
        native: vec![(vec![], snapshot.clone())],
    };
    let count = |f: WithNative| {
        render(&[&f], Escaping::Underscores)[0].metric[0]
            .histogram
            .clone()
            .unwrap()
            .sample_count
    };
    assert_eq!(
        count(with_count(4.0)),
        Some(7),
        "5 observations are in the buckets"
    );
    assert_eq!(
        count(with_count(6.0)),
        Some(6),
        "the NaN is in no bucket: 6 is valid"
    );
    assert_eq!(count(with_count(9.0)), Some(9));
}
