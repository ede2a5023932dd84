//! OCI Monitoring in the stand-in OCI (`support::oci`): PostMetricData's request checked as
//! Monitoring documents it (oci-go-sdk `monitoring.PostMetricDataDetails` and
//! `MetricDataDetails`; the per-call limits of the API reference: at most 50 unique metric
//! streams, 1 to 20 dimensions, timestamps from two hours ago to ten minutes ahead; names and
//! namespaces as the model's documentation says), and the faults a test can switch on.

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// What the stand-in's Monitoring does with PostMetricData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Accepts well-formed bodies.
    #[default]
    None,
    /// Answers 500 InternalServerError.
    Fail,
    /// Never answers (until the caller gives up).
    Hang,
}

fn valid_name(s: &str, extra: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// Check a PostMetricData body; the number of metric streams it carries, or why it is refused
/// (400 InvalidParameter).
pub fn check_post(body: &[u8], now: SystemTime) -> Result<usize, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let items = v["metricData"]
        .as_array()
        .ok_or("metricData is required and must be a list")?;
    if items.is_empty() {
        return Err("metricData is empty".into());
    }
    match v.get("batchAtomicity").and_then(Value::as_str) {
        None | Some("ATOMIC") | Some("NON_ATOMIC") => {}
        Some(other) => return Err(format!("batchAtomicity {other:?}")),
    }
    let mut streams = BTreeSet::new();
    for (i, m) in items.iter().enumerate() {
        let at = |what: &str| format!("metricData[{i}]: {what}");
        let ns = m["namespace"]
            .as_str()
            .ok_or_else(|| at("namespace is required"))?;
        let lower = ns.to_ascii_lowercase();
        if !valid_name(ns, "_") || lower.starts_with("oci_") || lower.starts_with("oracle_") {
            return Err(at(&format!("invalid namespace {ns:?}")));
        }
        let c = m["compartmentId"].as_str().unwrap_or_default();
        if !c.starts_with("ocid1.") {
            return Err(at("compartmentId is required"));
        }
        let name = m["name"].as_str().ok_or_else(|| at("name is required"))?;
        if !valid_name(name, "._-$") {
            return Err(at(&format!("invalid name {name:?}")));
        }
        let dims = m["dimensions"]
            .as_object()
            .ok_or_else(|| at("dimensions are required"))?;
        if dims.is_empty() || dims.len() > 20 {
            return Err(at(&format!("{} dimensions (1 to 20)", dims.len())));
        }
        for (k, d) in dims {
            let d = d.as_str().unwrap_or_default();
            if k.is_empty()
                || k.len() > 256
                || !k.chars().all(|c| c.is_ascii_graphic())
                || d.is_empty()
                || d.len() > 512
            {
                return Err(at(&format!("invalid dimension {k:?}={d:?}")));
            }
        }
        let points = m["datapoints"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| at("at least one datapoint is required"))?;
        for p in points {
            let ts = p["timestamp"].as_str().unwrap_or_default();
            let t: jiff::Timestamp = ts
                .parse()
                .map_err(|_| at(&format!("timestamp {ts:?} is not RFC 3339")))?;
            let t = SystemTime::from(t);
            if t + Duration::from_secs(7200) < now || t > now + Duration::from_secs(600) {
                return Err(at(&format!("timestamp {ts} is not near the current time")));
            }
            if !p["value"].as_f64().is_some_and(f64::is_finite) {
                return Err(at("value must be a number"));
            }
        }
        streams.insert((
            ns.to_string(),
            name.to_string(),
            Value::Object(dims.clone()).to_string(),
        ));
    }
    if streams.len() > 50 {
        return Err(format!(
            "{} unique metric streams (at most 50)",
            streams.len()
        ));
    }
    Ok(items.len())
}

