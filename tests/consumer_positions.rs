//! Named consumers with durable positions: committed references survive
//! `close()` and a crash, a consumer resumes after its position, thousands
//! of commits keep its key short, removing it removes its positions, and a
//! position that retention removed is reported, not skipped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nano_wal::{EntryRef, ManualClock, Wal, WalError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(5);

fn fill(wal: &Wal, key: &str, n: usize) -> Result<Vec<EntryRef>, WalError> {
    (0..n)
        .map(|i| wal.append_entry(key, None, Bytes::from(format!("{key}-{i}")), false))
        .collect()
}

#[test]
fn positions_survive_close_and_crash_and_resume_after_the_commit() -> TestResult {
    for crash in [false, true] {
        let tmp = tempfile::tempdir()?;
        let (orders, users) = {
            let wal = Wal::builder(tmp.path()).open()?;
            let orders = fill(&wal, "orders", 10)?;
            let users = fill(&wal, "users", 3)?;
            let billing = wal.consumer("billing")?;
            assert_eq!(billing.position("orders"), None);
            let mut sub = billing.subscribe("orders")?;
            for want in &orders[..4] {
                let r = sub.next_timeout(WAIT)?.ok_or("no record")?;
                assert_eq!(r.entry_ref, *want);
                billing.commit("orders", r.entry_ref)?;
            }
            billing.commit("users", users[2])?;
            drop((sub, billing));
            if !crash {
                wal.close()?;
            }
            (orders, users)
        };
        let wal = Wal::builder(tmp.path()).open()?;
        let billing = wal.consumer("billing")?;
        assert_eq!(
            billing.position("orders"),
            Some(orders[3]),
            "crash: {crash}"
        );
        assert_eq!(billing.position("users"), Some(users[2]));
        let next = billing
            .subscribe("orders")?
            .next_timeout(WAIT)?
            .ok_or("no record")?;
        assert_eq!(next.entry_ref, orders[4], "resumes after the commit");
        assert!(
            billing.subscribe("users")?.try_next()?.is_none(),
            "nothing after the last user"
        );
        // Another consumer has its own positions.
        assert_eq!(wal.consumer("audit")?.position("orders"), None);
    }
    Ok(())
}

#[test]
fn many_commits_keep_the_positions_key_short() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    let refs = fill(&wal, "k", 3000)?;
    let c = wal.consumer("c")?;
    for r in &refs {
        c.commit("k", *r)?;
    }
    let stored = wal.records("nano-wal/consumers/c")?.count();
    assert!(stored <= 1025, "{stored} position records for one key");
    drop(c);
    wal.close()?;
    let wal = Wal::builder(tmp.path()).open()?;
    assert_eq!(wal.consumer("c")?.position("k"), refs.last().copied());
    Ok(())
}

#[test]
fn removing_a_consumer_removes_its_positions() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    let refs = fill(&wal, "k", 3)?;
    wal.consumer("gone")?.commit("k", refs[1])?;
    wal.remove_consumer("gone")?;
    assert_eq!(wal.consumer("gone")?.position("k"), None);
    wal.close()?;
    let wal = Wal::builder(tmp.path()).open()?;
    assert_eq!(wal.consumer("gone")?.position("k"), None);
    Ok(())
}

#[test]
fn a_position_removed_by_retention_is_reported() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let wal = Wal::builder(tmp.path())
        .clock(clock.clone())
        .retention(Duration::from_secs(60))
        .open()?;
    let old = fill(&wal, "k", 3)?;
    let c = wal.consumer("slow")?;
    c.commit("k", old[0])?;
    clock.advance_ms(3_600_000);
    fill(&wal, "k", 2)?;
    wal.compact()?;
    assert!(wal.read_entry_at(old[0]).is_err(), "retention removed it");
    assert!(matches!(
        c.subscribe("k"),
        Err(WalError::PositionRemoved(_))
    ));
    // The consumer's own positions were kept.
    assert_eq!(c.position("k"), Some(old[0]));
    Ok(())
}

#[test]
fn bad_names_and_foreign_references_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let wal = Wal::builder(tmp.path()).open()?;
    for name in ["", "a/b"] {
        assert!(matches!(
            wal.consumer(name),
            Err(WalError::InvalidConfig(_))
        ));
    }
    let r = wal.append_entry("a", None, Bytes::from("x"), false)?;
    assert!(matches!(
        wal.consumer("c")?.commit("b", r),
        Err(WalError::EntryNotFound(_))
    ));
    Ok(())
}

#[test]
fn commit_all_commits_every_position_in_one_batch_or_none() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (orders, users) = {
        let wal = Wal::builder(tmp.path()).open()?;
        let orders = fill(&wal, "orders", 5)?;
        let users = fill(&wal, "users", 5)?;
        let export = wal.consumer("export")?;
        export.commit_all([
            ("orders", orders[1]),
            ("users", users[3]),
            ("orders", orders[2]),
        ])?;
        assert_eq!(
            export.position("orders"),
            Some(orders[2]),
            "the later pair wins"
        );
        // A foreign reference refuses the whole batch: nothing changes.
        let err = export.commit_all([("orders", orders[4]), ("users", orders[0])]);
        assert!(matches!(err, Err(WalError::EntryNotFound(_))), "{err:?}");
        assert_eq!(export.position("orders"), Some(orders[2]));
        export.commit_all(Vec::<(&str, EntryRef)>::new())?;
        (orders, users) // crash: no close
    };
    let wal = Wal::builder(tmp.path()).open()?;
    let export = wal.consumer("export")?;
    assert_eq!(export.position("orders"), Some(orders[2]));
    assert_eq!(export.position("users"), Some(users[3]));
    Ok(())
}
