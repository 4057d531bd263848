//! Event sourcing with CQRS: each bank account is an aggregate with its own
//! event stream (one key per account). Commands append events whose headers
//! carry correlation and causation metadata; the write side rebuilds an
//! aggregate from its stream, the read side projects every stream into a
//! query model, and the metadata is read back to follow a transfer's chain.
//!
//! Run with `cargo run --example event_sourcing_cqrs`; exits non-zero if a
//! check fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{EntryRef, Record, Wal};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// An event, stored as `Kind argument` text.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Opened(String),
    Deposited(u64),
    Withdrawn(u64),
}

impl Event {
    fn encode(&self) -> Bytes {
        Bytes::from(match self {
            Event::Opened(owner) => format!("Opened {owner}"),
            Event::Deposited(cents) => format!("Deposited {cents}"),
            Event::Withdrawn(cents) => format!("Withdrawn {cents}"),
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (kind, arg) = std::str::from_utf8(bytes)?.split_once(' ').ok_or("event")?;
        Ok(match kind {
            "Opened" => Event::Opened(arg.into()),
            "Deposited" => Event::Deposited(arg.parse()?),
            "Withdrawn" => Event::Withdrawn(arg.parse()?),
            other => return Err(format!("unknown event {other}").into()),
        })
    }
}

/// Event metadata, stored in the record header as
/// `correlation=...;causation=...`.
#[derive(Debug, Clone, PartialEq)]
struct Meta {
    /// The command (and so the business transaction) that led to the event.
    correlation: String,
    /// What directly caused it: the command, or an earlier event's reference.
    causation: String,
}

impl Meta {
    fn encode(&self) -> Bytes {
        Bytes::from(format!(
            "correlation={};causation={}",
            self.correlation, self.causation
        ))
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(bytes)?;
        let (correlation, causation) = text
            .strip_prefix("correlation=")
            .and_then(|rest| rest.split_once(";causation="))
            .ok_or(format!("unexpected header {text:?}"))?;
        Ok(meta(correlation, causation))
    }
}

/// The write-side aggregate, rebuilt from its stream on every command.
#[derive(Debug, Default)]
struct Account {
    owner: Option<String>,
    balance_cents: u64,
    version: u64,
}

impl Account {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Opened(owner) => self.owner = Some(owner.clone()),
            Event::Deposited(cents) => self.balance_cents += cents,
            Event::Withdrawn(cents) => self.balance_cents -= cents,
        }
        self.version += 1;
    }

    fn load(wal: &Wal, id: &str) -> Result<Self, Error> {
        let mut account = Account::default();
        for record in wal.records(stream(id))? {
            account.apply(&Event::decode(&record?.content)?);
        }
        Ok(account)
    }
}

fn stream(id: &str) -> String {
    format!("account-{id}")
}

/// Handle a command: check it against the rebuilt aggregate, then append.
fn append(wal: &Wal, id: &str, event: Event, meta: &Meta) -> Result<EntryRef, Error> {
    let account = Account::load(wal, id)?;
    match (&event, &account.owner) {
        (Event::Opened(_), Some(_)) => return Err(format!("{id} is already open").into()),
        (Event::Withdrawn(cents), _) if *cents > account.balance_cents => {
            return Err(format!("{id}: insufficient funds").into());
        }
        (Event::Deposited(_) | Event::Withdrawn(_), None) => {
            return Err(format!("{id} is not open").into());
        }
        _ => {}
    }
    Ok(wal.log_entry(stream(id), Some(meta.encode()), event.encode())?)
}

/// A transfer: the withdrawal is caused by the command, the deposit by the
/// withdrawal event. Both share the command's correlation id.
fn transfer(wal: &Wal, cmd: &str, from: &str, to: &str, cents: u64) -> Result<EntryRef, Error> {
    let withdrawal = append(wal, from, Event::Withdrawn(cents), &meta(cmd, cmd))?;
    let caused_by = withdrawal.to_string();
    append(wal, to, Event::Deposited(cents), &meta(cmd, &caused_by))
}

fn meta(correlation: &str, causation: &str) -> Meta {
    let (correlation, causation) = (correlation.to_owned(), causation.to_owned());
    Meta {
        correlation,
        causation,
    }
}

/// The metadata of a record, read back from its header.
fn meta_of(record: &Record) -> Result<Meta, Error> {
    Meta::decode(record.header.as_deref().ok_or("every event has metadata")?)
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    ok.then_some(())
        .ok_or_else(|| format!("check failed: {what}").into())
}

fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(dir.path()).open()?);

    // Write side: commands for different accounts from several threads,
    // sharing the log without a Mutex.
    std::thread::scope(|s| -> Result<(), Error> {
        let handles: Vec<_> = [("a1", "alice"), ("b2", "bob"), ("c3", "carol")]
            .map(|(id, owner)| {
                let wal = Arc::clone(&wal);
                s.spawn(move || -> Result<(), Error> {
                    let cmd = format!("open-{id}");
                    append(&wal, id, Event::Opened(owner.into()), &meta(&cmd, &cmd))?;
                    let cmd = format!("fund-{id}");
                    append(&wal, id, Event::Deposited(10_000), &meta(&cmd, &cmd))?;
                    Ok(())
                })
            })
            .into();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a thread panicked")?)
    })?;
    let deposit = transfer(&wal, "cmd-7", "a1", "b2", 2_500)?;
    transfer(&wal, "cmd-8", "b2", "c3", 4_000)?;
    let refused = transfer(&wal, "cmd-9", "c3", "a1", 1_000_000);
    check(refused.is_err(), "an overdraft is refused")?;

    // Follow the causation chain of cmd-7 back through the headers.
    let record = wal.read_record_at(deposit)?;
    let cause: EntryRef = meta_of(&record)?.causation.parse()?;
    let withdrawal = wal.read_record_at(cause)?;
    println!(
        "{deposit} {:?} was caused by {cause} {:?}",
        record.content, withdrawal.content
    );
    let chain = meta_of(&record)?.correlation == "cmd-7"
        && meta_of(&withdrawal)? == meta("cmd-7", "cmd-7")
        && Event::decode(&withdrawal.content)? == Event::Withdrawn(2_500);
    check(chain, "the deposit was caused by cmd-7's withdrawal")?;

    // Drop the handle (as a crash would) and reopen: the state is rebuilt
    // from the streams alone.
    drop(wal);
    let wal = Wal::builder(dir.path()).open()?;

    // Read side: project every stream into query models.
    let mut balances: BTreeMap<String, u64> = BTreeMap::new();
    let mut events_per_command: BTreeMap<String, usize> = BTreeMap::new();
    for key in wal.enumerate_keys()? {
        let account = Account::load(&wal, key.strip_prefix("account-").ok_or("account")?)?;
        println!("{key}: {:?}", account);
        balances.insert(account.owner.ok_or("opened")?, account.balance_cents);
        for record in wal.records(&key)? {
            *events_per_command
                .entry(meta_of(&record?)?.correlation)
                .or_default() += 1;
        }
    }
    // Transfers conserve money; a refused command leaves no event.
    let expected = [("alice", 7_500), ("bob", 8_500), ("carol", 14_000)];
    check(
        balances == expected.map(|(o, c)| (o.into(), c)).into(),
        "balances",
    )?;
    let events = |cmd: &str| events_per_command.get(cmd).copied().unwrap_or(0);
    check(
        events("cmd-7") == 2 && events("cmd-9") == 0,
        "events per command",
    )?;
    wal.close()?;
    println!("event_sourcing_cqrs: all checks passed");
    Ok(())
}
