//! Output conventions shared by every command.
//!
//! - With `--json`, stdout carries exactly one JSON document; everything else goes to stderr.
//! - Without it, results go to stdout; notes, warnings and progress go to stderr.
//! - Progress (indicatif) is drawn only on a terminal, and never with `--no-progress` or `--json`.

use crate::cli::{ColorChoice, GlobalArgs};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Ui {
    pub json: bool,
    pub verbose: u8,
    progress: bool,
    color: bool,
}

impl Ui {
    pub fn new(g: &GlobalArgs) -> Ui {
        let stderr_tty = std::io::stderr().is_terminal();
        let color = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_tty && std::env::var_os("NO_COLOR").is_none(),
        };
        Ui {
            json: g.json,
            verbose: g.verbose,
            progress: !g.no_progress && !g.json && stderr_tty,
            color,
        }
    }

    /// A quiet UI for library callers and tests.
    pub fn silent() -> Ui {
        Ui {
            json: true,
            verbose: 0,
            progress: false,
            color: false,
        }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    /// Paint `text` with an ANSI style when colour is on.
    pub fn paint(&self, text: &str, style: Style) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match style {
            Style::Ok => "32",
            Style::Warn => "33",
            Style::Fail => "31",
            Style::Dim => "2",
            Style::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// A line of human output on stderr (also with `--json`: stderr is never parsed).
    pub fn note(&self, msg: impl AsRef<str>) {
        let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        let w = self.paint("warning:", Style::Warn);
        let _ = writeln!(std::io::stderr(), "{w} {}", msg.as_ref());
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 {
            let _ = writeln!(
                std::io::stderr(),
                "{}",
                self.paint(msg.as_ref(), Style::Dim)
            );
        }
    }

    /// Print the command's result: the JSON document with `--json`, else the human text.
    pub fn result(&self, json: &serde_json::Value, human: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(json).unwrap_or_default()
            );
        } else {
            let text = human();
            let _ = write!(out, "{text}");
            if !text.ends_with('\n') && !text.is_empty() {
                let _ = writeln!(out);
            }
        }
    }

    /// A spinner for a long step; hidden when progress is off. Finish it with `finish_and_clear`.
    pub fn spinner(&self, msg: impl Into<String>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(msg.into());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// A byte-count progress bar (uploads, downloads); hidden when progress is off.
    pub fn bytes_bar(&self, len: u64, msg: impl Into<String>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{msg:30} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(msg.into());
        pb
    }

    pub fn progress_enabled(&self) -> bool {
        self.progress
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Ok,
    Warn,
    Fail,
    Dim,
    Bold,
}
