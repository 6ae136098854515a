//! Autotuning of launch configurations: a kernel declares candidate [`Config`]s (block sizes, `num_warps`,
//! `num_stages`, `split_k`...), each call names a key (usually shape buckets, [`key_of`]) and a device, and
//! [`Autotuner::best`] returns the fastest config for them.
//!
//! Where the winner comes from, in order:
//! 1. this process's memory (one lookup per `(device, key)`; nothing is called);
//! 2. the **committed winners** ([`Autotuner::with_committed`]), a file in the repository, so production
//!    does not search. A committed winner whose kernel fingerprint differs from the kernel's now (the
//!    kernel changed since it was tuned), or whose config is no longer a candidate, is refused with
//!    [`AutotuneError::StaleWinner`] / [`AutotuneError::UnknownConfig`]: never applied, never silently
//!    re-tuned;
//! 3. the **disk cache** of past winners, `<cache dir>/autotune/<kernel>.tsv` with the cache directory of
//!    the JIT cache ([`super::disk_cache`]: `$DSL_CACHE_DIR`, `off` disables it). A stale record there is
//!    simply re-tuned: the cache is not the repository;
//! 4. **measuring** every candidate with the caller's `measure` (GPU milliseconds, e.g. [`median_ms`]).
//!    Candidates that fail (too much shared memory...) are skipped and reported in
//!    [`Source::Measured`]; if all fail, [`AutotuneError::AllFailed`] lists why. The winner (ties: the
//!    earlier candidate) is written to the disk cache.
//!
//! The fingerprint identifies the kernel a config builds, computed by the caller: usually
//! [`fingerprint_spec`], the SHA-256 of its IR printed without source locations (edits to comments or
//! formatting keep winners valid; any change of the computed code invalidates them). It does not cover
//! the code generator, so re-tune after backend changes that matter.
//!
//! # File format (committed file and disk cache alike)
//!
//! UTF-8 text. The first line is `# tile-dsl autotune v1`; later lines starting with `#` and blank
//! lines are ignored; every other line is one winner, six fields separated by single tab characters
//! (shown as `⇥` below):
//!
//! ```text
//! # tile-dsl autotune v1
//! # kernel ⇥ device ⇥ key ⇥ config ⇥ ms ⇥ fingerprint
//! matmul ⇥ NVIDIA H100 80GB HBM3 ⇥ M=16,N=8192,K=8192 ⇥ BLOCK_M=64,BLOCK_N=128,num_warps=4 ⇥ 0.0412 ⇥ 3f1a…(64 hex)
//! ```
//!
//! One file may hold several kernels and devices (winners differ between an H100 and an A100); a
//! `(kernel, device, key)` appears at most once. [`Autotuner::write_committed`] writes this format,
//! sorted, merging into an existing file. In a committed file, any malformed line is an error naming
//! the file and line; in the disk cache, malformed lines are ignored.

// The refusals carry everything their message names; errors are rare and off the hot path (a memory hit).
#![allow(clippy::result_large_err)]

use super::{CudaError, CudaRuntime};
pub use dsl_core::tune::{bucket, key_of, Config};
use dsl_core::runtime::KernelSpec;
use dsl_core::CompileError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const MAGIC: &str = "# tile-dsl autotune v1";

/// SHA-256 (hex) of a kernel's IR printed without source locations.
pub fn fingerprint(kernel: &dsl_core::ir::Kernel) -> String {
    Sha256::digest(dsl_core::ir::print::print(kernel, false).as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// [`fingerprint`] of the kernel `spec` builds.
pub fn fingerprint_spec(spec: &KernelSpec) -> Result<String, CompileError> {
    Ok(fingerprint(&(spec.build)()?))
}

/// A `measure` for [`Autotuner::best`]: calls `launch` once (warm-up: compiles), then times it `reps`
/// times with device events and returns the median in milliseconds.
pub fn median_ms(rt: &CudaRuntime, reps: usize, mut launch: impl FnMut() -> Result<(), CudaError>) -> Result<f64, CudaError> {
    launch()?;
    let mut ms = (0..reps.max(1)).map(|_| rt.time(&mut launch)).collect::<Result<Vec<f64>, _>>()?;
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

/// One winner, as stored in the files.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kernel: String,
    pub device: String,
    pub key: String,
    pub config: Config,
    pub ms: f64,
    pub fingerprint: String,
}

impl Record {
    fn line(&self) -> String {
        let (k, d, y, c, f) = (&self.kernel, &self.device, &self.key, &self.config, &self.fingerprint);
        format!("{k}\t{d}\t{y}\t{c}\t{:.4}\t{f}\n", self.ms)
    }

    fn parse(line: &str) -> Result<Record, String> {
        let f: Vec<&str> = line.split('\t').collect();
        let [kernel, device, key, config, ms, fingerprint] = f[..] else {
            return Err(format!("expected 6 tab-separated fields (kernel, device, key, config, ms, fingerprint), found {}", f.len()));
        };
        let ms: f64 = ms.parse().map_err(|_| format!("ms `{ms}` is not a number"))?;
        if !(ms.is_finite() && ms >= 0.0) || kernel.is_empty() || device.is_empty() {
            return Err("empty kernel or device, or ms not a non-negative number".into());
        }
        if fingerprint.is_empty() || fingerprint.contains(char::is_whitespace) {
            return Err(format!("bad fingerprint `{fingerprint}`"));
        }
        let config = config.parse().map_err(|e| format!("config `{config}`: {e}"))?;
        let s = |x: &str| x.to_string();
        Ok(Record { kernel: s(kernel), device: s(device), key: s(key), config, ms, fingerprint: s(fingerprint) })
    }
}

/// Parses a winners file: the records, or the 1-based number of the first bad line and why.
pub fn parse_records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some(MAGIC) {
        return Err((1, format!("the first line must be `{MAGIC}`")));
    }
    let mut out: Vec<Record> = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let r = Record::parse(line.strip_suffix('\r').unwrap_or(line)).map_err(|e| (i + 2, e))?;
        if out.iter().any(|o| (&o.kernel, &o.device, &o.key) == (&r.kernel, &r.device, &r.key)) {
            return Err((i + 2, format!("a second winner for kernel `{}`, device `{}`, key `{}`", r.kernel, r.device, r.key)));
        }
        out.push(r);
    }
    Ok(out)
}

