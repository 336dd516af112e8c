//! Runs the embedding example's code: the proxy started in-process on our own listeners.

#[path = "../examples/embedded.rs"]
mod embedded;

#[tokio::test]
async fn the_embedding_example_switches_and_rolls_back() {
    let seen = embedded::demo().await.expect("the demo runs");
    assert_eq!(
        seen,
        embedded::Observed {
            before: "green".into(),
            after_switch: "blue".into(),
            after_rollback: "green".into(),
        }
    );
}
