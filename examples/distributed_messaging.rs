//! A small message broker: every topic partition is a key (`orders.p0`),
//! producers append durably (the returned reference is their
//! acknowledgement), consumers stream a partition and acknowledge what they
//! processed by committing the message's reference to an offsets key, bad
//! messages go to a dead-letter key, and a restarted consumer replays from
//! its last commit with `records_from`.
//!
//! Run with `cargo run --example distributed_messaging`; exits non-zero if a
//! check fails.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use nano_wal::{EntryRef, Wal, key_hash};

type Error = Box<dyn std::error::Error + Send + Sync>;

const TOPICS: [(&str, u64); 2] = [("orders", 3), ("payments", 2)];
const MESSAGES_PER_TOPIC: usize = 60;
const DEAD_LETTERS: &str = "dead-letters";

fn partition_key(topic: &str, partition: u64) -> String {
    format!("{topic}.p{partition}")
}

/// Producer: route by message key, append durably, collect the acks.
fn produce(wal: &Wal, topic: &str, partitions: u64) -> Result<Vec<(String, EntryRef)>, Error> {
    let mut acks = Vec::new();
    for i in 0..MESSAGES_PER_TOPIC {
        let message_key = format!("customer-{}", i % 7);
        let partition = partition_key(topic, key_hash(message_key.as_bytes()) % partitions);
        // Every 13th message is malformed: consumers dead-letter it.
        let body = if i % 13 == 5 {
            "garbage".to_owned()
        } else {
            format!("amount={i}")
        };
        let header = Bytes::from(format!("id={topic}-{i};key={message_key}"));
        let ack = wal.log_entry(partition.as_str(), Some(header), Bytes::from(body))?;
        acks.push((partition, ack));
    }
    Ok(acks)
}

/// A consumer of the `billing` group, and what it has done.
#[derive(Debug, Default)]
struct Consumer {
    processed: BTreeSet<String>,
    dead_lettered: usize,
}

impl Consumer {
    /// Consume a partition from the group's last committed offset, stopping
    /// after `budget` messages (as a crash or a rebalance would).
    fn consume(&mut self, wal: &Wal, partition: &str, budget: usize) -> Result<(), Error> {
        let offsets = format!("__offsets.billing.{partition}");
        let (records, skip) = match wal.records(&offsets)?.last().transpose()? {
            // Replay from the committed message and skip it: it was processed.
            Some(c) => (
                wal.records_from(std::str::from_utf8(&c.content)?.parse()?)?,
                1,
            ),
            None => (wal.records(partition)?, 0),
        };
        for record in records.skip(skip).take(budget) {
            let record = record?;
            let header = String::from_utf8(record.header.clone().unwrap_or_default().to_vec())?;
            let id = header.split(';').next().unwrap_or_default().to_owned();
            if record.content.starts_with(b"amount=") {
                if !self.processed.insert(id.clone()) {
                    return Err(format!("{id} processed twice").into());
                }
            } else {
                let why = format!("{header};from={};error=unparseable", record.entry_ref);
                wal.log_entry(DEAD_LETTERS, Some(Bytes::from(why)), record.content)?;
                self.dead_lettered += 1;
            }
            // Acknowledge: commit this message's reference.
            let commit = Bytes::from(record.entry_ref.to_string());
            wal.append_entry(offsets.as_str(), None, commit, true)?;
        }
        Ok(())
    }
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    ok.then_some(())
        .ok_or_else(|| format!("check failed: {what}").into())
}

fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let wal = Arc::new(Wal::builder(dir.path()).open()?);

    // Producers: one thread per topic, sharing the log without a Mutex.
    let acks: Vec<(String, EntryRef)> = std::thread::scope(|s| {
        let producers = TOPICS.map(|(topic, partitions)| {
            let wal = Arc::clone(&wal);
            s.spawn(move || produce(&wal, topic, partitions))
        });
        let mut acks = Vec::new();
        for p in producers {
            acks.extend(p.join().map_err(|_| "producer panicked")??);
        }
        Ok::<_, Error>(acks)
    })?;
    for (partition, ack) in &acks {
        let resolves = wal.read_record_at(*ack)?.entry_ref == *ack;
        check(
            resolves && key_hash(partition.as_bytes()) == ack.key_hash,
            "acks",
        )?;
    }
    let partitions: Vec<String> = TOPICS
        .iter()
        .flat_map(|&(t, n)| (0..n).map(move |p| partition_key(t, p)))
        .collect();

    // The group's first run stops early on every partition (a crash); the
    // second resumes from the committed offsets, a thread per partition.
    let mut first = Consumer::default();
    for partition in &partitions {
        first.consume(&wal, partition, 5)?;
    }
    println!(
        "first run: {} processed, then it stopped",
        first.processed.len()
    );
    let resumed: Vec<Consumer> = std::thread::scope(|s| {
        let consumers: Vec<_> = partitions
            .iter()
            .map(|p| {
                let wal = Arc::clone(&wal);
                s.spawn(move || -> Result<Consumer, Error> {
                    let mut c = Consumer::default();
                    c.consume(&wal, p, usize::MAX)?;
                    Ok(c)
                })
            })
            .collect();
        let joined = consumers.into_iter().map(|c| c.join());
        joined
            .map(|c| c.map_err(|_| "panicked")?)
            .collect::<Result<_, Error>>()
    })?;
    let mut processed = first.processed.len();
    let mut all = first;
    for c in resumed {
        processed += c.processed.len();
        all.processed.extend(c.processed);
        all.dead_lettered += c.dead_lettered;
    }
    let total = TOPICS.len() * MESSAGES_PER_TOPIC;
    let bad = (0..MESSAGES_PER_TOPIC).filter(|i| i % 13 == 5).count() * TOPICS.len();
    println!(
        "in all: {processed} processed, {} dead-lettered",
        all.dead_lettered
    );
    check(
        processed == all.processed.len(),
        "no message is processed twice",
    )?;
    check(processed == total - bad, "every good message is processed")?;
    check(
        all.dead_lettered == bad,
        "every bad message is dead-lettered",
    )?;

    // Dead letters point back at the original messages.
    for record in wal.records(DEAD_LETTERS)? {
        let record = record?;
        let header = String::from_utf8(record.header.unwrap_or_default().to_vec())?;
        let from = header.split(';').find_map(|kv| kv.strip_prefix("from="));
        let original = wal.read_entry_at(from.ok_or("from")?.parse()?)?;
        check(
            original == record.content,
            "a dead letter keeps the original",
        )?;
    }

    // A third run finds nothing new after the commits.
    let mut idle = Consumer::default();
    for partition in &partitions {
        idle.consume(&wal, partition, usize::MAX)?;
    }
    check(
        idle.processed.is_empty() && idle.dead_lettered == 0,
        "caught up",
    )?;

    // Replay a partition from a reference of our choice: its third message.
    let orders: Vec<&EntryRef> = acks
        .iter()
        .filter(|(p, _)| p == "orders.p2")
        .map(|a| &a.1)
        .collect();
    let replayed: Vec<EntryRef> = (wal.records_from(*orders[2])?)
        .map(|r| r.map(|r| r.entry_ref))
        .collect::<Result<_, _>>()?;
    check(
        replayed.iter().eq(orders[2..].iter().copied()),
        "replay from a reference",
    )?;
    println!(
        "replayed {} messages of orders.p2 from {}",
        replayed.len(),
        orders[2]
    );

    // Every thread is done with it: take the handle back and close it.
    Arc::try_unwrap(wal).map_err(|_| "still shared")?.close()?;
    println!("distributed_messaging: all checks passed");
    Ok(())
}
