//! `cargo xtask build`: the npm package in `pkg/` and the pos-sim binary.

use std::process::Command;

use crate::json::{quote, Json};
use crate::setup::Tools;
use crate::{dts, note, run, step, wasm_strip, Ctx, Result};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const OUT_NAME: &str = "pos_terminal";

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
    run(Command::new(&tools.wasm_bindgen)
        .args(["--target", "web", "--out-dir"])
        .arg(pkg)
        .args(["--out-name", OUT_NAME])
        .arg(&wasm)
        .current_dir(&ctx.root))?;

    let shipped = pkg.join(format!("{OUT_NAME}_bg.wasm"));
    let bytes =
        std::fs::read(&shipped).map_err(|e| format!("cannot read {}: {e}", shipped.display()))?;
    let stripped = wasm_strip::without_names(&bytes)
        .ok_or_else(|| format!("{} is not a well-formed wasm module", shipped.display()))?;
    std::fs::write(&shipped, &stripped)
        .map_err(|e| format!("cannot write {}: {e}", shipped.display()))?;
    note(&format!(
        "{OUT_NAME}_bg.wasm: {} KiB (name section dropped: {} KiB)",
        stripped.len() / 1024,
        (bytes.len() - stripped.len()) / 1024
    ));

    step("pkg/package.json");
    let manifest = package_json(&package_fields(ctx)?, pkg.join("snippets").is_dir());
    write(&pkg.join("package.json"), &manifest)?;
    let readme = ctx.root.join("README.md");
    if readme.is_file() {
        std::fs::copy(&readme, pkg.join("README.md"))
            .map_err(|e| format!("cannot copy README.md into pkg/: {e}"))?;
        note("README.md copied");
    }

    let dts_path = pkg.join(format!("{OUT_NAME}.d.ts"));
    step("pkg/pos_terminal.d.ts has no `any` types");
    let text = std::fs::read_to_string(&dts_path)
        .map_err(|e| format!("cannot read {}: {e}", dts_path.display()))?;
    let hits = dts::any_type_lines(&text);
    if !hits.is_empty() {
        for (line, code) in &hits {
            eprintln!("    pkg/{OUT_NAME}.d.ts:{line}: {}", code.trim());
        }
        return Err(format!(
            "{} line(s) of pkg/{OUT_NAME}.d.ts use `any`: give them precise types \
             (#[wasm_bindgen(typescript_type = \"…\")] or unchecked_param_type/unchecked_return_type)",
            hits.len()
        ));
    }
    note(&format!("{} lines checked", text.lines().count()));

    step("cargo build -p pos-sim");
    run(ctx.cargo().args(["build", "-p", "pos-sim"]))
}

fn write(path: &std::path::Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What package.json takes from the crate's manifest.
pub struct Fields {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub license: Option<String>,
}

fn package_fields(ctx: &Ctx) -> Result<Fields> {
    let package = ctx
        .metadata
        .get("packages")
        .and_then(Json::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("name").and_then(Json::as_str) == Some("pos-terminal"))
        })
        .ok_or("`cargo metadata` does not list the pos-terminal package")?;
    let field = |k: &str| package.get(k).and_then(Json::as_str).map(str::to_string);
    Ok(Fields {
        name: "pos-terminal".into(),
        version: field("version").ok_or("pos-terminal has no version")?,
        description: field("description"),
        license: field("license"),
    })
}

pub fn package_json(f: &Fields, has_snippets: bool) -> String {
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
    let mut out = String::from("{\n");
    let mut field = |key: &str, value: String| {
        out.push_str(&format!("  {}: {value},\n", quote(key)));
    };
    field("name", quote(&f.name));
    field("version", quote(&f.version));
    if let Some(d) = &f.description {
        field("description", quote(d));
    }
    if let Some(l) = &f.license {
        field("license", quote(l));
    }
    field("type", quote("module"));
    field("main", quote(&js));
    field("module", quote(&js));
    field("types", quote(&dts));
    field(
        "exports",
        format!(
            "{{\n    \".\": {{\n      \"types\": {},\n      \"default\": {}\n    }},\n    {}: {}\n  }}",
            quote(&format!("./{dts}")),
            quote(&format!("./{js}")),
            quote(&format!("./{wasm}")),
            quote(&format!("./{wasm}")),
        ),
    );
    let list: Vec<String> = files.iter().map(|f| format!("    {}", quote(f))).collect();
    field("files", format!("[\n{}\n  ]", list.join(",\n")));
    out.push_str("  \"sideEffects\": false\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn package_json_is_valid_and_complete() {
        let text = package_json(
            &Fields {
                name: "pos-terminal".into(),
                version: "0.1.0".into(),
                description: Some("Card payments \"offline\"\nfor the web \\ wasm".into()),
                license: Some("MIT OR Apache-2.0".into()),
            },
            false,
        );
        let v = parse(&text).expect("valid JSON");
        let s = |k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
        assert_eq!(s("name").as_deref(), Some("pos-terminal"));
        assert_eq!(s("version").as_deref(), Some("0.1.0"));
        assert_eq!(
            s("description").as_deref(),
            Some("Card payments \"offline\"\nfor the web \\ wasm")
        );
        assert_eq!(s("license").as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(s("type").as_deref(), Some("module"));
        assert_eq!(s("main").as_deref(), Some("pos_terminal.js"));
        assert_eq!(s("module").as_deref(), Some("pos_terminal.js"));
        assert_eq!(s("types").as_deref(), Some("pos_terminal.d.ts"));
        assert_eq!(v.get("sideEffects"), Some(&Json::Bool(false)));
        let exports = v.get("exports").unwrap();
        let dot = exports.get(".").unwrap();
        assert_eq!(
            dot.get("types").unwrap().as_str(),
            Some("./pos_terminal.d.ts")
        );
        assert_eq!(
            dot.get("default").unwrap().as_str(),
            Some("./pos_terminal.js")
        );
        assert_eq!(
            exports.get("./pos_terminal_bg.wasm").unwrap().as_str(),
            Some("./pos_terminal_bg.wasm")
        );
        let files: Vec<&str> = v
            .get("files")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Json::as_str)
            .collect();
        assert_eq!(
            files,
            [
                "pos_terminal.js",
                "pos_terminal.d.ts",
                "pos_terminal_bg.wasm",
                "pos_terminal_bg.wasm.d.ts",
                "README.md"
            ]
        );
    }

    #[test]
    fn optional_fields_and_snippets() {
        let text = package_json(
            &Fields {
                name: "pos-terminal".into(),
                version: "1.2.3-beta.1".into(),
                description: None,
                license: None,
            },
            true,
        );
        let v = parse(&text).expect("valid JSON");
        assert!(v.get("description").is_none() && v.get("license").is_none());
        let files = v.get("files").unwrap().as_array().unwrap();
        assert_eq!(files.last().unwrap().as_str(), Some("snippets/"));
    }
}
