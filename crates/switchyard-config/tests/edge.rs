//! The edge settings parse into the typed config they describe; `load_file` resolves and
//! checks paths on disk where `parse_str` does not; `Config::validate` applies the same rules.

mod common;

use common::{APP, addr, parse};

use std::path::Path;
use std::time::Duration;

use switchyard_config::{
    AccessFormat, CertConfig, CompressionConfig, Config, DEFAULT_COMPRESSION_TYPES, IN_CODE_ORIGIN,
    LogFormat, PoolConfig, RateLimitConfig, ServerConfig, ServiceConfig, StaticConfig,
    default_config, load_file, parse_str,
};

const NGINX_MIGRATION: &str = include_str!("../../../config/nginx-migration.toml");

#[test]
fn every_edge_option_is_read() {
    let config = parse(
        "[listen]\nhttp = [\"0.0.0.0:80\"]\nhttps = [\"0.0.0.0:443\", \"[::1]:8443\"]\n\
         redirect_https = true\n\
         [[tls.certs]]\ncert = \"/tls/a.crt\"\nkey = \"/tls/a.key\"\n\
         [[tls.certs]]\ncert = \"b.crt\"\nkey = \"b.key\"\n\
         [admin]\nhistory = 5\n\
         [limits]\nmax_headers = 20\nmax_connections = 3\n\
         [log]\nformat = \"json\"\naccess = false\naccess_format = \"combined\"\n\
         [services.app]\nactive = \"green\"\nupgraded_drain_timeout = \"0s\"\n\
         generate_request_id = false\n\
         pools.green = [\"127.0.0.1:5000\"]\n\
         [services.app.response_headers]\nX-Frame-Options = \"DENY\"\n\
         \"Strict-Transport-Security\" = \"max-age=31536000; includeSubDomains\"\n\
         Content-Security-Policy = \"default-src 'self'\"\n\
         [services.app.compression]\nenabled = true\ngzip = false\nmin_size = \"0B\"\n\
         types = [\"text/*\", \"application/json\"]\n\
         [[services.app.rate_limits]]\nrate = \"100/s\"\nburst = 100000\n\
         [[services.app.rate_limits]]\npath_prefix = \"/login/\"\nrate = \"30r/m\"\n\
         [[services.app.static]]\npath_prefix = \"/static/\"\ndir = \"www/static\"\n\
         cache_control = \"public, max-age=3600\"\nindex = \"index.html\"\n\
         [[services.app.static]]\npath_prefix = \"/\"\ndir = \"/srv/site\"\n",
    );
    assert_eq!(config.listen.http, vec![addr("0.0.0.0:80")]);
    assert_eq!(
        config.listen.https,
        vec![addr("0.0.0.0:443"), addr("[::1]:8443")]
    );
    assert!(config.listen.redirect_https);
    // In file order: the first is the default certificate. No file: paths stay as written.
    assert_eq!(
        config.tls.certs,
        vec![
            CertConfig::new("/tls/a.crt", "/tls/a.key"),
            CertConfig::new("b.crt", "b.key"),
        ]
    );
    assert_eq!(config.admin.history, 5);
    assert_eq!(config.limits.max_headers, 20);
    assert_eq!(config.limits.max_connections, 3);
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(!config.log.access);
    assert_eq!(config.log.access_format, Some(AccessFormat::Combined));
    let app = &config.services["app"];
    assert_eq!(app.upgraded_drain_timeout, Some(Duration::ZERO));
    assert!(!app.generate_request_id);
    // In file order, not name order, and spelled as written.
    let headers: Vec<(&str, &str)> = app
        .response_headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("X-Frame-Options", "DENY"),
            (
                "Strict-Transport-Security",
                "max-age=31536000; includeSubDomains"
            ),
            ("Content-Security-Policy", "default-src 'self'"),
        ]
    );
    assert_eq!(
        app.compression,
        CompressionConfig {
            enabled: true,
            gzip: false,
            brotli: true,
            min_size: 0,
            types: vec!["text/*".into(), "application/json".into()],
        }
    );
    assert_eq!(
        app.rate_limits,
        vec![
            RateLimitConfig {
                path_prefix: None,
                rate: 100.0,
                burst: 100_000,
            },
            RateLimitConfig {
                path_prefix: Some("/login".into()),
                rate: 0.5,
                burst: 0,
            },
        ]
    );
    assert_eq!(
        app.static_files,
        vec![
            StaticConfig {
                path_prefix: "/static".into(),
                dir: "www/static".into(),
                cache_control: Some("public, max-age=3600".into()),
                index: Some("index.html".into()),
            },
            StaticConfig::new("/", "/srv/site"),
        ]
    );
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn edge_defaults() {
    let config = parse(APP);
    assert!(config.listen.https.is_empty());
    assert!(!config.listen.redirect_https);
    assert!(config.tls.certs.is_empty());
    assert_eq!(config.admin.history, 200);
    assert_eq!(config.limits.max_headers, 100);
    assert_eq!(config.limits.max_connections, 10_000);
    assert_eq!(config.log.format, LogFormat::Text);
    assert!(config.log.access);
    assert_eq!(config.log.access_format, None);
    let app = &config.services["app"];
    assert_eq!(app.upgraded_drain_timeout, None);
    assert!(app.generate_request_id);
    assert!(app.response_headers.is_empty());
    assert!(app.rate_limits.is_empty());
    assert!(app.static_files.is_empty());
    let compression = &app.compression;
    assert!(!compression.enabled && compression.gzip && compression.brotli);
    assert_eq!(compression.min_size, 1024);
    assert_eq!(compression.types, DEFAULT_COMPRESSION_TYPES.to_vec());
    assert_eq!(default_config().tls, config.tls);
}

