//! Every kind of config problem is reported with its message, line and column.

mod common;

use common::{APP, check, errors, one};

use switchyard_config::parse_str;

#[test]
fn syntax_error_has_tomls_position() {
    one(
        &format!("{APP}[listen\nhttp = []\n"),
        5,
        8,
        &["TOML syntax error", "expected `]`"],
    );
}

#[test]
fn unknown_key_names_key_table_and_allowed_keys() {
    one(
        &format!("{APP}[services.app.health]\npath = \"/h\"\n  intervall = \"2s\"\n"),
        7,
        3,
        &[
            "unknown key `intervall`",
            "in table `services.app.health`",
            "did you mean `interval`?",
            "allowed keys: path, interval, timeout, expect_status, rise, fall",
        ],
    );
}

#[test]
fn unknown_top_level_table() {
    one(
        &format!("[listne]\nhttp = []\n{APP}"),
        1,
        2,
        &[
            "unknown key `listne` at the top level",
            "did you mean `listen`?",
            "services",
        ],
    );
}

#[test]
fn several_unknown_keys_are_all_reported() {
    let text = format!("{APP}[limits]\nfoo = 1\nbar = 2\n[runtime]\nbaz = \"x\"\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    check(&errors[0], 6, 1, &["unknown key `foo`", "table `limits`"]);
    check(&errors[1], 7, 1, &["unknown key `bar`", "max_body"]);
    check(
        &errors[2],
        9,
        1,
        &["unknown key `baz`", "table `runtime`", "worker_threads"],
    );
}

#[test]
fn wrong_type() {
    one(
        "[services.app]\nactive = 7\n[services.app.pools]\ngreen = [\"127.0.0.1:5000\"]\n",
        2,
        10,
        &[
            "services.app.active",
            "wrong type",
            "expected a string",
            "found integer `7`",
        ],
    );
}

#[test]
fn wrong_type_in_a_list_keeps_the_rest() {
    let errors = errors(&format!("{APP}[listen]\nhttp = [8080, \"bad\"]\n"));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    check(
        &errors[0],
        6,
        9,
        &["listen.http[0]", "wrong type", "found integer `8080`"],
    );
    check(
        &errors[1],
        6,
        15,
        &["listen.http[1]", "bad address \"bad\""],
    );
}

#[test]
fn bad_duration() {
    one(
        &format!("{APP}[services.app.health]\ninterval = \"5\"\n"),
        6,
        12,
        &[
            "services.app.health.interval",
            "bad duration \"5\"",
            "unit is missing",
            "ms, s, m or h",
        ],
    );
}

#[test]
fn bare_integer_duration_names_the_forms() {
    one(
        &format!("{APP}[limits]\nheader_timeout = 10\n"),
        6,
        18,
        &[
            "limits.header_timeout",
            "found integer `10`",
            "duration",
            "\"250ms\"",
        ],
    );
}

#[test]
fn zero_timeout() {
    one(
        &format!("{APP}[services.app.upstream]\nconnect_timeout = \"0s\"\n"),
        6,
        19,
        &["services.app.upstream.connect_timeout", "more than 0"],
    );
}

#[test]
fn bad_size() {
    one(
        &format!("{APP}[limits]\nmax_body = \"lots\"\n"),
        6,
        12,
        &["limits.max_body", "bad size \"lots\"", "KiB, MiB or GiB"],
    );
    one(
        &format!("{APP}[limits]\nmax_body = \"16MB\"\n"),
        6,
        12,
        &["ambiguous", "MiB"],
    );
    one(
        &format!("{APP}[limits]\nmax_header_bytes = \"512B\"\n"),
        6,
        20,
        &["limits.max_header_bytes", "at least 1KiB"],
    );
    one(
        &format!("{APP}[services.app.retry]\nreplay_buffer = \"1GiB\"\n"),
        6,
        17,
        &["replay_buffer", "at most 64MiB"],
    );
}

#[test]
fn bad_listener_address() {
    one(
        &format!("{APP}[listen]\nhttp = [\"0.0.0.0:8080\", \"localhost:80\"]\n"),
        6,
        25,
        &["listen.http[1]", "bad address \"localhost:80\"", "IP:PORT"],
    );
}

#[test]
fn bad_server_address() {
    let text = "[services.app]\nactive = \"green\"\n[services.app.pools]\n\
                green = [\"127.0.0.1\", \"no-such-host.invalid:5000\", \"127.0.0.1:0\"]\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    check(
        &errors[0],
        4,
        10,
        &[
            "pools.green[0]",
            "bad address \"127.0.0.1\"",
            "port is missing",
        ],
    );
    check(
        &errors[1],
        4,
        23,
        &["pools.green[1]", "cannot resolve `no-such-host.invalid`"],
    );
    check(&errors[2], 4, 52, &["pools.green[2]", "port 0"]);
}

