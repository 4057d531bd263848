//! A simulated disk under nano-wal's storage seam.
//!
//! Every mutating call is appended to an operation log. From a prefix of the
//! log, [`SimDisk::crash_image`] builds the disk a power loss at that point
//! would leave: per file, the bytes made durable by the last successful
//! `sync_data` plus some damaged share of the unsynced bytes; per directory
//! entry, the state as of the last `sync_dir`, or (for changes made since)
//! a random pick of before or after.
//!
//! A failed `sync_data` behaves as on Linux: the unsynced bytes stay
//! readable in the "page cache" but are marked clean and never reach the
//! disk, even if a later sync succeeds.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nano_wal::storage::{LockGuard, OpenMode, Storage, StorageFile, not_a_regular_file};

use crate::rng::Rng;

/// Sector size for sector-granular damage.
pub const SECTOR_BYTES: usize = 512;

/// How far ahead of its frames the engine extends a journal file on this
/// disk (see `Storage::journal_grow_bytes`).
pub const JOURNAL_GROW_BYTES: u64 = 8 * SECTOR_BYTES as u64;

/// A file's bytes, copied only when written while shared.
type Bytes = Arc<Vec<u8>>;

/// A mutating operation, as logged.
#[derive(Debug, Clone)]
enum Op {
    /// A directory entry now names file `id`.
    Create { name: String, id: usize },
    /// A directory entry was removed.
    Remove { name: String },
    /// Bytes written at an offset.
    Write {
        id: usize,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// The file's length set.
    SetLen { id: usize, len: u64 },
    /// `sync_data`; `ok` false for an injected failure.
    Sync { id: usize, ok: bool },
    /// The directory's entries made durable.
    SyncDir,
}

/// What happens to a file's unsynced bytes in a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Everything written survives (a crash of the process, not the machine).
    ProcessCrash,
    /// Only synced bytes survive.
    Nothing,
    /// A prefix of the unsynced bytes survives, cut at a random byte.
    Cut,
    /// A cut prefix whose last 512-byte sector is zeros.
    SectorZeros,
    /// A cut prefix whose last 512-byte sector is garbage.
    SectorGarbage,
    /// A cut prefix, then the file grown with zeros.
    GrownWithZeros,
}

impl Damage {
    /// Every kind, for exhaustive sweeps.
    pub const ALL: [Damage; 6] = [
        Damage::ProcessCrash,
        Damage::Nothing,
        Damage::Cut,
        Damage::SectorZeros,
        Damage::SectorGarbage,
        Damage::GrownWithZeros,
    ];
}

/// Which I/O call fails, how, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The 1-based number of the I/O call that fails first.
    pub at_io: u64,
    /// What the failure is.
    pub kind: FaultKind,
    /// Keep failing every later call the kind applies to.
    pub persistent: bool,
}

/// Injectable failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// EIO on any call.
    Eio,
    /// ENOSPC on writes, length changes and creations.
    Enospc,
    /// EACCES on opens, creations, removals and locks.
    Eacces,
    /// EROFS on opens for writing, creations, removals and locks.
    Erofs,
    /// Writes write only half their bytes (not an error).
    ShortWrite,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Eio,
        FaultKind::Enospc,
        FaultKind::Eacces,
        FaultKind::Erofs,
        FaultKind::ShortWrite,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Open { write: bool },
    Create,
    Read,
    Write,
    Sync,
    Len,
    SetLen,
    List,
    Remove,
    SyncDir,
    Lock,
    Mkdir,
}

impl FaultKind {
    fn applies(self, call: Call) -> bool {
        match self {
            FaultKind::Eio => true,
            FaultKind::Enospc => matches!(call, Call::Write | Call::SetLen | Call::Create),
            FaultKind::Eacces => {
                matches!(
                    call,
                    Call::Open { .. } | Call::Create | Call::Remove | Call::Lock
                )
            }
            FaultKind::Erofs => {
                matches!(
                    call,
                    Call::Open { write: true } | Call::Create | Call::Remove | Call::Lock
                )
            }
            FaultKind::ShortWrite => call == Call::Write,
        }
    }

