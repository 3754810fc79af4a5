//! `cargo xtask <command>`: set up the machine, build the npm package, run the demo and
//! every test. The tooling is libraries (clap, serde_json) and tools the set-up installs
//! (wasm-bindgen-cli, binaryen, the TypeScript compiler), not hand-written parsers.

mod bench;
mod engines;
mod metadata;
mod pkg;
mod setup;
mod sim;
mod stages;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::{Parser, Subcommand};

use engines::Engine;
use metadata::Metadata;

pub type Result<T = ()> = std::result::Result<T, String>;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Set up the machine, build the npm package, run the demo and every test",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, PartialEq, Subcommand)]
enum Cmd {
    /// Add the wasm32 target, wasm-bindgen-cli (the locked version), the browsers and their
    /// WebDriver servers, and the npm packages (binaryen, TypeScript, the browser drivers);
    /// skips what is there
    Setup {
        /// Set up only this browser engine (default: all)
        #[arg(long, value_enum)]
        browser: Option<Engine>,
    },
    /// Set up, then build pkg/ (the npm package, through wasm-opt) and pos-sim
    Build,
    /// Build, then start pos-sim and print the demo POS URL
    Demo {
        /// Port of the demo POS (0 picks a free one)
        #[arg(long, default_value_t = 8787)]
        port: u16,
    },
    /// Build, then run the native, types, wasm and e2e tests (the browser stages on each
    /// engine); stops at the first failure
    Test {
        /// Run only this stage
        #[arg(long, value_enum)]
        only: Option<stages::Stage>,
        /// Run the browser stages only on this engine (default: chromium, firefox, webkit)
        #[arg(long, value_enum)]
        browser: Option<Engine>,
    },
    /// Build, then benchmark in headless Chromium against pos-sim: store, drain, cold start,
    /// size, memory; prints one table and writes target/bench/latest.json
    Bench(bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let code = match run_cli(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            1
        }
    };
    // Every child guard has been dropped by now, so exiting cannot leak a process.
    std::process::exit(code);
}

fn run_cli(command: Cmd) -> Result<i32> {
    let started = Instant::now();
    let ctx = Ctx::new()?;
    let done = |what: &str| {
        println!(
            "xtask {what}: done in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    };
    if let Cmd::Setup { browser } = command {
        setup::setup(&ctx, &Engine::selected(browser))?;
        done("setup");
        return Ok(0);
    }
    // Build and demo need no browser; tests need the selected ones, the bench Chromium.
    let engines = match command {
        Cmd::Test { browser, .. } => Engine::selected(browser),
        Cmd::Bench(_) => vec![Engine::Chromium],
        _ => Vec::new(),
    };
    let tools = setup::setup(&ctx, &engines)?;
    pkg::build(&ctx, &tools)?;
    match command {
        Cmd::Setup { .. } => unreachable!("handled above"),
        Cmd::Build => {
            done("build");
            Ok(0)
        }
        Cmd::Demo { port } => sim::demo(&ctx, port),
        Cmd::Test { only, .. } => Ok(stages::run_all(&ctx, &tools, only)),
        Cmd::Bench(args) => bench::bench(&ctx, &tools, &args),
    }
}

/// Where things are, found once per run.
pub struct Ctx {
    pub root: PathBuf,
    pub www: PathBuf,
    pub pkg: PathBuf,
    pub target_dir: PathBuf,
    pub cargo: OsString,
    /// `cargo metadata` output: packages with resolved `*.workspace` fields and versions.
    pub metadata: Metadata,
}

impl Ctx {
    fn new() -> Result<Ctx> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("xtask has no parent directory")?
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let metadata = Metadata::load(Command::new(&cargo).current_dir(&root))?;
        let target_dir = metadata.target_directory.clone();
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
    use clap::CommandFactory;

    fn parse(line: &str) -> std::result::Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(line.split_whitespace()))
            .map(|cli| cli.command)
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_without_arguments() {
        assert_eq!(parse("setup").unwrap(), Cmd::Setup { browser: None });
        assert_eq!(parse("build").unwrap(), Cmd::Build);
        assert!(parse("build --port 1").is_err());
        assert!(parse("bench --port 1").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn demo_port_forms() {
        assert_eq!(parse("demo").unwrap(), Cmd::Demo { port: 8787 });
        assert_eq!(parse("demo --port 9000").unwrap(), Cmd::Demo { port: 9000 });
        assert_eq!(parse("demo --port=0").unwrap(), Cmd::Demo { port: 0 });
        assert!(parse("demo --port").is_err());
        assert!(parse("demo --port x").is_err());
        assert!(parse("demo --port 70000").is_err());
        assert!(parse("demo --portal 1").is_err());
    }

    #[test]
    fn test_only_forms() {
        assert_eq!(
            parse("test").unwrap(),
            Cmd::Test {
                only: None,
                browser: None
            }
        );
        assert_eq!(
            parse("test --only wasm").unwrap(),
            Cmd::Test {
                only: Some(stages::Stage::Wasm),
                browser: None
            }
        );
        assert_eq!(
            parse("test --only=e2e").unwrap(),
            Cmd::Test {
                only: Some(stages::Stage::E2e),
                browser: None
            }
        );
        assert_eq!(
            parse("test --only types").unwrap(),
            Cmd::Test {
                only: Some(stages::Stage::Types),
                browser: None
            }
        );
        let err = parse("test --only unit").unwrap_err().to_string();
        assert!(err.contains("native, types, wasm, e2e"), "{err}");
    }

    #[test]
    fn browser_forms() {
        assert_eq!(
            parse("test --browser firefox --only e2e").unwrap(),
            Cmd::Test {
                only: Some(stages::Stage::E2e),
                browser: Some(Engine::Firefox)
            }
        );
        assert_eq!(
            parse("setup --browser=webkit").unwrap(),
            Cmd::Setup {
                browser: Some(Engine::Webkit)
            }
        );
        let err = parse("test --browser safari").unwrap_err().to_string();
        assert!(err.contains("chromium, firefox, webkit"), "{err}");
        assert!(parse("build --browser chromium").is_err());
    }
}
