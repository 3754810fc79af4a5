//! `cargo xtask setup`: every step checks first and does nothing when already done.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::engines::{self, Engine};
use crate::{note, output, run, step, Ctx, Result};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The tools later steps use, by absolute path.
pub struct Tools {
    pub wasm_bindgen: PathBuf,
    pub test_runner: PathBuf,
    pub wasm_opt: PathBuf,
    /// One per engine set up, in run order.
    pub browsers: Vec<Browser>,
}

/// A browser engine ready to drive: its binary and its WebDriver server.
pub struct Browser {
    pub engine: Engine,
    pub binary: PathBuf,
    pub driver: PathBuf,
}

/// Sets up everything the build needs and the browsers of `engines`.
pub fn setup(ctx: &Ctx, engines: &[Engine]) -> Result<Tools> {
    wasm_target(ctx)?;
    let (wasm_bindgen, test_runner) = wasm_bindgen_cli(ctx)?;
    apt_packages(engines)?;
    let mut browsers = Vec::new();
    for &engine in engines {
        browsers.push(match engine {
            Engine::Chromium => chromium()?,
            Engine::Firefox => firefox(ctx)?,
            Engine::Webkit => webkit()?,
        });
    }
    npm(ctx)?;
    let wasm_opt = wasm_opt(ctx)?;
    Ok(Tools {
        wasm_bindgen,
        test_runner,
        wasm_opt,
        browsers,
    })
}

fn wasm_target(ctx: &Ctx) -> Result {
    step(&format!("rust target {WASM_TARGET}"));
    // Run from the repo root so a rust-toolchain file, if one appears, is honoured.
    let installed = output(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(&ctx.root),
    )
    .map_err(|e| format!("{e}\n  (rustup is needed to add the {WASM_TARGET} target)"))?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        note("already installed");
        return Ok(());
    }
    run(Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .current_dir(&ctx.root))
}

/// `$CARGO_INSTALL_ROOT/bin`, else `$CARGO_HOME/bin`, else `~/.cargo/bin`: where
/// `cargo install` puts binaries.
fn cargo_install_bin() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("CARGO_INSTALL_ROOT") {
        return Some(PathBuf::from(root).join("bin"));
    }
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Some(PathBuf::from(home).join("bin"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").join("bin"))
}

/// Second word of `<name> <version>` as printed by `--version`, if the binary runs.
fn tool_version(path: &Path) -> Option<String> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_string)
}

fn exe(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// A directory holding both `wasm-bindgen` and `wasm-bindgen-test-runner` at `version`.
fn find_wasm_bindgen(version: &str) -> Option<(PathBuf, PathBuf)> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in cargo_install_bin().into_iter().chain(path_dirs) {
        let cli = exe(&dir, "wasm-bindgen");
        let runner = exe(&dir, "wasm-bindgen-test-runner");
        if cli.is_file()
            && runner.is_file()
            && tool_version(&cli).as_deref() == Some(version)
            && tool_version(&runner).as_deref() == Some(version)
        {
            return Some((cli, runner));
        }
    }
    None
}