    fn errno(self) -> i32 {
        match self {
            FaultKind::Eio | FaultKind::ShortWrite => 5,
            FaultKind::Enospc => 28,
            FaultKind::Eacces => 13,
            FaultKind::Erofs => 30,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// File contents as readers see them, by file id (shared with crash
    /// images until written: images of large, mostly unchanged files are
    /// cheap).
    files: Vec<Bytes>,
    names: BTreeMap<String, usize>,
    dirs: BTreeSet<String>,
    log: Vec<Op>,
    io_calls: u64,
    faults_injected: u64,
    errors_injected: u64,
    fault: Option<Fault>,
    locks: BTreeSet<String>,
    /// Which boot of the simulated machine this disk is in.
    boot: u64,
    /// Segment salts handed out so far; the next salt derives from it, so
    /// every run of a workload writes the same bytes.
    salts: u64,
    /// What was on disk, durably, before the first logged operation: the
    /// files and names of the crash image this disk was made from (none for
    /// a new disk). A crash image of this disk starts from it.
    base: Base,
}

/// The files and names a disk starts with: after a power loss all durable;
/// after a crash of the process, with the unsynced bytes and names of the
/// disk it crashed on still unsynced (the page cache survives).
#[derive(Debug, Default, Clone)]
struct Base {
    files: Vec<FileReplay>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
}

impl State {
    /// Count an I/O call; `Err` if a fault hits it, `Ok(true)` for a short write.
    fn io(&mut self, call: Call) -> io::Result<bool> {
        self.io_calls += 1;
        let Some(f) = self.fault else {
            return Ok(false);
        };
        let hit = if f.persistent {
            self.io_calls >= f.at_io
        } else {
            self.io_calls == f.at_io
        };
        if !hit || !f.kind.applies(call) {
            return Ok(false);
        }
        self.faults_injected += 1;
        if f.kind == FaultKind::ShortWrite {
            return Ok(true);
        }
        self.errors_injected += 1;
        Err(io::Error::from_raw_os_error(f.kind.errno()))
    }
}

/// The simulated disk. Clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

fn key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This disk as a `Storage` for `Wal::builder(..).storage(..)`.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(self.clone())
    }

    /// Number of mutating operations logged so far.
    pub fn ops(&self) -> usize {
        self.lock().log.len()
    }

    /// Number of I/O calls made so far.
    pub fn io_calls(&self) -> u64 {
        self.lock().io_calls
    }

    /// Number of injected failures that hit a call.
    pub fn faults_injected(&self) -> u64 {
        self.lock().faults_injected
    }

    /// Number of injected failures that returned an error (short writes
    /// are not errors).
    pub fn errors_injected(&self) -> u64 {
        self.lock().errors_injected
    }

