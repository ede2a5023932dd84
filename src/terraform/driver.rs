//! The typed driver: one method per Terraform operation, each a builder call plus one
//! [`Runner`] run plus parsing.

use super::command::{self, EnvSnapshot, InitArgs, PlanArgs, TfCommand, TfContext};
use super::plan_json::{self, Plan, MASK};
use super::runner::{Invocation, Runner};
use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The oldest Terraform calops drives (`terraform_data`, plan JSON `replace_paths`).
pub const MIN_VERSION: (u64, u64, u64) = (1, 4, 0);

pub struct Driver {
    pub ctx: TfContext,
    pub runner: Runner,
}

impl Driver {
    /// A driver for the root module in `dir`, resolving the terraform binary and plugin cache
    /// from `env`. Creates the plugin cache directory when calops manages it.
    pub fn new(dir: &Path, env: &EnvSnapshot, runner: Runner) -> anyhow::Result<Driver> {
        if !dir.is_dir() {
            return Err(crate::error::actionable(
                format!("Terraform directory {} does not exist", dir.display()),
                "pass the directory that holds the rendered *.tf files",
            ));
        }
        let config_text = env
            .cli_config_path()
            .and_then(|p| std::fs::read_to_string(p).ok());
        let cache = command::plugin_cache_to_set(env, config_text.as_deref());
        if let Some(c) = &cache {
            std::fs::create_dir_all(c)
                .with_context(|| format!("creating the plugin cache {}", c.display()))?;
        }
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut vars = command::base_env(cache.as_deref());
        vars.extend(env.extra.0.clone());
        Ok(Driver {
            ctx: TfContext {
                program: command::program(env),
                dir,
                env: vars,
            },
            runner,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.ctx.dir
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.runner.invocations()
    }

    fn run(
        &self,
        cmd: &TfCommand,
        ok: &[i32],
        progress: &mut dyn FnMut(&str),
    ) -> anyhow::Result<super::runner::RunOutput> {
        self.runner.run(cmd, ok, progress)
    }

    /// `terraform version -json`, checked against [`MIN_VERSION`].
    pub fn version(&self) -> anyhow::Result<String> {
        let out = self.run(&command::version(&self.ctx), &[0], &mut |_| {})?;
        let v = parse_version(&out.stdout)?;
        check_version(&v, &self.ctx.program)?;
        Ok(v)
    }

    pub fn init(&self, args: &InitArgs, progress: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
        self.run(&command::init(&self.ctx, args), &[0], progress)?;
        Ok(())
    }

    /// Plan into `args.out`; returns whether there are changes (exit code 2).
    pub fn plan(&self, args: &PlanArgs, progress: &mut dyn FnMut(&str)) -> anyhow::Result<bool> {
        let out = self.run(&command::plan(&self.ctx, args), &[0, 2], progress)?;
        Ok(out.exit_code == 2)
    }

    /// Plan into `args.out` with the machine-readable UI (`-json`); returns whether there are
    /// changes and what the stream said.
    pub fn plan_streamed(
        &self,
        args: &PlanArgs,
        progress: &mut dyn FnMut(&str),
    ) -> anyhow::Result<(bool, super::stream::StreamPlan)> {
        let mut args = args.clone();
        args.json = true;
        let out = self.run(&command::plan(&self.ctx, &args), &[0, 2], progress)?;
        Ok((out.exit_code == 2, super::stream::parse(&out.stdout)))
    }

    pub fn show_plan(&self, planfile: &Path) -> anyhow::Result<Plan> {
        let out = self.run(&command::show_plan(&self.ctx, planfile), &[0], &mut |_| {})?;
        plan_json::parse(&out.stdout)
    }

    pub fn apply(
        &self,
        planfile: &Path,
        lock_timeout: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> anyhow::Result<()> {
        self.run(
            &command::apply(&self.ctx, planfile, lock_timeout),
            &[0],
            progress,
        )?;
        Ok(())
    }

    pub fn outputs(&self) -> anyhow::Result<Outputs> {
        let out = self.run(&command::output_json(&self.ctx), &[0], &mut |_| {})?;
        parse_outputs(&out.stdout)
    }

    /// The state's serial, or `None` when there is no state yet.
    pub fn state_serial(&self) -> anyhow::Result<Option<u64>> {
        let out = self.run(&command::state_pull(&self.ctx), &[0], &mut |_| {})?;
        parse_state_serial(&out.stdout)
    }
}

pub fn parse_version(text: &str) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(text).context(
        "`terraform version -json` did not print JSON (is it really terraform >= 0.13?)",
    )?;
    v.get("terraform_version")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("`terraform version -json` has no terraform_version"))
}

fn triple(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

pub fn check_version(v: &str, program: &Path) -> anyhow::Result<()> {
    let Some(t) = triple(v) else {
        anyhow::bail!("cannot read the Terraform version {v:?}");
    };
    if t < MIN_VERSION {
        return Err(crate::error::actionable(
            format!(
                "{} is Terraform {v}; calops needs {}.{}.{} or newer",
                program.display(),
                MIN_VERSION.0,
                MIN_VERSION.1,
                MIN_VERSION.2
            ),
            "install a newer Terraform (scripts/setup installs one) or point CALOPS_TERRAFORM at it",
        ));
    }
    Ok(())
}

/// One Terraform output. Debug and Serialize mask a sensitive value; read it with
/// [`OutputValue::value`] only where it is really needed.
#[derive(Clone, PartialEq)]
pub struct OutputValue {
    pub sensitive: bool,
    value: Value,
}

impl OutputValue {
    pub fn new(sensitive: bool, value: Value) -> OutputValue {
        OutputValue { sensitive, value }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn as_str(&self) -> Option<&str> {
        self.value.as_str()
    }

    fn shown(&self) -> Value {
        if self.sensitive {
            Value::String(MASK.into())
        } else {
            self.value.clone()
        }
    }
}

impl fmt::Debug for OutputValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutputValue({})", self.shown())
    }
}

impl Serialize for OutputValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("OutputValue", 2)?;
        st.serialize_field("sensitive", &self.sensitive)?;
        st.serialize_field("value", &self.shown())?;
        st.end()
    }
}

