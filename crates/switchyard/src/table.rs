//! The `switchyard status` table: aligned plain-text columns from a [`StatusReport`].

use std::fmt::Write as _;

use switchyard_proxy::fleet::FleetStatus;
use switchyard_proxy::status::{ServerStatus, StatusReport};

/// Rows of text cells printed in left-aligned columns, two spaces apart.
#[derive(Debug, Default)]
pub struct Table {
    /// The header row and the rows, in order.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_string()).collect()],
        }
    }

    /// Adds a row (missing cells are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines of text, each ending in a newline, with no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, width) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                let _ = write!(line, "{cell:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The whole status report as text: a line per service, then a row per server of every pool.
pub fn render_status(report: &StatusReport) -> String {
    let mut out = format!("generation {}\n\n", report.generation);
    if report.services.is_empty() {
        out.push_str("no services\n");
        return out;
    }
    let mut services = Table::new(&["SERVICE", "ACTIVE", "PREVIOUS", "SPLIT", "LIVE POOL"]);
    for (name, svc) in &report.services {
        let split = svc.split.as_ref().map_or_else(
            || "-".to_string(),
            |w| {
                w.iter()
                    .map(|(pool, weight)| format!("{pool}={weight}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        );
        let live = if svc.live_pool_available {
            "available".to_string()
        } else {
            format!("all down ({})", svc.all_down)
        };
        services.row(vec![
            name.clone(),
            svc.active.clone(),
            svc.previous.clone().unwrap_or_else(|| "-".to_string()),
            split,
            live,
        ]);
    }
    out.push_str(&services.render());
    out.push('\n');

    let mut pools = Table::new(&[
        "SERVICE",
        "POOL",
        "STATE",
        "POOL IN FLIGHT",
        "SERVER",
        "HEALTH",
        "EJECTED",
        "SERVER IN FLIGHT",
    ]);
    for (name, svc) in &report.services {
        for (pool_name, pool) in &svc.pools {
            let mut first = true;
            let head = |first: bool| -> Vec<String> {
                if first {
                    vec![
                        name.clone(),
                        pool_name.clone(),
                        pool.state.clone(),
                        pool.in_flight.to_string(),
                    ]
                } else {
                    vec![String::new(); 4]
                }
            };
            if pool.servers.is_empty() {
                pools.row(head(true));
            }
            for server in &pool.servers {
                let mut row = head(first);
                row.extend(server_cells(server));
                pools.row(row);
                first = false;
            }
        }
    }
    out.push_str(&pools.render());
    if let Some(fleet) = &report.fleet {
        out.push('\n');
        out.push_str(&render_fleet(fleet));
    }
    out
}

/// The fleet as `switchyard fleet` prints it: this instance's link to etcd, then every node.
pub fn render_fleet(fleet: &FleetStatus) -> String {
    let link = if fleet.connected {
        format!("connected since {}", fleet.since)
    } else {
        format!(
            "DISCONNECTED since {} (serving the last applied decisions; flips are refused)",
            fleet.since
        )
    };
    let mut out = format!(
        "fleet {} on {}: node {}, {link}, applied revision {}\n",
        fleet.prefix, fleet.store, fleet.node, fleet.revision
    );
    if let Some(e) = &fleet.error {
        out.push_str(&format!("last apply error: {e}\n"));
    }
    out.push('\n');
    let mut nodes = Table::new(&[
        "NODE",
        "APPLIED REVISION",
        "CONVERGED",
        "ALIVE",
        "REPORTED",
        "ERROR",
    ]);
    let newest = fleet
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(|n| n.applied_revision)
        .max()
        .unwrap_or(0)
        .max(fleet.revision);
    for n in &fleet.nodes {
        let converged = if !n.alive {
            "-"
        } else if n.applied_revision >= newest {
            "yes"
        } else {
            "no"
        };
        nodes.row(vec![
            n.node.clone(),
            n.applied_revision.to_string(),
            converged.to_string(),
            if n.alive { "yes" } else { "no" }.to_string(),
            n.at.clone(),
            n.error.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    out.push_str(&nodes.render());
    out
}

/// The cells of one server: address, health, ejected, in flight.
fn server_cells(server: &ServerStatus) -> [String; 4] {
    let health = if server.health.is_empty() {
        // An older proxy without the `health` field: fall back to the boolean.
        if server.healthy { "up" } else { "down" }.to_string()
    } else {
        server.health.clone()
    };
    [
        server.addr.clone(),
        health,
        if server.ejected { "yes" } else { "no" }.to_string(),
        server.in_flight.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use switchyard_proxy::status::{PoolStatus, ServiceStatus};

    fn server(addr: &str, health: &str, in_flight: u32) -> ServerStatus {
        ServerStatus {
            addr: addr.to_string(),
            healthy: health == "up",
            health: health.to_string(),
            ejected: false,
            in_flight,
        }
    }

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        t.row(vec!["b".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide cell  x\nb\n");
    }

    #[test]
    fn status_report() {
        let pools = BTreeMap::from([
            (
                "blue".to_string(),
                PoolStatus {
                    state: "active".into(),
                    in_flight: 0,
                    share: 0.0,
                    servers: vec![server("127.0.0.1:5001", "up", 0)],
                },
            ),
            (
                "green".to_string(),
                PoolStatus {
                    state: "draining".into(),
                    in_flight: 2,
                    share: 0.0,
                    servers: vec![
                        server("127.0.0.1:5000", "up", 2),
                        server("127.0.0.1:5002", "unknown", 0),
                    ],
                },
            ),
        ]);
        let report = StatusReport {
            generation: 4,
            names: BTreeMap::new(),
            fleet: None,
            services: BTreeMap::from([(
                "app".to_string(),
                ServiceStatus {
                    active: "blue".into(),
                    previous: Some("green".into()),
                    split: None,
                    sticky: false,
                    ramp: None,
                    guard: None,
                    mirror: None,
                    preview: None,
                    live_pool_available: true,
                    all_down: "try_all".into(),
                    pools,
                },
            )]),
        };
        let text = render_status(&report);
        let expected = "\
generation 4

SERVICE  ACTIVE  PREVIOUS  SPLIT  LIVE POOL
app      blue    green     -      available

SERVICE  POOL   STATE     POOL IN FLIGHT  SERVER          HEALTH   EJECTED  SERVER IN FLIGHT
app      blue   active    0               127.0.0.1:5001  up       no       0
app      green  draining  2               127.0.0.1:5000  up       no       2
                                          127.0.0.1:5002  unknown  no       0
";
        assert_eq!(text, expected);
    }
}
