//! `valine cleanup`: deletes expired records and says how many of each kind went.
//!
//! Never needed for correctness: every read ignores expired records, and DynamoDB's TTL
//! deletes them in the end by itself. It reclaims space in a SQLite file, and empties a
//! DynamoDB table whose TTL is off (DynamoDB Local, a table made by hand). `--dry-run`
//! counts what would go and deletes nothing.

use crate::store::{HousekeepingStore, RecordCounts, RecordKind, StoreError};

/// Deletes (or with `dry_run` only counts) the records expired at `now` (epoch seconds)
/// and returns the report to print: one line per kind, then the total.
pub async fn run(
    store: &dyn HousekeepingStore,
    dry_run: bool,
    now: i64,
) -> Result<String, StoreError> {
    let (counts, verb) = if dry_run {
        (store.census(now).await?.expired, "would delete")
    } else {
        (store.delete_expired(now).await?, "deleted")
    };
    Ok(report(&counts, verb))
}

fn report(counts: &RecordCounts, verb: &str) -> String {
    let mut out = String::new();
    for kind in RecordKind::ALL {
        let n = counts.get(kind);
        if n > 0 {
            out.push_str(&format!("{verb} {n} {}\n", kind.label()));
        }
    }
    out.push_str(&format!(
        "{verb} {} expired records in total\n",
        counts.total()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_kind_then_the_total() {
        let mut counts = RecordCounts::default();
        counts.add(RecordKind::Trace, 3);
        counts.add(RecordKind::RateWindow, 1);
        assert_eq!(
            report(&counts, "deleted"),
            "deleted 3 traces\ndeleted 1 rate windows\ndeleted 4 expired records in total\n"
        );
        assert_eq!(
            report(&RecordCounts::default(), "would delete"),
            "would delete 0 expired records in total\n"
        );
    }
}