/// A winners file's text: the header, then `records` sorted by kernel, device and key.
pub fn format_records(records: &[Record]) -> String {
    let mut rs: Vec<&Record> = records.iter().collect();
    rs.sort_by(|a, b| (&a.kernel, &a.device, &a.key).cmp(&(&b.kernel, &b.device, &b.key)));
    let mut s = format!("{MAGIC}\n# kernel\tdevice\tkey\tconfig\tms\tfingerprint\n");
    rs.iter().for_each(|r| s.push_str(&r.line()));
    s
}

/// Where a winner came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The committed file (its path).
    Committed { file: String },
    DiskCache,
    /// Measured now: every candidate's milliseconds, or why it failed.
    Measured { timings: Vec<(Config, Result<f64, String>)> },
}

/// The winner for one `(device, key)`; `source` says how it was found the first time in this process.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuned {
    pub config: Config,
    /// Its measured milliseconds (when it was tuned, for committed and cached winners).
    pub ms: f64,
    pub fingerprint: String,
    pub source: Source,
}

/// Why [`Autotuner`] could not give a winner.
#[derive(Debug, thiserror::Error)]
pub enum AutotuneError {
    #[error("{file}:{line}: {message} (autotune winners file; format in codegen_ptx::runtime::autotune)")]
    BadFile { file: String, line: usize, message: String },
    #[error("cannot {op} autotune winners file {file}: {source}")]
    Io { op: &'static str, file: String, source: std::io::Error },
    #[error("stale autotune winner in {file} for kernel `{kernel}`, key `{key}`, device `{device}`: config {config} was \
             tuned for kernel fingerprint {recorded}, but the kernel now has fingerprint {current} (its code changed). \
             It is not applied. Re-tune and commit the regenerated file: {retune}")]
    StaleWinner { kernel: String, key: String, device: String, file: String, config: Config, recorded: String, current: String, retune: String },
    #[error("autotune winner in {file} for kernel `{kernel}`, key `{key}`, device `{device}` is config {config}, which is \
             no longer a candidate. It is not applied. Re-tune and commit the regenerated file: {retune}")]
    UnknownConfig { kernel: String, key: String, device: String, file: String, config: Config, retune: String },
    #[error("no config of kernel `{kernel}` ran for key `{key}` on `{device}`:{}",
            failures.iter().map(|(c, e)| format!("\n  {c}: {e}")).collect::<String>())]
    AllFailed { kernel: String, key: String, device: String, failures: Vec<(Config, String)> },
    #[error("cannot fingerprint kernel `{kernel}` with config {config}: {message}")]
    Fingerprint { kernel: String, config: Config, message: String },
    #[error("autotune {what} `{value}` contains a tab or line break")]
    BadField { what: &'static str, value: String },
}

struct Committed {
    file: String,
    records: Vec<Record>,
}

/// The autotuner of one kernel: its candidates, its committed winners, and the winners found so far.
/// `Send + Sync`, so it can live in a `static` `OnceLock` next to the kernel.
pub struct Autotuner {
    kernel: String,
    configs: Vec<Config>,
    committed: Option<Committed>,
    retune: String,
    cache_dir: Option<PathBuf>,
    /// device -> key -> winner.
    memory: Mutex<HashMap<String, HashMap<String, Arc<Tuned>>>>,
}

