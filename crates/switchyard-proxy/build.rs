//! Checks that a protoc for etcd-client's build script is at hand (tools/protoc runs the one
//! protoc-bin-vendored ships); a missing one is reported here with what to do.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(e) = protoc_bin_vendored::protoc_bin_path() {
        println!(
            "cargo:warning=protoc-bin-vendored has no protoc for this platform ({e}); install protoc and set PROTOC"
        );
    }
}
