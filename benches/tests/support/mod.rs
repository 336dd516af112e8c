//! What the config tests share: running the real tools' own config checks.

use std::path::Path;
use std::process::Command;

use switchyard_bench::compare::targets::which;

/// Writes `conf` to `dir/nginx.conf` and asserts that `nginx -t` (prefix `dir`) accepts it.
pub fn assert_nginx_accepts(dir: &Path, conf: &str) {
    let nginx =
        which("nginx").expect("nginx is installed (this test is for machines that have it)");
    let conf_file = dir.join("nginx.conf");
    std::fs::write(&conf_file, conf).expect("write conf");
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_file)
        .arg("-e")
        .arg(dir.join("error.log"))
        .output()
        .expect("run nginx -t");
    assert!(
        out.status.success(),
        "nginx -t refused the config: {}\n{conf}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `conf` to `dir/haproxy.cfg` and asserts that `haproxy -c` accepts it.
pub fn assert_haproxy_accepts(dir: &Path, conf: &str) {
    let haproxy =
        which("haproxy").expect("HAProxy is installed (this test is for machines that have it)");
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, conf).expect("write conf");
    let out = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .expect("run haproxy -c");
    assert!(
        out.status.success(),
        "haproxy -c refused the config: {}{}\n{conf}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
