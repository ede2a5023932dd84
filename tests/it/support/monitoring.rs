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
