use crate::cli::GlobalArgs;
use crate::ui::Ui;

pub fn run(_g: &GlobalArgs, _ui: &Ui) -> anyhow::Result<i32> {
    anyhow::bail!("doctor is being written")
}
