//! Typed profiles: a TOML file per environment, found by name, merged along `extends`,
//! overridden by `CALOPS_<SECTION>_<KEY>` environment variables, then typed and validated with
//! every problem reported at once (file, line, column, field path, what is allowed).
//!
//! ```no_run
//! let loaded = calops::profile::load("prod-au")?;
//! println!("{}", loaded.profile.network.vcn_cidr);
//! # Ok::<(), calops::profile::ProfileError>(())
//! ```

pub mod load;
pub mod model;
pub mod node;
pub mod reader;
pub mod types;

pub use load::{available, env_overrides, find, load, load_with, search_dirs, EnvOverride, Loaded};
pub use model::*;
pub use reader::{Diagnostic, ProfileError};

use sha2::{Digest, Sha256};

impl Profile {
    /// A stable hash of the resolved values (not of the file text): equal profiles, equal hash.
    pub fn hash(&self) -> String {
        // File locations do not change what is deployed, so they are left out.
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("files");
        }
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    }
}
