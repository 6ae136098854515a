//! The lowering's decisions, printed before any code is emitted ([`explain`], or `DSL_DUMP_PLAN=1`
//! while compiling): each `dot` with the instructions it runs on and where its operands come from,
//! the tile values kept in tensor-core layouts, the software pipelines, and the shared-memory map.
//! Value names (`%12`) are the IR printer's.

use super::place::Place;
use super::{planned, Lowerer};
use crate::target::{CompileOptions, Specialization};
use dsl_core::ir::{Kernel, OpKind, ValueId};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The plan of `k` compiled with `opts` for `spec`, as text.
pub fn explain(k: &Kernel, spec: &Specialization, opts: &CompileOptions) -> String {
    let l = planned(k, spec, opts);
    let mut out = String::new();
    let checked = if opts.bounds_check { ", bounds-checked" } else { "" };
    let _ = writeln!(out, "kernel {} for {}: {} warps, {} stages{checked}", k.display_name(), opts.target, opts.num_warps, opts.num_stages);
    let mut seen = std::collections::BTreeSet::new();
    for op in l.defs.iter().flatten() {
        let OpKind::Dot { a, b, acc } = op.kind else { continue };
        let r = op.results[0];
        if seen.insert(r) {
            l.explain_dot(&mut out, r, a, b, acc);
        }
    }
    let mut places: BTreeMap<String, Vec<ValueId>> = BTreeMap::new();
    for (i, p) in l.plan.layout.iter().enumerate() {
        if let Some(p) = p {
            places.entry(place_text(*p)).or_default().push(ValueId(i as u32));
        }
    }
    for (p, vs) in places {
        let names: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(out, "in {p}: {}", names.join(" "));
    }
    let mut pipes: Vec<_> = l.pipes.values().collect();
    pipes.sort_by_key(|p| p.loads.first().map(|x| x.result));
    for p in pipes {
        let loads: Vec<String> = p
            .loads
            .iter()
            .map(|x| match &x.tma {
                Some(t) => format!(
                    "{} at +{} (TMA: tensor map {}, {} box(es) of {}x{}, {}-byte swizzle)",
                    x.result, x.offset, t.map, t.boxes, t.spec.box_rows, t.spec.box_cols, t.spec.swizzle
                ),
                None => format!("{} at +{} ({} per cp.async{})", x.result, x.offset, x.width, if x.readback { ", read back" } else { "" }),
            })
            .collect();
        let _ = writeln!(
            out,
            "pipeline: {} stages x {} B{}, prefetch distance {}: {}",
            p.stages,
            p.stage_bytes,
            if p.has_tma() { format!(" and {} mbarriers at +{}", p.stages, p.bars) } else { String::new() },
            p.distance,
            loads.join(", ")
        );
    }
    let mut resident: Vec<_> = l.resident.iter().collect();
    resident.sort();
    for (v, at) in resident {
        let _ = writeln!(out, "resident: {v} at {at}");
    }
    let _ = writeln!(out, "shared memory: {} B of stage and resident buffers, exchange scratch after them (from byte 0 after the last loop)", l.smem_base);
    out
}

/// `mma m x n (warps wm x wn)`, `rows of m x n`, ...
fn place_text(p: Place) -> String {
    match p {
        Place::Mma(l) => format!("mma accumulator layout {}x{} (warps {}x{})", l.m, l.n, l.wm, l.wn),
        Place::Rows(r) => format!("rows of an mma layout ({} rows, {} warps)", r.m, r.wm),
        Place::RowsBcast(r) => format!("broadcast rows of an mma layout ({} rows, {} warps)", r.m, r.wm),
    }
}

impl Lowerer<'_> {
    fn explain_dot(&self, out: &mut String, r: ValueId, a: ValueId, b: ValueId, acc: ValueId) {
        let (sa, sb) = (&self.ty(a).shape, &self.ty(b).shape);
        let (m, k, n) = (sa[0], sa[1], sb[1]);
        let (da, db) = (self.dtype(a), self.dtype(b));
        let es = da.size_bytes();
        let b_src = self.kmajor.get(&b).copied();
        let family = match self.place_of(r) {
            _ if self.wgmma_dots.contains(&r) => {
                let per = (k * es / 32) * n.div_ceil(256);
                let promote = if es == 1 { ", promoted into f32 every 128 elements of k" } else { "" };
                let lag = if self.lagged.contains(&r) { ", group left in flight into the next iteration" } else { "" };
                format!("wgmma m64n{}k{} ({per} per warpgroup per dot{promote}{lag})", n.min(256), 32 / es)
            }
            Some(Place::Mma(_)) => format!("mma.sync m16n8k{}", 32 / es),
            _ => "CUDA cores (operands through shared memory)".into(),
        };
        let bt = if b_src.is_some() { "ᵀ" } else { "" };
        let src = b_src.unwrap_or(b);
        let _ = writeln!(out, "dot {r} = {a} x {src}{bt} + {acc}: [{m}x{k}] {da} x [{k}x{n}] {db}, {family}");
        let place = self.place_of(r).map_or("blocked layout".to_string(), place_text);
        let _ = writeln!(out, "  result in {place}");
        if !matches!(self.place_of(r), Some(Place::Mma(_))) {
            return;
        }
        for (name, v, rows) in [("A", a, m), ("B", src, n)] {
            let from = if let Some(at) = self.resident.get(&v) {
                format!("resident at {at}")
            } else if let Some(x) = self.pipes.values().flat_map(|p| &p.loads).find(|x| x.result == v) {
                if x.tma.is_some() { "pipelined with TMA".to_string() } else { "pipelined with cp.async".to_string() }
            } else if name == "A" && self.place_of(a).is_some() {
                "registers (the accumulator fragments of the dot before)".to_string()
            } else if let Some(x) = self.read_back_source(v) {
                format!("staged at the dot, converted from {x} (pipelined with cp.async, read back into registers)")
            } else {
                "staged at the dot".to_string()
            };
            // 16-bit B as it sits: `[k][n]` rows (read n-major on wgmma, with `ldmatrix.trans` on mma.sync).
            let n_major = name == "B" && b_src.is_none() && es != 1;
            let (rows, row_bytes) = if n_major { (k, n * es) } else { (rows, k * es) };
            let layout = if self.wg_operands.contains(&v) && row_bytes > 128 {
                format!("{rows} rows in 128-byte slabs, 128-byte swizzle")
            } else {
                format!("{rows} rows of {row_bytes} B, swizzled by 16-byte chunk")
            };
            let _ = writeln!(out, "  {name} {v}: {from}; {layout}");
        }
    }
}
