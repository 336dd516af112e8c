//! `switchyard history`: the switch history from `GET /history`, as a table or raw JSON.

use std::io::Write as _;

use anyhow::Context;
use hyper::Method;
use serde_json::Value;

use crate::cli::HistoryArgs;
use crate::client::AdminClient;
use crate::table::Table;

/// Prints the last `limit` history entries, newest first.
pub async fn run(args: &HistoryArgs) -> anyhow::Result<()> {
    let client = AdminClient::from_args(&args.admin)?;
    let path = format!("/history?limit={}", args.limit.max(1));
    let answer: Value = client.json(Method::GET, &path, None).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(());
    }
    let entries = answer["entries"]
        .as_array()
        .context("the admin API answered /history without an `entries` list")?;
    if entries.is_empty() {
        writeln!(out, "no history yet")?;
        return Ok(());
    }
    write!(out, "{}", render(entries))?;
    Ok(())
}

/// The entries as an aligned table.
fn render(entries: &[Value]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut table = Table::new(&[
        "WHEN", "ACTION", "SERVICE", "CHANGE", "FORCED", "WHO", "GEN", "RESULT",
    ]);
    for e in entries {
        let change = match (
            e["from"].as_str(),
            e["to"].as_str(),
            e["weights"].as_object(),
        ) {
            (_, _, Some(w)) => w
                .iter()
                .map(|(pool, weight)| format!("{pool}={weight}"))
                .collect::<Vec<_>>()
                .join(" "),
            (Some(from), Some(to), None) => format!("{from} -> {to}"),
            (None, Some(to), None) => format!("-> {to}"),
            _ => "-".to_string(),
        };
        let result = if e["ok"].as_bool().unwrap_or(false) {
            "applied".to_string()
        } else {
            format!("refused: {}", text(&e["error"]))
        };
        table.row(vec![
            text(&e["time"]),
            text(&e["action"]),
            text(&e["service"]),
            change,
            if e["forced"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            text(&e["actor"]),
            e["generation"]
                .as_u64()
                .map_or_else(|| "-".to_string(), |g| g.to_string()),
            result,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_switches_splits_and_refusals() {
        let entries = vec![
            json!({"time": "2026-11-22T09:00:00.000Z", "action": "switch", "service": "app", "from": "green", "to": "blue", "forced": false, "generation": 2, "actor": "cli", "ok": true}),
            json!({"time": "2026-11-22T09:01:00.000Z", "action": "split", "service": "app", "from": "blue", "to": "blue", "weights": {"blue": 90, "green": 10}, "forced": false, "generation": 3, "actor": "dashboard", "ok": true}),
            json!({"time": "2026-11-22T09:02:00.000Z", "action": "switch", "service": "app", "from": "blue", "to": "green", "forced": false, "generation": 3, "actor": "admin-api", "ok": false, "error": "no healthy server"}),
        ];
        let out = render(&entries);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].contains("green -> blue")
                && lines[1].contains("cli")
                && lines[1].contains("applied")
        );
        assert!(lines[2].contains("blue=90 green=10") && lines[2].contains("dashboard"));
        assert!(lines[3].contains("refused: no healthy server"));
    }
}
