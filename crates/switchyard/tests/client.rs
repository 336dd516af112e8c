//! The admin client commands against a running proxy: `status`, `switch`, `rollback`, `split`,
//! the token, and the `--wait-healthy` / `--wait-drained` waits.

mod common;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use common::{ConfigFile, Proxy, cli, closed_port, two_colour_config};
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

/// Two apps and a proxy in front of them, every server healthy.
struct Setup {
    green: TestApp,
    blue: TestApp,
    file: ConfigFile,
    proxy: Proxy,
}

impl Setup {
    async fn start(extra: &str, envs: &[(&str, &str)]) -> Setup {
        let green = TestApp::start("green").await;
        let blue = TestApp::start("blue").await;
        let file = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), extra));
        let proxy = Proxy::start(&["-c", &file.arg()], envs).await;
        Setup {
            green,
            blue,
            file,
            proxy,
        }
    }

    /// Runs a client command against this proxy.
    async fn cli(&self, args: &[&str]) -> common::Output {
        self.cli_env(args, &[]).await
    }

    async fn cli_env(&self, args: &[&str], envs: &[(&str, &str)]) -> common::Output {
        let admin = self.proxy.admin_url();
        let mut all = args.to_vec();
        all.extend(["--admin", admin.as_str()]);
        cli(&all, envs).await
    }

    async fn colour(&self) -> String {
        self.proxy.get("/").await.text()
    }
}

