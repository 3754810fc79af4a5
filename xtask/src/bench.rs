//! `cargo xtask bench`: after the build, twiggy (installed when missing), the bench site
//! assembled in `target/bench/www` (the demo's `www/`, plus `benches/web/` at `/bench/` with
//! its service worker bundled by esbuild), one pos-sim on loopback serving it, and
//! `benches/run.mjs` driving headless Chromium; that prints the table and writes
//! `target/bench/latest.json`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::engines::Engine;
use crate::setup::Tools;
use crate::sim::{tail, PosSim};
use crate::{note, run, step, Ctx, Result};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Args {
    /// Payments timed per store figure (SDK and each baseline)
    #[arg(long, default_value_t = 200)]
    reps: u32,
    /// At most this long per store fill level (at least 20 payments), so that an O(N) store
    /// cannot blow the time budget
    #[arg(long, default_value_t = 30)]
    store_seconds: u32,
    /// Stored payments per drain figure, comma-separated. The issue asks for 1000,10000: on
    /// 2 busy cores against the debug pos-sim that adds about 8 minutes, past the 15-minute
    /// budget, hence the default
    #[arg(long, default_value = "1000,3000")]
    drain: String,
    /// Stored payments drained with 50 ms added to each backend answer
    #[arg(long, default_value_t = 100)]
    latency_records: u32,
    /// Stored payments drained for the memory figure (an extra drain unless it is one of --drain)
    #[arg(long, default_value_t = 3_000)]
    memory_records: u32,
}