#[test]
fn https_only() {
    let config = parse(&format!(
        "[listen]\nhttp = []\nhttps = [\"0.0.0.0:443\"]\n\
         [[tls.certs]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{APP}"
    ));
    assert!(config.listen.http.is_empty());
    assert_eq!(config.listen.https, vec![addr("0.0.0.0:443")]);
    // Leaving `http` out keeps the default plain listener next to the TLS one.
    let config = parse(&format!(
        "[listen]\nhttps = [\"0.0.0.0:443\"]\n[[tls.certs]]\ncert = \"c\"\nkey = \"k\"\n{APP}"
    ));
    assert_eq!(config.listen.http, vec![addr("0.0.0.0:8080")]);
}

#[test]
fn the_nginx_migration_example_parses_without_touching_the_disk() {
    let config = parse(NGINX_MIGRATION);
    assert_eq!(config.listen.http, vec![addr("0.0.0.0:80")]);
    assert_eq!(config.listen.https, vec![addr("0.0.0.0:443")]);
    assert!(config.listen.redirect_https);
    let names: Vec<_> = config.tls.certs.iter().map(|c| c.cert.clone()).collect();
    assert_eq!(
        names,
        [
            Path::new("/etc/switchyard/tls/example.com.crt"),
            Path::new("/etc/switchyard/tls/api.example.com.crt"),
        ]
    );
    assert_eq!(config.log.format, LogFormat::Json);
    let site = &config.services["site"];
    assert_eq!(site.hosts.len(), 2);
    assert_eq!(site.upgraded_drain_timeout, Some(Duration::from_secs(30)));
    let header_names: Vec<_> = site
        .response_headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        header_names,
        [
            "Strict-Transport-Security",
            "X-Frame-Options",
            "X-Content-Type-Options",
            "Content-Security-Policy"
        ]
    );
    assert!(site.compression.enabled);
    assert_eq!(site.rate_limits[0].path_prefix.as_deref(), Some("/login"));
    assert_eq!(
        (site.rate_limits[0].rate, site.rate_limits[0].burst),
        (10.0, 20)
    );
    assert_eq!(
        site.static_files[0].dir,
        Path::new("/var/www/example/static")
    );
    assert_eq!(site.pools["blue"].servers.len(), 2);
    let api = &config.services["api"];
    assert_eq!(api.compression.types, ["application/json"]);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn the_nginx_migration_example_loaded_from_a_file_checks_its_static_directory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("nginx-migration.toml");
    std::fs::write(&path, NGINX_MIGRATION).expect("write");
    let errors = load_file(&path).expect_err("/var/www/example/static does not exist here");
    assert_eq!(errors.len(), 1, "{errors}");
    let error = &errors.0[0];
    let line = NGINX_MIGRATION
        .lines()
        .position(|l| l.starts_with("dir = "))
        .expect("a static dir")
        + 1;
    assert_eq!((error.line, error.column), (line, 7), "{error}");
    assert!(
        error.message.starts_with(
            "services.site.static[0].dir: directory \"/var/www/example/static\" does not exist"
        ),
        "{error}"
    );
}