#[test]
fn the_stand_in_refuses_what_monitoring_refuses() {
    let now = SystemTime::now();
    let ts = jiff::Timestamp::try_from(now).unwrap().to_string();
    let item = |name: &str, ns: &str, slot: &str| {
        serde_json::json!({"namespace": ns, "compartmentId": "ocid1.compartment.oc1..c",
            "name": name, "dimensions": {"slot": slot},
            "datapoints": [{"timestamp": ts, "value": 1.0}]})
    };
    let body =
        |items: Vec<Value>| serde_json::to_vec(&serde_json::json!({"metricData": items})).unwrap();
    assert_eq!(
        check_post(&body(vec![item("a", "calops", "blue")]), now),
        Ok(1)
    );
    assert!(check_post(&body(vec![item("a", "oci_calops", "blue")]), now).is_err());
    assert!(check_post(&body(vec![item("1a", "calops", "blue")]), now).is_err());
    assert!(check_post(&body(vec![]), now).is_err());
    let many: Vec<Value> = (0..51)
        .map(|i| item("a", "calops", &i.to_string()))
        .collect();
    assert!(check_post(&body(many), now)
        .unwrap_err()
        .contains("51 unique"));
    let mut old = item("a", "calops", "blue");
    old["datapoints"][0]["timestamp"] = "2020-01-01T00:00:00Z".into();
    assert!(check_post(&body(vec![old]), now).is_err());
}

// ---------------------------------------------------------------------------------------------
// Reading back: SummarizeMetricsData and ListAlarmsStatus over what PostMetricData accepted.

/// The statistics the stand-in computes (Oracle's MQL reference defines them; `rate`,
/// `percentile` and `absent` are outside what calops asks).
fn statistic(name: &str, values: &[f64]) -> Result<f64, String> {
    let n = values.len() as f64;
    Ok(match name {
        "sum" => values.iter().sum(),
        "max" => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        "min" => values.iter().cloned().fold(f64::INFINITY, f64::min),
        "mean" => values.iter().sum::<f64>() / n,
        "count" => n,
        other => return Err(format!("the stand-in does not compute {other}()")),
    })
}

