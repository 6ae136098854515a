//! Tuning as plain data: a [`Config`] (named integers: a kernel's constexprs, `num_warps`,
//! `num_stages`, `split_k`...) and the keys that winners are filed under ([`key_of`]). A kernel crate
//! declares its candidates, key and heuristic with these, with no dependency on any GPU runtime; the
//! timing and the winners' files are the runtime's (`codegen_ptx::runtime::autotune`).

use std::fmt;

/// One launch configuration: named integer parameters in declaration order. Displays as
/// `BLOCK_M=128,BLOCK_N=64,num_warps=4` and parses back from that ([`std::str::FromStr`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    params: Vec<(String, i64)>,
}

impl Config {
    /// # Panics
    /// If a name is empty, repeated, or not made of ASCII letters, digits and `_` (configs are declared
    /// in code; use `str::parse` for text).
    pub fn new(params: &[(&str, i64)]) -> Config {
        let c = Config { params: params.iter().map(|&(n, v)| (n.to_string(), v)).collect() };
        if let Err(e) = c.check() {
            panic!("invalid autotune config `{c}`: {e}");
        }
        c
    }

    fn check(&self) -> Result<(), String> {
        for (i, (n, _)) in self.params.iter().enumerate() {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("bad parameter name `{n}`"));
            }
            if self.params[..i].iter().any(|(m, _)| m == n) {
                return Err(format!("parameter `{n}` given twice"));
            }
        }
        Ok(())
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.params.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    pub fn params(&self) -> &[(String, i64)] {
        &self.params
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (n, v)) in self.params.iter().enumerate() {
            write!(f, "{}{n}={v}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Config {
    type Err = String;
    /// Parses the [`Display`](fmt::Display) form; the empty string is the empty config.
    fn from_str(s: &str) -> Result<Config, String> {
        let mut params = Vec::new();
        for part in s.split(',').filter(|_| !s.is_empty()) {
            let (n, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=VALUE"))?;
            let v = v.parse().map_err(|_| format!("`{v}` is not an integer (in `{part}`)"))?;
            params.push((n.to_string(), v));
        }
        let c = Config { params };
        c.check()?;
        Ok(c)
    }
}

/// The shape bucket of a size: the next power of two (1 for `x <= 1`).
pub fn bucket(x: i64) -> i64 {
    if x <= 1 {
        1
    } else {
        (x as u64).next_power_of_two() as i64
    }
}

/// A key from named sizes, each [`bucket`]ed: `key_of(&[("M", 9), ("N", 8192)])` is `"M=16,N=8192"`.
pub fn key_of(dims: &[(&str, i64)]) -> String {
    dims.iter().map(|&(n, x)| format!("{n}={}", bucket(x))).collect::<Vec<_>>().join(",")
}


impl Config {
    /// This config with `name` set to `value` (replaced where present, else appended).
    pub fn with(mut self, name: &str, value: i64) -> Config {
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_string(), value)),
        }
        if let Err(e) = self.check() {
            panic!("invalid autotune config `{self}`: {e}");
        }
        self
    }
}

/// For the instance types `#[kernel(instances(...))]` generates: the error for a value outside the
/// declared set, listing the set.
#[doc(hidden)]
pub fn __undeclared(kernel: &str, given: &str, declared: &[String], file: &'static str, line: u32) -> crate::CompileError {
    const SHOWN: usize = 24;
    let mut list = declared.iter().take(SHOWN).map(|d| format!("\n    {d}")).collect::<String>();
    if declared.len() > SHOWN {
        list.push_str(&format!("\n    ... and {} more (`{}Instance::ALL`)", declared.len() - SHOWN, kernel));
    }
    crate::CompileError {
        kernel: kernel.to_string(),
        loc: crate::ir::Loc { file, line, col: 0 },
        message: format!(
            "`{kernel}` has no declared instance {given}; add it to the kernel's `instances(...)` or launch one of the {} declared:{list}",
            declared.len()
        ),
    }
}

/// For the generated instance types: constexpr `name` of a config, within `lo..=hi`.
#[doc(hidden)]
pub fn __config_value(c: &Config, kernel: &str, name: &str, lo: i64, hi: i64) -> Result<i64, crate::CompileError> {
    let err = |message: String| crate::CompileError { kernel: kernel.to_string(), loc: crate::ir::Loc::UNKNOWN, message };
    match c.get(name) {
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(err(format!("config {c}: constexpr {name}={v} is out of range ({lo}..={hi})"))),
        None => Err(err(format!("config {c} gives no value for constexpr `{name}` of `{kernel}`"))),
    }
}
