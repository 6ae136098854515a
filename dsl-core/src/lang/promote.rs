// Generated from the rules in `lang/mod.rs` (module docs, "Type promotion"); `tests` check them.
use super::{BitPromote, BoolLit, CmpPromote, FloatLit, IntLit, Promote};
use crate::types::{bf16, f16};

macro_rules! table {
    ($tr:ident: $($a:ty, $b:ty => $o:ty;)*) => {$( impl $tr<$b> for $a { type Out = $o; } )*};
}

table! { Promote:
    f32, f32 => f32;
    f32, f16 => f32;
    f32, bf16 => f32;
    f32, i8 => f32;
    f32, i16 => f32;
    f32, i32 => f32;
    f32, i64 => f32;
    f32, u8 => f32;
    f32, u32 => f32;
    f32, FloatLit => f32;
    f32, IntLit => f32;
    f16, f32 => f32;
    f16, f16 => f16;
    f16, bf16 => f32;
    f16, i8 => f16;
    f16, i16 => f16;
    f16, i32 => f16;
    f16, i64 => f16;
    f16, u8 => f16;
    f16, u32 => f16;
    f16, FloatLit => f16;
    f16, IntLit => f16;
    bf16, f32 => f32;
    bf16, f16 => f32;
    bf16, bf16 => bf16;
    bf16, i8 => bf16;
    bf16, i16 => bf16;
    bf16, i32 => bf16;
    bf16, i64 => bf16;
    bf16, u8 => bf16;
    bf16, u32 => bf16;
    bf16, FloatLit => bf16;
    bf16, IntLit => bf16;
    i8, f32 => f32;
    i8, f16 => f16;
    i8, bf16 => bf16;
    i8, i8 => i8;
    i8, i16 => i16;
    i8, i32 => i32;
    i8, i64 => i64;
    i8, u8 => u8;
    i8, u32 => u32;
    i8, FloatLit => f32;
    i8, IntLit => i8;
    i16, f32 => f32;
    i16, f16 => f16;
    i16, bf16 => bf16;
    i16, i8 => i16;
    i16, i16 => i16;
    i16, i32 => i32;
    i16, i64 => i64;
    i16, u8 => i16;
    i16, u32 => u32;
    i16, FloatLit => f32;
    i16, IntLit => i16;
    i32, f32 => f32;
    i32, f16 => f16;
    i32, bf16 => bf16;
    i32, i8 => i32;
    i32, i16 => i32;
    i32, i32 => i32;
    i32, i64 => i64;
    i32, u8 => i32;
    i32, u32 => u32;
    i32, FloatLit => f32;
    i32, IntLit => i32;
    i64, f32 => f32;
    i64, f16 => f16;
    i64, bf16 => bf16;
    i64, i8 => i64;
    i64, i16 => i64;
    i64, i32 => i64;
    i64, i64 => i64;
    i64, u8 => i64;
    i64, u32 => i64;
    i64, FloatLit => f32;
    i64, IntLit => i64;
    u8, f32 => f32;
    u8, f16 => f16;
    u8, bf16 => bf16;
    u8, i8 => u8;
    u8, i16 => i16;
    u8, i32 => i32;
    u8, i64 => i64;
    u8, u8 => u8;
    u8, u32 => u32;
    u8, FloatLit => f32;
    u8, IntLit => u8;
    u32, f32 => f32;
    u32, f16 => f16;
    u32, bf16 => bf16;
    u32, i8 => u32;
    u32, i16 => u32;
    u32, i32 => u32;
    u32, i64 => i64;
    u32, u8 => u32;
    u32, u32 => u32;
    u32, FloatLit => f32;
    u32, IntLit => u32;
}
// Comparisons promote like arithmetic, and also compare bools.
impl<A: Promote<B>, B> CmpPromote<B> for A {
    type Out = A::Out;
}
impl CmpPromote<bool> for bool {
    type Out = bool;
}
impl CmpPromote<BoolLit> for bool {
    type Out = bool;
}
table! { BitPromote:
    i8, i8 => i8;
    i8, IntLit => i8;
    i16, i16 => i16;
    i16, IntLit => i16;
    i32, i32 => i32;
    i32, IntLit => i32;
    i64, i64 => i64;
    i64, IntLit => i64;
    u8, u8 => u8;
    u8, IntLit => u8;
    u32, u32 => u32;
    u32, IntLit => u32;
    bool, bool => bool;
    bool, BoolLit => bool;
}