#[test]
fn active_naming_a_missing_pool() {
    one(
        "[services.app]\nactive = \"purple\"\n[services.app.pools]\n\
         green = [\"127.0.0.1:5000\"]\nblue = [\"127.0.0.1:5001\"]\n",
        2,
        10,
        &["active names pool `purple` which this service does not have; pools are: blue, green"],
    );
}

#[test]
fn missing_active() {
    one(
        "[services.app]\n[services.app.pools]\ngreen = [\"127.0.0.1:5000\"]\n",
        1,
        11,
        &["services.app", "`active` is missing", "pools: green"],
    );
}

#[test]
fn empty_pool() {
    one(
        &format!("{APP}blue = []\n"),
        5,
        1,
        &["services.app.pools.blue", "pool `blue` has no servers"],
    );
    one(
        &format!("{APP}blue = {{ servers = [] }}\n"),
        5,
        1,
        &["pool `blue` has no servers"],
    );
}

#[test]
fn service_without_pools() {
    one(
        "[services.app]\nactive = \"green\"\n",
        1,
        11,
        &["services.app", "no pools"],
    );
    one(
        "[services.app]\nactive = \"green\"\npools = {}\n",
        3,
        9,
        &["services.app.pools", "no pools"],
    );
}

#[test]
fn no_services() {
    one(
        "[listen]\nhttp = [\"0.0.0.0:8080\"]\n",
        1,
        1,
        &["no services"],
    );
}

#[test]
fn duplicate_listener() {
    one(
        &format!("{APP}[listen]\nhttp = [\"0.0.0.0:8080\", \"0.0.0.0:8080\"]\n"),
        6,
        25,
        &[
            "listen.http[1]",
            "duplicate listener 0.0.0.0:8080",
            "listen.http[0]",
        ],
    );
}

#[test]
fn listener_overlapping_the_admin_api() {
    one(
        &format!(
            "{APP}[admin]\nlisten = \"127.0.0.1:8080\"\n[listen]\nhttp = [\"0.0.0.0:8080\"]\n"
        ),
        8,
        9,
        &[
            "listen.http[0]",
            "overlaps 127.0.0.1:8080 (admin.listen)",
            "port 8080",
        ],
    );
    one(
        &format!("{APP}[listen]\nhttp = [\"127.0.0.1:9901\"]\n"),
        6,
        9,
        &[
            "duplicate listener 127.0.0.1:9901",
            "admin.listen (default)",
        ],
    );
}

#[test]
fn exposed_admin_api_needs_a_token() {
    one(
        &format!("{APP}[admin]\nlisten = \"0.0.0.0:9901\"\n"),
        6,
        10,
        &["admin.listen", "without a token", "token_env"],
    );
}

#[test]
fn colliding_catch_all_services() {
    let text = format!(
        "{APP}[services.zeta]\nactive = \"a\"\npools.a = [\"127.0.0.1:6000\"]\n\
         [services.beta]\nactive = \"b\"\npools.b = [\"127.0.0.1:7000\"]\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // Reported at the later service in the file, naming the earlier one.
    check(
        &errors[0],
        5,
        11,
        &[
            "service `zeta` has the same route as service `app`",
            "any host, any path",
        ],
    );
    check(
        &errors[1],
        8,
        11,
        &["service `beta` has the same route as service `app`"],
    );
}

#[test]
fn colliding_hosts_and_prefix() {
    let text = "[services.a]\nhosts = [\"a.com\"]\npath_prefix = \"/api/\"\nactive = \"g\"\n\
                pools.g = [\"127.0.0.1:5000\"]\n\
                [services.b]\nhosts = [\"b.com\", \"A.com\"]\npath_prefix = \"/api\"\nactive = \"g\"\n\
                pools.g = [\"127.0.0.1:5001\"]\n\
                [services.c]\nhosts = [\"a.com\"]\nactive = \"g\"\npools.g = [\"127.0.0.1:5002\"]\n";
    one(
        text,
        6,
        11,
        &[
            "service `b` has the same route as service `a`",
            "host \"a.com\"",
            "path prefix \"/api\"",
        ],
    );
}

#[test]
fn bad_hosts_and_prefix() {
    let text = "[services.app]\nhosts = [\"a.*.com\", \"x.com:80\", \"\", \"a b\"]\n\
                path_prefix = \"api\"\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    check(
        &errors[0],
        2,
        10,
        &["hosts[0]", "`*` is only allowed as the whole first label"],
    );
    check(&errors[1], 2, 21, &["hosts[1]", "no port"]);
    check(&errors[2], 2, 33, &["hosts[2]", "empty"]);
    check(&errors[3], 2, 37, &["hosts[3]", "space"]);
    check(&errors[4], 3, 15, &["path_prefix", "must start with `/`"]);
}

