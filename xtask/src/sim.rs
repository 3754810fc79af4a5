//! Starting pos-sim as a child: wait for its `POS_SIM_READY {json}` line, kill it on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::{display_cmd, step, Ctx, Result};

const READY_PREFIX: &str = "POS_SIM_READY ";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running pos-sim; dropping it kills the process and reaps it.
pub struct PosSim {
    child: Child,
    pub ready: Value,
}

impl PosSim {
    /// Starts `pos-sim <args>` from the repo root. Its stdout lines other than the ready
    /// line are echoed with `stdout_prefix`; stderr goes to `stderr`.
    pub fn start(
        ctx: &Ctx,
        args: &[&str],
        stderr: Stdio,
        stdout_prefix: &'static str,
    ) -> Result<PosSim> {
        let bin = ctx.pos_sim_bin();
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .current_dir(&ctx.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", display_cmd(&cmd)))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout for the child's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix(READY_PREFIX) {
                    Some(rest) if tx.is_some() => {
                        let _ = tx.take().expect("checked").send(rest.to_string());
                    }
                    _ => println!("{stdout_prefix}{line}"),
                }
            }
        });
        // Owned by the guard from here on, so every early return below kills the child.
        let mut sim = PosSim {
            child,
            ready: Value::Null,
        };
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "`{}` printed no `{}…` line within {}s",
                    display_cmd(&cmd),
                    READY_PREFIX.trim(),
                    READY_TIMEOUT.as_secs()
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = sim
                    .child
                    .wait()
                    .map_or("unknown status".into(), |s| s.to_string());
                return Err(format!(
                    "`{}` exited ({status}) before printing its `{}…` line",
                    display_cmd(&cmd),
                    READY_PREFIX.trim()
                ));
            }
        };
        sim.ready = serde_json::from_str(&line)
            .map_err(|e| format!("pos-sim's ready line is not JSON ({e}): {line}"))?;
        Ok(sim)
    }

    /// A string field of the ready JSON.
    pub fn field(&self, key: &str) -> Result<String> {
        self.ready
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("pos-sim's ready line has no string `{key}`: {}", self.ready))
    }

    pub fn wait(&mut self) -> Result<std::process::ExitStatus> {
        self.child
            .wait()
            .map_err(|e| format!("waiting for pos-sim: {e}"))
    }
}

impl Drop for PosSim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn demo(ctx: &Ctx, port: u16) -> Result<i32> {
    step(&format!("pos-sim serve --port {port}"));
    let port = port.to_string();
    let (www, pkg) = ctx.www_and_pkg()?;
    let mut sim = PosSim::start(
        ctx,
        &["serve", "--port", &port, "--www", www, "--pkg", pkg],
        Stdio::inherit(),
        "",
    )?;
    let url = sim.field("url")?;
    let bar = "=".repeat(url.len() + 12);
    println!("\n{bar}\n  Demo POS: {url}\n{bar}");
    if let Ok(api) = sim.field("api") {
        println!("  Backend API: {api}");
    }
    for (i, reader) in reader_urls(&sim.ready).iter().enumerate() {
        println!("  Reader {}: {reader}", i + 1);
    }
    println!("  Stop with Ctrl-C.\n");
    let status = sim.wait()?;
    Ok(exit_code(status))
}

/// Reader URLs from the ready JSON: `readers` as strings, or objects with a `url`.
fn reader_urls(ready: &Value) -> Vec<String> {
    let Some(readers) = ready.get("readers").and_then(Value::as_array) else {
        return Vec::new();
    };
    readers
        .iter()
        .map(|r| match r {
            Value::String(s) => s.clone(),
            other => other
                .get("url")
                .and_then(Value::as_str)
                .map_or_else(|| other.to_string(), str::to_string),
        })
        .collect()
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

/// The last `n` lines of a log file, for failure reports.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_urls_accept_strings_and_objects() {
        let ready: Value = serde_json::from_str(
            r#"{"url":"http://127.0.0.1:1/","readers":["ws://a/1",{"id":"r2","url":"ws://a/2"},{"id":"r3"}]}"#,
        )
        .unwrap();
        let urls = reader_urls(&ready);
        assert_eq!(urls, ["ws://a/1", "ws://a/2", r#"{"id":"r3"}"#]);
    }
}
