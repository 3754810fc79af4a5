//! `cargo xtask build`: the npm package in `pkg/` and the pos-sim binary.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use crate::metadata::Package;
use crate::setup::Tools;
use crate::{note, run, step, Ctx, Result};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const OUT_NAME: &str = "pos_terminal";

/// What rustc's wasm32 target emits by default; wasm-opt refuses a module that uses a
/// feature it was not told about.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

pub fn build(ctx: &Ctx, tools: &Tools) -> Result {
    step("cargo build --release --lib --target wasm32-unknown-unknown -p pos-terminal");
    run(ctx.cargo().args([
        "build",
        "--release",
        "--lib",
        "--target",
        WASM_TARGET,
        "-p",
        "pos-terminal",
    ]))?;

    let wasm = ctx
        .target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{OUT_NAME}.wasm"));
    let pkg = &ctx.pkg;
    step("wasm-bindgen --target web --out-dir pkg");
    // Start clean so files from an older build (e.g. snippets/) cannot linger.
    if pkg.exists() {
        std::fs::remove_dir_all(pkg).map_err(|e| format!("cannot clear {}: {e}", pkg.display()))?;
    }
    // Function names (stack traces) are about a third of the file; producers is metadata.
    run(Command::new(&tools.wasm_bindgen)
        .args(["--target", "web", "--out-dir"])
        .arg(pkg)
        .args(["--out-name", OUT_NAME])
        .args(["--remove-name-section", "--remove-producers-section"])
        .arg(&wasm)
        .current_dir(&ctx.root))?;

    optimize(&tools.wasm_opt, &pkg.join(format!("{OUT_NAME}_bg.wasm")))?;

    step("pkg/package.json");
    let manifest = package_json(
        ctx.metadata.package("pos-terminal")?,
        pkg.join("snippets").is_dir(),
    );
    write(&pkg.join("package.json"), manifest.as_bytes())?;
    let readme = ctx.root.join("README.md");
    if readme.is_file() {
        std::fs::copy(&readme, pkg.join("README.md"))
            .map_err(|e| format!("cannot copy README.md into pkg/: {e}"))?;
        note("README.md copied");
    }

    step("cargo build -p pos-sim");
    run(ctx.cargo().args(["build", "-p", "pos-sim"]))
}

/// `wasm-opt -Oz` on the shipped module, kept only if it is smaller *gzipped* (what a
/// browser downloads). Plain -Oz shrinks raw bytes but grows the gzipped file (192 -> 195 KB):
/// inlining functions that have one caller is what hurts, so that alone is turned off.
fn optimize(wasm_opt: &Path, shipped: &Path) -> Result {
    step("wasm-opt -Oz --one-caller-inline-max-function-size 0 pkg/pos_terminal_bg.wasm");
    let before = read(shipped)?;
    let candidate = shipped.with_extension("opt.wasm");
    let result = run(Command::new(wasm_opt)
        .args(["-Oz", "--one-caller-inline-max-function-size", "0"])
        .args(WASM_FEATURES)
        .arg(shipped)
        .arg("-o")
        .arg(&candidate))
    .and_then(|()| read(&candidate));
    let after = match result {
        Ok(after) => after,
        Err(e) => {
            let _ = std::fs::remove_file(&candidate);
            return Err(e);
        }
    };
    let (before_gz, after_gz) = (gzipped_len(&before)?, gzipped_len(&after)?);
    note(&format!("before: {}", sizes(before.len(), before_gz)));
    note(&format!("after:  {}", sizes(after.len(), after_gz)));
    if after_gz < before_gz {
        std::fs::rename(&candidate, shipped)
            .map_err(|e| format!("cannot replace {}: {e}", shipped.display()))
    } else {
        note("kept the module as wasm-bindgen wrote it: wasm-opt did not shrink it gzipped");
        std::fs::remove_file(&candidate)
            .map_err(|e| format!("cannot remove {}: {e}", candidate.display()))
    }
}

fn sizes(raw: usize, gzipped: usize) -> String {
    format!(
        "{} KiB raw, {} KiB gzipped ({raw} / {gzipped} bytes)",
        raw / 1024,
        gzipped / 1024
    )
}

