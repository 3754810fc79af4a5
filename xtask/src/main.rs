//! `cargo xtask <command>`: set up the machine, build the npm package, run the demo and
//! every test. Std-only on purpose so it compiles in a few seconds on a fresh checkout.

mod dts;
mod json;
mod lockfile;
mod pkg;
mod setup;
mod sim;
mod stages;
mod wasm_strip;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use json::Json;

pub type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup                      add the wasm32 target, install wasm-bindgen-cli (locked version),
                             Chromium + chromedriver, and the npm packages the browser tests use
  build                      setup, then build pkg/ (the npm package) and pos-sim
  demo [--port P]            build, then start pos-sim on port P (default 8787) and print the URL
  test [--only native|types|wasm|e2e]
                             build, then run native tests, wasm tests in headless Chromium,
                             and the end-to-end browser tests (or only one of those stages)
";

fn main() {
    let code = match run_cli(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            1
        }
    };
    // Every child guard has been dropped by now, so exiting cannot leak a process.
    std::process::exit(code);
}

fn run_cli(args: Vec<String>) -> Result<i32> {
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(2);
    };
    let started = Instant::now();
    match cmd.as_str() {
        "setup" => {
            no_more_args(rest)?;
            let ctx = Ctx::new()?;
            setup::setup(&ctx)?;
            println!(
                "xtask setup: done in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        "build" => {
            no_more_args(rest)?;
            let ctx = Ctx::new()?;
            let tools = setup::setup(&ctx)?;
            pkg::build(&ctx, &tools)?;
            println!(
                "xtask build: done in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        "demo" => {
            let port = parse_demo_args(rest)?;
            let ctx = Ctx::new()?;
            let tools = setup::setup(&ctx)?;
            pkg::build(&ctx, &tools)?;
            sim::demo(&ctx, port)
        }
        "test" => {
            let only = parse_test_args(rest)?;
            let ctx = Ctx::new()?;
            let tools = setup::setup(&ctx)?;
            pkg::build(&ctx, &tools)?;
            Ok(stages::run_all(&ctx, &tools, only))
        }
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

fn no_more_args(rest: &[String]) -> Result {
    match rest.first() {
        None => Ok(()),
        Some(a) => Err(format!("unexpected argument `{a}`\n{USAGE}")),
    }
}

/// `--name value` or `--name=value`.
fn flag_value(args: &[String], i: &mut usize, name: &str) -> Result<Option<String>> {
    let arg = &args[*i];
    if arg == name {
        *i += 1;
        return args
            .get(*i)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("`{name}` needs a value"));
    }
    Ok(arg
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('='))
        .map(str::to_string))
}

fn parse_demo_args(args: &[String]) -> Result<u16> {
    let mut port = 8787;
    let mut i = 0;
    while i < args.len() {
        match flag_value(args, &mut i, "--port")? {
            Some(v) => port = v.parse().map_err(|_| format!("bad --port `{v}`"))?,
            None => return Err(format!("unexpected argument `{}`\n{USAGE}", args[i])),
        }
        i += 1;
    }
    Ok(port)
}

fn parse_test_args(args: &[String]) -> Result<Option<stages::Stage>> {
    let mut only = None;
    let mut i = 0;
    while i < args.len() {
        match flag_value(args, &mut i, "--only")? {
            Some(v) => {
                only = Some(
                    stages::Stage::from_name(&v)
                        .ok_or_else(|| format!("bad --only `{v}`: use native, wasm or e2e"))?,
                )
            }
            None => return Err(format!("unexpected argument `{}`\n{USAGE}", args[i])),
        }
        i += 1;
    }
    Ok(only)
}

/// Where things are, found once per run.
pub struct Ctx {
    pub root: PathBuf,
    pub www: PathBuf,
    pub pkg: PathBuf,
    pub target_dir: PathBuf,
    pub cargo: OsString,
    /// `cargo metadata --no-deps` output (workspace packages, resolved `*.workspace` fields).
    pub metadata: Json,
}

impl Ctx {
    fn new() -> Result<Ctx> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("xtask has no parent directory")?
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(&root);
        let metadata = json::parse(&output(&mut cmd)?)
            .map_err(|e| format!("cannot read `cargo metadata` output: {e}"))?;
        let target_dir = metadata
            .get("target_directory")
            .and_then(Json::as_str)
            .map(PathBuf::from)
            .ok_or("`cargo metadata` did not report target_directory")?;
        Ok(Ctx {
            www: root.join("www"),
            pkg: root.join("pkg"),
            root,
            target_dir,
            cargo,
            metadata,
        })
    }

    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        cmd
    }

    /// `www/` and `pkg/` as the UTF-8 strings pos-sim's `--www` / `--pkg` take.
    pub fn www_and_pkg(&self) -> Result<(&str, &str)> {
        let www = self.www.to_str().ok_or("repo path is not UTF-8")?;
        let pkg = self.pkg.to_str().ok_or("repo path is not UTF-8")?;
        Ok((www, pkg))
    }

    pub fn pos_sim_bin(&self) -> PathBuf {
        self.target_dir
            .join("debug")
            .join(format!("pos-sim{}", std::env::consts::EXE_SUFFIX))
    }
}

/// The one-line header every step prints.
pub fn step(what: &str) {
    println!("==> {what}");
}

pub fn note(what: &str) {
    println!("    {what}");
}

pub fn display_cmd(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    // `$CARGO` is a long toolchain path; the name alone is what a reader would type.
    let mut s = if program.file_name().is_some_and(|n| n == "cargo") {
        "cargo".to_string()
    } else {
        program.to_string_lossy().into_owned()
    };
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        s.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            s.push_str(&format!("'{arg}'"));
        } else {
            s.push_str(&arg);
        }
    }
    s
}

/// Runs `cmd` with inherited stdio; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", display_cmd(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display_cmd(cmd)))
    }
}

/// Runs `cmd` and returns its stdout; stderr is passed through only on failure.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", display_cmd(cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            display_cmd(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("`{}` printed non-UTF-8", display_cmd(cmd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn demo_port_forms() {
        assert_eq!(parse_demo_args(&args("")).unwrap(), 8787);
        assert_eq!(parse_demo_args(&args("--port 9000")).unwrap(), 9000);
        assert_eq!(parse_demo_args(&args("--port=0")).unwrap(), 0);
        assert!(parse_demo_args(&args("--port")).is_err());
        assert!(parse_demo_args(&args("--port x")).is_err());
        assert!(parse_demo_args(&args("--portal 1")).is_err());
    }

    #[test]
    fn test_only_forms() {
        assert_eq!(parse_test_args(&args("")).unwrap(), None);
        assert_eq!(
            parse_test_args(&args("--only wasm")).unwrap(),
            Some(stages::Stage::Wasm)
        );
        assert_eq!(
            parse_test_args(&args("--only=e2e")).unwrap(),
            Some(stages::Stage::E2e)
        );
        assert!(parse_test_args(&args("--only unit")).is_err());
    }
}