    /// Inject (or with `None`, stop injecting) a fault.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.lock().fault = fault;
    }

    /// One line per logged operation, for replay output.
    pub fn describe_log(&self) -> Vec<String> {
        let st = self.lock();
        let name_of = |id: usize| {
            st.log.iter().find_map(|op| match op {
                Op::Create { name, id: i } if *i == id => {
                    Some(name.rsplit('/').next().unwrap_or("").to_owned())
                }
                _ => None,
            })
        };
        st.log
            .iter()
            .map(|op| match op {
                Op::Create { name, .. } => format!("create {name}"),
                Op::Remove { name } => format!("remove {name}"),
                Op::Write { id, offset, bytes } => {
                    format!("write {:?} @{offset} +{}", name_of(*id), bytes.len())
                }
                Op::SetLen { id, len } => format!("set_len {:?} {len}", name_of(*id)),
                Op::Sync { id, ok } => format!("sync {:?} ok={ok}", name_of(*id)),
                Op::SyncDir => "sync_dir".to_owned(),
            })
            .collect()
    }

    /// Every file on the disk with its length.
    pub fn listing(&self) -> Vec<(String, usize)> {
        let st = self.lock();
        st.names
            .iter()
            .map(|(n, &id)| (n.clone(), st.files[id].len()))
            .collect()
    }

    /// The bytes a reader sees in `path`, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        st.names
            .get(&key(path))
            .and_then(|&id| st.files.get(id).map(|b| b.to_vec()))
    }

    /// The disk a power loss after the first `upto` logged operations would
    /// leave, with `damage` applied to unsynced bytes and `rng` choosing
    /// cut points and the fate of directory changes not yet synced.
    pub fn crash_image(&self, upto: usize, damage: Damage, rng: &mut Rng) -> SimDisk {
        let st = self.lock();
        let replay = Replay::run(&st.base, &st.log[..upto.min(st.log.len())]);
        // A power loss is a reboot: the page cache is gone.
        let mut out = State {
            dirs: st.dirs.clone(),
            boot: st.boot + 1,
            // Salts never repeat across boots, as random ones would not.
            salts: st.salts,
            ..State::default()
        };
        let mut base = Base::default();
        let mut place = |name: &str, id: usize, rng: &mut Rng| {
            let file = &replay.files[id];
            let bytes = if damage == Damage::ProcessCrash {
                file.volatile.clone()
            } else {
                file.after_power_loss(damage, rng)
            };
            let new_id = out.files.len();
            base.files.push(if damage == Damage::ProcessCrash {
                file.clone()
            } else {
                FileReplay {
                    volatile: bytes.clone(),
                    durable: bytes.clone(),
                    lost: Vec::new(),
                    dirty: (0, 0),
                }
            });
            out.files.push(bytes);
            out.names.insert(name.to_owned(), new_id);
            base.names.insert(name.to_owned(), new_id);
            // A name is durable on the new disk if it was on the old one
            // (a process crash keeps unsynced names unsynced).
            if damage != Damage::ProcessCrash || replay.durable_names.get(name) == Some(&id) {
                base.durable_names.insert(name.to_owned(), new_id);
            }
        };
        let all: BTreeSet<&String> = replay
            .names
            .keys()
            .chain(replay.durable_names.keys())
            .collect();
        for name in all {
            let now = replay.names.get(name).copied();
            let durable = replay.durable_names.get(name).copied();
            // A change not yet made durable by a directory sync may or may
            // not survive; the short-circuit keeps the draw sequence stable.
            let keep_now = damage == Damage::ProcessCrash || now == durable || rng.chance(1, 2);
            let pick = if keep_now { now } else { durable };
            if let Some(id) = pick {
                place(name, id, rng);
            }
        }
        // What a crash of this image starts from (nothing is logged yet).
        out.base = base;
        SimDisk {
            state: Arc::new(Mutex::new(out)),
        }
    }
}

/// The smallest range holding `range` and `r` (a range whose start is not
/// below its end is empty).
fn widened(range: (usize, usize), r: (usize, usize)) -> (usize, usize) {
    if range.0 >= range.1 {
        r
    } else {
        (range.0.min(r.0), range.1.max(r.1))
    }
}

#[derive(Debug, Default, Clone)]
struct FileReplay {
    volatile: Bytes,
    durable: Bytes,
    /// Byte ranges whose write-back failed: they never reach the disk.
    lost: Vec<(usize, usize)>,
    /// Outside `[dirty.0, dirty.1)` (empty when `.0 >= .1`) the two
    /// images have the same bytes and the same length: kept so that a sync
    /// compares and copies only what changed since the last one.
    dirty: (usize, usize),
}

impl FileReplay {
    /// Length of the prefix that the durable and volatile images share.
    fn common_prefix(&self) -> usize {
        let both = self.volatile.len().min(self.durable.len());
        let (lo, hi) = self.dirty;
        if lo >= hi || lo >= both {
            return both;
        }
        let hi = hi.min(both);
        let same = self.volatile[lo..hi]
            .iter()
            .zip(&self.durable[lo..hi])
            .take_while(|(a, b)| a == b)
            .count();
        // Past the range the images agree up to the shorter length.
        if lo + same < hi { lo + same } else { both }
    }

    /// Bytes in `[from, to)` may differ from the durable image now.
    fn touched(&mut self, from: usize, to: usize) {
        self.dirty = widened(self.dirty, (from, to));
    }

    /// Bytes in `[from, to)` are no longer "lost": they were cut off or
    /// written again.
    fn forget_lost(&mut self, from: usize, to: usize) {
        let mut kept = Vec::new();
        for &(a, b) in &self.lost {
            if a < from {
                kept.push((a, b.min(from)));
            }
            if b > to {
                kept.push((a.max(to), b));
            }
        }
        self.lost = kept.into_iter().filter(|(a, b)| a < b).collect();
    }

