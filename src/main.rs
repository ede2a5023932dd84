use calops::cli::Cli;
use calops::error::{exit_code_of, EXIT_ERROR};
use calops::ui::Ui;
use clap::Parser;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0; usage errors exit 1 so that 2 always means "changes".
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let ui = Ui::new(&cli.global);
    let code = match calops::commands::run(cli, &ui) {
        Ok(code) => code,
        Err(err) => {
            report(&ui, &err);
            exit_code_of(&err)
        }
    };
    std::process::exit(code);
}

/// Print an error: the chain on stderr, and with --json also one JSON document on stdout.
fn report(ui: &Ui, err: &anyhow::Error) {
    let code = exit_code_of(err);
    let mut text = format!("{err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    // An Exit with no message (e.g. doctor's "a check failed") has already said everything.
    if let Some(e) = err.downcast_ref::<calops::error::Exit>() {
        if e.message.is_none() {
            return;
        }
    }
    eprintln!("{} {text}", ui.paint("error:", calops::ui::Style::Fail));
    if let Some(e) = err.downcast_ref::<calops::error::ExitWithDoc>() {
        if ui.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&e.doc).unwrap_or_default()
            );
        }
        return;
    }
    if ui.json {
        let doc = serde_json::json!({
            "status": "error",
            "exit_code": code,
            "error": { "message": text },
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
}
