//! Command-line arguments (clap), resolved against the current directory.

use std::path::{Path, PathBuf};

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};

pub const DEFAULT_PORT: u16 = 8787;
pub const DEFAULT_READERS: usize = 2;
pub const MAX_READERS: u64 = 64;
pub const DEFAULT_TAP_DELAY_MS: u64 = 400;
pub const DEFAULT_READER_COUNTRY: &str = "US";

const SERVE_AFTER_HELP: &str = "\
Binds 127.0.0.1 only. When both ports listen, prints one line to stdout:
    POS_SIM_READY {\"url\":\"http://127.0.0.1:P/\",\"api\":\"http://127.0.0.1:Q\",\"readers\":[...]}
Logs go to stderr.";

/// pos-sim: payments backend, simulated internet smart readers and demo file server, in one process
#[derive(Debug, Parser)]
#[command(
    name = "pos-sim",
    arg_required_else_help = true,
    after_help = "Run `pos-sim serve --help` for the options of serve."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the demo, the backend API and the readers until SIGINT or SIGTERM
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
}

/// `serve` as typed; [`ServeArgs::resolve`] turns it into what the app runs with.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// POS port: www/, pkg/, readers, /_sim admin (0 = any free)
    #[arg(long, value_name = "P", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Backend API port [default: P+1, or any free when P is 0; 0 = any free]
    #[arg(long, value_name = "Q")]
    pub api_port: Option<u16>,
    /// Number of simulated readers (at most 64)
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_READERS,
        value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_READERS)
    )]
    pub readers: usize,
    /// SQLite file, relative to the current directory
    #[arg(long, value_name = "PATH", default_value = "pos-sim.db")]
    pub db: PathBuf,
    /// Demo files [default: ./www if it exists, else the repository's www/]
    #[arg(long, value_name = "DIR")]
    pub www: Option<PathBuf>,
    /// npm package served at /pkg/ [default: ./pkg if it exists, else the repository's pkg/]
    #[arg(long, value_name = "DIR")]
    pub pkg: Option<PathBuf>,
    /// Time between collect_started and card_read
    #[arg(
        long,
        value_name = "MS",
        default_value_t = DEFAULT_TAP_DELAY_MS,
        allow_negative_numbers = true
    )]
    pub tap_delay_ms: u64,
    /// Country of the readers' location (ISO 3166-1 alpha-2): decides the offline rules
    #[arg(
        long,
        value_name = "CC",
        default_value = DEFAULT_READER_COUNTRY,
        value_parser = parse_country
    )]
    pub reader_country: String,
}

/// What `serve` runs with: paths made absolute, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub port: u16,
    /// `None`: P+1, or any free port when P is 0.
    pub api_port: Option<u16>,
    pub readers: usize,
    pub db: PathBuf,
    pub www: PathBuf,
    pub pkg: PathBuf,
    pub tap_delay_ms: u64,
    pub reader_country: String,
}

/// Two ASCII letters, upper-cased.
pub fn parse_country(value: &str) -> Result<String, String> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(String::from(
            "a country is two letters (ISO 3166-1 alpha-2), e.g. US or FR",
        ))
    }
}

impl ServeArgs {
    /// Joins the paths to `cwd`, which also picks the default www/pkg dirs.
    pub fn resolve(self, cwd: &Path) -> ServeConfig {
        ServeConfig {
            port: self.port,
            api_port: self.api_port,
            readers: self.readers,
            db: cwd.join(self.db),
            www: self
                .www
                .map_or_else(|| default_dir(cwd, "www"), |dir| cwd.join(dir)),
            pkg: self
                .pkg
                .map_or_else(|| default_dir(cwd, "pkg"), |dir| cwd.join(dir)),
            tap_delay_ms: self.tap_delay_ms,
            reader_country: self.reader_country,
        }
    }
}

impl ServeConfig {
    /// The API port to bind: explicit, else P+1, else 0 (any free).
    pub fn api_port(&self) -> u16 {
        match self.api_port {
            Some(q) => q,
            None if self.port == 0 => 0,
            None => self.port.checked_add(1).unwrap_or(0),
        }
    }
}