pub type Outputs = BTreeMap<String, OutputValue>;

pub fn parse_outputs(text: &str) -> anyhow::Result<Outputs> {
    let v: Value =
        serde_json::from_str(text).context("`terraform output -json` did not print JSON")?;
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("`terraform output -json` is not an object"))?;
    Ok(obj
        .iter()
        .map(|(k, o)| {
            (
                k.clone(),
                OutputValue::new(
                    o.get("sensitive").and_then(Value::as_bool).unwrap_or(false),
                    o.get("value").cloned().unwrap_or(Value::Null),
                ),
            )
        })
        .collect())
}

pub fn parse_state_serial(text: &str) -> anyhow::Result<Option<u64>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_str(text).context("`terraform state pull` did not print JSON state")?;
    Ok(v.get("serial").and_then(Value::as_u64))
}

/// A fresh plan file path under `dir/.calops-plan/`.
pub fn default_planfile(dir: &Path) -> PathBuf {
    dir.join(".terraform").join("calops.tfplan")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version(r#"{"terraform_version":"1.11.4","platform":"linux_amd64"}"#).unwrap(),
            "1.11.4"
        );
        assert!(parse_version("Terraform v1.11.4").is_err());
        assert!(check_version("1.11.4", Path::new("terraform")).is_ok());
        assert!(check_version("1.4.0", Path::new("terraform")).is_ok());
        assert!(check_version("1.10.0-beta1", Path::new("terraform")).is_ok());
        let e = check_version("1.3.9", Path::new("/x/terraform"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/terraform is Terraform 1.3.9"), "{e}");
    }

    #[test]
    fn outputs_mask_sensitive_values() {
        let o = parse_outputs(
            r#"{"url":{"sensitive":false,"type":"string","value":"http://x"},
                "pw":{"sensitive":true,"type":"string","value":"s3cret"}}"#,
        )
        .unwrap();
        assert_eq!(o["url"].as_str(), Some("http://x"));
        assert_eq!(o["pw"].as_str(), Some("s3cret"));
        let shown = serde_json::to_string(&o).unwrap() + &format!("{o:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("http://x"));
    }

    #[test]
    fn state_serial() {
        assert_eq!(parse_state_serial("").unwrap(), None);
        assert_eq!(
            parse_state_serial(r#"{"version":4,"serial":7,"lineage":"x"}"#).unwrap(),
            Some(7)
        );
        assert!(parse_state_serial("garbage").is_err());
    }
}