/// SummarizeMetricsData over the accepted `posts` (PostMetricData bodies): the streams of
/// `namespace` in `compartment` that `sel` names and filters, datapoints from `start` to `end`,
/// put in the selection's intervals and aggregated per interval by its statistic, per
/// `groupBy(...)` group (one group for `grouping()`, one per stream without either). Answers
/// `MetricData` items (`aggregatedDatapoints` stamped with their interval's start).
pub fn summarize(
    posts: &[Value],
    namespace: &str,
    compartment: &str,
    sel: &crate::support::mql::Selection,
    start: SystemTime,
    end: SystemTime,
) -> Result<Vec<Value>, String> {
    use std::collections::BTreeMap;
    let (grouping, stat) = match sel.functions.as_slice() {
        [(stat, _)] => (None, stat.as_str()),
        [(g, args), (stat, _)] if g == "groupBy" => (Some(args.clone()), stat.as_str()),
        [(g, _), (stat, _)] if g == "grouping" => (Some(vec![]), stat.as_str()),
        other => return Err(format!("the stand-in does not evaluate {other:?}")),
    };
    let step = sel.interval_seconds();
    type Key = BTreeMap<String, String>;
    let mut groups: BTreeMap<Key, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for item in posts
        .iter()
        .flat_map(|p| p["metricData"].as_array().unwrap())
    {
        if item["namespace"] != namespace
            || item["compartmentId"] != compartment
            || item["name"] != sel.metric.as_str()
        {
            continue;
        }
        let dims: Key = item["dimensions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        if !sel.dimensions.iter().all(|(k, v)| dims.get(k) == Some(v)) {
            continue;
        }
        let key: Key = match &grouping {
            None => dims.clone(),
            Some(by) => dims
                .iter()
                .filter(|(k, _)| by.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        for p in item["datapoints"].as_array().unwrap() {
            let at: jiff::Timestamp = p["timestamp"].as_str().unwrap().parse().unwrap();
            let at = SystemTime::from(at);
            if at < start || at >= end {
                continue;
            }
            let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
            groups
                .entry(key.clone())
                .or_default()
                .entry(secs - secs % step)
                .or_default()
                .push(p["value"].as_f64().unwrap());
        }
    }
    let mut out = Vec::new();
    for (dims, buckets) in groups {
        let mut points = Vec::new();
        for (at, values) in buckets {
            let ts = jiff::Timestamp::from_second(at as i64).unwrap();
            points.push(
                serde_json::json!({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "value": statistic(stat, &values)?}),
            );
        }
        out.push(
            serde_json::json!({"namespace": namespace, "compartmentId": compartment,
            "name": sel.metric, "dimensions": dims, "aggregatedDatapoints": points,
            "resolution": sel.interval}),
        );
    }
    Ok(out)
}

/// An alarm as the stack renders it (`oci_monitoring_alarm`): its display name, namespace,
/// query, severity and summary.
#[derive(Debug, Clone)]
pub struct Alarm {
    pub display_name: String,
    pub namespace: String,
    pub query: String,
    pub severity: String,
    pub summary: String,
}

/// Whether `alarm` fires on the accepted `posts` at `now`: its query evaluated over the last
/// two hours (what PostMetricData accepts), firing when the newest interval of any stream
/// meets the condition. The pending duration is not waited out (a test cannot wait 15
/// minutes); Monitoring would also require the condition to hold that long.
pub fn fires(
    posts: &[Value],
    compartment: &str,
    alarm: &Alarm,
    now: SystemTime,
) -> Result<bool, String> {
    let q = crate::support::mql::parse(&alarm.query)?;
    let streams = summarize(
        posts,
        &alarm.namespace,
        compartment,
        &q.selection,
        now - Duration::from_secs(7200),
        now + Duration::from_secs(600),
    )?;
    Ok(streams.iter().any(|s| {
        let newest = s["aggregatedDatapoints"]
            .as_array()
            .and_then(|p| p.last())
            .and_then(|p| p["value"].as_f64());
        newest.is_some_and(|v| match q.operator.as_str() {
            ">" => v > q.threshold,
            ">=" => v >= q.threshold,
            "<" => v < q.threshold,
            "<=" => v <= q.threshold,
            "==" => v == q.threshold,
            _ => v != q.threshold,
        })
    }))
}

#[test]
fn the_stand_in_summarizes_and_evaluates_what_was_posted() {
    use crate::support::mql;
    let now = SystemTime::now();
    let minute = |m: u64| {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 60 - 600 + m * 60);
        jiff::Timestamp::try_from(t).unwrap().to_string()
    };
    let item = |name: &str, dims: Value, m: u64, v: f64| {
        serde_json::json!({"namespace": "calops", "compartmentId": "ocid1.compartment.oc1..c",
            "name": name, "dimensions": dims, "datapoints": [{"timestamp": minute(m), "value": v}]})
    };
    let posts = vec![serde_json::json!({"metricData": [
        item("req", serde_json::json!({"slot": "blue", "class": "2xx"}), 1, 10.0),
        item("req", serde_json::json!({"slot": "blue", "class": "2xx"}), 1, 5.0),
        item("req", serde_json::json!({"slot": "blue", "class": "5xx"}), 2, 1.0),
        item("req", serde_json::json!({"slot": "green", "class": "2xx"}), 2, 100.0),
        item("pct", serde_json::json!({"slot": "blue"}), 1, 9.0),
        item("pct", serde_json::json!({"slot": "blue"}), 2, 0.5),
    ]})];
    let sum = |q: &str| {
        summarize(
            &posts,
            "calops",
            "ocid1.compartment.oc1..c",
            &mql::parse_metric(q).unwrap(),
            now - Duration::from_secs(3600),
            now,
        )
        .unwrap()
    };
    let by_class = sum("req[1m]{slot = \"blue\"}.groupBy(class).sum()");
    assert_eq!(by_class.len(), 2);
    assert_eq!(
        by_class[0]["dimensions"],
        serde_json::json!({"class": "2xx"})
    );
    assert_eq!(by_class[0]["aggregatedDatapoints"][0]["value"], 15.0);
    assert_eq!(
        sum("req[1m].grouping().sum()")[0]["aggregatedDatapoints"][1]["value"],
        101.0
    );
    assert!(sum("req[1m]{slot = \"red\"}.sum()").is_empty());
    let other = summarize(
        &posts,
        "calops",
        "ocid1.compartment.oc1..other",
        &mql::parse_metric("req[1m].sum()").unwrap(),
        now - Duration::from_secs(3600),
        now,
    )
    .unwrap();
    assert!(
        other.is_empty(),
        "another compartment's metrics are not answered"
    );
    let alarm = |q: &str| Alarm {
        display_name: "a".into(),
        namespace: "calops".into(),
        query: q.into(),
        severity: "CRITICAL".into(),
        summary: "s".into(),
    };
    let c = "ocid1.compartment.oc1..c";
    // The newest minute decides: 9 then 0.5.
    assert!(!fires(&posts, c, &alarm("pct[1m].max() > 1"), now).unwrap());
    assert!(fires(&posts, c, &alarm("pct[1m].max() > 0.25"), now).unwrap());
    assert!(fires(&posts, c, &alarm("req[1m].groupBy(slot).sum() > 50"), now).unwrap());
}
