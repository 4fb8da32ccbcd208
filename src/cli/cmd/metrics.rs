//! `snap metrics`: epoch/step x metrics per session, stored and forgotten.

use anyhow::Result;
use snapstore::ops::metrics::{MetricRow, MetricsTable};

use crate::cli::render;
use crate::cli::Ctx;

/// Metrics of every epoch, per session, including forgotten snapshots
///
/// One row per snapshot with metrics: its epoch, step and the metrics, from
/// the snapshot records and from the retention journal, so the history of
/// forgotten epochs stays (those rows are marked `forgotten`). Sessions are
/// named as `snap log` names them; snapshots outside any session are
/// "(no session)".
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these sessions (default: all).
    sessions: Vec<String>,
    /// Only this metric (repeat for more; default: all).
    #[arg(long = "metric", value_name = "NAME")]
    metrics: Vec<String>,
    /// Output CSV with a header (session,id,epoch,step,stored,METRIC...).
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Output JSON (an array of rows).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    let (table, damaged) = repo.metrics(&args.sessions, &args.metrics)?;
    for d in &damaged {
        eprintln!("snap: warning: unreadable retention journal entry {d}; its metrics are missing");
    }
    if args.json {
        return render::print_json(&table.rows).map(|_| 0);
    }
    if args.csv {
        print!("{}", csv(&table));
        return Ok(0);
    }
    if table.rows.is_empty() {
        println!(
            "no snapshot has metrics yet; `snap run` or `snap commit --metric K=V` records them"
        );
        return Ok(0);
    }
    for session in &table.sessions {
        let rows: Vec<&MetricRow> = table
            .rows
            .iter()
            .filter(|r| &r.session == session)
            .collect();
        println!(
            "== session {session}: {} ==",
            render::count(rows.len() as u64, "row")
        );
        let mut lines = vec![header(&table)];
        lines.extend(rows.iter().map(|r| cells(&table, r)));
        print_aligned(&lines);
    }
    Ok(0)
}

fn header(t: &MetricsTable) -> Vec<String> {
    let mut h: Vec<String> = ["ID", "EPOCH", "STEP"].map(String::from).to_vec();
    h.extend(t.metrics.iter().cloned());
    h.push(String::new());
    h
}

fn or_dash(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

fn cells(t: &MetricsTable, r: &MetricRow) -> Vec<String> {
    let mut c = vec![r.id[..8].to_string(), or_dash(r.epoch), or_dash(r.step)];
    c.extend(t.metrics.iter().map(|m| {
        r.metrics
            .get(m)
            .map(|v| render::num(*v))
            .unwrap_or_else(|| "-".into())
    }));
    let mut mark = Vec::new();
    if !r.stored {
        mark.push("forgotten".to_string());
    }
    if !r.tags.is_empty() {
        mark.push(format!("[{}]", r.tags.join(", ")));
    }
    c.push(mark.join(" "));
    c
}

/// Columns padded to their widest cell: the first left-aligned, numbers right.
fn print_aligned(lines: &[Vec<String>]) {
    let n = lines.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..n)
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in lines {
        let mut out = String::new();
        for (i, c) in l.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{c:<w$}", w = width[i]));
            } else if i + 1 == l.len() {
                out.push_str(&format!("  {c}"));
            } else {
                out.push_str(&format!("  {c:>w$}", w = width[i]));
            }
        }
        println!("{}", out.trim_end());
    }
}

/// RFC 4180: a field with a comma, quote or line break is quoted.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(t: &MetricsTable) -> String {
    let mut out = String::new();
    let mut head: Vec<String> = ["session", "id", "epoch", "step", "stored"]
        .map(String::from)
        .to_vec();
    head.extend(t.metrics.iter().map(|m| field(m)));
    out.push_str(&head.join(","));
    out.push('\n');
    for r in &t.rows {
        let opt = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let mut line = vec![
            field(&r.session),
            r.id.clone(),
            opt(r.epoch),
            opt(r.step),
            r.stored.to_string(),
        ];
        line.extend(
            t.metrics
                .iter()
                .map(|m| r.metrics.get(m).map(|v| v.to_string()).unwrap_or_default()),
        );
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}
