//! What xtask reads from `cargo metadata --format-version 1`: the target directory, the
//! manifest fields package.json copies, and the version a dependency resolved to.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;

use crate::{output, Result};

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub target_directory: PathBuf,
    /// Every package of the resolved graph (all platforms), workspace members included.
    pub packages: Vec<Package>,
}

/// One package's manifest, with `*.workspace = true` fields already resolved by cargo.
#[derive(Debug, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub license: Option<String>,
}

impl Metadata {
    /// Runs `cargo metadata` (which writes Cargo.lock if it is missing) and parses it.
    pub fn load(cmd: &mut Command) -> Result<Metadata> {
        let text = output(cmd.args(["metadata", "--format-version", "1"]))?;
        Metadata::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Metadata> {
        serde_json::from_str(text).map_err(|e| format!("cannot read `cargo metadata` output: {e}"))
    }

    pub fn package(&self, name: &str) -> Result<&Package> {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("`cargo metadata` does not list the {name} package"))
    }

    /// The one version of `name` in the resolved graph (Cargo.lock); several is an error,
    /// because a tool that must match it (wasm-bindgen-cli) can match only one.
    pub fn resolved_version(&self, name: &str) -> Result<&str> {
        let versions: Vec<&str> = self
            .packages
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.version.as_str())
            .collect();
        match versions.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("the dependency graph has no `{name}` package")),
            many => Err(format!(
                "the dependency graph has several {name} versions ({}); the CLI must match exactly one",
                many.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from real output: extra fields must be ignored, `null` fields are `None`.
    const METADATA: &str = r#"{
      "packages": [
        {"name": "wasm-bindgen", "version": "0.2.130", "id": "registry+x#wasm-bindgen@0.2.130",
         "license": "MIT OR Apache-2.0", "description": "Easy support for interacting", "targets": []},
        {"name": "wasm-bindgen-futures", "version": "0.4.80", "description": null, "license": null},
        {"name": "pos-terminal", "version": "0.1.0", "id": "path+file:///w#pos-terminal@0.1.0",
         "description": "Offline card payments", "license": "MIT OR Apache-2.0"},
        {"name": "syn", "version": "1.0.109", "description": null, "license": null},
        {"name": "syn", "version": "2.0.100", "description": null, "license": null}
      ],
      "workspace_members": ["path+file:///w#pos-terminal@0.1.0"],
      "resolve": {"nodes": [], "root": null},
      "target_directory": "/w/target",
      "version": 1,
      "workspace_root": "/w"
    }"#;

    #[test]
    fn resolved_version_matches_the_exact_name_only() {
        let m = Metadata::parse(METADATA).unwrap();
        assert_eq!(m.resolved_version("wasm-bindgen").unwrap(), "0.2.130");
        assert_eq!(
            m.resolved_version("wasm-bindgen-futures").unwrap(),
            "0.4.80"
        );
        assert!(m.resolved_version("wasm").is_err());
        let several = m.resolved_version("syn").unwrap_err();
        assert!(several.contains("1.0.109, 2.0.100"), "{several}");
    }

    #[test]
    fn reads_target_dir_and_manifest_fields() {
        let m = Metadata::parse(METADATA).unwrap();
        assert_eq!(m.target_directory, PathBuf::from("/w/target"));
        let p = m.package("pos-terminal").unwrap();
        assert_eq!(p.version, "0.1.0");
        assert_eq!(p.description.as_deref(), Some("Offline card payments"));
        assert_eq!(p.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert!(m.package("pos").is_err());
        assert!(Metadata::parse("{\"packages\": []}").is_err());
    }
}
