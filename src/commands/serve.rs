//! `calops serve`: run the scheduling service in the foreground.

use crate::cli::ServeArgs;
use crate::ui::Ui;

pub fn run(args: &ServeArgs, ui: &Ui) -> anyhow::Result<i32> {
    let raw = args.raw_config();
    crate::service::logging::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let env = |name: &str| std::env::var(name).ok();
    let config = match rt.block_on(crate::service::startup::configure(&raw, &env)) {
        Ok(c) => c,
        Err(problems) => {
            // main prints the error (and with --json, one JSON document holding it).
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            return Err(crate::error::actionable(
                format!("invalid service configuration ({} problems):\n{}", problems.len(), list.join("\n")),
                "fix the settings above (flags or environment variables; `calops serve --help` lists them) and start again",
            ));
        }
    };
    // A cluster calops runs itself: its nightly base backup, and the gauges in /metrics.
    if let (Some(cfg), Some(url)) = (&args.backup_config, &args.database_url) {
        let gauges = crate::backup::schedule::spawn(&rt, cfg.clone(), url.clone());
        crate::service::metrics::set_extra(Box::new(move || gauges.text()));
    }
    let started = std::time::Instant::now();
    rt.block_on(crate::service::server::run(config))?;
    // Logs went to stderr as JSON lines; stdout gets one document when the service stops.
    let secs = started.elapsed().as_secs_f64();
    ui.result(
        &serde_json::json!({"status": "stopped", "uptimeSeconds": secs}),
        || format!("calops serve stopped after {secs:.1} s"),
    );
    Ok(0)
}
