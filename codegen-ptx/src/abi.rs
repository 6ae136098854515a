//! The launch ABI of a compiled kernel, described once for the two sides that must agree on it: the
//! lowering ([`crate::lower`]) declares the parameters and writes the error record, the runtime
//! ([`crate::runtime`]) passes the parameters and reads the record back.
//!
//! **Parameters**, in order: the kernel's own (a pointer as its device address, a scalar by value, a
//! `bool` as one byte), then the [`Hidden`] ones that [`hidden_params`] lists: with bounds checks
//! (`CompileOptions::bounds_check`), one `i64` per pointer parameter (its buffer's length in elements),
//! then the address of the error record.
//!
//! **Error record**: [`RECORD_WORDS`] `u32`, zero before the launch. The first access outside its
//! buffer sets word 0 to 1 and the others to [`OutOfBounds`]'s fields in [`RecordField`] order; every
//! out-of-bounds access is skipped (a load reads 0).

/// A parameter after the kernel's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hidden {
    /// `i64`: the length in elements of the buffer passed for the kernel's parameter `param` (a pointer).
    BufferLen { param: usize },
    /// A pointer to the error record.
    ErrorRecord,
}

/// The hidden parameters of a kernel whose own parameters are pointers where `is_pointer` says, in the
/// order they follow the kernel's own.
pub fn hidden_params(is_pointer: impl IntoIterator<Item = bool>, bounds_check: bool) -> Vec<Hidden> {
    if !bounds_check {
        return vec![];
    }
    let mut h: Vec<Hidden> =
        is_pointer.into_iter().enumerate().filter(|&(_, p)| p).map(|(param, _)| Hidden::BufferLen { param }).collect();
    h.push(Hidden::ErrorRecord);
    h
}

/// Words (`u32`) of the error record.
pub const RECORD_WORDS: usize = 8;

/// The error record's words after the flag (word 0), in order: word `1 + field as usize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordField {
    Line,
    Column,
    /// The index of the kernel parameter (a pointer) whose buffer was left.
    Param,
    /// The element index, low 32 bits.
    IndexLo,
    /// The element index, high 32 bits.
    IndexHi,
    ProgramX,
    ProgramY,
}

impl RecordField {
    /// Every field, in word order.
    pub const ALL: [RecordField; 7] = [
        RecordField::Line,
        RecordField::Column,
        RecordField::Param,
        RecordField::IndexLo,
        RecordField::IndexHi,
        RecordField::ProgramX,
        RecordField::ProgramY,
    ];

    /// The field's word in the record.
    pub fn word(self) -> usize {
        1 + self as usize
    }
}

/// The first out-of-bounds access of a launch, as its error record holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    pub line: u32,
    pub column: u32,
    pub param: usize,
    pub index: i64,
    pub program: [u32; 2],
}

impl OutOfBounds {
    /// Reads a record back: `None` if no access left its buffer (or the record is short).
    pub fn decode(words: &[u32]) -> Option<OutOfBounds> {
        if words.len() < RECORD_WORDS || words[0] == 0 {
            return None;
        }
        let w = |f: RecordField| words[f.word()];
        Some(OutOfBounds {
            line: w(RecordField::Line),
            column: w(RecordField::Column),
            param: w(RecordField::Param) as usize,
            index: ((w(RecordField::IndexHi) as u64) << 32 | w(RecordField::IndexLo) as u64) as i64,
            program: [w(RecordField::ProgramX), w(RecordField::ProgramY)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_parameters_are_each_pointers_length_then_the_record() {
        let h = hidden_params([true, false, true, false], true);
        assert_eq!(h, vec![Hidden::BufferLen { param: 0 }, Hidden::BufferLen { param: 2 }, Hidden::ErrorRecord]);
        assert!(hidden_params([true, true], false).is_empty());
    }

    #[test]
    fn a_record_decodes_in_field_order() {
        assert_eq!(OutOfBounds::decode(&[0; RECORD_WORDS]), None);
        let mut words = [0u32; RECORD_WORDS];
        words[0] = 1;
        for (i, f) in RecordField::ALL.iter().enumerate() {
            assert_eq!(f.word(), i + 1);
        }
        let index: i64 = -5_000_000_000;
        let vals = [12, 7, 3, index as u64 as u32, (index as u64 >> 32) as u32, 9, 4];
        for (f, v) in RecordField::ALL.iter().zip(vals) {
            words[f.word()] = v;
        }
        let r = OutOfBounds::decode(&words).unwrap();
        assert_eq!(r, OutOfBounds { line: 12, column: 7, param: 3, index, program: [9, 4] });
        assert_eq!(OutOfBounds::decode(&words[..7]), None);
    }
}
