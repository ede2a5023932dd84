//! `calops oci ...`: direct OCI API access with the OCI config's credentials.

use crate::cli::{OciArgs, OciCommand, RawRequestArgs};
use crate::error::{actionable, Exit};
use crate::oci::client::OciClient;
use crate::oci::config::OciConfig;
use crate::oci::raw;
use crate::ui::Ui;
use bytes::Bytes;
use std::time::SystemTime;

pub fn run(args: &OciArgs, ui: &Ui) -> anyhow::Result<i32> {
    match &args.command {
        OciCommand::RawRequest(a) => raw_request(a, ui),
    }
}

fn read_body(arg: &Option<String>) -> anyhow::Result<Option<Bytes>> {
    match arg {
        None => Ok(None),
        Some(s) => match s.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| {
                    actionable(
                        format!("cannot read --request-body file {path}: {e}"),
                        "give @<path of an existing file>, or the body text itself",
                    )
                }),
            None => Ok(Some(Bytes::from(s.clone().into_bytes()))),
        },
    }
}

fn raw_request(a: &RawRequestArgs, ui: &Ui) -> anyhow::Result<i32> {
    let body = read_body(&a.request_body)?;
    let req = raw::build_request(
        &a.http_method,
        &a.target_uri,
        body,
        a.request_headers.as_deref(),
    )?;
    let profile = OciConfig::load(a.oci.oci_config.as_deref(), a.oci.oci_profile.as_deref())?;
    ui.detail(format!(
        "OCI profile [{}] from {}",
        profile.profile,
        profile.config_file.display()
    ));
    let client = OciClient::from_profile(&profile)?;
    if a.dry_run {
        let (headers, signed) = client.sign(&req, SystemTime::now())?;
        let doc = raw::dry_run_json(&req, &headers, &signed);
        // The dry run is JSON with or without --json: it is meant to be read by tools.
        ui.result(&doc, || {
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        });
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt.block_on(client.execute(req))?;
    let doc = raw::response_json(&resp);
    ui.result(&doc, || raw::response_text(&resp));
    if resp.status.is_success() {
        Ok(0)
    } else {
        ui.warn(format!(
            "the request returned HTTP {} (opc-request-id: {})",
            resp.status.as_u16(),
            resp.opc_request_id().unwrap_or("none")
        ));
        Err(Exit {
            code: crate::error::EXIT_ERROR,
            message: None,
        }
        .into())
    }
}
