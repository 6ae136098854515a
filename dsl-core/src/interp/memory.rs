//! The interpreter's view of launch buffers: bounds and alignment checks on every access, and the race
//! detector (two programs touching one byte, at least one writing, without both using atomics, and not
//! ordered by a release and an acquire, see [`Order`]).

use super::value::PtrVal;
use crate::scalar::{read_mem, write_mem, Scalar};
use crate::types::DType;
use std::collections::{HashMap, HashSet};

pub(crate) enum BufData<'a> {
    ReadOnly(&'a [u8]),
    Writable(&'a mut [u8]),
}

pub(crate) struct Buf<'a> {
    /// The kernel parameter the buffer was passed as.
    pub name: String,
    pub dtype: DType,
    pub data: BufData<'a>,
    races: Option<RaceState>,
}

const NONE: u32 = u32::MAX;
const MANY: u32 = u32::MAX - 1;

/// Per byte: the program that stored to it, the one(s) that loaded it, and the one(s) that used atomics on it.
struct RaceState {
    writer: Vec<u32>,
    reader: Vec<u32>,
    atomic: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Load,
    Store,
    Atomic,
}

/// Which programs of a launch are ordered before the one running, through `fence` and atomics (programs
/// run one after another, so everything a releasing program did has happened). A program *releases* on
/// an address when it updates it atomically after a fence; it *acquires* from the programs that
/// released on an address when it fences after updating that address atomically itself. A program
/// acquired from counts as ordered before this one for all its accesses (those after its release too: a
/// program should do nothing after its ticket but what the ticket grants).
#[derive(Default)]
pub(crate) struct Order {
    /// Per atomic address (buffer, byte): the programs that released on it, and those they had acquired from.
    releases: HashMap<(u32, usize), Vec<u32>>,
    /// The running program has fenced.
    fenced: bool,
    /// The addresses the running program updated atomically.
    atomics: Vec<(u32, usize)>,
    /// The programs ordered before the running one.
    acquired: HashSet<u32>,
}

pub(crate) struct Memory<'a> {
    pub bufs: Vec<Buf<'a>>,
    /// Linear id of the program now running, and its grid coordinates (for messages).
    pub program: u32,
    pub pid_of: Box<dyn Fn(u32) -> [u32; 3]>,
    pub order: Order,
}

impl<'a> Memory<'a> {
    /// Starts program `lin`: nothing is ordered before it yet.
    pub fn start_program(&mut self, lin: u32) {
        self.program = lin;
        let o = &mut self.order;
        (o.fenced, o.atomics, o.acquired) = (false, vec![], HashSet::new());
    }

    /// A `fence` of the running program: it acquires from the programs that released on the addresses
    /// it updated atomically, and its later atomics release.
    pub fn fence(&mut self) {
        let o = &mut self.order;
        o.fenced = true;
        for a in &o.atomics {
            if let Some(ps) = o.releases.get(a) {
                o.acquired.extend(ps.iter().copied());
            }
        }
    }

    fn note_atomic(&mut self, buf: u32, byte: usize) {
        let (me, o) = (self.program, &mut self.order);
        o.atomics.push((buf, byte));
        if o.fenced {
            let r = o.releases.entry((buf, byte)).or_default();
            r.push(me);
            r.extend(o.acquired.iter().copied());
        }
    }

    pub fn add(&mut self, name: String, dtype: DType, data: BufData<'a>, track_races: bool) {
        let races = match (&data, track_races) {
            (BufData::Writable(b), true) => {
                Some(RaceState { writer: vec![NONE; b.len()], reader: vec![NONE; b.len()], atomic: vec![NONE; b.len()] })
            }
            _ => None,
        };
        self.bufs.push(Buf { name, dtype, data, races });
    }

    fn describe(&self, p: PtrVal) -> String {
        match self.bufs.get(p.buf as usize) {
            Some(b) => {
                let es = b.dtype.size_bytes() as i64;
                let len = match &b.data {
                    BufData::ReadOnly(d) => d.len(),
                    BufData::Writable(d) => d.len(),
                } as i64;
                if p.offset % es == 0 {
                    format!("element {} of `{}` (a buffer of {} {})", p.offset / es, b.name, len / es, b.dtype)
                } else {
                    format!("byte {} of `{}` (a buffer of {} bytes)", p.offset, b.name, len)
                }
            }
            None => "an invalid pointer".into(),
        }
    }

