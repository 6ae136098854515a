//! A small builder for the text of one LLVM function: fresh names, basic blocks, and phis added to a
//! block after its predecessors are known.

pub struct FnText {
    blocks: Vec<(String, Vec<String>)>,
    cur: usize,
    next: u32,
}

impl FnText {
    pub fn new() -> FnText {
        FnText { blocks: vec![("entry".into(), vec![])], cur: 0, next: 0 }
    }

    /// A fresh SSA name.
    pub fn tmp(&mut self) -> String {
        self.next += 1;
        format!("%t{}", self.next)
    }

    /// Appends an instruction without a result.
    pub fn emit(&mut self, line: impl Into<String>) {
        self.blocks[self.cur].1.push(line.into());
    }

    /// Appends `%new = rhs` and returns `%new`.
    pub fn inst(&mut self, rhs: impl AsRef<str>) -> String {
        let t = self.tmp();
        self.emit(format!("{t} = {}", rhs.as_ref()));
        t
    }

    /// A new (empty, not current) block; returns its index.
    pub fn block(&mut self, hint: &str) -> usize {
        self.next += 1;
        self.blocks.push((format!("{hint}{}", self.next), vec![]));
        self.blocks.len() - 1
    }

    pub fn switch_to(&mut self, b: usize) {
        self.cur = b;
    }

    pub fn current(&self) -> usize {
        self.cur
    }

    /// `%label` of block `b`.
    pub fn label(&self, b: usize) -> String {
        format!("%{}", self.blocks[b].0)
    }

    /// Inserts a line at the start of block `b` (phis).
    pub fn prepend(&mut self, b: usize, line: String) {
        let n = self.blocks[b].1.iter().take_while(|l| l.contains(" = phi ")).count();
        self.blocks[b].1.insert(n, line);
    }

    pub fn finish(self) -> String {
        let mut out = String::new();
        for (label, lines) in self.blocks {
            out.push_str(&format!("{label}:\n"));
            for l in lines {
                out.push_str("  ");
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}