impl Autotuner {
    /// An autotuner for kernel `kernel` (the name used in files) choosing among `configs`, with the disk
    /// cache the environment names and no committed winners.
    ///
    /// # Panics
    /// If `configs` is empty or repeats a config, or `kernel` is empty or holds a tab or line break.
    pub fn new(kernel: &str, configs: Vec<Config>) -> Autotuner {
        assert!(!kernel.is_empty() && !kernel.contains(['\t', '\n', '\r']), "bad autotune kernel name `{kernel}`");
        assert!(!configs.is_empty(), "autotuner of `{kernel}` without configs");
        for (i, c) in configs.iter().enumerate() {
            assert!(!configs[..i].contains(c), "autotuner of `{kernel}`: config {c} given twice");
        }
        Autotuner {
            retune: "run the autotuner without the committed file on that device, export with \
                     Autotuner::write_committed, and commit the file"
                .into(),
            cache_dir: super::DiskCache::from_env().map(|c| c.dir().join("autotune")),
            kernel: kernel.to_string(),
            configs,
            committed: None,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the committed winners from `path` (the records of other kernels are ignored). A missing or
    /// malformed file is an error, naming the line.
    pub fn with_committed(self, path: impl AsRef<Path>) -> Result<Autotuner, AutotuneError> {
        let file = path.as_ref().display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AutotuneError::Io { op: "read", file: file.clone(), source })?;
        self.with_committed_text(&file, &text)
    }

    /// [`Self::with_committed`] from text (e.g. `include_str!`), `file` naming it in errors.
    pub fn with_committed_text(mut self, file: &str, text: &str) -> Result<Autotuner, AutotuneError> {
        let records = parse_records(text).map_err(|(line, message)| AutotuneError::BadFile { file: file.into(), line, message })?;
        let records = records.into_iter().filter(|r| r.kernel == self.kernel).collect();
        self.committed = Some(Committed { file: file.into(), records });
        Ok(self)
    }

    /// The command that stale-winner errors tell the user to run (e.g. `gpu-check tune`).
    pub fn retune_command(mut self, command: &str) -> Autotuner {
        self.retune = format!("`{command}`");
        self
    }

    /// The directory of the disk cache's files (`None`: no disk cache).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Autotuner {
        self.cache_dir = dir;
        self
    }

    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    pub fn configs(&self) -> &[Config] {
        &self.configs
    }

    /// The disk cache file of this kernel.
    pub fn cache_file(&self) -> Option<PathBuf> {
        let safe: String = self.kernel.chars().map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' }).collect();
        self.cache_dir.as_ref().map(|d| d.join(format!("{safe}.tsv")))
    }

    /// The best config for `key` on `device` (see the module docs for the order of lookups).
    /// `fingerprint(config)` identifies the kernel built with `config` (called for the winner only);
    /// `measure(config)` runs it and returns milliseconds (called for every candidate, only when nothing
    /// valid is remembered). Errors of either are reported as text. A tool that means to search calls
    /// this; a user's run calls [`Self::lookup`].
    pub fn best<E1: fmt::Display, E2: fmt::Display>(
        &self,
        device: &str,
        key: &str,
        mut fingerprint: impl FnMut(&Config) -> Result<String, E1>,
        mut measure: impl FnMut(&Config) -> Result<f64, E2>,
    ) -> Result<Arc<Tuned>, AutotuneError> {
        if let Some(t) = self.lookup(device, key, &mut fingerprint)? {
            return Ok(t);
        }
        let mut fp = |c: &Config| {
            fingerprint(c).map_err(|e| AutotuneError::Fingerprint { kernel: self.kernel.clone(), config: c.clone(), message: e.to_string() })
        };
        let t = self.measure_all(device, key, &mut fp, &mut measure)?;
        self.store_in_cache(device, key, &t);
        Ok(self.remember(device, key, t))
    }

    /// The winner for `key` on `device` that is already known — in this process's memory, the
    /// committed file or the disk cache, as for [`Self::best`] (a stale committed winner is the same
    /// error) — or `None`. Never measures: what a user's program calls, using the kernel's heuristic on
    /// `None`, so that no search starts unasked (on a GPU with no committed winner, for instance).
    pub fn lookup<E1: fmt::Display>(
        &self,
        device: &str,
        key: &str,
        mut fingerprint: impl FnMut(&Config) -> Result<String, E1>,
    ) -> Result<Option<Arc<Tuned>>, AutotuneError> {
        if let Some(t) = self.memory.lock().unwrap_or_else(|e| e.into_inner()).get(device).and_then(|m| m.get(key)) {
            return Ok(Some(t.clone()));
        }
        for (what, value) in [("device", device), ("key", key)] {
            if value.contains(['\t', '\n', '\r']) || (what == "device" && value.is_empty()) {
                return Err(AutotuneError::BadField { what, value: value.into() });
            }
        }
        let mut fp = |c: &Config| {
            fingerprint(c).map_err(|e| AutotuneError::Fingerprint { kernel: self.kernel.clone(), config: c.clone(), message: e.to_string() })
        };
        let found = match self.committed_winner(device, key, &mut fp)? {
            Some(t) => Some(t),
            None => self.cached_winner(device, key, &mut fp)?,
        };
        Ok(found.map(|t| self.remember(device, key, t)))
    }

    /// Keeps `tuned` in memory; another thread may have tuned the same key meanwhile: every caller gets
    /// the first winner.
    fn remember(&self, device: &str, key: &str, tuned: Tuned) -> Arc<Tuned> {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let slot = memory.entry(device.to_string()).or_default().entry(key.to_string());
        slot.or_insert_with(|| Arc::new(tuned)).clone()
    }

