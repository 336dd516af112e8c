//! The safe-rollout client commands against the real binary: `mirror`, `split --sticky`,
//! `switch --ramp` and `switch --wait-guarded` (exit 0 when the guard's window passed, 1 when it
//! rolled back).

mod common;

use std::time::Duration;

use common::{ConfigFile, Proxy, cli, two_colour_config};
use switchyard_tests::{TestApp, poll_until};

/// Two apps and the binary in front of them with a guard, every server healthy.
async fn start(window: &str) -> (TestApp, TestApp, ConfigFile, Proxy) {
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let guard = format!(
        "\n[services.app.guard]\nwindow = \"{window}\"\nmax_error_rate = 0.1\nmin_requests = 5\nmax_p99_factor = 0.0\n"
    );
    let text = format!(
        "{}{guard}",
        two_colour_config(green.addr(), blue.addr(), "")
    );
    let file = ConfigFile::new(&text);
    let proxy = Proxy::start(&["-c", &file.arg()], &[]).await;
    proxy.wait_healthy().await;
    (green, blue, file, proxy)
}

async fn run(proxy: &Proxy, args: &[&str]) -> common::Output {
    let admin = proxy.admin_url();
    let mut all = args.to_vec();
    all.extend(["--admin", admin.as_str()]);
    cli(&all, &[]).await
}

#[tokio::test]
async fn mirror_sticky_split_and_ramp_from_the_command_line() {
    let (_green, blue, _file, proxy) = start("2m").await;
    let out = run(&proxy, &["mirror", "blue", "--percent", "100"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("copying 100% of GET, HEAD to blue"),
        "{out:?}"
    );
    assert_eq!(
        proxy.status(None).await["services"]["app"]["mirror"]["to"],
        "blue"
    );
    let before = blue.count_path("/");
    proxy.get("/").await;
    poll_until(Duration::from_secs(10), || async {
        blue.count_path("/") == before + 1
    })
    .await;
    let out = run(&proxy, &["mirror", "--off"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(proxy.status(None).await["services"]["app"]["mirror"].is_null());
    let out = run(&proxy, &["mirror", "purple"]).await;
    assert_eq!(out.code, Some(1), "an unknown pool: {out:?}");

    let out = run(&proxy, &["split", "blue=10", "--sticky"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("sticky"), "{out:?}");
    assert_eq!(proxy.status(None).await["services"]["app"]["sticky"], true);

    let out = run(&proxy, &["switch", "blue", "--ramp", "1m"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("ramping to blue over 1m"), "{out:?}");
    let status = proxy.status(None).await;
    assert_eq!(status["services"]["app"]["ramp"]["to"], "blue");
    assert_eq!(status["services"]["app"]["split"]["blue"], 10);
    let out = run(&proxy, &["rollback"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let status = proxy.status(None).await;
    assert!(
        status["services"]["app"]["ramp"].is_null() && status["services"]["app"]["split"].is_null()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_guarded_exits_0_when_the_window_passes_and_1_when_it_rolls_back() {
    let (_green, _blue, _file, proxy) = start("1500ms").await;
    // Traffic to the new colour while the guard watches it.
    let http = proxy.http;
    let traffic = |path: &'static str| {
        tokio::spawn(async move {
            let mut client = switchyard_tests::KeepAliveClient::connect(http).await;
            for _ in 0..400 {
                if client.get(path, "app.test").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let load = traffic("/");
    let out = run(&proxy, &["switch", "blue", "--wait-guarded=20s"]).await;
    load.abort();
    assert_eq!(out.code, Some(0), "a healthy colour passes: {out:?}");
    assert!(out.stdout.contains("passed after"), "{out:?}");

    let load = traffic("/status/500");
    let out = run(&proxy, &["switch", "green", "--wait-guarded=20s"]).await;
    load.abort();
    assert_eq!(
        out.code,
        Some(1),
        "a failing colour is rolled back: {out:?}"
    );
    assert!(out.stderr.contains("rolled back"), "{out:?}");
    assert_eq!(
        proxy.status(None).await["services"]["app"]["active"],
        "blue"
    );
}
