//! Prometheus metrics over HTTP, parsed strictly as the text exposition format 0.0.4.

mod ops_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label(n: &str) -> bool {
    let mut c = n.chars();
    !n.starts_with("__")
        && c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v.parse::<f64>().map_err(|_| format!("bad value {v:?}")),
    }
}

/// Parses `text` by the 0.0.4 rules, failing on anything loose: every sample's family
/// declared by TYPE before it, HELP/TYPE once each, a family's samples together, label
/// syntax and escapes, no duplicate series, counters not negative, a final newline.
fn parse_strict(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut p = rest.splitn(3, ' ');
            let (kw, name, arg) = (p.next().unwrap_or(""), p.next().unwrap_or(""), p.next());
            if !valid_name(name) {
                return Err(err("bad metric name".into()));
            }
            if closed.contains(name)
                || current.as_deref() == Some(name) && kw == "TYPE" && types.contains_key(name)
            {
                return Err(err("family declared again".into()));
            }
            match (kw, arg) {
                ("HELP", Some(h)) => {
                    if !helps.insert(name.into()) {
                        return Err(err("second HELP".into()));
                    }
                    if h.contains('\\') && !h.contains("\\\\") && !h.contains("\\n") {
                        return Err(err("bad HELP escape".into()));
                    }
                }
                ("TYPE", Some(t)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(err("bad type".into()));
                    }
                    if types.insert(name.into(), t.into()).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                }
                _ => return Err(err("unknown comment".into())),
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(err("stray line".into()));
        }
        // name{labels} value
        let (name, rest) = match line.find(['{', ' ']) {
            Some(p) => line.split_at(p),
            None => return Err(err("no value".into())),
        };
        if !valid_name(name) {
            return Err(err("bad metric name".into()));
        }
        let Some(kind) = types.get(name) else {
            return Err(err("sample before its TYPE".into()));
        };
        if current.as_deref() != Some(name) {
            if let Some(prev) = current.take() {
                closed.insert(prev);
            }
            if closed.contains(name) {
                return Err(err("family's samples not together".into()));
            }
            current = Some(name.into());
        }
        let mut labels = BTreeMap::new();
        let value_text = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end = loop {
                // label name
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .ok_or_else(|| err("cut labels".into()))?;
                if body[start..].starts_with('}') {
                    break start;
                }
                let eq = body[start..]
                    .find('=')
                    .ok_or_else(|| err("label without =".into()))?
                    + start;
                let lname = &body[start..eq];
                if !valid_label(lname) {
                    return Err(err(format!("bad label name {lname:?}")));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("label value not quoted".into()));
                }
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => v.push('\\'),
                            Some((_, '"')) => v.push('"'),
                            Some((_, 'n')) => v.push('\n'),
                            _ => return Err(err("bad escape".into())),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) | None => return Err(err("unterminated label".into())),
                        Some((_, c)) => v.push(c),
                    }
                }
                if labels.insert(lname.to_string(), v).is_some() {
                    return Err(err("label repeated".into()));
                }
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => break i,
                    _ => return Err(err("expected , or }".into())),
                }
            };
            body[end + 1..]
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before value".into()))?
        } else {
            rest.strip_prefix(' ')
                .ok_or_else(|| err("no space before value".into()))?
        };
        if value_text.contains(' ') {
            return Err(err("timestamp or junk after value".into()));
        }
        let value = parse_value(value_text).map_err(err)?;
        if kind == "counter" && value < 0.0 {
            return Err(err("negative counter".into()));
        }
        let key = format!("{name}{labels:?}");
        if !series.insert(key) {
            return Err(err("duplicate series".into()));
        }
        out.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    Ok(out)
}

