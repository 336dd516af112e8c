//! What both criterion benches route with: a realistic multi-service config and snapshot.

use std::sync::Arc;

use switchyard_config::Config;
use switchyard_core::{Registry, Snapshot, snapshot::decisions_from_config};

/// Four services (exact host + path prefix, exact host, wildcard host, catch-all), each with a
/// green and a blue pool of three servers.
pub const CONFIG: &str = r#"
[listen]
http = ["127.0.0.1:8080"]

[services.shop]
hosts = ["shop.example.com"]
path_prefix = "/cart"
active = "green"
[services.shop.pools]
green = ["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"]
blue = ["127.0.0.1:5100", "127.0.0.1:5101", "127.0.0.1:5102"]

[services.web]
hosts = ["shop.example.com", "www.example.com"]
active = "green"
[services.web.pools]
green = ["127.0.0.1:5010", "127.0.0.1:5011", "127.0.0.1:5012"]
blue = ["127.0.0.1:5110", "127.0.0.1:5111", "127.0.0.1:5112"]

[services.tenants]
hosts = ["*.example.com"]
active = "green"
[services.tenants.pools]
green = ["127.0.0.1:5020", "127.0.0.1:5021", "127.0.0.1:5022"]
blue = ["127.0.0.1:5120", "127.0.0.1:5121", "127.0.0.1:5122"]

[services.app]
active = "green"
[services.app.pools]
green = ["127.0.0.1:5030", "127.0.0.1:5031", "127.0.0.1:5032"]
blue = ["127.0.0.1:5130", "127.0.0.1:5131", "127.0.0.1:5132"]
"#;

/// The host and path of the benched request: it goes to `shop` (the most specific route).
pub const HOST: &str = "shop.example.com";
/// See [`HOST`].
pub const PATH: &str = "/cart/items/42";

/// The parsed config.
pub fn config() -> Config {
    switchyard_config::parse_str(CONFIG, "bench.toml").expect("the bench config is valid")
}

/// A snapshot of the config, as the proxy builds it.
pub fn snapshot(config: &Config, registry: &Registry, generation: u64) -> Arc<Snapshot> {
    Arc::new(Snapshot::build(
        config,
        &decisions_from_config(config),
        registry,
        generation,
    ))
}
