//! `calops serve`: run the scheduling service in the foreground.

use crate::cli::ServeArgs;
use crate::service::config::RawConfig;
use crate::ui::Ui;

pub fn run(args: &ServeArgs, ui: &Ui) -> anyhow::Result<i32> {
    let raw = RawConfig {
        listen: args.listen.clone(),
        database_url: args.database_url.clone(),
        redis_url: args.redis_url.clone(),
        object_storage_url: args.object_storage_url.clone(),
        admin_token_ref: args.admin_token_ref.clone(),
        reuse_port: args.reuse_port,
        private_listen: args.private_listen.clone(),
        db_pool_size: args.db_pool_size.clone(),
        shutdown_timeout: args.shutdown_timeout.clone(),
        rate_limit_availability: args.rate_limit_availability.clone(),
        rate_limit_bookings: args.rate_limit_bookings.clone(),
        redis_timeout: args.redis_timeout.clone(),
        slot_cache: args.slot_cache.clone(),
    };
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