    fn committed_winner(
        &self,
        device: &str,
        key: &str,
        fp: &mut impl FnMut(&Config) -> Result<String, AutotuneError>,
    ) -> Result<Option<Tuned>, AutotuneError> {
        let Some(Committed { file, records }) = &self.committed else { return Ok(None) };
        let Some(r) = records.iter().find(|r| r.device == device && r.key == key) else { return Ok(None) };
        let (kernel, key, device, file, config, retune) =
            (self.kernel.clone(), key.to_string(), device.to_string(), file.clone(), r.config.clone(), self.retune.clone());
        if !self.configs.contains(&r.config) {
            return Err(AutotuneError::UnknownConfig { kernel, key, device, file, config, retune });
        }
        let current = fp(&r.config)?;
        if current != r.fingerprint {
            let recorded = r.fingerprint.clone();
            return Err(AutotuneError::StaleWinner { kernel, key, device, file, config, recorded, current, retune });
        }
        Ok(Some(Tuned { config, ms: r.ms, fingerprint: current, source: Source::Committed { file } }))
    }

    /// The disk cache's records (malformed files and lines ignored).
    fn cache_records(&self) -> Vec<Record> {
        let Some(text) = self.cache_file().and_then(|f| std::fs::read_to_string(f).ok()) else { return Vec::new() };
        if text.lines().next().map(str::trim_end) != Some(MAGIC) {
            return Vec::new();
        }
        text.lines().skip(1).filter(|l| !l.starts_with('#')).filter_map(|l| Record::parse(l).ok()).collect()
    }

    fn cached_winner(
        &self,
        device: &str,
        key: &str,
        fp: &mut impl FnMut(&Config) -> Result<String, AutotuneError>,
    ) -> Result<Option<Tuned>, AutotuneError> {
        let records = self.cache_records();
        let Some(r) = records.iter().rev().find(|r| r.kernel == self.kernel && r.device == device && r.key == key) else {
            return Ok(None);
        };
        if !self.configs.contains(&r.config) || fp(&r.config)? != r.fingerprint {
            return Ok(None); // stale: tune again
        }
        Ok(Some(Tuned { config: r.config.clone(), ms: r.ms, fingerprint: r.fingerprint.clone(), source: Source::DiskCache }))
    }

    fn measure_all<E: fmt::Display>(
        &self,
        device: &str,
        key: &str,
        fp: &mut impl FnMut(&Config) -> Result<String, AutotuneError>,
        measure: &mut impl FnMut(&Config) -> Result<f64, E>,
    ) -> Result<Tuned, AutotuneError> {
        let timings: Vec<(Config, Result<f64, String>)> = (self.configs.iter())
            .map(|c| {
                let ms = match measure(c) {
                    Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
                    Ok(ms) => Err(format!("measured {ms} ms")),
                    Err(e) => Err(e.to_string()),
                };
                (c.clone(), ms)
            })
            .collect();
        // The first of the fastest (min_by keeps the first of equal elements).
        let best = timings.iter().filter_map(|(c, t)| Some((c, *t.as_ref().ok()?))).min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((config, ms)) = best else {
            let failures = timings.into_iter().map(|(c, t)| (c, t.unwrap_err())).collect();
            let (kernel, key, device) = (self.kernel.clone(), key.into(), device.into());
            return Err(AutotuneError::AllFailed { kernel, key, device, failures });
        };
        let config = config.clone();
        Ok(Tuned { fingerprint: fp(&config)?, config, ms, source: Source::Measured { timings } })
    }

    /// Adds the winner to the disk cache file (best effort: a cache that cannot be written is skipped).
    fn store_in_cache(&self, device: &str, key: &str, t: &Tuned) {
        let Some(file) = self.cache_file() else { return };
        let mut records = self.cache_records();
        records.retain(|r| !(r.kernel == self.kernel && r.device == device && r.key == key));
        records.push(self.record(device, key, t));
        let _ = write_atomic(&file, &format_records(&records));
    }

    fn record(&self, device: &str, key: &str, t: &Tuned) -> Record {
        let (kernel, device, key) = (self.kernel.clone(), device.to_string(), key.to_string());
        Record { kernel, device, key, config: t.config.clone(), ms: t.ms, fingerprint: t.fingerprint.clone() }
    }

