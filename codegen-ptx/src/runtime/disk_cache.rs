//! The on-disk JIT cache: compiled PTX keyed by everything that determines it, so a second run of a
//! program skips LLVM.
//!
//! - Where: `$DSL_CACHE_DIR`, else `$XDG_CACHE_HOME/tile-dsl`, else `$HOME/.cache/tile-dsl`;
//!   `DSL_CACHE_DIR=off` turns it off.
//! - Key: SHA-256 of the kernel's IR text (with source locations: they appear in assert messages), the
//!   specialization, the target, `num_warps`, the LLVM version, and this crate's version with a hash of
//!   its source (`build.rs`: a rebuilt code generator never reads another build's PTX).
//! - File `<key>.ptx`: a short text header, a blank line, then the PTX. The header repeats the key and
//!   holds the PTX's length and SHA-256, so a truncated, corrupted or misplaced file is detected and
//!   ignored (then recompiled and rewritten). Files are written to a temporary name and renamed, so
//!   readers never see half a file, even with several processes compiling at once.

use crate::target::Target;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// First line of every cache file; bump the version when the format or the ABI changes.
const MAGIC: &str = "tile-dsl jit cache v2";

/// What a cached compile holds: enough to load and launch the kernel without compiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedPtx {
    pub entry: String,
    pub num_threads: u32,
    pub shared_bytes: u32,
    pub ptx: String,
}

/// Everything a compile's output depends on.
#[derive(Clone, Copy, Debug)]
pub struct KeyParts<'a> {
    /// `dsl_core::ir::print::print(kernel, true)`.
    pub ir: &'a str,
    /// `Specialization::key()`.
    pub specialization: &'a str,
    pub target: Target,
    pub num_warps: u32,
    pub num_stages: u32,
    /// Whether accesses are bounds-checked (another ABI and code).
    pub bounds_check: bool,
    /// Whether fitting `dot`s lower to `wgmma` (sm_90a).
    pub wgmma: bool,
    /// Whether block-pointer loads feeding `wgmma` use TMA (sm_90a).
    pub tma: bool,
    /// `crate::compile::llvm_version()`.
    pub llvm_version: &'a str,
    /// This crate's version and source hash (the code generator is part of it).
    pub crate_version: &'a str,
}

