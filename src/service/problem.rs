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