fn wasm_bindgen_cli(ctx: &Ctx) -> Result<(PathBuf, PathBuf)> {
    let version = ctx.metadata.resolved_version("wasm-bindgen")?;
    step(&format!(
        "wasm-bindgen-cli {version} (the locked wasm-bindgen)"
    ));
    if let Some(found) = find_wasm_bindgen(version) {
        note(&format!("already installed: {}", found.0.display()));
        return Ok(found);
    }
    note("installing with cargo install (takes a few minutes)");
    // No --locked: the CLI's own lockfile pins crates that no longer build on current Rust.
    run(ctx
        .cargo()
        .args(["install", "wasm-bindgen-cli", "--version", version]))?;
    find_wasm_bindgen(version).ok_or_else(|| {
        format!(
            "wasm-bindgen {version} and wasm-bindgen-test-runner are still not in {} after cargo install",
            cargo_install_bin().map_or("~/.cargo/bin".into(), |p| p.display().to_string())
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `156` from `Chromium 156.0.8078.108 built on …` or `ChromeDriver 156.0.8078.108 (…)`.
fn full_and_major(version_output: &str) -> Option<(String, String)> {
    let full = version_output
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major = full.split('.').next()?;
    Some((full.to_string(), major.to_string()))
}

/// The Debian packages of `engines` whose marker file is missing, without duplicates.
fn missing_packages(engines: &[Engine], exists: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for engine in engines {
        for &(package, file) in engine.apt_packages() {
            if !exists(file) && !missing.contains(&package) {
                missing.push(package);
            }
        }
    }
    missing
}

/// One `apt-get install` for every browser package that is missing.
fn apt_packages(engines: &[Engine]) -> Result {
    if engines.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = engines.iter().map(Engine::to_string).collect();
    step(&format!("browser packages (apt) for {}", names.join(", ")));
    let missing = missing_packages(engines, |f| Path::new(f).exists());
    if missing.is_empty() {
        note("already installed");
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing Debian packages: run `sudo apt-get install {}`",
            missing.join(" ")
        ));
    }
    note(&format!("installing {}", missing.join(" ")));
    run(Command::new("apt-get").arg("update").stdin(Stdio::null()))?;
    run(Command::new("apt-get")
        .args(["install", "-y"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null()))
}

fn chromium() -> Result<Browser> {
    step("Chromium + chromedriver");
    let (browser, driver) = (
        Path::new(engines::CHROMIUM),
        Path::new(engines::CHROMEDRIVER),
    );
    // The Debian launcher script prints shell noise on stderr; only stdout matters.
    let browser_version = output(Command::new(browser).arg("--version").stderr(Stdio::null()))?;
    let driver_version = output(Command::new(driver).arg("--version"))?;
    let (bv, bmajor) = full_and_major(&browser_version).ok_or_else(|| {
        format!(
            "cannot parse `{} --version`: {browser_version}",
            engines::CHROMIUM
        )
    })?;
    let (dv, dmajor) = full_and_major(&driver_version).ok_or_else(|| {
        format!(
            "cannot parse `{} --version`: {driver_version}",
            engines::CHROMEDRIVER
        )
    })?;
    if bmajor != dmajor {
        return Err(format!(
            "Chromium {bv} and chromedriver {dv} differ in major version: \
             run `apt-get install --only-upgrade chromium chromium-driver`"
        ));
    }
    note(&format!("Chromium {bv}, chromedriver {dv}"));
    Ok(Browser {
        engine: Engine::Chromium,
        binary: browser.to_path_buf(),
        driver: driver.to_path_buf(),
    })
}

/// `geckodriver` in cargo's bin directory or on `PATH`.
fn find_geckodriver() -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    cargo_install_bin()
        .into_iter()
        .chain(path_dirs)
        .map(|dir| exe(&dir, "geckodriver"))
        .find(|p| tool_version(p).is_some())
}

fn firefox(ctx: &Ctx) -> Result<Browser> {
    step("Firefox ESR + geckodriver");
    let browser = Path::new(engines::FIREFOX);
    let version = output(Command::new(browser).arg("--version").stderr(Stdio::null()))?;
    let driver = match find_geckodriver() {
        Some(found) => found,
        None => {
            // --debug: an unoptimised build takes a fraction of the time and drives as well.
            note("installing geckodriver with cargo install --debug (1-2 minutes)");
            run(ctx
                .cargo()
                .args(["install", "--locked", "--debug", "geckodriver"]))?;
            find_geckodriver().ok_or("geckodriver is still not found after cargo install")?
        }
    };
    note(&format!(
        "{}, geckodriver {} ({})",
        version.trim(),
        tool_version(&driver).unwrap_or_default(),
        driver.display()
    ));
    Ok(Browser {
        engine: Engine::Firefox,
        binary: browser.to_path_buf(),
        driver,
    })
}

fn webkit() -> Result<Browser> {
    step("WebKitGTK MiniBrowser + WebKitWebDriver (xvfb-run)");
    let driver = Path::new(engines::WEBKIT_DRIVER);
    if !driver.is_file() {
        return Err(format!("{} is missing", driver.display()));
    }
    // WebKitWebDriver has no --version: the package's is the engine's.
    let version = output(Command::new("dpkg-query").args([
        "--show",
        "--showformat=WebKitGTK ${Version}",
        "webkit2gtk-driver",
    ]))?;
    // MiniBrowser sits in the multiarch library directory of the installed WebKitGTK.
    let binary = Path::new("/usr/lib")
        .read_dir()
        .map_err(|e| format!("cannot list /usr/lib: {e}"))?
        .flatten()
        .map(|d| d.path().join("webkit2gtk-4.1").join("MiniBrowser"))
        .find(|p| p.is_file())
        .ok_or("MiniBrowser not found under /usr/lib/*/webkit2gtk-4.1/")?;
    note(&format!("{} ({})", version.trim(), binary.display()));
    Ok(Browser {
        engine: Engine::Webkit,
        binary,
        driver: driver.to_path_buf(),
    })
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn npm(ctx: &Ctx) -> Result {
    step("npm packages: binaryen, TypeScript, Playwright, WebdriverIO");
    let node = output(Command::new("node").arg("--version"))
        .map_err(|e| format!("Node.js 20+ with npm is required: {e}"))?;
    let major: u32 = node
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!("Node.js 20+ is required, found {}", node.trim()));
    }
    let lock = ctx.root.join("package-lock.json");
    let installed = ctx.root.join("node_modules").join(".package-lock.json");
    let lock_time = mtime(&lock).ok_or("package-lock.json is missing at the repo root")?;
    match mtime(&installed) {
        Some(t) if t >= lock_time => {
            note(&format!("node {} — node_modules up to date", node.trim()));
            Ok(())
        }
        _ => run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .current_dir(&ctx.root)
            .stdin(Stdio::null())),
    }
}