/// The cache key: 64 lowercase hex digits.
pub fn cache_key(p: &KeyParts<'_>) -> String {
    let mut h = Sha256::new();
    h.update(MAGIC.as_bytes());
    let num_warps = format!("{} warps {} stages", p.num_warps, p.num_stages);
    let checked = if p.bounds_check { "checked" } else { "unchecked" };
    let mma = match (p.wgmma, p.tma) {
        (true, true) => "wgmma tma",
        (true, false) => "wgmma",
        (false, true) => "mma.sync tma",
        (false, false) => "mma.sync",
    };
    for part in [p.ir, p.specialization, p.target.cpu(), &num_warps, checked, mma, p.llvm_version, p.crate_version] {
        // Length-prefixed, so no two different part lists hash the same bytes.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The cache file's bytes.
pub fn encode(key: &str, c: &CachedPtx) -> Vec<u8> {
    let mut out = format!(
        "{MAGIC}\nkey {key}\nentry {}\nnum_threads {}\nshared_bytes {}\nptx_bytes {}\nptx_sha256 {}\n\n",
        c.entry,
        c.num_threads,
        c.shared_bytes,
        c.ptx.len(),
        sha256_hex(c.ptx.as_bytes())
    )
    .into_bytes();
    out.extend_from_slice(c.ptx.as_bytes());
    out
}

/// Parses a cache file; `None` unless it is complete, intact and for `key`.
pub fn decode(key: &str, bytes: &[u8]) -> Option<CachedPtx> {
    let split = bytes.windows(2).position(|w| w == b"\n\n")?;
    let header = std::str::from_utf8(&bytes[..split]).ok()?;
    let body = &bytes[split + 2..];
    let mut lines = header.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut field = |name: &str| -> Option<String> {
        let line = lines.next()?;
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        Some(value.to_string())
    };
    if field("key")? != key {
        return None;
    }
    let entry = field("entry")?;
    let num_threads = field("num_threads")?.parse().ok()?;
    let shared_bytes = field("shared_bytes")?.parse().ok()?;
    let ptx_bytes: usize = field("ptx_bytes")?.parse().ok()?;
    let sha = field("ptx_sha256")?;
    if lines.next().is_some() || entry.is_empty() || body.len() != ptx_bytes || sha256_hex(body) != sha {
        return None;
    }
    let ptx = String::from_utf8(body.to_vec()).ok()?;
    if ptx.contains('\0') {
        return None;
    }
    Some(CachedPtx { entry, num_threads, shared_bytes, ptx })
}

/// The cache directory from the environment's values (a pure function, for tests): `None` when the cache
/// is off or no location is known.
pub fn cache_dir_from(dsl_cache_dir: Option<&OsStr>, xdg_cache_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    fn set(v: Option<&OsStr>) -> Option<&OsStr> {
        v.filter(|s| !s.is_empty())
    }
    if let Some(d) = set(dsl_cache_dir) {
        return if d == "off" { None } else { Some(PathBuf::from(d)) };
    }
    if let Some(x) = set(xdg_cache_home) {
        return Some(Path::new(x).join("tile-dsl"));
    }
    set(home).map(|h| Path::new(h).join(".cache").join("tile-dsl"))
}

/// A cache directory.
#[derive(Clone, Debug)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    pub fn new(dir: impl Into<PathBuf>) -> DiskCache {
        DiskCache { dir: dir.into() }
    }

    /// The cache the environment asks for (see the module docs), or `None` if it is off.
    pub fn from_env() -> Option<DiskCache> {
        let var = std::env::var_os;
        cache_dir_from(var("DSL_CACHE_DIR").as_deref(), var("XDG_CACHE_HOME").as_deref(), var("HOME").as_deref())
            .map(DiskCache::new)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.ptx"))
    }

    /// The cached compile for `key`, if there is an intact one.
    pub fn load(&self, key: &str) -> Option<CachedPtx> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        decode(key, &bytes)
    }

    /// Writes the compile for `key` atomically (temporary file, then rename over any old or corrupt one).
    pub fn store(&self, key: &str, c: &CachedPtx) -> std::io::Result<()> {
        if c.entry.is_empty() || c.entry.contains(char::is_whitespace) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "entry name with whitespace"));
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(
            ".{key}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&encode(key, c))?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.path(key))
        };
        let r = write();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts<'static> {
        KeyParts {
            ir: "kernel add<BLOCK=64>(%0: ptr<f32>) {\n}\n",
            specialization: "an",
            target: Target::Sm90a,
            num_warps: 4,
            num_stages: 1,
            bounds_check: false,
            wgmma: true,
            tma: true,
            llvm_version: "22.1.0",
            crate_version: "0.1.0",
        }
    }

    #[test]
    fn key_changes_with_every_part() {
        let base = cache_key(&parts());
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(base, cache_key(&parts()), "deterministic");
        let variants = [
            KeyParts { ir: "kernel add<BLOCK=128>(%0: ptr<f32>) {\n}\n", ..parts() },
            KeyParts { specialization: "nn", ..parts() },
            KeyParts { target: Target::Sm80, ..parts() },
            KeyParts { num_warps: 8, ..parts() },
            KeyParts { num_stages: 3, ..parts() },
            KeyParts { bounds_check: true, ..parts() },
            KeyParts { wgmma: false, ..parts() },
            KeyParts { tma: false, ..parts() },
            KeyParts { llvm_version: "22.1.1", ..parts() },
            KeyParts { crate_version: "0.2.0", ..parts() },
        ];
        let mut keys: Vec<String> = variants.iter().map(cache_key).collect();
        keys.push(base);
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "every component must change the key");
        // Moving bytes between parts changes the key too (length prefixes).
        let a = KeyParts { specialization: "ab", llvm_version: "c", ..parts() };
        let b = KeyParts { specialization: "a", llvm_version: "bc", ..parts() };
        assert_ne!(cache_key(&a), cache_key(&b));
    }

    fn sample() -> CachedPtx {
        CachedPtx {
            entry: "add_k".into(),
            num_threads: 128,
            shared_bytes: 49152,
            ptx: ".version 8.4\n.target sm_90a\n\n.visible .entry add_k()\n{\n\tret;\n}\n".into(),
        }
    }

    #[test]
    fn file_format_round_trips_and_rejects_damage() {
        let key = cache_key(&parts());
        let bytes = encode(&key, &sample());
        assert_eq!(decode(&key, &bytes), Some(sample()));
        // Another key's file.
        assert_eq!(decode(&"0".repeat(64), &bytes), None);
        // Truncated anywhere.
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(decode(&key, &bytes[..cut]), None, "cut at {cut}");
        }
        // One flipped byte in the PTX (same length) fails the checksum.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x20;
        assert_eq!(decode(&key, &flipped), None);
        // Garbage and a bad number.
        assert_eq!(decode(&key, b"\x00\xff\n\nxx"), None);
        let text = String::from_utf8(bytes.clone()).unwrap().replace("num_threads 128", "num_threads x");
        assert_eq!(decode(&key, text.as_bytes()), None);
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let d = std::env::temp_dir().join(format!(
                "tile-dsl-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&d);
            TempDir(d)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn store_and_load_through_the_file_system() {
        let tmp = TempDir::new("rt");
        let cache = DiskCache::new(tmp.0.join("nested"));
        let key = cache_key(&parts());
        assert_eq!(cache.load(&key), None, "empty cache");
        cache.store(&key, &sample()).unwrap();
        assert_eq!(cache.load(&key), Some(sample()));
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(format!("{key}.ptx"))]);
        // A corrupted file is ignored, then replaced by the next store.
        std::fs::write(cache.path(&key), b"tile-dsl jit cache v1\nkey nonsense").unwrap();
        assert_eq!(cache.load(&key), None);
        let mut newer = sample();
        newer.shared_bytes = 0;
        cache.store(&key, &newer).unwrap();
        assert_eq!(cache.load(&key), Some(newer));
        // An entry name that would break the header is refused, not written.
        let bad = CachedPtx { entry: "a b".into(), ..sample() };
        assert!(cache.store(&key, &bad).is_err());
    }

    #[test]
    fn unwritable_directory_is_an_error_not_a_panic() {
        let tmp = TempDir::new("ro");
        std::fs::create_dir_all(&tmp.0).unwrap();
        let file = tmp.0.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let cache = DiskCache::new(&file);
        assert!(cache.store(&cache_key(&parts()), &sample()).is_err());
        assert_eq!(cache.load(&cache_key(&parts())), None);
    }

    #[test]
    fn directory_follows_the_environment() {
        fn s(x: &str) -> Option<&OsStr> {
            Some(OsStr::new(x))
        }
        assert_eq!(cache_dir_from(s("/c"), s("/x"), s("/h")), Some(PathBuf::from("/c")));
        assert_eq!(cache_dir_from(s("off"), s("/x"), s("/h")), None);
        assert_eq!(cache_dir_from(None, s("/x"), s("/h")), Some(PathBuf::from("/x/tile-dsl")));
        assert_eq!(cache_dir_from(s(""), s(""), s("/h")), Some(PathBuf::from("/h/.cache/tile-dsl")));
        assert_eq!(cache_dir_from(None, None, None), None);
    }
}
