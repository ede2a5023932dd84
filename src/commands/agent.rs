//! `agent`: deploy by pull on the VM (`deploy::vm::agent`).

use crate::cli::{AgentArgs, GlobalArgs};
use crate::deploy::vm::agent::{Agent, AgentConfig};
use crate::deploy::vm::objects::ReportOutcome;
use crate::error::actionable;
use crate::ui::Ui;

pub fn run(g: &GlobalArgs, args: &AgentArgs, ui: &Ui) -> anyhow::Result<i32> {
    // On the VM there is no profile file: the name is the local layout's, and the profile
    // itself comes with each desired release.
    let profile = g.profile.clone().filter(|p| !p.is_empty()).ok_or_else(|| {
        actionable(
            "`calops agent` needs the profile's name",
            "pass --profile NAME (cloud-init sets CALOPS_PROFILE in /etc/calops/agent.env)",
        )
    })?;
    let config = AgentConfig {
        profile,
        bucket: args.bucket.clone(),
        namespace: args.namespace.clone(),
        interval: args.interval,
        once: args.once,
        workdir: std::env::current_dir()?,
        self_update: args.self_update.clone(),
        run_job: crate::deploy::backups::vm::run_job,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let agent = Agent::connect(config).await?;
        ui.note(format!(
            "calops agent: watching {} in bucket {}",
            crate::deploy::vm::objects::DESIRED,
            agent.config.bucket
        ));
        let report = agent.run(ui).await?;
        let code = match &report {
            Some(r) if r.outcome != ReportOutcome::Switched => 1,
            _ => 0,
        };
        if args.once {
            ui.result(&serde_json::json!({ "report": report }), || match &report {
                None => "nothing to do: no desired release, or it was already reported\n".into(),
                Some(r) => format!("{}\n", r.summary()),
            });
        }
        Ok(code)
    })
}
