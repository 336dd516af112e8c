//! `switchyard check`: a summary and exit 0 for a good file; every problem as
//! `FILE:LINE:COL: message` and exit 1 for a bad one; exit 2 for a usage error.

mod common;

use common::{ConfigFile, cli, error_lines};

#[tokio::test]
async fn a_good_file_is_summarised() {
    let file = ConfigFile::new(
        r#"[listen]
http = ["127.0.0.1:8080", "127.0.0.1:8081"]

[admin]
listen = "127.0.0.1:9901"

[services.app]
active = "green"

[services.app.pools]
green = ["127.0.0.1:5000", "127.0.0.1:5002"]
blue = ["127.0.0.1:5001"]
"#,
    );
    let out = cli(&["check", "-c", &file.arg()], &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{}: ok (1 service, 2 pools, 3 servers; listening on 127.0.0.1:8080, 127.0.0.1:8081; admin on 127.0.0.1:9901)\n",
            file.arg()
        )
    );
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn every_problem_of_a_bad_file_is_printed_with_its_position() {
    // Line numbers matter: the unknown key is on line 3, `active` on line 7, the duration on 13.
    let file = ConfigFile::new(
        r#"[listen]
http = ["127.0.0.1:8080"]
colour = "teal"

[services.app]
hosts = ["app.test"]
active = "purple"

[services.app.pools]
green = ["127.0.0.1:5000"]

[services.app.health]
interval = "soon"
"#,
    );
    let out = cli(&["check", "-c", &file.arg()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    let lines: Vec<usize> = error_lines(&out.stderr, &file.path)
        .into_iter()
        .map(|(line, _)| line)
        .collect();
    for expected in [3, 7, 13] {
        assert!(
            lines.contains(&expected),
            "no problem on line {expected}:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("colour"), "{}", out.stderr);
    assert!(out.stderr.contains("purple"), "{}", out.stderr);
    assert!(out.stderr.contains("soon"), "{}", out.stderr);
}

#[tokio::test]
async fn a_missing_file_fails_with_its_name() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("nope.toml");
    let out = cli(&["check", "-c", &path.display().to_string()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(error_lines(&out.stderr, &path), [(0, 0)]);
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = cli(&["check"], &[]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = cli(&["switch"], &[]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = cli(&["switch", "blue", "--wait-drained=soon"], &[]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = cli(&["split"], &[]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = cli(&["frobnicate"], &[]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = cli(&["--help"], &[]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
}
