use dsl_core::prelude::*;
use kernels::elementwise::add;

#[test]
fn add_runs() {
    let n = 1000usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let rt = Interpreter::new();
    let (bx, by) = (HostBuffer::from_slice(&x), HostBuffer::from_slice(&y));
    let mut out = HostBuffer::filled(n, f32::NAN);
    add::<256>::launch(&rt, 4, &bx, &by, &mut out, n as i32).unwrap();
    let o = out.to_vec();
    for i in 0..n {
        assert_eq!(o[i], x[i] + y[i]);
    }
    println!("{}", dsl_core::ir::print::print(&add::<256>::build().unwrap(), true));
}
