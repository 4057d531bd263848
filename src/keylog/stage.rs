//! A batch's records on their way into a key's segments: placed
//! ([`KeyLog::stage`]), written ([`KeyLog::write_staged`]) and shown to
//! readers once their frame is in the journal ([`KeyLog::publish_staged`]).
//! One buffer of records and one list of runs serve every key of a batch.

use std::sync::Arc;

use super::{KeyLog, Writer};
use crate::engine::Engine;
use crate::entry_ref::EntryRef;
use crate::error::Result;
use crate::format::journal::FrameBuf;
use crate::format::record;
use crate::rules::write::Checked;
use crate::segment::Segment;

/// A batch's encoded records, in input order, waiting for their
/// positions. One buffer for the whole batch, whatever its keys.
#[derive(Debug, Default)]
pub(crate) struct BatchRecords {
    bytes: Vec<u8>,
    /// `(start in bytes, length)` of each record.
    spans: Vec<(usize, usize)>,
}

impl BatchRecords {
    /// Room for `records` records of `bytes` encoded bytes in all.
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(records),
        }
    }

    /// Encode `record` after the others (unsealed: [`KeyLog::stage`]
    /// seals it once its place is known).
    pub fn push(&mut self, record: Checked<'_>, timestamp_ms: u64) {
        let start = self.bytes.len();
        record.encode(&mut self.bytes, timestamp_ms);
        self.spans.push((start, self.bytes.len() - start));
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Their encoded bytes in all.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Where [`KeyLog::stage`] puts what it places: the batch's frame, its
/// list of runs, and the references in input order.
pub(crate) struct StageOut<'a> {
    pub frame: &'a mut FrameBuf,
    pub runs: &'a mut Runs,
    pub refs: &'a mut [EntryRef],
}

/// One key's records placed in its segments and added to a journal frame,
/// not yet written to the segments nor visible to readers
/// ([`KeyLog::stage`]): its runs, in the batch's [`Runs`].
#[derive(Debug)]
pub(crate) struct Staged {
    runs: std::ops::Range<usize>,
    records: usize,
}

/// The runs of every key of one batch, in one list.
#[derive(Debug, Default)]
pub(crate) struct Runs(Vec<Run>);

impl Runs {
    /// Room for `runs` runs (one per key, unless a key's records fill a
    /// segment).
    pub fn with_capacity(runs: usize) -> Self {
        Self(Vec::with_capacity(runs))
    }

    /// One key's runs.
    fn of(&self, staged: &Staged) -> &[Run] {
        &self.0[staged.runs.clone()]
    }
}

/// Records for one segment, contiguous from `start`, whose bytes sit at
/// `frame_at` in the frame.
#[derive(Debug)]
struct Run {
    seg: Arc<Segment>,
    start: u64,
    len: usize,
    frame_at: usize,
    /// Where the run's last record starts.
    last: u64,
}

impl KeyLog {
    /// Place the records `picks` (indexes into `records`, in order) at the
    /// end of the key's log, rotating as needed, and add them (with any
    /// segment creations) to `out.frame` and their runs to `out.runs`;
    /// their references go to `out.refs` at the same indexes. Nothing is
    /// written to the segments and nothing is visible yet: [`KeyLog::write_staged`] writes them, and once the frame
    /// is in the journal [`KeyLog::publish_staged`] shows them.
    pub fn stage(
        &self,
        (w, engine): (&mut Writer, &Engine),
        (records, picks): (&mut BatchRecords, &[usize]),
        now_ms: u64,
        out: StageOut<'_>,
    ) -> Result<Staged> {
        let StageOut { frame, runs, refs } = out;
        w.check()?;
        let first_run = runs.0.len();
        let mut i = 0;
        while let Some(&first) = picks.get(i) {
            let seg = if i == 0 {
                self.active_for(w, engine, now_ms, records.spans[first].1 as u64)?
            } else {
                // The previous run filled its segment.
                if let Some(active) = w.active.clone() {
                    self.seal(w, engine, &active)?;
                }
                self.create_segment(w, engine, now_ms)?
            };
            w.journal_creations(self.key_hash, frame);
            let start = seg.end();
            let (mut pos, mut last, mut len) = (start, start, 0);
            let mut j = i;
            while let Some(&index) = picks.get(j) {
                let (at, n) = records.spans[index];
                let fits = pos + n as u64 <= engine.config.max_segment_bytes;
                if j > i && !fits {
                    break;
                }
                record::seal(&mut records.bytes[at..at + n], seg.binding(pos));
                refs[index] = EntryRef {
                    key_hash: self.key_hash,
                    sequence_number: seg.sequence,
                    offset: pos - seg.header_len,
                };
                last = pos;
                pos += n as u64;
                len += n;
                j += 1;
            }
            let frame_at = frame.push_records(self.key_hash, seg.sequence, start, len);
            for &index in &picks[i..j] {
                let (at, n) = records.spans[index];
                frame
                    .vec_mut()
                    .extend_from_slice(&records.bytes[at..at + n]);
            }
            runs.0.push(Run {
                seg,
                start,
                len,
                frame_at,
                last,
            });
            i = j;
        }
        Ok(Staged {
            runs: first_run..runs.0.len(),
            records: picks.len(),
        })
    }

    /// Write the staged records to their segments (one call per segment),
    /// before their frame goes to the journal: a segment that cannot take
    /// them (a full disk) then costs no frame, and the key is cut back and
    /// goes on. Nothing is visible yet.
    pub fn write_staged(
        &self,
        w: &mut Writer,
        engine: &Engine,
        (staged, runs): (&Staged, &Runs),
        frame: &[u8],
    ) -> Result<()> {
        let runs = runs.of(staged);
        for (i, run) in runs.iter().enumerate() {
            let bytes = &frame[run.frame_at..run.frame_at + run.len];
            if let Err(e) = self.put(w, engine, &run.seg, bytes, run.start) {
                self.unwrite_staged(w, engine, &runs[..i]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The frame of staged records that [`KeyLog::write_staged`] wrote did
    /// not reach the journal: cut their segments back.
    pub fn unwrite(&self, w: &mut Writer, engine: &Engine, (staged, runs): (&Staged, &Runs)) {
        self.unwrite_staged(w, engine, runs.of(staged));
    }

    fn unwrite_staged(&self, w: &mut Writer, engine: &Engine, runs: &[Run]) {
        for run in runs.iter().rev() {
            self.cut_back(w, engine, &run.seg, run.start);
        }
    }

    /// Their frame is in the journal: readers may now see the staged
    /// records (they are complete in their files).
    pub fn publish_staged(&self, w: &mut Writer, (staged, runs): (&Staged, &Runs)) {
        w.frame_written();
        let runs = runs.of(staged);
        for run in runs {
            run.seg.note_last_record(run.last);
            run.seg.publish(run.start + run.len as u64);
        }
        let bytes: usize = runs.iter().map(|r| r.len).sum();
        w.appended.add(staged.records as u64, bytes as u64);
    }
}
