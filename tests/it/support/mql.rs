//! A parser for the subset of OCI's Monitoring Query Language the rendered alarms use
//! (Oracle's "MQL Reference": `metric[interval]{dimension="value", ...}.grouping.statistic
//! operator value`), so a test can read each rendered query back and check what it names, and
//! the stand-in Monitoring can answer the metric queries of `calops status` (the same without
//! the condition, [`parse_metric`]) and evaluate alarms. Anything outside the subset is an
//! error, never a guess.

/// What a query selects and how it aggregates: a metric query, or an alarm's without its
/// condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub metric: String,
    /// `1m`..`60m`, `1h`..`24h`, `1d`.
    pub interval: String,
    pub dimensions: Vec<(String, String)>,
    /// Grouping functions and the statistic, in order (the statistic last).
    pub functions: Vec<(String, Vec<String>)>,
}

/// One parsed alarm query: a selection and its condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub selection: Selection,
    pub operator: String,
    pub threshold: f64,
}

impl std::ops::Deref for Query {
    type Target = Selection;
    fn deref(&self) -> &Selection {
        &self.selection
    }
}

impl Selection {
    /// The interval's length in seconds.
    pub fn interval_seconds(&self) -> u64 {
        let (n, unit) = self.interval.split_at(self.interval.len() - 1);
        let n: u64 = n.parse().unwrap_or(1);
        n * match unit {
            "m" => 60,
            "h" => 3600,
            _ => 86_400,
        }
    }
}

const STATISTICS: &[&str] = &[
    "mean",
    "max",
    "min",
    "sum",
    "count",
    "rate",
    "last",
    "percentile",
    "absent",
];
const GROUPINGS: &[&str] = &["grouping", "groupBy"];
const OPERATORS: &[&str] = &[">=", "<=", "==", "!=", ">", "<"];

struct P<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> P<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }
    fn ws(&mut self) {
        while self.rest().starts_with(' ') {
            self.i += 1;
        }
    }
    fn eat(&mut self, t: &str) -> Result<(), String> {
        self.ws();
        if self.rest().starts_with(t) {
            self.i += t.len();
            Ok(())
        } else {
            Err(format!("expected `{t}` at {} in {:?}", self.i, self.s))
        }
    }
    fn ident(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.i;
        let ok = |c: char| c.is_ascii_alphanumeric() || "._-$".contains(c);
        let r = self.rest();
        if !r.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(format!("expected a name at {start} in {:?}", self.s));
        }
        let n = r.find(|c: char| !ok(c)).unwrap_or(r.len());
        self.i += n;
        Ok(&self.s[start..self.i])
    }
    fn until(&mut self, end: char) -> Result<&'a str, String> {
        let r = self.rest();
        let n = r
            .find(end)
            .ok_or_else(|| format!("unterminated, expected `{end}` in {:?}", self.s))?;
        self.i += n + 1;
        Ok(&r[..n])
    }
}

/// An alarm query (a selection and a condition).
pub fn parse(text: &str) -> Result<Query, String> {
    let (selection, mut p) = selection(text)?;
    p.ws();
    let operator = OPERATORS
        .iter()
        .find(|o| p.rest().starts_with(**o))
        .ok_or_else(|| format!("an alarm query needs a comparison: {text:?}"))?
        .to_string();
    p.eat(&operator)?;
    p.ws();
    let threshold: f64 = p
        .rest()
        .trim()
        .parse()
        .map_err(|_| format!("bad threshold {:?} in {text:?}", p.rest()))?;
    Ok(Query {
        selection,
        operator,
        threshold,
    })
}

/// A metric query (SummarizeMetricsData's): a selection and nothing after it.
pub fn parse_metric(text: &str) -> Result<Selection, String> {
    let (selection, p) = selection(text)?;
    if !p.rest().trim().is_empty() {
        return Err(format!(
            "unexpected {:?} after the statistic in {text:?}",
            p.rest()
        ));
    }
    Ok(selection)
}

fn selection(text: &str) -> Result<(Selection, P<'_>), String> {
    let mut p = P { s: text, i: 0 };
    let metric = p.ident()?.to_string();
    p.eat("[")?;
    let interval = p.until(']')?.to_string();
    let (n, unit) = interval.split_at(interval.len().saturating_sub(1));
    let n: u32 = n
        .parse()
        .map_err(|_| format!("bad interval {interval:?}"))?;
    let ok = match unit {
        "m" => (1..=60).contains(&n),
        "h" => (1..=24).contains(&n),
        "d" => n == 1,
        _ => false,
    };
    if !ok {
        return Err(format!("interval {interval:?} is not 1m-60m, 1h-24h or 1d"));
    }
    let mut dimensions = Vec::new();
    p.ws();
    if p.rest().starts_with('{') {
        p.eat("{")?;
        loop {
            let k = p.ident()?.to_string();
            p.eat("=")?;
            p.eat("\"")?;
            let v = p.until('"')?.to_string();
            dimensions.push((k, v));
            p.ws();
            if p.rest().starts_with(',') {
                p.eat(",")?;
                continue;
            }
            p.eat("}")?;
            break;
        }
    }
    let mut functions = Vec::new();
    loop {
        p.ws();
        if !p.rest().starts_with('.') {
            break;
        }
        p.eat(".")?;
        let f = p.ident()?.to_string();
        p.eat("(")?;
        let args: Vec<String> = p
            .until(')')?
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if !STATISTICS.contains(&f.as_str()) && !GROUPINGS.contains(&f.as_str()) {
            return Err(format!("unknown function {f:?} in {text:?}"));
        }
        functions.push((f, args));
    }
    match functions.last() {
        Some((f, _)) if STATISTICS.contains(&f.as_str()) => {}
        _ => return Err(format!("no statistic at the end of {text:?}")),
    }
    Ok((
        Selection {
            metric,
            interval,
            dimensions,
            functions,
        },
        p,
    ))
}

#[test]
fn the_parser_reads_oracle_examples_and_refuses_the_rest() {
    let q = parse("HttpResponses5xx[5m]{resourceId = \"ocid1.lb\"}.sum() > 10").unwrap();
    assert_eq!(q.metric, "HttpResponses5xx");
    assert_eq!(q.dimensions, vec![("resourceId".into(), "ocid1.lb".into())]);
    assert_eq!((q.operator.as_str(), q.threshold), (">", 10.0));
    let q =
        parse("CpuUtilization[1m]{a=\"x\", b=\"y\"}.groupBy(a).percentile(0.9) >= 0.5").unwrap();
    assert_eq!(q.functions.len(), 2);
    for bad in [
        "CpuUtilization[1m].mean()",
        "CpuUtilization[90m].mean() > 1",
        "CpuUtilization[1m].median() > 1",
        "CpuUtilization[1m].grouping() > 1",
        "CpuUtilization[1m].mean() > x",
        "1Cpu[1m].mean() > 1",
        "a[1m]{b=\"c\".mean() > 1",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    let m = parse_metric("calops_queue_depth[1m]{slot = \"blue\"}.groupBy(queue).max()").unwrap();
    assert_eq!(m.functions[0], ("groupBy".into(), vec!["queue".into()]));
    assert_eq!(m.interval_seconds(), 60);
    assert!(parse_metric("calops_queue_depth[1m].max() > 3").is_err());
}