/// binaryen's `wasm-opt`, from the npm package (a devDependency, so `npm ci` installs it):
/// release 132 makes the gzipped module 1 % smaller than Debian's release 108 does.
fn wasm_opt(ctx: &Ctx) -> Result<PathBuf> {
    step("binaryen wasm-opt (npm devDependency)");
    let path = ctx.root.join("node_modules").join(".bin").join("wasm-opt");
    let version = output(Command::new(&path).arg("--version"))
        .map_err(|e| format!("{e}\n  (`npm ci` should have installed binaryen)"))?;
    note(version.trim());
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_browser_versions() {
        assert_eq!(
            full_and_major("Chromium 156.0.8078.108 built on Debian GNU/Linux 12 (bookworm)\n"),
            Some(("156.0.8078.108".into(), "156".into()))
        );
        assert_eq!(
            full_and_major("ChromeDriver 156.0.8078.108 (730482a9-refs/branch-heads/8078@{#2244})"),
            Some(("156.0.8078.108".into(), "156".into()))
        );
        assert_eq!(full_and_major("no version here"), None);
    }

    #[test]
    fn installs_only_missing_packages_once() {
        let all = [Engine::Chromium, Engine::Firefox, Engine::Webkit];
        assert!(missing_packages(&all, |_| true).is_empty());
        let none = missing_packages(&all, |_| false);
        assert_eq!(
            none,
            [
                "chromium",
                "chromium-driver",
                "firefox-esr",
                "webkit2gtk-driver",
                "xvfb",
                "xauth"
            ]
        );
        let some = missing_packages(&[Engine::Webkit, Engine::Webkit], |f| {
            f == crate::engines::XVFB_RUN
        });
        assert_eq!(some, ["webkit2gtk-driver", "xauth"]);
    }
}
