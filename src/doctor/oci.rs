//! OCI configuration checks for `oci` profiles.

use super::Check;
use crate::profile::Profile;

pub fn checks(_p: &Profile) -> Vec<Check> {
    Vec::new()
}
