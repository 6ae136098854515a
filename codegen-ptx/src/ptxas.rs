//! NVIDIA's PTX assembler and disassembler as checking tools (no GPU needed): does our PTX assemble,
//! how many registers and spills does it need, what machine code (SASS) did it become.
//!
//! Found through `$PTXAS` / `$NVDISASM`, then `PATH`, then the PyPI wheels `nvidia-cuda-nvcc-cu12` and
//! `nvidia-cuda-nvdisasm` in the `python3` that is on `PATH`.

use crate::target::Target;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `ptxas -v` reported for one kernel, and its SASS when `nvdisasm` is available.
#[derive(Clone, Debug)]
pub struct Assembled {
    pub registers: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
    pub stack_bytes: u32,
    /// The disassembled machine code (empty without nvdisasm).
    pub sass: String,
    /// What ptxas printed (`-v`), its warnings included (e.g. wgmma serialized by ptxas).
    pub log: String,
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

fn from_python(module: &str, tail: &str) -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", &format!("import {module} as m; print(list(m.__path__)[0])")])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let p = Path::new(dir.trim()).join(tail);
    p.is_file().then_some(p)
}

/// The `ptxas` to use, if any.
pub fn find_ptxas() -> Option<PathBuf> {
    std::env::var_os("PTXAS").map(PathBuf::from).or_else(|| which("ptxas")).or_else(|| from_python("nvidia.cuda_nvcc", "bin/ptxas"))
}

/// The `nvdisasm` to use, if any.
pub fn find_nvdisasm() -> Option<PathBuf> {
    std::env::var_os("NVDISASM")
        .map(PathBuf::from)
        .or_else(|| which("nvdisasm"))
        .or_else(|| from_python("nvidia.cu13", "bin/nvdisasm"))
        .or_else(|| from_python("nvidia.cuda_nvdisasm", "bin/nvdisasm"))
}

/// Assembles `ptx` for `target` (and disassembles it when `nvdisasm` is given).
pub fn assemble(ptxas: &Path, nvdisasm: Option<&Path>, ptx: &str, target: Target) -> Result<Assembled, String> {
    let dir = std::env::temp_dir().join(format!("tile-dsl-ptxas-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (src, bin) = (dir.join("k.ptx"), dir.join("k.cubin"));
    std::fs::write(&src, ptx).map_err(|e| e.to_string())?;
    let out = Command::new(ptxas)
        .arg(format!("-arch={}", target.cpu()))
        .arg("-v")
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let log = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("ptxas failed for {}:\n{log}", target.cpu()));
    }
    let num = |key: &str| -> u32 {
        log.lines()
            .flat_map(|l| {
                let words: Vec<&str> = l.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
                let keyw: Vec<&str> = key.split(' ').collect();
                (0..words.len().saturating_sub(keyw.len()))
                    .filter(|&i| words[i + 1..i + 1 + keyw.len()] == keyw[..])
                    .filter_map(|i| words[i].parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .max()
            .unwrap_or(0)
    };
    let registers = log
        .lines()
        .find_map(|l| l.split("Used ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let sass = match nvdisasm {
        Some(d) => {
            let o = Command::new(d).arg(&bin).output().map_err(|e| format!("cannot run {}: {e}", d.display()))?;
            if !o.status.success() {
                return Err(format!("nvdisasm failed: {}", String::from_utf8_lossy(&o.stderr)));
            }
            String::from_utf8_lossy(&o.stdout).to_string()
        }
        None => String::new(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Assembled {
        registers,
        spill_stores: num("bytes spill stores"),
        spill_loads: num("bytes spill loads"),
        stack_bytes: num("bytes stack frame"),
        log,
        sass,
    })
}