async fn get(addr: std::net::SocketAddr, req: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn find<'a>(s: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.iter().find(|x| {
        x.name == name
            && labels
                .iter()
                .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

#[tokio::test]
async fn metrics_parse_strictly_and_say_what_the_rig_does() {
    let r = ops_common::start(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let h = &r.h;
    let addr = h.metrics_addr.unwrap();
    let reply = get(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: rig\r\nAccept: */*\r\n\r\n",
    )
    .await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    let samples = parse_strict(body).unwrap_or_else(|e| panic!("{e}\n{body}"));

    let v = |name: &str, labels: &[(&str, &str)]| find(&samples, name, labels).map(|s| s.value);
    assert_eq!(
        v(
            "compushare_device_role",
            &[("device", "0"), ("role", "mine")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "compushare_device_role",
            &[("device", "0"), ("role", "transport")]
        ),
        Some(0.0)
    );
    assert_eq!(
        v(
            "compushare_device_role",
            &[("device", "1"), ("role", "transport")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "compushare_device_health",
            &[("device", "1"), ("state", "hot")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "compushare_device_hash_rate_hashes_per_second",
            &[("device", "0")]
        ),
        Some(2.5e9)
    );
    assert_eq!(
        v("compushare_device_histories_per_second", &[("device", "1")]),
        Some(41_000.0)
    );
    assert_eq!(
        v("compushare_device_temperature_celsius", &[("device", "0")]),
        Some(65.4)
    );
    // Device 1 reports no temperature or power: no sample rather than a false 0.
    assert_eq!(
        v("compushare_device_temperature_celsius", &[("device", "1")]),
        None
    );
    assert_eq!(
        v("compushare_device_power_watts", &[("device", "0")]),
        Some(410.0)
    );
    assert_eq!(v("compushare_device_power_watts", &[("device", "1")]), None);
    assert_eq!(
        v("compushare_device_switches_total", &[("device", "1")]),
        Some(4.0)
    );
    assert_eq!(v("compushare_vault_slots", &[]), Some(16.0));
    assert_eq!(v("compushare_vault_slots_used", &[]), Some(3.0));
    assert_eq!(
        v("compushare_earnings_msat_total", &[("source", "mining")]),
        Some(1234.5)
    );
    assert_eq!(
        v("compushare_earnings_msat_total", &[("source", "transport")]),
        Some(5000.0)
    );
    assert_eq!(
        v(
            "compushare_pool_shares_total",
            &[("pool", "1"), ("result", "accepted")]
        ),
        Some(40.0)
    );
    // A label value with quotes and commas survives the escaping.
    assert_eq!(
        find(&samples, "compushare_pool_up", &[("pool", "2")])
            .unwrap()
            .labels["user"],
        "farm,rig|7=\"x\""
    );
    assert_eq!(
        v(
            "compushare_metrics_requests_total",
            &[("outcome", "scraped")]
        ),
        Some(1.0)
    );

    // Anything but GET/HEAD /metrics is refused and counted.
    assert!(get(addr, "GET / HTTP/1.1\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 404"));
    assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 405"));
    assert!(get(addr, "\x16\x03\x01garbage\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 400"));
    let head = get(addr, "HEAD /metrics HTTP/1.0\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"));
    let body = get(addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
    let samples = parse_strict(body.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(
        find(
            &samples,
            "compushare_metrics_requests_total",
            &[("outcome", "bad_request")]
        )
        .map(|s| s.value),
        Some(3.0)
    );
}

#[test]
fn the_strict_parser_rejects_loose_text() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse_strict(ok).is_ok());
    for bad in [
        "a 1\n",                                                    // no TYPE
        "# TYPE a gauge\na 1",                                      // no final newline
        "# TYPE a gauge\na{x=1} 1\n",                               // unquoted
        "# TYPE a gauge\na{x=\"\\q\"} 1\n",                         // bad escape
        "# TYPE a gauge\na 1\na 2\n",                               // duplicate
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 2\n", // split family
        "# TYPE a counter\na -1\n",                                 // negative counter
        "# TYPE a gauge\na one\n",                                  // bad value
        "# TYPE a gauge\na 1 123 x\n",                              // junk
    ] {
        assert!(parse_strict(bad).is_err(), "accepted {bad:?}");
    }
}
