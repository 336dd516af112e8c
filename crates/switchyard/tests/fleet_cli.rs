//! Fleet mode through the real binary and the CLI: two `switchyard serve` processes on one
//! etcd prefix, a switch through one that waits until both applied it (`--wait-converged`),
//! and `switchyard fleet` printing both nodes.
//!
//! Needs the `etcd` binary (Debian's etcd-server): ignored by a plain `cargo test`; `.ci/run`
//! installs etcd and runs it with `--ignored`.

mod common;

use common::{ConfigFile, Proxy, cli, two_colour_config};
use switchyard_tests::etcd::Etcd;
use switchyard_tests::{KeepAliveClient, TestApp, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (Debian's etcd-server; .ci/run installs it and runs this)"]
async fn switch_waits_for_the_fleet_and_fleet_lists_every_node() {
    assert!(
        switchyard_tests::etcd::available(),
        "needs etcd (install Debian's etcd-server or set ETCD_BIN)"
    );
    let etcd = Etcd::start().await;
    let green = TestApp::start("green").await;
    let blue = TestApp::start("blue").await;
    let fleet = |node: &str| {
        format!(
            "\n[fleet]\netcd = [\"{}\"]\nprefix = \"/cli/test\"\nnode = \"{node}\"\n",
            etcd.url()
        )
    };
    let file_a = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), &fleet("one")));
    let file_b = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), &fleet("two")));
    let a = Proxy::start(&["-c", &file_a.arg()], &[]).await;
    let b = Proxy::start(&["-c", &file_b.arg()], &[]).await;

    // Both report to the fleet before the switch, so "converged" means both.
    poll_until(std::time::Duration::from_secs(15), || async {
        let out = cli(&["fleet", "--json", "--admin", &a.admin_url()], &[]).await;
        out.stdout.matches("\"alive\": true").count() == 2
    })
    .await;
    let out = cli(
        &[
            "switch",
            "blue",
            "--wait-healthy",
            "--wait-converged=10s",
            "--admin",
            &a.admin_url(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("green -> blue"), "{out:?}");
    assert!(out.stdout.contains("converged after"), "{out:?}");
    // Converged means b serves blue now.
    let mut client = KeepAliveClient::connect(b.http).await;
    let answer = client.get("/", "app.test").await.expect("b answers");
    assert_eq!(answer.colour(), Some("blue"));

    let table = cli(&["fleet", "--admin", &b.admin_url()], &[]).await;
    assert_eq!(table.code, Some(0), "{table:?}");
    assert!(
        table
            .stdout
            .contains("/cli/test on etcd: node two, connected"),
        "{table:?}"
    );
    for node in ["one", "two"] {
        let row = table
            .stdout
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("no row for {node}:\n{table:?}"));
        assert!(
            row.contains("yes"),
            "{node} converged and alive:\n{table:?}"
        );
    }
    let status = cli(&["status", "--admin", &b.admin_url()], &[]).await;
    assert!(status.stdout.contains("fleet /cli/test"), "{status:?}");

    // Without [fleet], `switchyard fleet` says so and exits 1.
    let plain = ConfigFile::new(&two_colour_config(green.addr(), blue.addr(), ""));
    let c = Proxy::start(&["-c", &plain.arg()], &[]).await;
    let out = cli(&["fleet", "--admin", &c.admin_url()], &[]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not in fleet mode"), "{out:?}");
}