#[tokio::test]
async fn status_switch_rollback_and_refusals() {
    let s = Setup::start("", &[]).await;
    s.proxy.wait_healthy().await;

    let out = s.cli(&["status"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let row: Vec<&str> = out
        .stdout
        .lines()
        .find(|l| l.starts_with("app "))
        .expect("a row for the service")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["app", "green", "-"], "{}", out.stdout);
    assert!(
        out.stdout.contains(&s.green.addr().to_string()),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("HEALTH"), "{}", out.stdout);

    let out = s.cli(&["status", "--json"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    assert_eq!(json["services"]["app"]["active"], "green");
    let generation = json["generation"].as_u64().expect("a generation");

    let out = s.cli(&["switch", "blue"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!("app: green -> blue (generation {})\n", generation + 1)
    );
    assert_eq!(s.colour().await, "blue");

    let out = s.cli(&["switch", "blue", "--service", "app"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("app: already on blue"),
        "{}",
        out.stdout
    );

    let out = s.cli(&["rollback"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("app: blue -> green"),
        "{}",
        out.stdout
    );
    assert_eq!(s.colour().await, "green");

    let out = s.cli(&["switch", "purple"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "error: service `app` has no pool `purple` (pools: blue, green)\n"
    );
    let out = s.cli(&["rollback", "--service", "web"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr, "error: unknown service `web`\n");
    assert_eq!(s.colour().await, "green");

    // The history names the CLI as the actor, newest first.
    let out = s.cli(&["history"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert!(
        rows[0].contains("rollback")
            && rows[0].contains("blue -> green")
            && rows[0].contains("cli"),
        "{}",
        out.stdout
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("switch") && r.contains("green -> blue") && r.contains("applied")),
        "{}",
        out.stdout
    );
    let out = s.cli(&["history", "--json", "-n", "1"]).await;
    let json: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("history --json is JSON");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["entries"][0]["actor"], "cli");
}

#[tokio::test]
async fn split_and_split_off() {
    let s = Setup::start("", &[]).await;
    s.proxy.wait_healthy().await;
    let out = s.cli(&["split", "blue=1", "green=0"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("app: split blue=1 green=0"),
        "{}",
        out.stdout
    );
    assert_eq!(s.colour().await, "blue");
    let status = s.cli(&["status"]).await;
    assert!(
        status.stdout.contains("blue=1 green=0"),
        "{}",
        status.stdout
    );

    let out = s.cli(&["split", "--off"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .starts_with("app: split off, all traffic to green"),
        "{}",
        out.stdout
    );
    assert_eq!(s.colour().await, "green");

    let out = s.cli(&["split", "purple=3"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no pool `purple`"), "{}", out.stderr);
}

#[tokio::test]
async fn the_token_is_required_when_configured() {
    let token = "s3cret-token";
    let s = Setup::start(
        "token_env = \"SWITCHYARD_TEST_TOKEN\"\n",
        &[("SWITCHYARD_TEST_TOKEN", token)],
    )
    .await;

    let out = s.cli(&["status"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: missing or wrong bearer token\n"),
        "{}",
        out.stderr
    );
    let out = s
        .cli_env(
            &["switch", "blue", "--force"],
            &[("SWITCHYARD_ADMIN_TOKEN", "wrong")],
        )
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("bearer token"), "{}", out.stderr);

    let with_token = [("SWITCHYARD_ADMIN_TOKEN", token)];
    let out = s.cli_env(&["status", "--json"], &with_token).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = s.cli_env(&["switch", "blue", "--force"], &with_token).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(s.colour().await, "blue");
}

#[tokio::test]
async fn an_unreachable_admin_api_is_explained() {
    let nowhere = closed_port().await;
    let out = cli(&["status", "--admin", &format!("http://{nowhere}")], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: cannot reach the admin API at"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("is switchyard running?"),
        "{}",
        out.stderr
    );
    // The address also comes from SWITCHYARD_ADMIN.
    let url = format!("http://{nowhere}");
    let out = cli(&["rollback"], &[("SWITCHYARD_ADMIN", &url)]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&nowhere.to_string()), "{}", out.stderr);
}

#[tokio::test]
async fn the_client_port_given_as_admin_is_explained() {
    let s = Setup::start("", &[]).await;
    s.proxy.wait_healthy().await;
    let client = format!("http://{}", s.proxy.http);
    for args in [&["status"][..], &["switch", "blue"][..]] {
        let mut all = args.to_vec();
        all.extend(["--admin", client.as_str()]);
        let out = cli(&all, &[]).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr.contains("not its client port?"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("line 1 column 1"), "{}", out.stderr);
    }
    assert_eq!(s.colour().await, "green", "nothing was switched");
}

#[tokio::test]
async fn a_refused_switch_names_the_cli_flag() {
    let s = Setup::start("", &[]).await;
    s.proxy.wait_healthy().await;
    s.blue.set_healthy(false);
    s.proxy
        .wait_status("blue down", |st| {
            st["services"]["app"]["pools"]["blue"]["servers"][0]["healthy"] == false
        })
        .await;
    let out = s.cli(&["switch", "blue"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("(CLI: --force)"), "{}", out.stderr);
}

#[tokio::test]
async fn wait_drained_returns_once_the_old_colour_has_finished() {
    let s = Setup::start("", &[]).await;
    s.proxy.wait_healthy().await;

    // A slow request on green, in flight while we switch.
    let finished: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut client = KeepAliveClient::connect(s.proxy.http).await;
    let done = finished.clone();
    let slow = tokio::spawn(async move {
        let resp = client.get("/slow?ms=800", "app.test").await;
        *done.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        resp
    });
    poll_until(common::WAIT, || async { s.green.in_flight() == 1 }).await;

    let out = s.cli(&["switch", "blue", "--wait-drained=10s"]).await;
    let returned = Instant::now();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("app: green -> blue"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("waiting for green to drain… drained after"),
        "{}",
        out.stdout
    );
    let finished_at = finished
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .expect("the slow request finished before the switch command returned");
    assert!(finished_at <= returned);
    let resp = slow
        .await
        .expect("the slow task")
        .expect("the slow request");
    assert_eq!((resp.status.as_u16(), resp.text().as_str()), (200, "green"));
    assert_eq!(s.colour().await, "blue");
}

#[tokio::test]
async fn wait_healthy_waits_for_the_target_pool() {
    let red = closed_port().await;
    let extra_pool = format!("red = [\"{red}\"]\n");
    let s = Setup::start("", &[]).await;
    s.proxy.wait_healthy().await;
    // The config has no third pool; add one by reload so the proxy knows `red`.
    let config = std::fs::read_to_string(&s.file.path).expect("read the config");
    s.file
        .rewrite(&config.replace("blue = [", &format!("{extra_pool}blue = [")));
    let out = s.cli(&["reload"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with("reloaded (generation "),
        "{}",
        out.stdout
    );

    // Nothing listens for red: the wait gives up, and nothing is switched.
    let out = s.cli(&["switch", "red", "--wait-healthy=1s"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("pool `red` of service `app` has no healthy server"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("after 1s"), "{}", out.stderr);
    assert_eq!(s.colour().await, "green");

    // Blue goes down, then comes back while the command waits.
    s.blue.set_healthy(false);
    s.proxy
        .wait_status("blue down", |st| {
            st["services"]["app"]["pools"]["blue"]["servers"][0]["healthy"] == false
        })
        .await;
    let (out, ()) = tokio::join!(s.cli(&["switch", "blue", "--wait-healthy=10s"]), async {
        // Let a few health checks go by (so the command has most likely seen blue down), then
        // bring it back.
        let seen = s.blue.health_checks();
        poll_until(common::WAIT, || async {
            s.blue.health_checks() >= seen + 3
        })
        .await;
        s.blue.set_healthy(true);
    });
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("app: green -> blue"), "{}", out.stdout);
    assert_eq!(s.colour().await, "blue");
}