    /// Every winner this autotuner holds in memory (found or measured in this process).
    pub fn records(&self) -> Vec<Record> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Record> =
            memory.iter().flat_map(|(d, keys)| keys.iter().map(move |(k, t)| self.record(d, k, t))).collect();
        out.sort_by(|a, b| (&a.device, &a.key).cmp(&(&b.device, &b.key)));
        out
    }

    /// Writes [`Self::records`] into the committed file at `path`, keeping its other records (other
    /// kernels, devices, keys) and replacing those for the same `(kernel, device, key)`; creates it if
    /// missing. A malformed existing file is an error (it is not overwritten). Returns the number of
    /// records written from this autotuner.
    pub fn write_committed(&self, path: impl AsRef<Path>) -> Result<usize, AutotuneError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let mut records = match std::fs::read_to_string(path) {
            Ok(text) => parse_records(&text).map_err(|(line, message)| AutotuneError::BadFile { file: file.clone(), line, message })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(AutotuneError::Io { op: "read", file, source }),
        };
        let mine = self.records();
        records.retain(|r| !mine.iter().any(|m| (&m.kernel, &m.device, &m.key) == (&r.kernel, &r.device, &r.key)));
        records.extend(mine.iter().cloned());
        write_atomic(path, &format_records(&records)).map_err(|source| AutotuneError::Io { op: "write", file, source })?;
        Ok(mine.len())
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so readers
/// (other processes too) never see half a file.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let d = std::env::temp_dir().join(format!("tile-dsl-autotune-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            TempDir(d)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const H100: &str = "NVIDIA H100 80GB HBM3";

    fn cfg(bm: i64, warps: i64) -> Config {
        Config::new(&[("BLOCK_M", bm), ("BLOCK_N", 128), ("num_warps", warps), ("num_stages", 3), ("split_k", 1)])
    }

    fn configs() -> Vec<Config> {
        vec![cfg(64, 4), cfg(128, 4), cfg(128, 8)]
    }

    /// No disk cache: each test chooses its own.
    fn tuner() -> Autotuner {
        Autotuner::new("matmul", configs()).with_cache_dir(None)
    }

    /// Fingerprint "v1-<BLOCK_M>": what a kernel whose source changes would give as "v2-...".
    fn fp(version: &'static str) -> impl Fn(&Config) -> Result<String, String> {
        move |c| Ok(format!("{version}-{}", c.get("BLOCK_M").unwrap()))
    }

    /// A measure from a table of times per config (`None`: fails), counting calls.
    fn table<'a>(ms: &'a [Option<f64>], calls: &'a Cell<usize>) -> impl FnMut(&Config) -> Result<f64, String> + 'a {
        move |c| {
            calls.set(calls.get() + 1);
            let i = configs().iter().position(|x| x == c).unwrap();
            ms[i].ok_or_else(|| format!("too much shared memory for {c}"))
        }
    }

    fn committed_text(lines: &[&str]) -> String {
        format!("{MAGIC}\n# a comment\n\n{}", lines.iter().map(|l| format!("{l}\n")).collect::<String>())
    }

    #[test]
    fn picks_the_fastest_and_reports_every_timing() {
        let calls = Cell::new(0);
        let t = tuner().best(H100, "M=16", fp("v1"), table(&[Some(2.0), Some(0.5), Some(0.5)], &calls)).unwrap();
        assert_eq!(t.config, cfg(128, 4), "fastest; the earlier of a tie");
        assert_eq!((t.ms, t.fingerprint.as_str(), calls.get()), (0.5, "v1-128", 3));
        let Source::Measured { timings } = &t.source else { panic!("{:?}", t.source) };
        let got: Vec<_> = timings.iter().map(|(c, r)| (c.clone(), r.clone().unwrap())).collect();
        assert_eq!(got, vec![(cfg(64, 4), 2.0), (cfg(128, 4), 0.5), (cfg(128, 8), 0.5)]);
    }

    /// `lookup` finds committed and remembered winners, and otherwise answers `None` without measuring.
    #[test]
    fn lookup_never_measures() {
        let at = tuner();
        assert!(at.lookup(H100, "M=16", fp("v1")).unwrap().is_none());
        let calls = Cell::new(0);
        let t = at.best(H100, "M=16", fp("v1"), table(&[Some(2.0), Some(0.5), Some(3.0)], &calls)).unwrap();
        assert!(Arc::ptr_eq(&t, &at.lookup(H100, "M=16", fp("v1")).unwrap().unwrap()));
        let text = committed_text(&[&format!("matmul\t{H100}\tM=32\tBLOCK_M=128,BLOCK_N=128,num_warps=8,num_stages=3,split_k=1\t0.2\tv1-128")]);
        let at = tuner().with_committed_text("tuned.tsv", &text).unwrap();
        assert_eq!(at.lookup(H100, "M=32", fp("v1")).unwrap().unwrap().config, cfg(128, 8));
        assert!(at.lookup("NVIDIA A100", "M=32", fp("v1")).unwrap().is_none(), "another GPU: no winner, no search");
        let fresh = tuner().with_committed_text("tuned.tsv", &text).unwrap();
        assert!(matches!(fresh.lookup(H100, "M=32", fp("v2")), Err(AutotuneError::StaleWinner { .. })));
    }

    #[test]
    fn skips_failing_configs() {
        let calls = Cell::new(0);
        let ms = [Some(3.0), None, Some(f64::NAN)];
        let t = tuner().best(H100, "k", fp("v1"), table(&ms, &calls)).unwrap();
        assert_eq!((t.config.clone(), t.ms, calls.get()), (cfg(64, 4), 3.0, 3));
        let Source::Measured { timings } = &t.source else { panic!() };
        assert!(timings[1].1.as_ref().unwrap_err().contains("shared memory"), "{timings:?}");
        assert!(timings[2].1.as_ref().unwrap_err().contains("NaN"), "{timings:?}");
    }

    #[test]
    fn all_failing_is_an_error_listing_each_config() {
        let calls = Cell::new(0);
        let e = tuner().best(H100, "M=16", fp("v1"), table(&[None, None, None], &calls)).unwrap_err();
        let AutotuneError::AllFailed { failures, key, .. } = &e else { panic!("{e}") };
        assert_eq!((failures.len(), key.as_str()), (3, "M=16"));
        let s = e.to_string();
        assert!(s.contains("matmul") && s.contains("BLOCK_M=64,BLOCK_N=128") && s.contains("too much shared memory"), "{s}");
    }

    #[test]
    fn second_call_hits_memory_without_measuring() {
        let (calls, fps) = (Cell::new(0), Cell::new(0));
        let at = tuner();
        let count_fp = |c: &Config| {
            fps.set(fps.get() + 1);
            fp("v1")(c)
        };
        let a = at.best(H100, "M=16", count_fp, table(&[Some(1.0), Some(2.0), Some(3.0)], &calls)).unwrap();
        let b = at.best(H100, "M=16", count_fp, table(&[Some(9.0), Some(9.0), Some(0.1)], &calls)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((calls.get(), fps.get()), (3, 1));
        // Another key, and the same key on another device, are tuned separately.
        let c = at.best(H100, "M=32", fp("v1"), table(&[Some(9.0), Some(9.0), Some(0.1)], &calls)).unwrap();
        let d = at.best("NVIDIA A100", "M=16", fp("v1"), table(&[Some(9.0), Some(0.1), Some(9.0)], &calls)).unwrap();
        assert_eq!((c.config.clone(), d.config.clone(), calls.get()), (cfg(128, 8), cfg(128, 4), 9));
    }

    #[test]
    fn disk_winner_is_reused_by_a_fresh_autotuner() {
        let dir = TempDir::new("disk");
        let at = || tuner().with_cache_dir(Some(dir.0.join("autotune")));
        let calls = Cell::new(0);
        at().best(H100, "M=16", fp("v1"), table(&[Some(1.0), Some(0.25), Some(3.0)], &calls)).unwrap();
        // The file is in the documented format, with no temporary files beside it.
        let file = at().cache_file().unwrap();
        assert_eq!(file, dir.0.join("autotune/matmul.tsv"));
        let recs = parse_records(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].device.as_str(), recs[0].config.clone(), recs[0].fingerprint.as_str()), (H100, cfg(128, 4), "v1-128"));
        assert_eq!(std::fs::read_dir(dir.0.join("autotune")).unwrap().count(), 1);
        // A fresh autotuner (next process) finds it without measuring; another key adds a line.
        let t = at().best(H100, "M=16", fp("v1"), table(&[Some(9.0), Some(9.0), Some(0.1)], &calls)).unwrap();
        assert_eq!((t.config.clone(), t.ms, t.source.clone(), calls.get()), (cfg(128, 4), 0.25, Source::DiskCache, 3));
        at().best(H100, "M=32", fp("v1"), table(&[Some(0.5), Some(9.0), Some(9.0)], &calls)).unwrap();
        assert_eq!(parse_records(&std::fs::read_to_string(&file).unwrap()).unwrap().len(), 2);
        // A corrupt cache file is ignored (measured again), then replaced.
        std::fs::write(&file, "garbage\x00").unwrap();
        let t = at().best(H100, "M=16", fp("v1"), table(&[Some(0.5), Some(9.0), Some(9.0)], &calls)).unwrap();
        assert!(matches!(t.source, Source::Measured { .. }));
        assert_eq!(parse_records(&std::fs::read_to_string(&file).unwrap()).unwrap().len(), 1);
    }

    #[test]
    fn stale_disk_winner_is_measured_again() {
        let dir = TempDir::new("stale-disk");
        let at = || tuner().with_cache_dir(Some(dir.0.clone()));
        let calls = Cell::new(0);
        at().best(H100, "M=16", fp("v1"), table(&[Some(1.0), Some(0.25), Some(3.0)], &calls)).unwrap();
        // The kernel changed (v2): the cached winner is not used; the new winner replaces it.
        let t = at().best(H100, "M=16", fp("v2"), table(&[Some(0.1), Some(0.25), Some(3.0)], &calls)).unwrap();
        assert!(matches!(t.source, Source::Measured { .. }));
        assert_eq!((t.config.clone(), calls.get()), (cfg(64, 4), 6));
        let t = at().best(H100, "M=16", fp("v2"), table(&[Some(9.0), Some(9.0), Some(9.0)], &calls)).unwrap();
        assert_eq!((t.config.clone(), t.source.clone(), t.fingerprint.as_str()), (cfg(64, 4), Source::DiskCache, "v2-64"));
    }

    #[test]
    fn committed_winner_is_used_without_measuring() {
        let dir = TempDir::new("committed");
        let text = committed_text(&[
            &format!("matmul\t{H100}\tM=16\t{}\t0.0412\tv1-128", cfg(128, 8)),
            &format!("matmul\tNVIDIA A100\tM=16\t{}\t0.09\tv1-64", cfg(64, 4)),
            &format!("other\t{H100}\tM=16\tBLOCK=1\t1\tzz"),
        ]);
        let at = tuner().with_cache_dir(Some(dir.0.clone())).with_committed_text("kernels/tuned/matmul.tsv", &text).unwrap();
        let calls = Cell::new(0);
        let never = table(&[Some(0.0), Some(0.0), Some(0.0)], &calls);
        let t = at.best(H100, "M=16", fp("v1"), never).unwrap();
        assert_eq!((t.config.clone(), t.ms), (cfg(128, 8), 0.0412));
        assert_eq!(t.source, Source::Committed { file: "kernels/tuned/matmul.tsv".into() });
        let a100 = at.best("NVIDIA A100", "M=16", fp("v1"), table(&[Some(0.0); 3], &calls)).unwrap();
        assert_eq!(a100.config, cfg(64, 4));
        assert_eq!(calls.get(), 0);
        assert!(!dir.0.exists(), "committed winners are not copied to the cache");
        // A key the file does not have is tuned as usual.
        let t = at.best(H100, "M=32", fp("v1"), table(&[Some(0.2), Some(0.1), Some(0.3)], &calls)).unwrap();
        assert_eq!((t.config.clone(), calls.get()), (cfg(128, 4), 3));
    }

    #[test]
    fn stale_committed_winner_is_refused_loudly() {
        let text = committed_text(&[&format!("matmul\t{H100}\tM=16\t{}\t0.04\tv1-128", cfg(128, 8))]);
        let at = tuner().with_committed_text("kernels/tuned/matmul.tsv", &text).unwrap().retune_command("gpu-check tune matmul");
        let calls = Cell::new(0);
        for _ in 0..2 {
            let e = at.best(H100, "M=16", fp("v2"), table(&[Some(0.1); 3], &calls)).unwrap_err();
            let AutotuneError::StaleWinner { key, recorded, current, .. } = &e else { panic!("{e}") };
            assert_eq!((key.as_str(), recorded.as_str(), current.as_str()), ("M=16", "v1-128", "v2-128"));
            let s = e.to_string();
            for part in ["stale", "matmul", "M=16", H100, "kernels/tuned/matmul.tsv", "not applied", "`gpu-check tune matmul`"] {
                assert!(s.contains(part), "`{part}` missing from: {s}");
            }
        }
        assert_eq!(calls.get(), 0, "never silently re-tuned");
        // A committed config that is no longer a candidate is refused too.
        let text = committed_text(&[&format!("matmul\t{H100}\tM=16\t{}\t0.04\tv1-256", cfg(256, 8))]);
        let at = tuner().with_committed_text("t.tsv", &text).unwrap();
        let e = at.best(H100, "M=16", fp("v1"), table(&[Some(0.1); 3], &calls)).unwrap_err();
        assert!(matches!(&e, AutotuneError::UnknownConfig { config, .. } if *config == cfg(256, 8)), "{e}");
        assert_eq!(calls.get(), 0);
    }

    #[test]
    fn malformed_committed_file_is_an_error_naming_file_and_line() {
        let good = format!("matmul\t{H100}\tM=16\t{}\t0.04\tv1-128", cfg(128, 8));
        let cases: &[(String, usize, &str)] = &[
            (committed_text(&[&good, "matmul\tonly three\tfields"]), 5, "6 tab-separated fields"),
            (committed_text(&[&good.replace("0.04", "fast")]), 4, "not a number"),
            (committed_text(&[&good.replace("BLOCK_N=128", "BLOCK_N=big")]), 4, "not an integer"),
            (committed_text(&[&good, &good]), 5, "second winner"),
            (good.clone(), 1, "first line"),
        ];
        for (text, line, why) in cases {
            let Err(e) = tuner().with_committed_text("kernels/tuned/matmul.tsv", text) else { panic!("accepted {text}") };
            assert!(matches!(&e, AutotuneError::BadFile { line: l, .. } if l == line), "{e}");
            let s = e.to_string();
            assert!(s.starts_with(&format!("kernels/tuned/matmul.tsv:{line}: ")) && s.contains(why), "{s}");
        }
        let e = tuner().with_committed("/nonexistent/tuned.tsv").err().unwrap();
        assert!(matches!(e, AutotuneError::Io { .. }) && e.to_string().contains("/nonexistent/tuned.tsv"), "{e}");
    }

    #[test]
    fn write_committed_merges_and_reads_back() {
        let dir = TempDir::new("export");
        let path = dir.0.join("tuned/matmul.tsv");
        let other = format!("other\t{H100}\tM=16\tBLOCK=1\t1.0000\tzz");
        let stale = format!("matmul\t{H100}\tM=16\t{}\t9.0000\told", cfg(64, 4));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, committed_text(&[&stale, &other])).unwrap();
        let at = tuner();
        let calls = Cell::new(0);
        at.best(H100, "M=16", fp("v1"), table(&[Some(0.3), Some(0.2), Some(0.1)], &calls)).unwrap();
        at.best(H100, "M=32", fp("v1"), table(&[Some(0.1), Some(0.2), Some(0.3)], &calls)).unwrap();
        assert_eq!(at.write_committed(&path).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let recs = parse_records(&text).unwrap();
        let keys: Vec<_> = recs.iter().map(|r| (r.kernel.as_str(), r.key.as_str(), r.fingerprint.as_str())).collect();
        assert_eq!(keys, vec![("matmul", "M=16", "v1-128"), ("matmul", "M=32", "v1-64"), ("other", "M=16", "zz")]);
        // Production: a fresh autotuner with the committed file measures nothing.
        let prod = tuner().with_committed(&path).unwrap();
        let t = prod.best(H100, "M=32", fp("v1"), table(&[Some(0.0); 3], &calls)).unwrap();
        assert_eq!((t.config.clone(), calls.get()), (cfg(64, 4), 6));
        assert!(matches!(t.source, Source::Committed { .. }));
        // A malformed file is not overwritten.
        std::fs::write(&path, "junk\n").unwrap();
        assert!(matches!(at.write_committed(&path), Err(AutotuneError::BadFile { line: 1, .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "junk\n");
    }

    #[test]
    fn config_display_parse_round_trip() {
        let c = Config::new(&[("BLOCK_M", 128), ("BLOCK_N", 128), ("BLOCK_K", 32), ("num_warps", 8), ("num_stages", 3), ("split_k", -1)]);
        let s = c.to_string();
        assert_eq!(s, "BLOCK_M=128,BLOCK_N=128,BLOCK_K=32,num_warps=8,num_stages=3,split_k=-1");
        assert_eq!(s.parse::<Config>().unwrap(), c);
        assert_eq!((c.get("BLOCK_K"), c.get("nope")), (Some(32), None));
        assert_eq!("".parse::<Config>().unwrap(), Config::new(&[]));
        for bad in ["A", "A=1,", "A=x", "A=1,A=2", "=1", "A B=1", "A=1;B=2"] {
            assert!(bad.parse::<Config>().is_err(), "{bad}");
        }
        assert!(std::panic::catch_unwind(|| Config::new(&[("A", 1), ("A", 2)])).is_err());
    }

    #[test]
    fn key_and_bucket_helpers() {
        let b: Vec<i64> = [-3, 0, 1, 2, 3, 16, 17, 8191, 8192].into_iter().map(bucket).collect();
        assert_eq!(b, vec![1, 1, 1, 2, 4, 16, 32, 8192, 8192]);
        assert_eq!(key_of(&[("M", 9), ("N", 8192), ("K", 5000)]), "M=16,N=8192,K=8192");
        assert_eq!(key_of(&[]), "");
        let calls = Cell::new(0);
        let e = tuner().best(H100, "M=1\tN=2", fp("v1"), table(&[Some(1.0); 3], &calls)).unwrap_err();
        assert!(matches!(e, AutotuneError::BadField { what: "key", .. }), "{e}");
    }

    #[test]
    fn autotuner_can_live_in_a_static() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Autotuner>();
        static AT: std::sync::OnceLock<Autotuner> = std::sync::OnceLock::new();
        let at = AT.get_or_init(tuner);
        let t = std::thread::scope(|s| {
            let h = s.spawn(|| at.best(H100, "M=16", fp("v1"), |_: &Config| Ok::<_, String>(1.0)).unwrap());
            h.join().unwrap()
        });
        assert_eq!(t.config, cfg(64, 4));
    }

    mod a {
        use dsl_core::prelude::*;
        #[kernel]
        pub fn tiny<const BLOCK: i32>(out: MutPtr<f32>) {
            store(out + arange(0, BLOCK), zeros::<f32>([BLOCK]));
        }
    }
    mod b {
        use dsl_core::prelude::*;


        #[kernel]
        pub fn tiny<const BLOCK: i32>(out: MutPtr<f32>) {
            store(out + arange(0, BLOCK),   zeros::<f32>([BLOCK])); // same code, other lines and columns
        }
    }

    #[test]
    fn fingerprint_ignores_source_locations_only() {
        let f64_ = fingerprint_spec(&a::tiny::<64>::spec()).unwrap();
        assert_eq!(f64_.len(), 64);
        let with_locs = |k: &dsl_core::ir::Kernel| dsl_core::ir::print::print(k, true);
        let (ka, kb) = ((a::tiny::<64>::spec().build)().unwrap(), (b::tiny::<64>::spec().build)().unwrap());
        assert_ne!(with_locs(&ka), with_locs(&kb), "the two kernels sit at different source locations");
        assert_eq!(f64_, fingerprint_spec(&b::tiny::<64>::spec()).unwrap());
        assert_ne!(f64_, fingerprint_spec(&a::tiny::<128>::spec()).unwrap());
    }
}
