//! The module structure of the scheduling service, checked on the source (parsed with `syn`):
//!
//! - no import cycles between sibling modules anywhere under `service` (a reference from
//!   anywhere inside `a` to anywhere inside its sibling `b` is an edge `a -> b`);
//! - `service::domain` refers to nothing of the crate outside itself (pure logic);
//! - `service` refers only to itself and to the neutral modules below it (`pg`, `net`,
//!   `fsutil`, `runtime` (the container contract it reads), and `oci` for the OCI runtime), and
//!   those (but `oci`, whose region table still comes from `profile`) refer to nothing else of
//!   the crate: the service uses no CLI module and could become its own crate.
//!
//! A reference is any path starting with `crate`, `super` or `self`: in `use` items, in
//! expressions and types, and inside macro invocations. Test modules count too.
//! Every rule is also run on sources that break it, so a checker that finds nothing fails.

use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use syn::visit::Visit;

type ModPath = Vec<String>;

/// One reference from code in module `from` to the item or module at `to` (absolute).
#[derive(Debug, Clone)]
struct Ref {
    from: ModPath,
    to: ModPath,
    at: String,
}

#[derive(Default, Clone)]
struct Crate {
    modules: BTreeSet<ModPath>,
    refs: Vec<Ref>,
}

/// `service/api/mod.rs` -> `service::api`; `lib.rs` -> the crate root.
fn module_of(rel: &str) -> ModPath {
    let rel = rel.strip_suffix(".rs").expect("a .rs file");
    let mut segs: ModPath = rel.split('/').map(str::to_string).collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs
}

fn join(p: &[String]) -> String {
    if p.is_empty() {
        "crate".into()
    } else {
        p.join("::")
    }
}

impl Crate {
    /// Every module of the library under `src` (the binary's `main.rs` is not part of it).
    fn load(src: &Path) -> Crate {
        let mut c = Crate::default();
        for p in rust_files(src) {
            let rel = p.strip_prefix(src).unwrap().to_str().unwrap().to_string();
            if rel != "main.rs" {
                c.add(&rel, &std::fs::read_to_string(&p).unwrap());
            }
        }
        assert!(
            c.modules.contains(&module_of("service/mod.rs")),
            "src/service not found under {}",
            src.display()
        );
        c
    }

    fn from_sources(files: &[(&str, &str)]) -> Crate {
        let mut c = Crate::default();
        for (rel, text) in files {
            c.add(rel, text);
        }
        c
    }

    /// Parse `text` as the file `rel` (relative to `src/`) and record its modules and references.
    fn add(&mut self, rel: &str, text: &str) {
        let file = syn::parse_file(text).unwrap_or_else(|e| panic!("src/{rel}: {e}"));
        let module = module_of(rel);
        self.modules.insert(module.clone());
        let mut v = Collector {
            file: format!("src/{rel}"),
            module,
            krate: self,
        };
        v.visit_file(&file);
    }

