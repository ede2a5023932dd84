fn main() {
    // Expose the compilation target so `calops --version` says which platform a binary is for.
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=CALOPS_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