pub fn bench(ctx: &Ctx, tools: &Tools, args: &Args) -> Result<i32> {
    let started = Instant::now();
    let chromium = tools
        .browsers
        .iter()
        .find(|b| b.engine == Engine::Chromium)
        .map(|b| b.binary.clone())
        .ok_or("the bench needs Chromium; setup did not provide it")?;
    let out = ctx.target_dir.join("bench");
    let twiggy = twiggy(ctx);
    let site = site(ctx, &out)?;

    step("pos-sim on loopback for the bench");
    let log_path = out.join("pos-sim.log");
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let db = out.join("pos-sim.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(out.join(format!("pos-sim.db{suffix}")));
    }
    let utf8 = |p: &Path| -> Result<String> {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} is not UTF-8", p.display()))
    };
    let (db, site, pkg) = (utf8(&db)?, utf8(&site)?, utf8(&ctx.pkg)?);
    // One reader, cards read at once: the bench times the SDK, not the tap.
    let mut sim_args: Vec<&str> = "serve --port 0 --api-port 0 --readers 1 --tap-delay-ms 0"
        .split(' ')
        .collect();
    sim_args.extend(["--db", &db, "--www", &site, "--pkg", &pkg]);
    let sim = PosSim::start(ctx, &sim_args, Stdio::from(log), "pos-sim: ")?;

    step("node benches/run.mjs (headless Chromium, persistent profile)");
    let wasm = ctx
        .target_dir
        .join("wasm32-unknown-unknown")
        .join("release")
        .join("pos_terminal.wasm");
    let mut cmd = Command::new("node");
    cmd.arg("benches/run.mjs")
        .arg("--out")
        .arg(&out)
        .args(["--reps", &args.reps.to_string()])
        .args(["--store-seconds", &args.store_seconds.to_string()])
        .args(["--drain", &args.drain])
        .args(["--latency-records", &args.latency_records.to_string()])
        .args(["--memory-records", &args.memory_records.to_string()])
        .arg("--pkg")
        .arg(&ctx.pkg)
        .arg("--pre-bindgen-wasm")
        .arg(&wasm)
        .arg("--chromium")
        .arg(&chromium)
        .current_dir(&ctx.root)
        .stdin(Stdio::null())
        .env("POS_SIM_READY", sim.ready.to_string())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    if let Some(t) = &twiggy {
        cmd.arg("--twiggy").arg(t);
    }
    let result = run(&mut cmd);
    drop(sim);
    if result.is_err() {
        eprintln!(
            "---- last lines of {} ----\n{}\n----",
            log_path.display(),
            tail(&log_path, 30)
        );
    }
    result?;
    println!(
        "xtask bench: benchmarks done in {:.0}s (after the build)",
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// `twiggy`, installed with `cargo install` when neither cargo's bin directory nor PATH has
/// it. `None` (and a note) if that fails: the size figures do not need it.
fn twiggy(ctx: &Ctx) -> Option<PathBuf> {
    step("twiggy (largest contributors to the wasm)");
    let name = format!("twiggy{}", std::env::consts::EXE_SUFFIX);
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin"));
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let find = || {
        cargo_bin
            .iter()
            .chain(&path_dirs)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    };
    if let Some(found) = find() {
        note(&format!("already installed: {}", found.display()));
        return Some(found);
    }
    note("cargo install twiggy --locked (about 2 minutes, once)");
    match run(ctx.cargo().args(["install", "twiggy", "--locked"])) {
        Ok(()) => find(),
        Err(e) => {
            note(&format!("no twiggy, so no contributors report: {e}"));
            None
        }
    }
}

/// `target/bench/www`: a copy of `www/`, with `benches/web/` at `bench/` and its service
/// worker bundled (Workbox inside) by esbuild.
fn site(ctx: &Ctx, out: &Path) -> Result<PathBuf> {
    step("bench site: www/ + benches/web/ → target/bench/www");
    let site = out.join("www");
    if site.exists() {
        std::fs::remove_dir_all(&site)
            .map_err(|e| format!("cannot clear {}: {e}", site.display()))?;
    }
    copy_dir(&ctx.www, &site)?;
    let web = ctx.root.join("benches").join("web");
    let bench = site.join("bench");
    std::fs::create_dir_all(&bench)
        .map_err(|e| format!("cannot create {}: {e}", bench.display()))?;
    for f in ["index.html", "blank.html", "bench.js"] {
        std::fs::copy(web.join(f), bench.join(f))
            .map_err(|e| format!("cannot copy benches/web/{f}: {e}"))?;
    }
    let esbuild = ctx.root.join("node_modules").join(".bin").join("esbuild");
    run(Command::new(&esbuild)
        .arg(web.join("sw.js"))
        .args([
            "--bundle",
            "--format=iife",
            "--log-level=warning",
            "--define:process.env.NODE_ENV=\"production\"",
        ])
        .arg(format!("--outfile={}", bench.join("sw.js").display()))
        .current_dir(&ctx.root))
    .map_err(|e| format!("{e}\n  (`npm ci` should have installed esbuild)"))?;
    Ok(site)
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn defaults_fit_the_time_budget_and_flags_override_them() {
        let d = Wrap::try_parse_from(["bench"]).unwrap().args;
        assert_eq!(
            (
                d.reps,
                d.store_seconds,
                d.drain.as_str(),
                d.latency_records,
                d.memory_records
            ),
            (200, 30, "1000,3000", 100, 3_000)
        );
        let a = Wrap::try_parse_from([
            "bench",
            "--reps",
            "20",
            "--drain=10,20",
            "--memory-records",
            "5",
        ])
        .unwrap()
        .args;
        assert_eq!(
            (a.reps, a.drain.as_str(), a.memory_records),
            (20, "10,20", 5)
        );
        assert!(Wrap::try_parse_from(["bench", "--reps", "x"]).is_err());
    }

    #[test]
    fn copy_dir_copies_nested_files() {
        let base = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let from = base.join("from");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("a.js"), "a").unwrap();
        std::fs::write(from.join("sub").join("b.css"), "b").unwrap();
        copy_dir(&from, &base.join("to")).unwrap();
        let b = std::fs::read_to_string(base.join("to").join("sub").join("b.css")).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(b, "b");
    }
}
