//! `backup now|list|verify` and `restore` (`deploy::backups`, whatever the profile's target),
//! and the hidden `backup archive-wal|restore-wal` that PostgreSQL runs (`backup::archive`).

use crate::backup::archive::{self, FetchError, Pushed, EXIT_ABORT_RECOVERY};
use crate::cli::{BackupCommand, GlobalArgs, RestoreArgs};
use crate::deploy::backups::{self, Report, Restore};
use crate::error::Exit;
use crate::ui::Ui;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn print(ui: &Ui, r: Report) -> anyhow::Result<i32> {
    ui.result(&r.doc, || r.text);
    Ok(0)
}

pub fn run(g: &GlobalArgs, cmd: BackupCommand, ui: &Ui) -> anyhow::Result<i32> {
    match cmd {
        // `archive_command`: exit 0 only once the file is durably stored.
        BackupCommand::ArchiveWal(a) => {
            if let Pushed::AlreadyStored { key } =
                archive::archive_command(&a.config, &a.path, &a.name)?
            {
                eprintln!("calops: {} was already archived as {key}", a.name);
            }
            Ok(0)
        }
        // `restore_command`: 0 fetched, 1 not in the archive, 200 stop recovery.
        BackupCommand::RestoreWal(a) => match archive::restore_command(&a.config, &a.name, &a.path)
        {
            Ok(_) => Ok(0),
            Err(FetchError::Missing(_)) => Ok(1),
            Err(e @ FetchError::Fatal(_)) => Err(Exit {
                code: EXIT_ABORT_RECOVERY,
                message: Some(e.to_string()),
            }
            .into()),
        },
        BackupCommand::Now(a) => {
            let p = super::load_profile(g, ui)?;
            print(
                ui,
                runtime()?.block_on(backups::now(p, &a.label, a.wait, ui))?,
            )
        }
        BackupCommand::Wait(a) => {
            let p = super::load_profile(g, ui)?;
            print(
                ui,
                runtime()?.block_on(backups::wait(p, &a.id, a.wait, ui))?,
            )
        }
        BackupCommand::List => {
            let p = super::load_profile(g, ui)?;
            print(ui, runtime()?.block_on(backups::list(p))?)
        }
        BackupCommand::Verify(a) => {
            let p = super::load_profile(g, ui)?;
            print(
                ui,
                runtime()?.block_on(backups::verify(p, a.backup.as_deref(), ui))?,
            )
        }
    }
}

pub fn restore(g: &GlobalArgs, args: &RestoreArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let req = Restore {
        target: backups::recovery_target(args.to.as_deref())?,
        backup: args.backup.clone(),
        into: args.into.clone(),
        start: args.start,
        yes: args.yes,
        timeout: args.timeout,
        wait: args.wait,
        name: args.name.clone(),
        no_wait: args.no_wait,
        db_system: args.db_system.clone(),
        subnet_id: args.subnet_id.clone(),
    };
    print(
        ui,
        runtime()?.block_on(backups::restore(profile, &req, ui))?,
    )
}