/// Size after `gzip -9`, as a static file server would send it.
fn gzipped_len(bytes: &[u8]) -> Result<usize> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes)
        .and_then(|()| gz.finish())
        .map(|out| out.len())
        .map_err(|e| format!("gzip: {e}"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PackageJson<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    main: String,
    module: String,
    types: String,
    exports: Exports,
    files: Vec<String>,
    side_effects: bool,
}

/// Field order matters: Node takes the first matching condition, and TypeScript needs
/// `types` before `default`.
#[derive(Serialize)]
struct Exports {
    #[serde(rename = ".")]
    root: Conditions,
    #[serde(rename = "./pos_terminal_bg.wasm")]
    wasm: String,
}

#[derive(Serialize)]
struct Conditions {
    types: String,
    default: String,
}

pub fn package_json(p: &Package, has_snippets: bool) -> String {
    let js = format!("{OUT_NAME}.js");
    let dts = format!("{OUT_NAME}.d.ts");
    let wasm = format!("{OUT_NAME}_bg.wasm");
    let mut files = vec![
        js.clone(),
        dts.clone(),
        wasm.clone(),
        format!("{OUT_NAME}_bg.wasm.d.ts"),
        "README.md".to_string(),
    ];
    if has_snippets {
        files.push("snippets/".into());
    }
    let manifest = PackageJson {
        name: &p.name,
        version: &p.version,
        description: p.description.as_deref(),
        license: p.license.as_deref(),
        kind: "module",
        main: js.clone(),
        module: js.clone(),
        types: dts.clone(),
        exports: Exports {
            root: Conditions {
                types: format!("./{dts}"),
                default: format!("./{js}"),
            },
            wasm: format!("./{wasm}"),
        },
        files,
        side_effects: false,
    };
    let mut text = serde_json::to_string_pretty(&manifest).expect("plain strings serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn package(description: Option<&str>, license: Option<&str>) -> Package {
        Package {
            name: "pos-terminal".into(),
            version: "0.1.0".into(),
            description: description.map(str::to_string),
            license: license.map(str::to_string),
        }
    }

    #[test]
    fn package_json_is_valid_and_complete() {
        let text = package_json(
            &package(
                Some("Card payments \"offline\"\nfor the web \\ wasm"),
                Some("MIT OR Apache-2.0"),
            ),
            false,
        );
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            v,
            json!({
                "name": "pos-terminal",
                "version": "0.1.0",
                "description": "Card payments \"offline\"\nfor the web \\ wasm",
                "license": "MIT OR Apache-2.0",
                "type": "module",
                "main": "pos_terminal.js",
                "module": "pos_terminal.js",
                "types": "pos_terminal.d.ts",
                "exports": {
                    ".": { "types": "./pos_terminal.d.ts", "default": "./pos_terminal.js" },
                    "./pos_terminal_bg.wasm": "./pos_terminal_bg.wasm"
                },
                "files": [
                    "pos_terminal.js",
                    "pos_terminal.d.ts",
                    "pos_terminal_bg.wasm",
                    "pos_terminal_bg.wasm.d.ts",
                    "README.md"
                ],
                "sideEffects": false
            })
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn types_condition_comes_before_default() {
        let text = package_json(&package(None, None), false);
        let types = text.find(r#""types": "./pos_terminal.d.ts""#).unwrap();
        let default = text.find(r#""default": "./pos_terminal.js""#).unwrap();
        assert!(types < default, "{text}");
    }

    #[test]
    fn optional_fields_and_snippets() {
        let text = package_json(&package(None, None), true);
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert!(v.get("description").is_none() && v.get("license").is_none());
        let files = v["files"].as_array().unwrap();
        assert_eq!(files.last().unwrap(), "snippets/");
    }

    #[test]
    fn gzip_measures_compressed_size() {
        let repetitive = vec![b'a'; 100_000];
        let n = gzipped_len(&repetitive).unwrap();
        assert!(n > 18 && n < 1_000, "{n}");
    }
}