    fn sync(&mut self, ok: bool) {
        let p = self.common_prefix();
        if ok {
            // Only the changed range is copied.
            let len = self.volatile.len();
            let durable = Arc::make_mut(&mut self.durable);
            durable.resize(len, 0);
            let (lo, hi) = (p.min(len), self.dirty.1.clamp(p.min(len), len));
            durable[lo..hi].copy_from_slice(&self.volatile[lo..hi]);
            for &(from, to) in &self.lost {
                for b in durable.iter_mut().take(to).skip(from) {
                    *b = 0;
                }
            }
            // The lost bytes alone differ now (zeros on disk).
            self.dirty = self.lost.iter().fold((0, 0), |d, &r| widened(d, r));
        } else if p < self.volatile.len() {
            self.lost.push((p, self.volatile.len()));
        }
    }

    fn after_power_loss(&self, damage: Damage, rng: &mut Rng) -> Bytes {
        let p = self.common_prefix();
        // A fully synced file has no pending data or size change to damage.
        if damage == Damage::Nothing || p == self.volatile.len() {
            return self.durable.clone();
        }
        let cut = p + rng.index(self.volatile.len() - p + 1);
        let mut out = self.volatile[..cut].to_vec();
        for &(from, to) in &self.lost {
            for b in out.iter_mut().take(to).skip(from) {
                *b = 0;
            }
        }
        match damage {
            Damage::SectorZeros | Damage::SectorGarbage if cut > p => {
                let sector_start = ((cut - 1) / SECTOR_BYTES * SECTOR_BYTES).max(p);
                for b in &mut out[sector_start..cut] {
                    *b = if damage == Damage::SectorZeros {
                        0
                    } else {
                        rng.next_u64().to_le_bytes()[0]
                    };
                }
            }
            Damage::GrownWithZeros => {
                let grow = 1 + rng.index(2 * SECTOR_BYTES);
                out.resize(out.len() + grow, 0);
            }
            _ => {}
        }
        Arc::new(out)
    }
}

#[derive(Debug, Default)]
struct Replay {
    files: Vec<FileReplay>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
}

impl Replay {
    fn run(base: &Base, log: &[Op]) -> Self {
        let mut r = Replay {
            files: base.files.clone(),
            names: base.names.clone(),
            durable_names: base.durable_names.clone(),
        };
        for op in log {
            match op {
                Op::Create { name, id } => {
                    if r.files.len() <= *id {
                        r.files.resize(id + 1, FileReplay::default());
                    }
                    r.names.insert(name.clone(), *id);
                }
                Op::Remove { name } => {
                    r.names.remove(name);
                }
                Op::Write { id, offset, bytes } => {
                    let at = usize::try_from(*offset).unwrap_or(usize::MAX);
                    // Rewritten bytes are dirty again and will be written back.
                    r.files[*id].forget_lost(at, at + bytes.len());
                    let old = r.files[*id].volatile.len();
                    r.files[*id].touched(at.min(old), at + bytes.len());
                    let v = Arc::make_mut(&mut r.files[*id].volatile);
                    if v.len() < at + bytes.len() {
                        v.resize(at + bytes.len(), 0);
                    }
                    v[at..at + bytes.len()].copy_from_slice(bytes);
                }
                Op::SetLen { id, len } => {
                    let len = usize::try_from(*len).unwrap_or(0);
                    r.files[*id].forget_lost(len, usize::MAX);
                    let old = r.files[*id].volatile.len();
                    r.files[*id].touched(old.min(len), old.max(len));
                    Arc::make_mut(&mut r.files[*id].volatile).resize(len, 0);
                }
                Op::Sync { id, ok } => r.files[*id].sync(*ok),
                Op::SyncDir => r.durable_names = r.names.clone(),
            }
        }
        r
    }
}

#[derive(Debug)]
struct SimFile {
    disk: SimDisk,
    id: usize,
    writable: bool,
}

#[derive(Debug)]
struct SimLock {
    disk: SimDisk,
    name: String,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.disk.lock().locks.remove(&self.name);
    }
}