#[test]
fn out_of_range_numbers() {
    let text = format!(
        "{APP}[services.app.retry]\nattempts = 0\non_status = [503, 404]\nbudget_ratio = 1.5\n\
         backoff_base = \"1s\"\nbackoff_max = \"100ms\"\n\
         [services.app.health]\nrise = 0\nexpect_status = \"600\"\n\
         [services.app.pools.blue]\nservers = [{{ addr = \"127.0.0.1:5001\", weight = 1001 }}]\n\
         balance = \"random\"\n"
    );
    let errors = errors(&text);
    let found: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
        .collect();
    assert_eq!(errors.len(), 8, "{found:#?}");
    check(
        &errors[0],
        6,
        12,
        &["retry.attempts", "between 1 and 10, got 0"],
    );
    check(
        &errors[1],
        7,
        19,
        &["retry.on_status[1]", "between 500 and 599, got 404"],
    );
    check(
        &errors[2],
        8,
        16,
        &["retry.budget_ratio", "between 0.0 and 1.0"],
    );
    check(
        &errors[3],
        10,
        15,
        &["retry.backoff_max", "100ms is less than backoff_base (1s)"],
    );
    check(&errors[4], 12, 8, &["health.rise", "at least 1, got 0"]);
    check(
        &errors[5],
        13,
        17,
        &["health.expect_status", "600 is not an HTTP status"],
    );
    check(
        &errors[6],
        15,
        48,
        &[
            "pools.blue.servers[0].weight",
            "between 1 and 1000, got 1001",
        ],
    );
    check(
        &errors[7],
        16,
        11,
        &["pools.blue.balance", "\"round_robin\" or \"least_conn\""],
    );
}

#[test]
fn three_different_problems_in_one_run() {
    let text = "[listen]\nhttp = [\"0.0.0.0:8080\"]\nport = 80\n\n\
                [services.app]\nactive = \"purple\"\n\n\
                [services.app.pools]\ngreen = [\"127.0.0.1:5000\"]\n\n\
                [services.app.health]\ninterval = \"soon\"\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    check(
        &errors[0],
        3,
        1,
        &["unknown key `port`", "table `listen`", "allowed keys: http"],
    );
    check(
        &errors[1],
        6,
        10,
        &["active names pool `purple`", "pools are: green"],
    );
    check(
        &errors[2],
        12,
        12,
        &["services.app.health.interval", "bad duration \"soon\""],
    );
}

#[test]
fn a_value_of_the_wrong_type_is_not_reported_twice() {
    // `green` is taken out as a problem: `active = "green"` must not add "no such pool", and the
    // emptied pool must not add "no servers".
    let text = "[services.app]\nactive = \"green\"\n[services.app.pools]\ngreen = 5\nblue = [1]\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    check(&errors[0], 4, 9, &["pools.green", "wrong type"]);
    check(&errors[1], 5, 9, &["pools.blue[0]", "wrong type"]);
}

#[test]
fn columns_count_characters() {
    one(
        &format!("{APP}[services.app.health]\npath = \"/h\" # héhé\n  bad = 1 # ü\n"),
        7,
        3,
        &["unknown key `bad`"],
    );
    one(
        "[services.\"café\"]\nactive = \"g\"\npools.g = [\"127.0.0.1:5000\"]\n",
        1,
        11,
        &["bad service name \"café\""],
    );
}

#[test]
fn display_is_file_line_column_message() {
    let err = parse_str("[services.app]\nactive = 1\n", "f.toml").expect_err("invalid");
    let text = err.to_string();
    assert!(text.starts_with("f.toml:1:11: services.app: "), "{text}");
    assert_eq!(text.lines().count(), err.len());
    assert_eq!(err.iter().count(), err.len());
}

#[test]
fn an_array_where_a_table_belongs_is_one_problem() {
    one(
        &format!("[[listen]]\nhttp = [\"0.0.0.0:8080\"]\n{APP}"),
        1,
        1,
        &["listen: wrong type: expected a table, found an array"],
    );
}

#[test]
fn a_date_where_a_string_belongs() {
    one(
        "[services.app]\nactive = 2024-01-01\npools.g = [\"127.0.0.1:5000\"]\n",
        2,
        10,
        &[
            "services.app.active",
            "expected a string, found a date-time",
        ],
    );
}

#[test]
fn problems_are_capped() {
    let keys: String = (0..150).map(|i| format!("k{i} = 1\n")).collect();
    let errors = errors(&format!("{APP}[limits]\n{keys}"));
    assert_eq!(errors.len(), 101);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("too many problems"))
    );
}

#[test]
fn bad_fleet_and_guard_values_are_placed() {
    one(
        &format!("[fleet]\netcd = [\"127.0.0.1:2379\"]\n{APP}"),
        2,
        9,
        &["fleet.etcd[0]", "must start with http:// or https://"],
    );
    one(
        &format!("[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nprefix = \"prod/\"\n{APP}"),
        3,
        10,
        &["fleet.prefix", "must start with `/`"],
    );
    one(
        &format!("{APP}[services.app.guard]\nmax_error_rate = 1.5\n"),
        6,
        18,
        &["services.app.guard.max_error_rate", "between 0.0 and 1.0"],
    );
}