    /// Checks that an access of `d` at `p` is inside its buffer and aligned.
    fn check(&self, p: PtrVal, d: DType, what: &str) -> Result<(usize, usize), String> {
        let b = self.bufs.get(p.buf as usize).ok_or_else(|| format!("{what} through an invalid pointer"))?;
        let len = match &b.data {
            BufData::ReadOnly(d) => d.len(),
            BufData::Writable(d) => d.len(),
        };
        let size = d.size_bytes();
        if p.offset < 0 || p.offset as u64 + size as u64 > len as u64 {
            return Err(format!("out-of-bounds {what}: {} is outside the buffer", self.describe(p)));
        }
        if p.offset as usize % size != 0 {
            return Err(format!("misaligned {what} of {d} at {}", self.describe(p)));
        }
        Ok((p.offset as usize, size))
    }

    fn track(&mut self, p: PtrVal, start: usize, size: usize, access: Access) -> Result<(), String> {
        let me = self.program;
        let describe = self.describe(p);
        let b = &mut self.bufs[p.buf as usize];
        let Some(r) = b.races.as_mut() else { return Ok(()) };
        let acquired = &self.order.acquired;
        let other = |x: u32| x != NONE && x != me && !acquired.contains(&x);
        for i in start..start + size {
            let conflict = match access {
                Access::Load => [(r.writer[i], "stored to"), (r.atomic[i], "atomically updated")].into_iter().find(|c| other(c.0)),
                Access::Store => [(r.writer[i], "stored to"), (r.reader[i], "loaded"), (r.atomic[i], "atomically updated")]
                    .into_iter()
                    .find(|c| other(c.0)),
                Access::Atomic => [(r.writer[i], "stored to"), (r.reader[i], "loaded")].into_iter().find(|c| other(c.0)),
            };
            if let Some((who, did)) = conflict {
                let verb = match access {
                    Access::Load => "loads",
                    Access::Store => "stores to",
                    Access::Atomic => "atomically updates",
                };
                let who = if who == MANY {
                    "other programs".to_string()
                } else {
                    let [x, y, z] = (self.pid_of)(who);
                    format!("program ({x}, {y}, {z})")
                };
                let [x, y, z] = (self.pid_of)(me);
                return Err(format!(
                    "data race: program ({x}, {y}, {z}) {verb} {describe}, which {who} {did} in this launch; \
                     use atomics, or make each program own the addresses it writes"
                ));
            }
            let slot = match access {
                Access::Load => &mut r.reader[i],
                Access::Store => &mut r.writer[i],
                Access::Atomic => &mut r.atomic[i],
            };
            *slot = if *slot == NONE || *slot == me { me } else { MANY };
        }
        Ok(())
    }

    /// Bounds and alignment of a prefetch (which reads nothing, so takes no part in race checks).
    pub fn check_prefetch(&self, p: PtrVal, d: DType) -> Result<(), String> {
        self.check(p, d, "prefetch").map(|_| ())
    }

    pub fn load(&mut self, p: PtrVal, d: DType) -> Result<Scalar, String> {
        let (start, size) = self.check(p, d, "load")?;
        self.track(p, start, size, Access::Load)?;
        let bytes = match &self.bufs[p.buf as usize].data {
            BufData::ReadOnly(b) => &b[start..start + size],
            BufData::Writable(b) => &b[start..start + size],
        };
        Ok(read_mem(d, bytes))
    }

    pub fn store(&mut self, p: PtrVal, d: DType, v: Scalar, access: Access) -> Result<(), String> {
        let (start, size) = self.check(p, d, if access == Access::Atomic { "atomic" } else { "store" })?;
        self.track(p, start, size, access)?;
        let describe = self.describe(p);
        match &mut self.bufs[p.buf as usize].data {
            BufData::Writable(b) => {
                write_mem(d, v, &mut b[start..start + size]);
                Ok(())
            }
            BufData::ReadOnly(_) => Err(format!("store to read-only {describe}")),
        }
    }

    /// An atomic read-modify-write: `f(old)` gives the value to store (if any); returns the old value.
    pub fn atomic(&mut self, p: PtrVal, d: DType, f: impl FnOnce(Scalar) -> Option<Scalar>) -> Result<Scalar, String> {
        let (start, size) = self.check(p, d, "atomic")?;
        self.track(p, start, size, Access::Atomic)?;
        self.note_atomic(p.buf, start);
        let old = match &self.bufs[p.buf as usize].data {
            BufData::ReadOnly(b) => read_mem(d, &b[start..start + size]),
            BufData::Writable(b) => read_mem(d, &b[start..start + size]),
        };
        if let Some(new) = f(old) {
            self.store_untracked(p.buf, start, size, d, new)?;
        }
        Ok(old)
    }

    fn store_untracked(&mut self, buf: u32, start: usize, size: usize, d: DType, v: Scalar) -> Result<(), String> {
        match &mut self.bufs[buf as usize].data {
            BufData::Writable(b) => {
                write_mem(d, v, &mut b[start..start + size]);
                Ok(())
            }
            BufData::ReadOnly(_) => Err("atomic on a read-only buffer".into()),
        }
    }
}
