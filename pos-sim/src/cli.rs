//! Command-line arguments.

use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
pos-sim: payments backend, simulated internet smart readers and demo file server, in one process

USAGE:
    pos-sim serve [OPTIONS]
    pos-sim --help

OPTIONS (serve):
    --port P           POS port: www/, pkg/, readers, /_sim admin (default 8787; 0 = any free)
    --api-port Q       backend API port (default P+1, or any free when P is 0; 0 = any free)
    --readers N        number of simulated readers (default 2)
    --db PATH          SQLite file (default pos-sim.db in the current directory)
    --www DIR          demo files (default ./www if it exists, else the repository's www/)
    --pkg DIR          npm package served at /pkg/ (default ./pkg if it exists, else the repository's pkg/)
    --tap-delay-ms MS  time between collect_started and card_read (default 400)

Binds 127.0.0.1 only. When both ports listen, prints one line to stdout:
    POS_SIM_READY {\"url\":\"http://127.0.0.1:P/\",\"api\":\"http://127.0.0.1:Q\",\"readers\":[...]}
Logs go to stderr.
";

pub const DEFAULT_PORT: u16 = 8787;
pub const DEFAULT_READERS: usize = 2;
pub const MAX_READERS: usize = 64;
pub const DEFAULT_TAP_DELAY_MS: u64 = 400;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Serve(ServeArgs),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeArgs {
    pub port: u16,
    /// `None`: P+1, or any free port when P is 0.
    pub api_port: Option<u16>,
    pub readers: usize,
    pub db: PathBuf,
    pub www: PathBuf,
    pub pkg: PathBuf,
    pub tap_delay_ms: u64,
}

impl ServeArgs {
    /// The API port to bind: explicit, else P+1, else 0 (any free).
    pub fn api_port(&self) -> u16 {
        match self.api_port {
            Some(q) => q,
            None if self.port == 0 => 0,
            None => self.port.checked_add(1).unwrap_or(0),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("missing subcommand")]
    MissingCommand,
    #[error("unknown subcommand or argument `{0}`")]
    Unknown(String),
    #[error("`{0}` needs a value")]
    MissingValue(String),
    #[error("invalid value `{value}` for `{flag}`: {why}")]
    InvalidValue {
        flag: String,
        value: String,
        why: &'static str,
    },
}

/// Parses arguments (without the program name). `cwd` picks the default www/pkg dirs.
pub fn parse<I, S>(args: I, cwd: &Path) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let Some(command) = args.next() else {
        return Err(CliError::MissingCommand);
    };
    match command.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "serve" => {}
        other => return Err(CliError::Unknown(other.to_owned())),
    }
    let mut serve = ServeArgs {
        port: DEFAULT_PORT,
        api_port: None,
        readers: DEFAULT_READERS,
        db: cwd.join("pos-sim.db"),
        www: default_dir(cwd, "www"),
        pkg: default_dir(cwd, "pkg"),
        tap_delay_ms: DEFAULT_TAP_DELAY_MS,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        // Both `--flag value` and `--flag=value`.
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (flag.clone(), None),
        };
        if !matches!(
            name.as_str(),
            "--port" | "--api-port" | "--readers" | "--db" | "--www" | "--pkg" | "--tap-delay-ms"
        ) {
            return Err(CliError::Unknown(flag));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(CliError::MissingValue(name)),
        };
        match name.as_str() {
            "--port" => serve.port = number(&name, &value)?,
            "--api-port" => serve.api_port = Some(number(&name, &value)?),
            "--readers" => {
                let n: usize = number(&name, &value)?;
                if n > MAX_READERS {
                    return Err(CliError::InvalidValue {
                        flag: name,
                        value,
                        why: "at most 64 readers",
                    });
                }
                serve.readers = n;
            }
            "--db" => serve.db = cwd.join(non_empty(&name, value)?),
            "--www" => serve.www = cwd.join(non_empty(&name, value)?),
            "--pkg" => serve.pkg = cwd.join(non_empty(&name, value)?),
            _ => serve.tap_delay_ms = number(&name, &value)?,
        }
    }
    Ok(Command::Serve(serve))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, CliError> {
    value.parse().map_err(|_| CliError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        why: "not a valid number",
    })
}

fn non_empty(flag: &str, value: String) -> Result<String, CliError> {
    if value.is_empty() {
        return Err(CliError::InvalidValue {
            flag: flag.to_owned(),
            value,
            why: "empty path",
        });
    }
    Ok(value)
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
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        match parse(all, Path::new("/nonexistent-cwd")) {
            Ok(Command::Serve(s)) => s,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = serve(&[]);
        assert_eq!(s.port, 8787);
        assert_eq!(s.api_port(), 8788);
        assert_eq!(s.readers, 2);
        assert_eq!(s.tap_delay_ms, 400);
        assert_eq!(s.db, Path::new("/nonexistent-cwd/pos-sim.db"));
        let repo_www = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
        assert_eq!(s.www, repo_www);
        assert!(s.pkg.ends_with("../pkg"));
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
        ]);
        assert_eq!(s.port, 0);
        assert_eq!(s.api_port(), 0, "P=0 picks a free API port too");
        assert_eq!(s.readers, 3);
        assert_eq!(s.db, Path::new("/tmp/x.db"));
        assert_eq!(s.www, Path::new("/nonexistent-cwd/w"));
        assert_eq!(s.pkg, Path::new("/p"));
        assert_eq!(s.tap_delay_ms, 10);
        assert_eq!(serve(&["--port", "9000", "--api-port", "0"]).api_port(), 0);
        assert_eq!(
            serve(&["--port", "9000", "--api-port", "9100"]).api_port(),
            9100
        );
        assert_eq!(serve(&["--port", "65535"]).api_port(), 0);
    }

    #[test]
    fn help_and_errors() {
        let cwd = Path::new("/");
        assert_eq!(parse(["--help"], cwd), Ok(Command::Help));
        assert_eq!(parse(["serve", "--help"], cwd), Ok(Command::Help));
        assert_eq!(
            parse(Vec::<String>::new(), cwd),
            Err(CliError::MissingCommand)
        );
        assert!(matches!(parse(["run"], cwd), Err(CliError::Unknown(_))));
        assert!(matches!(
            parse(["serve", "--bogus", "1"], cwd),
            Err(CliError::Unknown(_))
        ));
        assert!(matches!(
            parse(["serve", "--port"], cwd),
            Err(CliError::MissingValue(_))
        ));
        for bad in [
            ["serve", "--port", "70000"],
            ["serve", "--port", "x"],
            ["serve", "--readers", "65"],
            ["serve", "--tap-delay-ms", "-1"],
            ["serve", "--db", ""],
        ] {
            assert!(
                matches!(parse(bad, cwd), Err(CliError::InvalidValue { .. })),
                "{bad:?}"
            );
        }
    }
}
