//! Running one of the dashboard's browser scripts (`tests/browser/*.mjs`, node and
//! playwright-core driving headless Chromium) and collecting what it printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of the browser scripts and their `node_modules`.
pub fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"))
}

/// What a browser test needs, or why it cannot run here.
pub fn tools() -> Result<(), String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is missing (apt-get install chromium)".into());
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node is missing".into());
    }
    if !dir().join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is missing (npm ci in {})",
            dir().display()
        ));
    }
    Ok(())
}

/// Runs `node SCRIPT ARGS…` for at most two minutes; its standard output, or a panic with
/// everything it printed when it fails.
pub async fn run(script: &str, args: &[String]) -> String {
    let run = tokio::process::Command::new("node")
        .arg(dir().join(script))
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = crate::within(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|| panic!("{script} did not finish within 2 minutes"))
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