/// `<cwd>/<name>` when it exists, else the directory beside this crate in the repository.
fn default_dir(cwd: &Path, name: &str) -> PathBuf {
    let local = cwd.join(name);
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    /// Parses `pos-sim <args>` and resolves `serve` against a cwd that does not exist.
    fn parse(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("pos-sim").chain(args.iter().copied()))?;
        let Command::Serve(serve) = cli.command;
        Ok(serve.resolve(Path::new("/nonexistent-cwd")))
    }

    fn serve(args: &[&str]) -> ServeConfig {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        parse(&all).unwrap_or_else(|e| panic!("{all:?}: {e}"))
    }

    fn error_kind(args: &[&str]) -> ErrorKind {
        match parse(args) {
            Ok(config) => panic!("{args:?} parsed: {config:?}"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let s = serve(&[]);
        assert_eq!(s.port, 8787);
        assert_eq!(s.api_port(), 8788);
        assert_eq!(s.readers, 2);
        assert_eq!(s.tap_delay_ms, 400);
        assert_eq!(s.reader_country, "US");
        assert_eq!(s.db, Path::new("/nonexistent-cwd/pos-sim.db"));
        let repo_www = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
        assert_eq!(s.www, repo_www);
        assert!(s.pkg.ends_with("../pkg"));
    }

    #[test]
    fn default_dirs_prefer_the_current_directory() {
        let cwd = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(cwd.path().join("www")).expect("mkdir");
        let Command::Serve(args) = Cli::parse_from(["pos-sim", "serve"]).command;
        let s = args.resolve(cwd.path());
        assert_eq!(s.www, cwd.path().join("www"));
        assert!(s.pkg.ends_with("../pkg"), "no ./pkg: the repository's");
    }

    #[test]
    fn every_flag() {
        let s = serve(&[
            "--port",
            "0",
            "--readers",
            "3",
            "--db",
            "/tmp/x.db",
            "--www",
            "w",
            "--pkg=/p",
            "--tap-delay-ms",
            "10",
            "--reader-country",
            "fr",
        ]);
        assert_eq!(s.reader_country, "FR");
        assert_eq!(s.port, 0);
        assert_eq!(s.api_port(), 0, "P=0 picks a free API port too");
        assert_eq!(s.readers, 3);
        assert_eq!(s.db, Path::new("/tmp/x.db"));
        assert_eq!(s.www, Path::new("/nonexistent-cwd/w"));
        assert_eq!(s.pkg, Path::new("/p"));
        assert_eq!(s.tap_delay_ms, 10);
        assert_eq!(serve(&["--readers", "0"]).readers, 0);
        assert_eq!(serve(&["--readers", "64"]).readers, 64);
        assert_eq!(serve(&["--port", "9000", "--api-port", "0"]).api_port(), 0);
        assert_eq!(
            serve(&["--port", "9000", "--api-port", "9100"]).api_port(),
            9100
        );
        assert_eq!(serve(&["--port", "65535"]).api_port(), 0);
    }

    #[test]
    fn help() {
        assert_eq!(error_kind(&["--help"]), ErrorKind::DisplayHelp);
        assert_eq!(error_kind(&["help"]), ErrorKind::DisplayHelp);
        assert_eq!(error_kind(&["serve", "--help"]), ErrorKind::DisplayHelp);
        assert_eq!(
            error_kind(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        let top = Cli::command().render_help().to_string();
        assert!(top.contains("pos-sim serve"), "{top}");
        let mut cmd = Cli::command();
        let serve = cmd.find_subcommand_mut("serve").expect("serve");
        let help = serve.render_long_help().to_string();
        // The e2e tests probe `serve --help` for this flag.
        assert!(help.contains("--tap-delay-ms"), "{help}");
        assert!(help.contains("POS_SIM_READY"), "{help}");
    }

    #[test]
    fn errors() {
        assert_eq!(error_kind(&["run"]), ErrorKind::InvalidSubcommand);
        assert_eq!(
            error_kind(&["serve", "--bogus", "1"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            error_kind(&["serve", "--port"]),
            ErrorKind::InvalidValue,
            "a flag without its value"
        );
        for bad in [
            ["serve", "--port", "70000"],
            ["serve", "--port", "x"],
            ["serve", "--readers", "65"],
            ["serve", "--tap-delay-ms", "-1"],
            ["serve", "--reader-country", "FRA"],
        ] {
            assert_eq!(error_kind(&bad), ErrorKind::ValueValidation, "{bad:?}");
        }
        assert_eq!(
            error_kind(&["serve", "--db", ""]),
            ErrorKind::InvalidValue,
            "empty path"
        );
    }

    #[test]
    fn errors_name_the_flag_and_the_value() {
        let e = parse(&["serve", "--readers", "65"])
            .expect_err("65 readers")
            .to_string();
        assert!(e.contains("--readers") && e.contains("65"), "{e}");
        let e = parse(&["serve", "--port", "x"]).expect_err("x").to_string();
        assert!(e.contains("--port") && e.contains("'x'"), "{e}");
    }
}
