//! Rate limit charges told between replicas that share one database: each replica reports the
//! charges it let through every [`REPORT_EVERY`], as one line per bucket, and charges what the
//! others report to its own buckets, so an agent's budget holds across the cluster.
//!
//! The text travels as a store notification (at most [`MAX_REPORT_BYTES`] each, so a busy
//! replica sends several), which makes the precision what this file's constants say: a charge
//! reaches the other replicas within about `REPORT_EVERY` plus the notification's delivery; calls
//! made within that window on several replicas at once can pass a bucket that is nearly empty.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{LimitClass, LimitKey};

/// How often a replica reports its charges.
pub const REPORT_EVERY: Duration = Duration::from_millis(100);
/// PostgreSQL refuses notification payloads of 8000 bytes or more.
pub const MAX_REPORT_BYTES: usize = 7000;

/// Reports of `charges` by `replica`, each at most [`MAX_REPORT_BYTES`]: a first line with the
/// replica's id, then `class<TAB>a|i<TAB>key<TAB>count` per bucket (`a` an agent, `i` an address).
pub fn encode(replica: &str, charges: &[(LimitClass, LimitKey, u32)]) -> Vec<String> {
    let mut reports = Vec::new();
    let mut report = String::new();
    for (class, key, count) in charges {
        let (kind, key) = match key {
            LimitKey::Agent(agent) => ("a", agent.to_string()),
            LimitKey::Address(address) => ("i", address.to_string()),
        };
        // Agent ids cannot hold tabs or newlines (identity validates them); skip any that would
        // break the format rather than send a line the others misread.
        if key.contains(['\t', '\n']) {
            continue;
        }
        let line = format!("{}\t{kind}\t{key}\t{count}\n", class.as_str());
        if !report.is_empty() && report.len() + line.len() > MAX_REPORT_BYTES {
            reports.push(std::mem::take(&mut report));
        }
        if report.is_empty() {
            report.push_str(replica);
            report.push('\n');
        }
        report.push_str(&line);
    }
    if !report.is_empty() {
        reports.push(report);
    }
    reports
}

/// The charges in a report, unless `replica` sent it (a replica hears its own notifications).
/// Lines that do not parse are skipped.
pub fn decode(replica: &str, report: &str) -> Vec<(LimitClass, LimitKey, u32)> {
    let mut lines = report.lines();
    if lines.next().is_none_or(|sender| sender == replica) {
        return Vec::new();
    }
    lines
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let class = match fields.next()? {
                "mcp" => LimitClass::Mcp,
                "api" => LimitClass::Api,
                "auth" => LimitClass::Auth,
                _ => return None,
            };
            let key = match (fields.next()?, fields.next()?) {
                ("a", agent) => LimitKey::Agent(Arc::from(agent)),
                ("i", address) => LimitKey::Address(address.parse::<IpAddr>().ok()?),
                _ => return None,
            };
            let count = fields.next()?.parse().ok()?;
            Some((class, key, count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_split_below_the_payload_limit() {
        let charges: Vec<_> = (0..600)
            .map(|i| (LimitClass::Mcp, LimitKey::Agent(Arc::from(format!("agent-{i}"))), i))
            .chain([(LimitClass::Auth, LimitKey::Address("10.0.0.7".parse().unwrap()), 3)])
            .collect();
        let reports = encode("replica-a", &charges);
        assert!(reports.len() > 1, "{} reports", reports.len());
        assert!(reports.iter().all(|report| report.len() <= MAX_REPORT_BYTES));
        let decoded: Vec<_> = reports.iter().flat_map(|report| decode("replica-b", report)).collect();
        assert_eq!(decoded, charges);
        assert!(
            reports.iter().all(|report| decode("replica-a", report).is_empty()),
            "own reports are ignored"
        );
        assert!(decode("replica-b", "x\nbogus\tline\n").is_empty());
    }
}