#[test]
fn load_file_resolves_relative_paths_against_the_config_directory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir_all(dir.path().join("conf/www")).expect("mkdir");
    std::fs::write(dir.path().join("conf/file.txt"), "x").expect("write");
    let text = format!(
        "[listen]\nhttps = [\"127.0.0.1:0\"]\n\
         [[tls.certs]]\ncert = \"tls/site.crt\"\nkey = \"/abs/site.key\"\n{APP}\
         [[services.app.static]]\npath_prefix = \"/\"\ndir = \"www\"\n"
    );
    let path = dir.path().join("conf/switchyard.toml");
    std::fs::write(&path, &text).expect("write");
    let config = load_file(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let conf = dir.path().join("conf");
    // Certificates are resolved but not read (tls/site.crt does not exist).
    assert_eq!(
        config.tls.certs,
        vec![CertConfig::new(conf.join("tls/site.crt"), "/abs/site.key")]
    );
    assert_eq!(config.services["app"].static_files[0].dir, conf.join("www"));
    // The same text without a file keeps the paths as written and does not look at the disk.
    let config = parse(&text);
    assert_eq!(config.tls.certs[0].cert, Path::new("tls/site.crt"));
    assert_eq!(config.services["app"].static_files[0].dir, Path::new("www"));

    // A static dir that is a file, or missing, is an error at its `dir`, naming the path.
    let bad = format!(
        "{APP}[[services.app.static]]\npath_prefix = \"/a\"\ndir = \"file.txt\"\n\
         [[services.app.static]]\npath_prefix = \"/b\"\ndir = \"missing\"\n"
    );
    std::fs::write(&path, &bad).expect("write");
    let errors = load_file(&path).expect_err("bad dirs");
    assert_eq!(errors.len(), 2, "{errors}");
    let file = conf.join("file.txt");
    let missing = conf.join("missing");
    assert_eq!((errors.0[0].line, errors.0[0].column), (7, 7));
    assert_eq!(
        errors.0[0].message,
        format!(
            "services.app.static[0].dir: \"{}\" is not a directory",
            file.display()
        )
    );
    assert_eq!((errors.0[1].line, errors.0[1].column), (10, 7));
    assert_eq!(
        errors.0[1].message,
        format!(
            "services.app.static[1].dir: directory \"{}\" does not exist",
            missing.display()
        )
    );
    assert!(parse_str(&bad, "t").is_ok());
}

fn in_code_messages(config: &Config) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                assert_eq!((e.origin.as_str(), e.line), (IN_CODE_ORIGIN, 0));
                e.message.clone()
            })
            .collect(),
    }
}

fn in_code_config() -> Config {
    let pools = [(
        "green".to_string(),
        PoolConfig::new(vec![ServerConfig::new(addr("127.0.0.1:5000"))]),
    )]
    .into_iter()
    .collect();
    let mut service = ServiceConfig::new("app", "green", pools);
    service.path_prefix = Some("/app".into());
    let mut config = Config::default();
    config.services.insert("app".into(), service);
    config
}