fn read_only_error() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only")
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.disk.lock();
        st.io(Call::Read)?;
        let data = &st.files[self.id];
        let at = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if !self.writable {
            return Err(read_only_error());
        }
        let mut st = self.disk.lock();
        let short = st.io(Call::Write)?;
        let n = if short {
            buf.len().div_ceil(2)
        } else {
            buf.len()
        };
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        let data = Arc::make_mut(&mut st.files[self.id]);
        if data.len() < at + n {
            data.resize(at + n, 0);
        }
        data[at..at + n].copy_from_slice(&buf[..n]);
        st.log.push(Op::Write {
            id: self.id,
            offset,
            bytes: buf[..n].to_vec(),
        });
        Ok(n)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.lock();
        let result = st.io(Call::Sync);
        st.log.push(Op::Sync {
            id: self.id,
            ok: result.is_ok(),
        });
        result.map(|_| ())
    }

    fn file_len(&self) -> io::Result<u64> {
        let mut st = self.disk.lock();
        st.io(Call::Len)?;
        Ok(st.files[self.id].len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(read_only_error());
        }
        let mut st = self.disk.lock();
        st.io(Call::SetLen)?;
        Arc::make_mut(&mut st.files[self.id]).resize(usize::try_from(len).unwrap_or(0), 0);
        st.log.push(Op::SetLen { id: self.id, len });
        Ok(())
    }
}