    /// The module a resolved path points into: its longest prefix that is a module.
    fn module_containing(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| self.modules.contains(p))
            .unwrap_or_default()
    }

    /// References from inside `from` to anything outside `allowed` (and outside `from`).
    fn outside(&self, from: &[&str], allowed: &[&[&str]]) -> Vec<String> {
        let under = |p: &[String], prefix: &[&str]| {
            p.len() >= prefix.len() && p.iter().zip(prefix).all(|(a, b)| a == b)
        };
        self.refs
            .iter()
            .filter(|r| under(&r.from, from) && !r.to.is_empty())
            .filter(|r| {
                let target = self.module_containing(&r.to);
                !under(&target, from) && !allowed.iter().any(|a| under(&target, a))
            })
            .map(|r| format!("{}: `{}` uses `{}`", r.at, join(&r.from), join(&r.to)))
            .collect()
    }

    /// Cycles between sibling modules anywhere under `root`, one line per cycle with the
    /// references that make it.
    fn sibling_cycles(&self, root: &[&str]) -> Vec<String> {
        // level (the parent) -> child -> child it refers to -> one sample reference
        let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, &Ref>>> =
            BTreeMap::new();
        for r in &self.refs {
            let to = self.module_containing(&r.to);
            let common = r.from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            let level = &r.from[..common];
            let in_root = level.len() >= root.len() && level.iter().zip(root).all(|(a, b)| a == b);
            if in_root && common < r.from.len() && common < to.len() {
                levels
                    .entry(level.to_vec())
                    .or_default()
                    .entry(r.from[common].clone())
                    .or_default()
                    .entry(to[common].clone())
                    .or_insert(r);
            }
        }
        let mut found = Vec::new();
        for (level, edges) in &levels {
            let reaches = |a: &str, b: &str| {
                let mut seen = BTreeSet::new();
                let mut todo = vec![a.to_string()];
                while let Some(n) = todo.pop() {
                    for m in edges.get(&n).into_iter().flat_map(|e| e.keys()) {
                        if m == b {
                            return true;
                        }
                        if seen.insert(m.clone()) {
                            todo.push(m.clone());
                        }
                    }
                }
                false
            };
            // Strongly connected groups of children, each reported once.
            let mut reported: BTreeSet<String> = BTreeSet::new();
            for a in edges.keys() {
                if reported.contains(a) || !reaches(a, a) {
                    continue;
                }
                let group: BTreeSet<String> = edges
                    .keys()
                    .filter(|b| *b == a || (reaches(a, b) && reaches(b, a)))
                    .cloned()
                    .collect();
                let mut why = Vec::new();
                for x in &group {
                    for (y, r) in &edges[x] {
                        if group.contains(y) {
                            why.push(format!("{x} -> {y} ({}: `{}`)", r.at, join(&r.to)));
                        }
                    }
                }
                found.push(format!(
                    "cycle in `{}` between {}: {}",
                    join(level),
                    group.iter().cloned().collect::<Vec<_>>().join(", "),
                    why.join("; ")
                ));
                reported.extend(group);
            }
        }
        found
    }

    /// Every rule of this file; empty when the structure holds.
    fn violations(&self) -> Vec<String> {
        let mut v = self.sibling_cycles(&["service"]);
        v.extend(
            self.outside(&["service", "domain"], &[])
                .into_iter()
                .map(|m| format!("domain is not pure: {m}")),
        );
        let neutral: &[&[&str]] = &[&["pg"], &["net"], &["fsutil"], &["runtime"]];
        let mut for_service = neutral.to_vec();
        for_service.push(&["oci"]);
        v.extend(
            self.outside(&["service"], &for_service)
                .into_iter()
                .map(|m| format!("the service uses a CLI module: {m}")),
        );
        for n in neutral {
            v.extend(
                self.outside(n, neutral)
                    .into_iter()
                    .map(|m| format!("a neutral module uses a CLI module: {m}")),
            );
        }
        v
    }
}

struct Collector<'a> {
    file: String,
    module: ModPath,
    krate: &'a mut Crate,
}

