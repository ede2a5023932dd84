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
    };
    let config = match raw.validate(&|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            if ui.json {
                let doc = serde_json::json!({
                    "status": "error",
                    "error": {
                        "message": "invalid service configuration",
                        "problems": problems.iter().map(|p| serde_json::json!({"setting": p.setting, "message": p.message})).collect::<Vec<_>>(),
                    }
                });
                println!("{doc}");
            }
            return Err(crate::error::actionable(
                format!("invalid service configuration ({} problems):\n{}", problems.len(), list.join("\n")),
                "fix the settings above (flags or environment variables; `calops serve --help` lists them) and start again",
            ));
        }
    };
    crate::service::logging::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::service::server::run(config))?;
    Ok(0)
}
