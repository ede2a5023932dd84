//! Templates and the plain modules, embedded in the binary at build time.

/// Root-module templates: (output file name, template text).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "versions.tf",
        include_str!("../../templates/versions.tf.hbs"),
    ),
    (
        "providers.tf",
        include_str!("../../templates/providers.tf.hbs"),
    ),
    ("lookups.tf", include_str!("../../templates/lookups.tf.hbs")),
    (
        "variables.tf",
        include_str!("../../templates/variables.tf.hbs"),
    ),
    ("main.tf", include_str!("../../templates/main.tf.hbs")),
    ("outputs.tf", include_str!("../../templates/outputs.tf.hbs")),
];

/// The `oci-vm` root module's own templates; it shares `versions.tf`, `providers.tf` and
/// `lookups.tf` with [`TEMPLATES`].
pub const VM_TEMPLATES: &[(&str, &str)] = &[
    ("vm/main.tf", include_str!("../../templates/vm/main.tf.hbs")),
    (
        "vm/variables.tf",
        include_str!("../../templates/vm/variables.tf.hbs"),
    ),
    (
        "vm/outputs.tf",
        include_str!("../../templates/vm/outputs.tf.hbs"),
    ),
];

/// The templates shared by both root modules.
pub const SHARED_TEMPLATES: &[&str] = &["versions.tf", "providers.tf", "lookups.tf"];

macro_rules! module_files {
    ($($m:literal),* $(,)?) => {
        &[$(
            (concat!("modules/", $m, "/versions.tf"), include_str!(concat!("../../iac/modules/", $m, "/versions.tf"))),
            (concat!("modules/", $m, "/variables.tf"), include_str!(concat!("../../iac/modules/", $m, "/variables.tf"))),
            (concat!("modules/", $m, "/main.tf"), include_str!(concat!("../../iac/modules/", $m, "/main.tf"))),
            (concat!("modules/", $m, "/outputs.tf"), include_str!(concat!("../../iac/modules/", $m, "/outputs.tf"))),
            (concat!("modules/", $m, "/README.md"), include_str!(concat!("../../iac/modules/", $m, "/README.md"))),
        )*]
    };
}

/// The plain modules from `iac/modules`, copied into every rendered root module so that the
/// work directory is self-contained: (path relative to the root module, text).
pub const MODULE_FILES: &[(&str, &str)] = module_files!(
    "network",
    "database",
    "cache",
    "storage",
    "registry",
    "container",
    "loadbalancer",
    "monitoring",
    "access",
    "email",
    "slots",
);

/// The modules of an `oci-vm` root module (no database, cache, registry, containers, slots).
pub const VM_MODULE_FILES: &[(&str, &str)] = module_files!(
    "network",
    "storage",
    "vm",
    "loadbalancer",
    "monitoring",
    "access",
    "email",
);
