//! One thing wrong with the service's configuration, with the setting to change. Every part
//! of the configuration (`config`, `webhooks::Settings`, ...) reports these, all at once.

/// One thing wrong with the configuration, with the setting to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub setting: &'static str,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// Reads numeric and duration settings from an environment, keeping every problem.
pub struct EnvReader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    pub problems: Vec<Problem>,
}

impl<'a> EnvReader<'a> {
    pub fn new(env: &'a dyn Fn(&str) -> Option<String>) -> EnvReader<'a> {
        EnvReader {
            env,
            problems: Vec::new(),
        }
    }

    /// The setting's value, trimmed; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.env)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A whole number from `lo` to `hi` into `into` (left alone when unset or wrong).
    pub fn int(&mut self, setting: &'static str, lo: u64, hi: u64, into: &mut u64) {
        if let Some(v) = self.get(setting) {
            match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => *into = n,
                _ => self.problems.push(Problem {
                    setting,
                    message: format!("{v:?}: use a whole number from {lo} to {hi}"),
                }),
            }
        }
    }

    /// A duration (`10s`, `500ms`) from `lo` to `hi` into `into`.
    pub fn duration(
        &mut self,
        setting: &'static str,
        lo: std::time::Duration,
        hi: std::time::Duration,
        into: &mut std::time::Duration,
    ) {
        if let Some(v) = self.get(setting) {
            match humantime::parse_duration(&v) {
                Ok(d) if d >= lo && d <= hi => *into = d,
                _ => self.problems.push(Problem {
                    setting,
                    message: format!(
                        "{v:?}: use a duration such as 10s or 500ms, from {} to {}",
                        humantime::format_duration(lo),
                        humantime::format_duration(hi)
                    ),
                }),
            }
        }
    }

    /// `value` when nothing was wrong, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<Problem>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}