impl Collector<'_> {
    fn at(&self, span: proc_macro2::Span) -> String {
        format!("{}:{}", self.file, span.start().line)
    }

    /// Record a path that starts with `crate`, `super` or `self` (others name external crates,
    /// or names imported by a `use` that was recorded itself).
    fn reference(&mut self, segs: &[String], span: proc_macro2::Span) {
        let to = match segs.first().map(String::as_str) {
            Some("crate") => segs[1..].to_vec(),
            Some("self") => [self.module.clone(), segs[1..].to_vec()].concat(),
            Some("super") => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                let Some(keep) = self.module.len().checked_sub(ups) else {
                    panic!("{}: `super` above the crate root", self.at(span));
                };
                [self.module[..keep].to_vec(), segs[ups..].to_vec()].concat()
            }
            _ => return,
        };
        let at = self.at(span);
        self.krate.refs.push(Ref {
            from: self.module.clone(),
            to,
            at,
        });
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut segs = prefix.clone();
                if n.ident != "self" {
                    segs.push(n.ident.to_string());
                }
                self.reference(&segs, n.ident.span());
            }
            syn::UseTree::Rename(n) => {
                let mut segs = prefix.clone();
                if n.ident != "self" {
                    segs.push(n.ident.to_string());
                }
                self.reference(&segs, n.ident.span());
            }
            syn::UseTree::Glob(g) => {
                let segs = prefix.clone();
                self.reference(&segs, g.star_token.spans[0]);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths inside macro invocations (`format!`, `json!`, `tokio::select!`, ...).
    fn tokens(&mut self, ts: TokenStream) {
        let toks: Vec<TokenTree> = ts.into_iter().collect();
        let is_colons = |i: usize| {
            matches!((toks.get(i), toks.get(i + 1)),
                (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                    if a.as_char() == ':' && b.as_char() == ':')
        };
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(id)
                    if matches!(id.to_string().as_str(), "crate" | "super" | "self")
                        && !(i >= 2 && is_colons(i - 2)) =>
                {
                    let mut segs = vec![id.to_string()];
                    let mut j = i + 1;
                    while is_colons(j) {
                        match toks.get(j + 2) {
                            Some(TokenTree::Ident(next)) => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() > 1 {
                        self.reference(&segs, id.span());
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        self.krate.modules.insert(self.module.clone());
        syn::visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.reference(&segs, first.ident.span());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }
}

/// The library's modules, parsed once per test process.
fn real_crate() -> Crate {
    static CELL: std::sync::OnceLock<Crate> = std::sync::OnceLock::new();
    CELL.get_or_init(|| Crate::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")))
        .clone()
}

#[test]
fn service_modules_have_no_cycles_domain_is_pure_and_no_cli_module_is_used() {
    let v = real_crate().violations();
    assert!(v.is_empty(), "{} violations:\n{}", v.len(), v.join("\n"));
}

#[test]
fn the_checker_sees_every_kind_of_reference() {
    let c = Crate::from_sources(&[
        ("lib.rs", "pub mod service; pub mod deploy;"),
        ("deploy/mod.rs", "pub fn f() {}"),
        (
            "service/mod.rs",
            "pub mod a; pub mod b; pub mod c; pub mod d;",
        ),
        (
            "service/a.rs",
            "use crate::service::{b::{self, X}, c as cc};",
        ),
        ("service/b.rs", "fn f() -> super::c::T { todo!() }"),
        (
            "service/c.rs",
            "fn f() { tracing::info!(x = %crate::service::d::g()); }",
        ),
        ("service/d.rs", "mod inner { use super::super::a::*; }"),
    ]);
    let cycles = c.sibling_cycles(&["service"]);
    assert_eq!(cycles.len(), 1, "{cycles:#?}");
    for edge in ["a -> b", "b -> c", "c -> d", "d -> a"] {
        assert!(cycles[0].contains(edge), "{edge} missing: {cycles:#?}");
    }
    assert!(cycles[0].contains("src/service/c.rs:1"), "{cycles:#?}");
}

#[test]
fn a_cycle_api_health_added_to_the_real_service_is_found() {
    let mut c = real_crate();
    c.add(
        "service/health.rs",
        "fn f() { let _ = crate::service::api::router; }",
    );
    c.add(
        "service/api/mod.rs",
        "fn g() { let _ = crate::service::health::handler; }",
    );
    let v = c.violations();
    assert!(
        v.iter()
            .any(|m| m.contains("cycle in `service`") && m.contains("api -> health")),
        "{v:#?}"
    );
}

#[test]
fn domain_importing_api_or_store_is_found() {
    for bad in [
        "use crate::service::api::router;",
        "use super::store::Store;",
        "fn f() { crate::pg::random_token(3); }",
    ] {
        let mut c = real_crate();
        c.add("service/domain/mod.rs", bad);
        let v = c.violations();
        assert!(
            v.iter().any(|m| m.starts_with("domain is not pure")),
            "{bad}: {v:#?}"
        );
    }
}

#[test]
fn the_service_using_a_cli_module_is_found() {
    let mut c = real_crate();
    c.add(
        "service/objstore/mod.rs",
        "fn f() { let _ = crate::deploy::store::write_atomic; }",
    );
    let v = c.violations();
    assert!(
        v.iter()
            .any(|m| m.contains("the service uses a CLI module") && m.contains("deploy::store")),
        "{v:#?}"
    );
    let mut c = real_crate();
    c.add("net/mod.rs", "use crate::ui::Ui;");
    assert!(
        c.violations()
            .iter()
            .any(|m| m.starts_with("a neutral module uses a CLI module")),
        "a neutral module may not lean on the CLI either"
    );
}

/// The names `src/service/store/mod.rs` defines: its items and the methods of its impls.
fn store_root_items(text: &str) -> BTreeSet<String> {
    let file = syn::parse_file(text).unwrap();
    let mut names = BTreeSet::new();
    for item in &file.items {
        match item {
            syn::Item::Struct(i) => names.insert(i.ident.to_string()),
            syn::Item::Enum(i) => names.insert(i.ident.to_string()),
            syn::Item::Type(i) => names.insert(i.ident.to_string()),
            syn::Item::Const(i) => names.insert(i.ident.to_string()),
            syn::Item::Fn(i) => names.insert(i.sig.ident.to_string()),
            syn::Item::Impl(i) => {
                for it in &i.items {
                    if let syn::ImplItem::Fn(f) = it {
                        names.insert(f.sig.ident.to_string());
                    }
                }
                false
            }
            _ => false,
        };
    }
    names
}

/// What `store/mod.rs` may define: the pool, its status, errors, and the helpers every
/// resource file uses. Queries and row types live in one file per resource.
const STORE_ROOT: &[&str] = &[
    "StoreError",
    "Result",
    "Store",
    "PoolStatus",
    "from",
    "classify",
    "db_message",
    "new",
    "connect",
    "connector",
    "pool_status",
    "conn",
    "org_rows",
    "org_row",
    "migrate",
    "ping",
];

#[test]
fn store_mod_keeps_only_the_pool_and_store_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/service/store/mod.rs");
    let names = store_root_items(&std::fs::read_to_string(path).unwrap());
    let extra: Vec<&String> = names
        .iter()
        .filter(|n| !STORE_ROOT.contains(&n.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "src/service/store/mod.rs defines {extra:?}: put them in the resource's file (orgs.rs, users.rs, ...)"
    );
    let added = "impl Store { pub async fn create_org(&self) {} } pub struct Org;";
    let names = store_root_items(added);
    assert!(names.contains("create_org") && names.contains("Org"));
}

/// Definitions that belong to the test support (`crates/calops-testkit`), not the library.
const HARNESS: &[&str] = &[
    "mod testkit",
    "mod testing",
    "struct TestApp",
    "struct TestRedis",
    "fn fresh_database",
    "fn remove_when_process_exits",
    "fn skip_or_fail",
    "fn require_tool",
];

#[test]
fn test_support_is_not_in_the_shipped_library() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for p in rust_files(&src) {
        let text = std::fs::read_to_string(&p).unwrap();
        for h in HARNESS {
            if [" ", ";", "("]
                .iter()
                .any(|end| text.contains(&format!("{h}{end}")))
            {
                found.push(format!(
                    "{}: `{h}`",
                    p.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "test support belongs in crates/calops-testkit (a dev-dependency), not src/: {found:#?}"
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn integration_tests_are_one_binary_with_one_copy_of_each_helper() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    // A file directly in tests/ is a test binary of its own: add a module to tests/it instead.
    let binaries: Vec<_> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .collect();
    assert!(
        binaries.is_empty(),
        "integration tests are modules of tests/it/main.rs, not binaries of their own: {binaries:?}"
    );
    // The shared helpers live once: have_pg in calops_testkit, the client in support/api.rs,
    // the local site and the OCI stand-ins' signature check in support/.
    let mut copies = Vec::new();
    for f in rust_files(&tests.join("it")) {
        let rel = f.strip_prefix(&tests).unwrap().display().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        // (Spelt in two parts so that this file does not match itself.)
        for (def, home) in [
            (format!("fn {}(", "have_pg"), ""),
            (format!("struct {} {{", "Client"), "it/support/api.rs"),
            (format!("struct {} {{", "Site"), "it/support/site.rs"),
            (
                format!("struct {} {{", "Signatures"),
                "it/support/ocistand.rs",
            ),
        ] {
            if text.contains(&def) && rel != home {
                copies.push(format!("{rel}: `{def}`"));
            }
        }
    }
    assert!(
        copies.is_empty(),
        "use the shared helper instead: {copies:#?}"
    );
}

/// References from outside `commands` into it: library code calling up into a subcommand.
fn calls_into_commands(c: &Crate) -> Vec<String> {
    c.refs
        .iter()
        .filter(|r| r.from.first().map(String::as_str) != Some("commands"))
        .filter(|r| c.module_containing(&r.to).first().map(String::as_str) == Some("commands"))
        .map(|r| format!("{}: `{}` uses `{}`", r.at, join(&r.from), join(&r.to)))
        .collect()
}

#[test]
fn nothing_calls_up_into_commands_and_commands_do_not_branch_on_the_target() {
    let c = real_crate();
    let up = calls_into_commands(&c);
    assert!(
        up.is_empty(),
        "move what these use out of commands/: {up:#?}"
    );
    let mut broken = c.clone();
    broken.add(
        "deploy/oci/setup.rs",
        "fn f() { crate::commands::image::source_date_epoch(); }",
    );
    assert_eq!(calls_into_commands(&broken).len(), 1);

    // The release and backup commands choose the target once, in deploy::deployment and
    // deploy::backups; a command that matches on it again grows a second copy of the wiring.
    let mut branches: Vec<String> = Vec::new();
    for name in ["deploy.rs", "backup.rs"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/commands")
            .join(name);
        let text = std::fs::read_to_string(&file).unwrap();
        branches.extend(
            text.lines()
                .enumerate()
                .filter(|(_, line)| {
                    ["Target::Oci", "Target::Local", ".target =="]
                        .iter()
                        .any(|t| line.contains(t))
                })
                .map(|(n, line)| format!("src/commands/{name}:{}: {}", n + 1, line.trim())),
        );
    }
    assert!(
        branches.is_empty(),
        "open the profile's deployment with deploy::deployment (deploy::backups) instead: {branches:#?}"
    );
}

/// What `backup` uses besides itself: the neutral modules, `oci` (Object Storage) and `error`.
/// It knows clusters, stores and configuration files, not profiles or targets: `deploy` uses
/// it (the local target's archiving, the backup commands), never the other way round.
fn backup_outside(c: &Crate) -> Vec<String> {
    c.outside(
        &["backup"],
        &[&["pg"], &["net"], &["fsutil"], &["oci"], &["error"]],
    )
}

#[test]
fn backup_uses_no_deploy_profile_or_cli_module_and_has_no_cycle() {
    let c = real_crate();
    let v = backup_outside(&c);
    assert!(
        v.is_empty(),
        "pass paths and values into backup instead: {v:#?}"
    );
    let cycles: Vec<String> = c
        .sibling_cycles(&[])
        .into_iter()
        .filter(|m| m.contains("backup"))
        .collect();
    assert!(cycles.is_empty(), "{cycles:#?}");
    let mut broken = c.clone();
    broken.add(
        "backup/local.rs",
        "fn f(l: &crate::deploy::local::layout::Layout) {}",
    );
    assert_eq!(backup_outside(&broken).len(), 1);
    assert!(
        broken
            .sibling_cycles(&[])
            .iter()
            .any(|m| m.contains("backup -> deploy") && m.contains("deploy -> backup")),
        "{:#?}",
        broken.sibling_cycles(&[])
    );
}