#[test]
fn edge_settings_built_in_code_validate() {
    let mut config = in_code_config();
    config.listen.https = vec![addr("0.0.0.0:443")];
    config.listen.redirect_https = true;
    config.tls.certs = vec![CertConfig::new("a.crt", "a.key")];
    let app = config.services.get_mut("app").expect("app");
    app.response_headers = vec![("X-Frame-Options".into(), "DENY".into())];
    app.compression.enabled = true;
    app.rate_limits = vec![RateLimitConfig::new(5.0)];
    app.static_files = vec![StaticConfig::new("/app/static", "/srv")];
    assert_eq!(in_code_messages(&config), Vec::<String>::new());
}

#[test]
fn every_edge_problem_built_in_code_is_reported() {
    let mut config = in_code_config();
    config.listen.http = vec![addr("0.0.0.0:8443")];
    config.listen.https = vec![addr("0.0.0.0:8443")];
    config.tls.certs.clear();
    config.limits.max_headers = 0;
    config.limits.max_connections = 0;
    config.admin.history = 0;
    let app = config.services.get_mut("app").expect("app");
    app.response_headers = vec![
        ("X Bad".into(), "ok".into()),
        ("x-a".into(), "line\nbreak".into()),
        ("X-A".into(), "again".into()),
    ];
    app.compression.enabled = true;
    app.compression.gzip = false;
    app.compression.brotli = false;
    app.compression.types = vec!["Text/HTML".into(), "text/css".into(), "text/css".into()];
    app.rate_limits = vec![
        RateLimitConfig::new(0.0),
        RateLimitConfig {
            path_prefix: Some("/app/login/".into()),
            rate: 1.0,
            burst: 100_001,
        },
        RateLimitConfig {
            path_prefix: Some("/other".into()),
            ..RateLimitConfig::new(1.0)
        },
        RateLimitConfig::new(2.0),
    ];
    app.static_files = vec![
        StaticConfig {
            cache_control: Some(String::new()),
            index: Some("a/b".into()),
            ..StaticConfig::new("/app/s/", "")
        },
        StaticConfig::new("/", "/srv"),
    ];
    let mut other = in_code_config();
    other.listen.http.clear();
    other.listen.redirect_https = true;
    other.tls.certs = vec![CertConfig::new("", "k")];
    let found = [in_code_messages(&config), in_code_messages(&other)].concat();
    let expected = [
        "listen.https[0]: duplicate listener 0.0.0.0:8443: listen.http[0] already listens there",
        "listen.https: https listeners need a certificate",
        "limits.max_headers: must be between 1 and 1000, got 0",
        "limits.max_connections: must be at least 1, got 0",
        "admin.history: must be between 1 and 100000, got 0",
        "services.app.response_headers[0]: bad header name \"X Bad\"",
        "services.app.response_headers[1]: bad header value \"line\\nbreak\"",
        "services.app.response_headers[2]: header \"X-A\" is set twice",
        "services.app.compression.types[0]: bad content type \"Text/HTML\"",
        "services.app.compression.types[2]: \"text/css\" is listed twice",
        "services.app.compression: compression is enabled but both `gzip` and `brotli` are off",
        "services.app.rate_limits[0].rate: must be more than 0 requests per second, got 0",
        "services.app.rate_limits[1].path_prefix: not in normal form",
        "services.app.rate_limits[1].burst: must be between 0 and 100000, got 100001",
        "services.app.rate_limits[2].path_prefix: path prefix \"/other\" is outside",
        "services.app.rate_limits[3]: this service already has a rate limit",
        "services.app.static[0].path_prefix: not in normal form",
        "services.app.static[0].dir: the path is empty",
        "services.app.static[0].cache_control: it is empty",
        "services.app.static[0].index: bad index file \"a/b\"",
        "services.app.static[1].path_prefix: path prefix \"/\" is outside",
        // `other`:
        "listen.http: no client listener",
        "listen.redirect_https: there is no https listener to redirect to",
        "tls.certs: certificates are given but there is no https listener",
        "tls.certs[0].cert: the path is empty",
    ];
    for want in expected {
        assert!(
            found.iter().any(|m| m.starts_with(want)),
            "missing {want:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}
