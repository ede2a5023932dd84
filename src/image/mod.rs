//! Build and push the multi-arch service image without a Docker daemon.
//!
//! - [`toolchain`]: cross-build detection and cargo invocations (one per platform);
//! - [`layer`], [`spec`]: reproducible layers and the OCI config/manifest/index documents;
//! - [`registry`], [`auth`]: the OCI distribution API client (bearer challenge, Basic, docker
//!   config credentials); [`ocir`]: OCIR tokens from an OCI API key; [`reference`]: image
//!   references;
//! - [`pipeline`]: base image → binaries → per-platform images → index → push / OCI layout;
//! - [`buildx`]: the `docker buildx` path for those who prefer Docker.

pub mod auth;
pub mod buildx;
pub mod debian_base;
pub mod layer;
pub mod layout;
pub mod ocir;
pub mod pipeline;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod spec;
pub mod toolchain;

pub use pipeline::{
    build_image, build_image_async, BinarySource, Builder, ImageBuildOptions, ImageRef,
};
pub use platform::Platform;

/// The default base image (distroless glibc runtime, user `nonroot`). Pin it by digest in the
/// profile (`...:nonroot@sha256:...`) for reproducible images.
pub const DEFAULT_BASE: &str = "gcr.io/distroless/cc-debian12:nonroot";

/// Where the binary goes inside the image.
pub const BINARY_PATH: &str = "/usr/local/bin/calops";

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org): seconds since the epoch, or unset.
pub fn source_date_epoch() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<i64>().map(Some).map_err(|_| {
            crate::error::actionable(
                format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"),
                "set it to e.g. $(git log -1 --format=%ct), or unset it",
            )
        }),
        _ => Ok(None),
    }
}
