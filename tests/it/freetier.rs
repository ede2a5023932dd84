//! The `oci-vm` target's shipped profile `free-au`, run through the real binary: `plan`
//! estimates $0 with the Always Free allowance it assumes and the price table's date, `plan` and
//! `doctor` warn when a size leaves the allowance, and the backup requests of the VM refuse bad
//! input before they write anything. Deploy by pull and the VM's backups end to end: `agent`.

mod agent;
mod tokencache;

use calops::terraform::cost::PriceTable;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

/// Run calops in an empty directory with `env` overrides: (exit code, stdout, stderr, dir).
fn calops(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_calops"));
    c.current_dir(dir.path())
        .env("CALOPS_PROFILE_DIR", profiles())
        .env("NO_COLOR", "1")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    )
}

fn plan_json(env: &[(&str, &str)]) -> (Value, String) {
    let (code, out, err, _d) = calops(&["plan", "--profile", "free-au", "--json"], env);
    assert_eq!(code, 0, "{err}");
    (
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        err,
    )
}

#[test]
fn free_au_plans_to_zero_with_the_allowance_assumed_and_the_price_date() {
    let table = PriceTable::bundled();
    let (v, err) = plan_json(&[]);
    assert_eq!(v["total"], 0.0, "{v:#}");
    assert_eq!(v["prices_as_of"], table.as_of.as_str());
    assert_eq!(v["allowance"]["a1_ocpus"], 2.0);
    assert_eq!(v["allowance"]["a1_memory_gbs"], 12.0);
    assert_eq!(v["outside_allowance"], serde_json::json!([]));
    assert!(v["lines"][0]["basis"]
        .as_str()
        .unwrap()
        .contains("VM.Standard.A1.Flex: 2 OCPU + 12 GB"));
    assert!(!err.contains("above"), "no allowance warning: {err}");
    // The human form names the allowance and the date.
    let (code, out, _, _d) = calops(&["plan", "--profile", "free-au"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Always Free allowance assumed") && out.contains(&table.as_of),
        "{out}"
    );
    assert!(out.contains("total") && out.contains("0.00 USD"), "{out}");
}

#[test]
fn sizes_above_the_allowance_are_priced_and_warned_by_plan_and_doctor() {
    let (v, err) = plan_json(&[("CALOPS_VM_OCPUS", "4"), ("CALOPS_VM_MEMORY_GBS", "24")]);
    let t = PriceTable::bundled();
    let rate = &t.compute["VM.Standard.A1.Flex"];
    let want = ((t.hours_per_month * (2.0 * rate.ocpu_hour + 12.0 * rate.memory_gb_hour)) * 100.0)
        .round()
        / 100.0;
    assert_eq!(v["total"].as_f64().unwrap(), want, "{v:#}");
    let outside = v["outside_allowance"].to_string();
    assert!(
        outside.contains("ocpus = 4") && outside.contains("memory_gbs = 24"),
        "{outside}"
    );
    assert!(err.contains("warning: [vm] ocpus = 4 is above"), "{err}");
    let (v, _) = plan_json(&[
        ("CALOPS_LOAD_BALANCER_MAX_BANDWIDTH_MBPS", "100"),
        ("CALOPS_VM_BLOCK_VOLUME_GBS", "200"),
    ]);
    let outside = v["outside_allowance"].to_string();
    assert!(outside.contains("max_bandwidth_mbps = 100"), "{outside}");
    assert!(outside.contains("250 GB"), "{outside}");
    assert!(v["total"].as_f64().unwrap() > 0.0);

    let (_, out, err, _d) = calops(
        &["doctor", "--profile", "free-au", "--json"],
        &[("CALOPS_VM_OCPUS", "3")],
    );
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let check = doc["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "always free")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(check["status"], "warn", "{check:#}");
    assert!(
        check["detail"].as_str().unwrap().contains("ocpus = 3"),
        "{check:#}"
    );
}

/// `backup now` and `restore` of an `oci-vm` profile are requests to its agent (`agent`); what
/// cannot become a request is refused before anything is written or asked of OCI.
#[test]
fn vm_backup_requests_refuse_bad_input_and_change_nothing() {
    for (args, want) in [
        (
            &["restore", "--profile", "free-au", "--into", "/tmp/x"][..],
            "--into /tmp/x",
        ),
        (&["restore", "--profile", "free-au", "--start"], "--yes"),
        (
            &["backup", "wait", "../desired", "--profile", "free-au"],
            "not a request id",
        ),
        (
            &[
                "backup",
                "wait",
                "20261206T100102345Z-1a2b3c4d",
                "--profile",
                "local",
            ],
            "not an oci-vm profile",
        ),
    ] {
        let (code, out, err, dir) = calops(args, &[]);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(
            err.contains(want) && err.contains("fix: "),
            "{args:?}: {err}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{args:?} left files behind"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The rendered `oci-vm` stack.

use crate::render::{attr, findings, module_block, resources, terraform_fmt_check};
use calops::render::cloudinit;
use calops::render::vm::{render_vm, VmRenderInput, DATA_DEVICE};
use calops::render::StateBackend;

fn vm_input() -> VmRenderInput {
    let p = calops::profile::load_with("free-au", &[profiles()], vec![])
        .unwrap()
        .profile;
    let mut input = VmRenderInput::from_profile(&p, Some("1.11.4".into())).unwrap();
    input.oci.tenancy_id = Some("ocid1.tenancy.oc1..aaaaaaaafreeautenancy".into());
    input.oci.home_region = Some("ap-sydney-1".into());
    input
}

fn written(input: &VmRenderInput) -> (calops::render::Rendered, tempfile::TempDir) {
    let r = render_vm(input).unwrap();
    let dir = tempfile::tempdir().unwrap();
    calops::render::write::write_to(&r, dir.path()).unwrap();
    (r, dir)
}

#[test]
fn free_au_renders_terraform_valid_for_the_provider_and_fmt_clean() {
    for backend in [StateBackend::Oci, StateBackend::Local] {
        for tf in ["1.11.4", "1.12.1"] {
            for (block, mail) in [(0, None), (100, None), (0, Some(SENDER))] {
                let mut input = vm_input();
                input.state.backend = backend;
                input.terraform_version = Some(tf.into());
                input.vm.block_volume_gbs = block;
                input.mail_sender = mail.map(str::to_string);
                let (_, dir) = written(&input);
                let f = findings(dir.path());
                assert!(f.is_empty(), "{backend:?} {tf} block {block}: {f:#?}");
                // The checked files hold Email Delivery's resources (module `email`, counted
                // by var.mail_sender).
                let types: std::collections::BTreeSet<String> =
                    resources(dir.path()).into_iter().map(|r| r.1).collect();
                for t in [
                    "oci_email_email_domain",
                    "oci_email_dkim",
                    "oci_email_sender",
                ] {
                    assert!(types.contains(t), "{t}: {types:?}");
                }
                if let Some((ok, out)) = terraform_fmt_check(
                    "free_au_renders_terraform_valid_for_the_provider_and_fmt_clean",
                    dir.path(),
                ) {
                    assert!(ok, "{backend:?} {tf}: terraform fmt -check failed:\n{out}");
                }
            }
        }
    }
    // The root variables are exactly what terraform.tfvars.json sets, and every variable
    // without a default is set.
    let mut input = vm_input();
    input.mail_sender = Some(SENDER.into());
    let (r, dir) = written(&input);
    let vars = crate::support::schema_check::module_variables(dir.path());
    let tfvars: Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(tfvars["mail_sender"], SENDER);
    for k in tfvars.as_object().unwrap().keys() {
        assert!(
            vars.contains_key(k.as_str()),
            "tfvars sets undeclared `{k}`"
        );
    }
    for (k, has_default) in &vars {
        if !*has_default {
            assert!(
                tfvars.get(k.as_str()).is_some(),
                "required variable `{k}` not set"
            );
        }
    }
}

#[test]
fn the_vm_stack_is_one_private_a1_instance_behind_a_10_mbps_https_load_balancer() {
    let (r, dir) = written(&vm_input());
    let res = resources(dir.path());
    let types: std::collections::BTreeSet<&str> = res.iter().map(|r| r.1.as_str()).collect();
    for managed in [
        "oci_psql_db_system",
        "oci_redis_redis_cluster",
        "oci_container_instances_container_instance",
        "oci_artifacts_container_repository",
    ] {
        assert!(!types.contains(managed), "{managed} in an oci-vm stack");
    }
    for needed in [
        "oci_objectstorage_bucket",
        "oci_load_balancer_load_balancer",
        "oci_monitoring_alarm",
        "oci_identity_dynamic_group",
        "oci_identity_policy",
    ] {
        assert!(types.contains(needed), "no {needed}: {types:?}");
    }
    let instances: Vec<_> = res.iter().filter(|r| r.1 == "oci_core_instance").collect();
    assert_eq!(instances.len(), 1);
    let inst = &instances[0].3;
    assert!(attr(inst, "count").is_none() && attr(inst, "for_each").is_none());
    let vnic = inst
        .blocks()
        .find(|b| b.identifier() == "create_vnic_details")
        .unwrap()
        .body()
        .clone();
    assert_eq!(attr(&vnic, "assign_public_ip").as_deref(), Some("false"));
    let main = hcl::parse(&r.files["main.tf"]).unwrap();
    let vm = module_block(&main, "vm");
    assert_eq!(
        attr(&vm, "subnet_id").unwrap(),
        "module.network.private_subnet_id"
    );
    assert!(attr(&vm, "user_data_base64")
        .unwrap()
        .contains("cloud-init.yaml"));
    assert!(r.files.contains_key("cloud-init.yaml"));
    let lb = module_block(&main, "loadbalancer");
    assert!(attr(&lb, "backends")
        .unwrap()
        .contains("module.vm.private_ip"));
    let access = module_block(&main, "access");
    assert_eq!(attr(&access, "members").unwrap(), "\"instances\"");
    assert_eq!(
        attr(&module_block(&main, "monitoring"), "cpu_metric_namespace").unwrap(),
        "\"oci_computeagent\""
    );
    // The dynamic group of instances and what it may do with the bucket.
    let access_main = &r.files["modules/access/main.tf"];
    assert!(access_main
        .contains("instances  = \"ALL {instance.compartment.id = '${var.compartment_id}'}\""));
    assert!(access_main.contains(
        "to read buckets ${local.where} where target.bucket.name = '${var.bucket_name}'"
    ));
    assert!(access_main.contains(
        "to manage objects ${local.where} where target.bucket.name = '${var.bucket_name}'"
    ));
    let tfvars: Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(tfvars["vm_shape"], "VM.Standard.A1.Flex");
    assert_eq!(
        (tfvars["vm_ocpus"].clone(), tfvars["vm_memory_gbs"].clone()),
        (2.into(), 12.into())
    );
    assert_eq!(tfvars["lb_min_bandwidth_mbps"], 10);
    assert_eq!(tfvars["lb_max_bandwidth_mbps"], 10);
    assert!(
        tfvars["lb_certificate_id"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.certificate."),
        "HTTPS listener"
    );
    assert_eq!(tfvars["vm_image_id"], Value::Null, "the image is looked up");
    assert!(!r
        .warnings
        .iter()
        .any(|w| w == calops::render::PLAIN_HTTP_WARNING));
    // The image lookup: Oracle Linux 9 for the shape (aarch64 on A1), newest first.
    let vm_main = &r.files["modules/vm/main.tf"];
    let body = hcl::parse(vm_main).unwrap();
    let images = body
        .blocks()
        .find(|b| b.identifier() == "data" && b.labels()[0].as_str() == "oci_core_images")
        .unwrap()
        .body()
        .clone();
    assert_eq!(
        attr(&images, "operating_system").unwrap(),
        "\"Oracle Linux\""
    );
    assert_eq!(attr(&images, "operating_system_version").unwrap(), "\"9\"");
    assert_eq!(attr(&images, "shape").unwrap(), "var.shape");
    assert_eq!(attr(&images, "sort_order").unwrap(), "\"DESC\"");
    // The data volume's device is the one cloud-init waits for.
    assert!(
        r.files["modules/vm/variables.tf"].contains(&format!("default     = \"{DATA_DEVICE}\""))
    );
}

/// The VM posts the service's metrics as its instance principal, so its stack renders the
/// runbook's alarms and the backups' archive-lag alarm (calops archives the VM's WAL itself),
/// each query naming a metric the exporter posts; and its dynamic group may post metrics in the
/// service's namespace only and read exactly the profile's Vault secrets.
#[test]
fn the_vm_stack_alarms_on_the_services_metrics_and_grants_what_serve_calls() {
    use calops::runtime::telemetry as t;
    let test = "the_vm_stack_alarms_on_the_services_metrics_and_grants_what_serve_calls";
    let mut input = vm_input();
    let secret = "ocid1.vaultsecret.oc1.ap-sydney-1.amaaaaaapagekey";
    input.secret_ids = vec![secret.to_string()];
    let (r, dir) = written(&input);
    let tfvars: Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(tfvars["metrics_namespace"], t::NAMESPACE);
    assert_eq!(tfvars["service_secret_ids"], serde_json::json!([secret]));
    let alarms = tfvars["service_alarms"].as_object().unwrap();
    let keys: Vec<&str> = alarms.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "backup-archive-lag",
            "booking-failures",
            "calendar-sync",
            "queue-depth",
            "service-5xx",
            "webhook-latency"
        ]
    );
    let posted = crate::render::posted_metric_names();
    for (key, a) in alarms {
        assert_eq!(a["namespace"], t::NAMESPACE, "{key}");
        let q = crate::support::mql::parse(a["query"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            posted.contains(&q.metric),
            "{key}: {} is not posted",
            q.metric
        );
    }
    let lag = crate::support::mql::parse(alarms["backup-archive-lag"]["query"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (lag.metric.as_str(), lag.threshold),
        (t::BACKUP_PENDING_AGE, 900.0)
    );
    // The root module hands them to the modules that render the alarms and the grants.
    let main = hcl::parse(&r.files["main.tf"]).unwrap();
    let access = module_block(&main, "access");
    assert_eq!(
        attr(&access, "secret_ids").unwrap(),
        "var.service_secret_ids"
    );
    assert_eq!(
        attr(&access, "metrics_namespace").unwrap(),
        "var.metrics_namespace"
    );
    assert_eq!(
        attr(&module_block(&main, "monitoring"), "service_alarms").unwrap(),
        "var.service_alarms"
    );
    let access_main = &r.files["modules/access/main.tf"];
    assert!(access_main.contains(
        "to use metrics ${local.where} where target.metrics.namespace = '${var.metrics_namespace}'"
    ));
    assert!(access_main
        .contains("to read secret-bundles ${local.where} where target.secret.id = '${id}'"));
    let f = findings(dir.path());
    assert!(f.is_empty(), "{f:#?}");
    if let Some((ok, out)) = terraform_fmt_check(test, dir.path()) {
        assert!(ok, "{out}");
    }
    // The shipped profile has no Vault secret: the VM may read none.
    let (r, _) = written(&vm_input());
    let tfvars: Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(tfvars["service_secret_ids"], serde_json::json!([]));
}

const SENDER: &str = "bookings@example.com.au";

/// `[service] mail_sender` on the VM: Email Delivery's domain, DKIM key and approved sender
/// are rendered (module `email`, only then), the stack outputs the DKIM record `calops deploy`
/// prints, and the VM's dynamic group (the compartment's instances) may `use approved-senders`
/// for that sender only, beside its other grants: the access module evaluated with the
/// rendered values.
#[test]
fn the_vm_stack_renders_email_delivery_and_lets_the_vm_send_as_its_sender_only() {
    use crate::render::iam::{AccessModule, Statement};
    let from_profile = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(profiles().join("base.toml"), dir.path().join("base.toml")).unwrap();
        std::fs::copy(
            profiles().join("free-au.toml"),
            dir.path().join("free-au.toml"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("mailvm.toml"),
            format!("extends = \"free-au\"\n{extra}"),
        )
        .unwrap();
        let p = calops::profile::load_with("mailvm", &[dir.path().to_path_buf()], vec![])
            .unwrap()
            .profile;
        VmRenderInput::from_profile(&p, Some("1.11.4".into()))
            .unwrap()
            .mail_sender
    };
    // From the profile to the render input.
    assert_eq!(
        from_profile(&format!("\n[service]\nmail_sender = \"{SENDER}\"\n")).as_deref(),
        Some(SENDER)
    );
    assert_eq!(from_profile(""), None);

    let mut input = vm_input();
    input.mail_sender = Some(SENDER.into());
    let (r, dir) = written(&input);
    let tfvars: Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    let main = hcl::parse(&r.files["main.tf"]).unwrap();
    let email = module_block(&main, "email");
    assert_eq!(attr(&email, "source").unwrap(), "\"./modules/email\"");
    assert_eq!(
        attr(&email, "count").unwrap(),
        "var.mail_sender == null ? 0 : 1"
    );
    assert_eq!(attr(&email, "sender").unwrap(), "var.mail_sender");
    assert_eq!(
        attr(&email, "compartment_id").unwrap(),
        "var.compartment_id"
    );
    let outputs = hcl::parse(&r.files["outputs.tf"]).unwrap();
    let dkim = outputs
        .blocks()
        .find(|b| b.identifier() == "output" && b.labels()[0].as_str() == "mail_dkim_cname")
        .expect("output mail_dkim_cname")
        .body()
        .clone();
    assert_eq!(
        attr(&dkim, "value").unwrap(),
        "var.mail_sender == null ? null : module.email[0].dkim_cname"
    );
    assert!(r.files["modules/email/outputs.tf"]
        .contains("name  = oci_email_dkim.this.dns_subdomain_name"));

    // The grants, evaluated: the VM's instances, and one more line for the sender.
    let compartment = input.oci.compartment_id.clone();
    let dg = "ocid1.dynamicgroup.oc1..vminstances";
    let m = AccessModule::evaluate(dir.path(), &tfvars, serde_json::json!({}), dg);
    let group = m.main.blocks().find(|b| {
        b.identifier() == "resource" && b.labels()[0].as_str() == "oci_identity_dynamic_group"
    });
    assert_eq!(
        m.eval_str(group.unwrap().body(), "matching_rule"),
        format!("ALL {{instance.compartment.id = '{compartment}'}}")
    );
    let subject = format!("dynamic-group id {dg}");
    let location = format!("compartment id {compartment}");
    let grant = |verb: &str, resource: &str, condition: String| Statement {
        subject: subject.clone(),
        verb: verb.into(),
        resource: resource.into(),
        location: location.clone(),
        condition: Some(condition),
    };
    let bucket = format!("target.bucket.name = '{}'", input.storage.bucket_name);
    let mut want = vec![
        grant("read", "buckets", bucket.clone()),
        grant("manage", "objects", bucket),
        grant(
            "use",
            "metrics",
            format!(
                "target.metrics.namespace = '{}'",
                calops::runtime::telemetry::NAMESPACE
            ),
        ),
        grant(
            "use",
            "approved-senders",
            format!("target.approved-sender.emailaddress = '{SENDER}'"),
        ),
    ];
    let mut got = m.statements("service");
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Without a sender: no e-mail resources, no grant, a null output.
    let (r, dir) = written(&vm_input());
    let tfvars: Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(tfvars["mail_sender"], Value::Null);
    let m = AccessModule::evaluate(dir.path(), &tfvars, serde_json::json!({}), dg);
    assert!(
        !m.statements("service")
            .iter()
            .any(|s| s.resource == "approved-senders"),
        "{:?}",
        m.statements("service")
    );
}

/// A Terraform state written by the real `terraform apply`, whose `mail_dkim_cname` output is
/// the record `name` CNAME `value` in the shape the stacks' `outputs.tf` give it (the email
/// module's `dkim_cname` object); `None` after saying why when terraform is missing (a failure
/// under CI).
pub(crate) fn state_with_dkim_output(test: &str, name: &str, value: &str) -> Option<Vec<u8>> {
    let tf = calops_testkit::require_tool(test, "terraform")?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        format!("output \"mail_dkim_cname\" {{\n  value = {{ name = \"{name}\", value = \"{value}\" }}\n}}\n"),
    )
    .unwrap();
    for args in [
        &["init", "-input=false", "-no-color"][..],
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    ] {
        let out = std::process::Command::new(&tf)
            .args(args)
            .current_dir(dir.path())
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(std::fs::read(dir.path().join("terraform.tfstate")).unwrap())
}

/// `calops deploy` on an `oci-vm` profile does not apply the stack (the operator does, with the
/// rendered files), so it reads the DKIM record to print from the stack's Terraform state: a
/// state the real terraform wrote gives the record; a state without the output, none.
#[test]
fn the_dkim_record_is_read_from_the_stacks_terraform_state() {
    use calops::deploy::oci::stack::{DnsRecord, StackOutputs};
    let test = "the_dkim_record_is_read_from_the_stacks_terraform_state";
    let Some(state) = state_with_dkim_output(
        test,
        "calops-ap-sydney-1._domainkey.example.com.au",
        "calops-ap-sydney-1.example.com.au.dkim.syd1.oracleemaildelivery.com",
    ) else {
        return;
    };
    assert_eq!(
        StackOutputs::from_state(&state).unwrap().mail_dkim_cname,
        Some(DnsRecord {
            name: "calops-ap-sydney-1._domainkey.example.com.au".into(),
            value: "calops-ap-sydney-1.example.com.au.dkim.syd1.oracleemaildelivery.com".into(),
        })
    );
    let empty = br#"{"version": 4, "serial": 1, "outputs": {}, "resources": []}"#;
    assert_eq!(
        StackOutputs::from_state(empty).unwrap().mail_dkim_cname,
        None
    );
    assert!(StackOutputs::from_state(b"not json").is_err());
}

/// The user data as cloud-init's own YAML library (PyYAML `safe_load`) reads it, when a Python
/// with PyYAML is installed (scripts/setup's venv); `None` after saying why it is skipped.
fn pyyaml(test: &str, text: &str) -> Option<Value> {
    let py = ["/opt/calops-venv/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .args(["-c", "import yaml"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
    let Some(py) = py else {
        calops_testkit::skip_or_fail(test, "no Python with PyYAML (run scripts/setup)");
        return None;
    };
    use std::io::Write;
    let mut child = std::process::Command::new(py)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// `key=value` lines of one `[section]` of a systemd unit.
fn unit_section(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {line}"));
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

#[test]
fn cloud_init_user_data_parses_as_yaml_and_installs_the_distro_packages_and_the_agent_unit() {
    use yaml_rust2::{Yaml, YamlLoader};
    let mut input = vm_input();
    input.vm.block_volume_gbs = 100;
    let (r, _dir) = written(&input);
    let text = &r.files["cloud-init.yaml"];
    assert_eq!(text.lines().next(), Some("#cloud-config"));
    let docs = YamlLoader::load_from_str(text).unwrap();
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    let strs = |y: &Yaml| -> Vec<String> {
        y.as_vec()
            .unwrap_or_else(|| panic!("not a list: {y:?}"))
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap_or_else(|| panic!("not a string: {s:?}"))
                    .to_string()
            })
            .collect()
    };
    let runcmd: Vec<Vec<String>> = doc["runcmd"].as_vec().unwrap().iter().map(strs).collect();
    assert_eq!(
        runcmd[0],
        [cloudinit::DATA_VOLUME_SCRIPT],
        "the data volume first"
    );
    let pos = |argv: &[&str]| {
        runcmd
            .iter()
            .position(|c| c.iter().map(String::as_str).collect::<Vec<_>>() == argv)
            .unwrap_or_else(|| panic!("no {argv:?} in {runcmd:?}"))
    };
    let enable = pos(&["dnf", "-y", "module", "enable", "postgresql:16", "redis:7"]);
    let install = pos(&[
        "dnf",
        "-y",
        "install",
        "postgresql-server",
        "postgresql-contrib",
        "redis",
    ]);
    let port = pos(&["firewall-offline-cmd", "--add-port=3000/tcp"]);
    let start = pos(&["systemctl", "enable", "--now", "calops-agent.service"]);
    let cli = pos(&["dnf", "-y", "install", "python39-oci-cli"]);
    let bootstrap = pos(&[
        "systemctl",
        "enable",
        "--now",
        "calops-agent-bootstrap.service",
    ]);
    assert!(
        enable < install && install < start && port < start && cli < bootstrap && start < bootstrap,
        "{runcmd:?}"
    );
    let files = doc["write_files"].as_vec().unwrap();
    let file = |path: &str| {
        files
            .iter()
            .find(|f| f["path"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("no {path}"))
    };
    let unit = file(cloudinit::AGENT_UNIT)["content"].as_str().unwrap();
    let service = unit_section(unit, "Service");
    assert!(service.contains(&(
        "ExecStart".into(),
        format!("{} agent", cloudinit::AGENT_BINARY)
    )));
    assert!(service.contains(&("User".into(), "calops".into())));
    assert!(service.contains(&("EnvironmentFile".into(), cloudinit::AGENT_ENV.into())));
    assert!(unit_section(unit, "Unit")
        .contains(&("ConditionPathExists".into(), cloudinit::AGENT_BINARY.into())));
    assert_eq!(
        unit_section(unit, "Install"),
        [("WantedBy".to_string(), "multi-user.target".to_string())]
    );
    let env = file(cloudinit::AGENT_ENV)["content"].as_str().unwrap();
    assert!(
        env.contains("CALOPS_BUCKET=calops-free-au\n")
            && env.contains("CALOPS_PROFILE=free-au\n")
            && env.contains("CALOPS_LOCAL_BIND=0.0.0.0\n")
            && env.contains("CALOPS_LOCAL_PORT=3000\n"),
        "{env}"
    );
    assert!(env.contains(&format!(
        "CALOPS_AGENT_BINARY={}\n",
        cloudinit::AGENT_BINARY
    )));
    // The bootstrap: root, retried until the first release is in the bucket, skipped once the
    // agent's binary is there; it checks the digest before installing.
    let boot = file(cloudinit::BOOTSTRAP_SCRIPT);
    assert_eq!(boot["permissions"].as_str(), Some("0755"));
    let boot = boot["content"].as_str().unwrap();
    assert!(
        boot.contains("OCI_CLI_AUTH=instance_principal")
            && boot.contains("calops-deploy/desired.json")
            && boot.contains("sha256sum -c -"),
        "{boot}"
    );
    let checked = std::process::Command::new("sh")
        .args(["-n", "-c", boot])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "the shell does not parse the bootstrap: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let boot_unit = file(cloudinit::BOOTSTRAP_UNIT)["content"].as_str().unwrap();
    let boot_service = unit_section(boot_unit, "Service");
    assert!(boot_service.contains(&("ExecStart".into(), cloudinit::BOOTSTRAP_SCRIPT.into())));
    assert!(boot_service.contains(&("Restart".into(), "on-failure".into())));
    assert!(unit_section(boot_unit, "Unit").contains(&(
        "ConditionPathExists".into(),
        format!("!{}", cloudinit::AGENT_BINARY)
    )));
    let script = file(cloudinit::DATA_VOLUME_SCRIPT);
    assert_eq!(script["permissions"].as_str(), Some("0755"));
    assert!(script["content"]
        .as_str()
        .unwrap()
        .contains(&format!("dev={DATA_DEVICE}\n")));
    let users = doc["users"].as_vec().unwrap();
    assert_eq!(users[0].as_str(), Some("default"));
    assert_eq!(users[1]["name"].as_str(), Some("calops"));
    assert_eq!(users[1]["system"].as_bool(), Some(true));
    // cloud-init's own parser reads the same document.
    if let Some(v) = pyyaml(
        "cloud_init_user_data_parses_as_yaml_and_installs_the_distro_packages_and_the_agent_unit",
        text,
    ) {
        assert_eq!(v["runcmd"][0][0], cloudinit::DATA_VOLUME_SCRIPT);
        assert_eq!(v["write_files"][1]["content"].as_str(), Some(unit));
    }
    // Without a block volume, no data volume script.
    let (r, _d) = written(&vm_input());
    assert!(!r.files["cloud-init.yaml"].contains(cloudinit::DATA_VOLUME_SCRIPT));
}

#[test]
fn the_vm_root_module_carries_the_iac_modules_byte_for_byte() {
    let (r, _d) = written(&vm_input());
    let mut modules = std::collections::BTreeSet::new();
    for (path, text) in &r.files {
        if let Some(rest) = path.strip_prefix("modules/") {
            let src = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("iac/modules")
                    .join(rest),
            )
            .unwrap();
            assert_eq!(&src, text, "{path}");
            modules.insert(rest.split('/').next().unwrap().to_string());
        }
    }
    let want = [
        "access",
        "email",
        "loadbalancer",
        "monitoring",
        "network",
        "storage",
        "vm",
    ];
    assert_eq!(modules.into_iter().collect::<Vec<_>>(), want);
}

#[test]
fn render_refuses_what_the_vm_cannot_install() {
    let mut input = vm_input();
    input.vm.postgres_version = "14".into();
    let e = render_vm(&input).unwrap_err().to_string();
    assert!(e.contains("postgres_version") && e.contains("16"), "{e}");
    // And `calops render --profile free-au` writes the stack (no slots to give it).
    let (code, out, err, dir) = calops(&["render", "--profile", "free-au", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["files"].to_string().contains("cloud-init.yaml"));
    assert!(dir
        .path()
        .join(".calops/free-au/terraform/modules/vm/main.tf")
        .exists());
    let (code, _, err, _d) = calops(
        &["render", "--profile", "free-au", "--image", "x@sha256:00"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no deployment slots"), "{err}");
}