impl Storage for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.io(Call::Mkdir)?;
        st.dirs.insert(key(dir));
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock();
        st.io(Call::List)?;
        if !st.dirs.contains(&key(dir)) {
            return Err(io::ErrorKind::NotFound.into());
        }
        // Files and subdirectories, as a real listing has both.
        Ok(st
            .names
            .keys()
            .chain(&st.dirs)
            .filter_map(|n| {
                let p = Path::new(n);
                (p.parent() == Some(dir)).then(|| p.file_name()?.to_str().map(str::to_owned))?
            })
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = self.lock();
        let name = key(path);
        let call = match mode {
            OpenMode::Read => Call::Open { write: false },
            OpenMode::ReadWrite => Call::Open { write: true },
            OpenMode::CreateNew => Call::Create,
        };
        st.io(call)?;
        // The simulated disk has no symbolic links; a directory is the one
        // thing besides a regular file a name can be.
        if st.dirs.contains(&name) {
            return Err(not_a_regular_file("a directory"));
        }
        let id = match (mode, st.names.get(&name).copied()) {
            (OpenMode::CreateNew, Some(_)) => return Err(io::ErrorKind::AlreadyExists.into()),
            (OpenMode::CreateNew, None) => {
                let id = st.files.len();
                st.files.push(Bytes::default());
                st.names.insert(name.clone(), id);
                st.log.push(Op::Create { name, id });
                id
            }
            (_, Some(id)) => id,
            (_, None) => return Err(io::ErrorKind::NotFound.into()),
        };
        drop(st);
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            id,
            writable: mode != OpenMode::Read,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.io(Call::Remove)?;
        let name = key(path);
        if st.names.remove(&name).is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        st.log.push(Op::Remove { name });
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.io(Call::Remove)?;
        let name = key(dir);
        if !st.dirs.contains(&name) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let in_dir = |n: &String| Path::new(n).parent() == Some(dir);
        if st.names.keys().any(in_dir) || st.dirs.iter().any(in_dir) {
            return Err(io::ErrorKind::DirectoryNotEmpty.into());
        }
        st.dirs.remove(&name);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.io(Call::SyncDir)?;
        st.log.push(Op::SyncDir);
        Ok(())
    }

    fn boot_id(&self) -> io::Result<String> {
        Ok(format!("sim-boot-{}", self.lock().boot))
    }

    /// A few sectors rather than a mebibyte: every crash image copies the
    /// files, and the zeros past the last frame are tested all the same.
    fn journal_grow_bytes(&self) -> u64 {
        JOURNAL_GROW_BYTES
    }

    fn segment_salt(&self) -> u64 {
        let mut st = self.lock();
        st.salts += 1;
        crate::rng::Rng::new(st.salts).next_u64()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut st = self.lock();
        st.io(Call::Lock)?;
        let name = key(path);
        if st.dirs.contains(&name) {
            return Err(not_a_regular_file("a directory"));
        }
        if !st.locks.insert(name.clone()) {
            return Ok(None);
        }
        drop(st);
        Ok(Some(Box::new(SimLock {
            disk: self.clone(),
            name,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(disk: &SimDisk, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
        let f = disk.open(Path::new(name), OpenMode::CreateNew)?;
        f.write_at(bytes, 0)?;
        if sync {
            f.sync_data()?;
        }
        Ok(())
    }

    #[test]
    fn power_loss_keeps_synced_bytes_and_names() -> io::Result<()> {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/d"))?;
        write(&disk, "/d/a", b"synced", true)?;
        disk.sync_dir(Path::new("/d"))?;
        write(&disk, "/d/b", b"volatile", false)?;
        let mut rng = Rng::new(1);
        let img = disk.crash_image(disk.ops(), Damage::Nothing, &mut rng);
        assert_eq!(
            img.read_file(Path::new("/d/a")).as_deref(),
            Some(&b"synced"[..])
        );
        let b = img.read_file(Path::new("/d/b"));
        assert!(b.is_none() || b.as_deref() == Some(&b""[..]), "{b:?}");
        let whole = disk.crash_image(disk.ops(), Damage::ProcessCrash, &mut rng);
        assert_eq!(
            whole.read_file(Path::new("/d/b")).as_deref(),
            Some(&b"volatile"[..])
        );
        Ok(())
    }

    #[test]
    fn a_crash_of_a_crashed_disk_keeps_what_was_there_before() -> io::Result<()> {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/d"))?;
        write(&disk, "/d/a", b"synced", true)?;
        disk.sync_dir(Path::new("/d"))?;
        let mut rng = Rng::new(2);
        let first = disk.crash_image(disk.ops(), Damage::Nothing, &mut rng);
        assert_eq!(first.ops(), 0, "a crash image starts with an empty log");
        write(&first, "/d/b", b"later", false)?;
        let f = first.open(Path::new("/d/a"), OpenMode::ReadWrite)?;
        f.write_at(b"X", 0)?;
        for upto in 0..=first.ops() {
            let second = first.crash_image(upto, Damage::Nothing, &mut rng);
            assert_eq!(
                second.read_file(Path::new("/d/a")).as_deref(),
                Some(&b"synced"[..]),
                "after op {upto}: the earlier image's file and its durable bytes"
            );
        }
        Ok(())
    }

    #[test]
    fn failed_sync_loses_the_dirty_bytes_for_good() -> io::Result<()> {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/d"))?;
        let f = disk.open(Path::new("/d/a"), OpenMode::CreateNew)?;
        f.write_at(b"aaaa", 0)?;
        f.sync_data()?;
        f.write_at(b"bbbb", 4)?;
        disk.set_fault(Some(Fault {
            at_io: disk.io_calls() + 1,
            kind: FaultKind::Eio,
            persistent: false,
        }));
        assert!(f.sync_data().is_err());
        f.sync_data()?; // "succeeds", but the pages were already marked clean
        disk.sync_dir(Path::new("/d"))?;
        let img = disk.crash_image(disk.ops(), Damage::Nothing, &mut Rng::new(3));
        assert_eq!(
            img.read_file(Path::new("/d/a")).as_deref(),
            Some(&b"aaaa\0\0\0\0"[..])
        );
        Ok(())
    }

    #[test]
    fn cuts_stay_within_the_unsynced_suffix() -> io::Result<()> {
        let disk = SimDisk::new();
        disk.create_dir_all(Path::new("/d"))?;
        let f = disk.open(Path::new("/d/a"), OpenMode::CreateNew)?;
        f.write_at(&[1u8; 1000], 0)?;
        f.sync_data()?;
        disk.sync_dir(Path::new("/d"))?;
        f.write_at(&[2u8; 2000], 1000)?;
        let mut rng = Rng::new(9);
        for damage in Damage::ALL {
            for _ in 0..50 {
                let img = disk.crash_image(disk.ops(), damage, &mut rng);
                let a = img.read_file(Path::new("/d/a")).unwrap_or_default();
                assert!(a.len() >= 1000, "{damage:?}");
                assert_eq!(
                    &a[..1000],
                    &[1u8; 1000][..],
                    "{damage:?}: synced bytes intact"
                );
            }
        }
        Ok(())
    }
}
