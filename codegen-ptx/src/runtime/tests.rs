//! Tests of the runtime as a whole. Those without `#[ignore]` run anywhere (no GPU needed); the ignored
//! ones need a GPU and run with `cargo test -p codegen-ptx -- --ignored --test-threads=1` (the fault test
//! leaves the process's CUDA context unusable, so run it alone: `-- --ignored gpu_fault`).

use super::*;

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}
fn assert_runtime<R: Runtime>() {}

#[test]
fn types_are_shareable_and_a_runtime() {
    assert_send_sync::<CudaRuntime>();
    assert_send_sync::<CudaBuffer<f32>>();
    assert_send::<CudaGraph>();
    assert_runtime::<CudaRuntime>();
}

#[test]
fn without_a_gpu_new_is_an_error_not_a_panic() {
    // SAFETY: only tries to dlopen libcuda.
    let driver_present = unsafe { cudarc::driver::sys::is_culib_present() };
    for r in [CudaRuntime::new(), CudaRuntime::new_on(1000)] {
        match r {
            Ok(rt) => assert!(driver_present, "a runtime without a driver: {rt:?}"),
            Err(CudaError::NoDriver(m)) => {
                assert!(!driver_present || m.contains("too old"), "{m}");
                assert!(m.contains("libcuda"), "the message should say what is missing: {m}");
            }
            Err(CudaError::NoDevice(m)) => assert!(driver_present, "{m}"),
            Err(CudaError::UnsupportedDevice { .. }) => assert!(driver_present),
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    match device_count() {
        Ok(_) => assert!(driver_present),
        Err(e) => assert!(matches!(e, CudaError::NoDriver(_) | CudaError::NoDevice(_)), "{e}"),
    }
    if !driver_present {
        // Asking twice gives the same answer (the check is cached) and still does not panic.
        assert!(matches!(CudaRuntime::new(), Err(CudaError::NoDriver(_))));
    }
}

/// GPU smoke tests. `lower_kernel` is not written yet, so these seed the disk cache with hand-written PTX
/// for the kernel's key: that exercises everything but the compile (trace, argument checks, facts, disk
/// cache read, module load, launch, copies, graphs, timing, errors).
mod gpu {
    use super::*;
    use crate::target::ArgFact;
    use dsl_core::prelude::*;

    #[kernel]
    fn smoke_add<const BLOCK: i32>(x: Ptr<f32>, out: MutPtr<f32>, n: i32) {
        let offs = program_id(0) * BLOCK + arange(0, BLOCK);
        let m = offs < n;
        store_masked(out + offs, load_masked(x + offs, m, 0.0) + 1.0, m);
    }

    #[kernel]
    fn smoke_fault<const BLOCK: i32>(out: MutPtr<f32>) {
        store(out + arange(0, BLOCK), zeros::<f32>([BLOCK]));
    }

    /// out[i] = x[i] + 1 for i < n; one thread an element, 128 a program.
    fn add_ptx(target: &str) -> String {
        format!(
            r#".version 8.0
.target {target}
.address_size 64

.visible .entry smoke_add(
	.param .u64 smoke_add_param_0,
	.param .u64 smoke_add_param_1,
	.param .u32 smoke_add_param_2
)
{{
	.reg .pred %p<2>;
	.reg .b32 %r<5>;
	.reg .f32 %f<3>;
	.reg .b64 %rd<8>;

	ld.param.u64 %rd1, [smoke_add_param_0];
	ld.param.u64 %rd2, [smoke_add_param_1];
	ld.param.u32 %r1, [smoke_add_param_2];
	mov.u32 %r2, %ctaid.x;
	mov.u32 %r3, %tid.x;
	mad.lo.s32 %r4, %r2, 128, %r3;
	setp.ge.s32 %p1, %r4, %r1;
	@%p1 bra DONE;
	cvta.to.global.u64 %rd3, %rd1;
	cvta.to.global.u64 %rd4, %rd2;
	mul.wide.s32 %rd5, %r4, 4;
	add.s64 %rd6, %rd3, %rd5;
	ld.global.f32 %f1, [%rd6];
	add.f32 %f2, %f1, 0f3F800000;
	add.s64 %rd7, %rd4, %rd5;
	st.global.f32 [%rd7], %f2;
DONE:
	ret;
}}
"#
        )
    }

    /// Stores through a null pointer: an illegal address.
    fn fault_ptx(target: &str) -> String {
        format!(
            r#".version 8.0
.target {target}
.address_size 64

.visible .entry smoke_fault(
	.param .u64 smoke_fault_param_0
)
{{
	.reg .b64 %rd<2>;
	.reg .f32 %f<2>;
	mov.u64 %rd1, 0;
	mov.f32 %f1, 0f00000000;
	st.global.f32 [%rd1], %f1;
	ret;
}}
"#
        )
    }

    struct Seeded {
        rt: CudaRuntime,
        dir: std::path::PathBuf,
    }

    impl Drop for Seeded {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A runtime whose private disk cache holds `ptx` under the key of `spec` with each of `facts`.
    fn seeded(tag: &str, spec: KernelSpec, entry: &str, ptx: impl Fn(&str) -> String, facts: &[&[ArgFact]]) -> Seeded {
        let dir = std::env::temp_dir().join(format!("tile-dsl-gpu-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = CudaRuntime::new().expect("these tests need a GPU").with_disk_cache(Some(DiskCache::new(&dir)));
        let text = ptx(rt.target().cpu());
        for f in facts {
            let key = rt.disk_cache_key(&spec, f, &LaunchOptions::default()).unwrap();
            let c = disk_cache::CachedPtx { entry: entry.into(), num_threads: 128, shared_bytes: 0, ptx: text.clone() };
            rt.disk_cache().unwrap().store(&key, &c).unwrap();
        }
        Seeded { rt, dir }
    }

    const A: ArgFact = ArgFact::Aligned16;

    #[test]
    #[ignore = "needs a GPU"]
    fn gpu_launch_copy_cache_graph_time() {
        let s = seeded(
            "launch",
            smoke_add::<128>::spec(),
            "smoke_add",
            add_ptx,
            &[&[A, A, ArgFact::None], &[A, A, ArgFact::Div16]],
        );
        let rt = &s.rt;
        eprintln!("{rt:?}: {:?}", rt.device_info());
        let n = 1000usize;
        let xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        let x = rt.upload(&xs).unwrap();
        let mut out = rt.zeros::<f32>(n).unwrap();
        assert_eq!(rt.download(&out).unwrap(), vec![0.0; n]);

        // First launch: disk hit (no compile), then memory hits.
        let grid = n.div_ceil(128) as u32;
        smoke_add::<128>::launch(rt, grid, &x, &mut out, n as i32).unwrap();
        let st = rt.cache_stats();
        assert_eq!((st.disk_hits, st.compiles, st.memory_hits), (1, 0, 0), "{st:?}");
        let want: Vec<f32> = xs.iter().map(|v| v + 1.0).collect();
        assert_eq!(rt.download(&out).unwrap(), want);

        // Hit cost.
        let t = std::time::Instant::now();
        let iters = 1000;
        for _ in 0..iters {
            smoke_add::<128>::launch(rt, grid, &x, &mut out, n as i32).unwrap();
        }
        let per_launch = t.elapsed() / iters;
        rt.synchronize().unwrap();
        assert_eq!(rt.cache_stats().memory_hits, iters as u64);
        eprintln!("cached launch: {per_launch:?} of host time; last load {:?}", rt.cache_stats().last_load);
        assert!(per_launch < std::time::Duration::from_millis(1));

        // Other facts (n divisible by 16) are another variant.
        let mut out2 = rt.alloc::<f32>(n).unwrap();
        smoke_add::<128>::launch(rt, grid, &x, &mut out2, 992).unwrap();
        assert_eq!(rt.cache_stats().disk_hits, 2);
        let got = out2.to_vec().unwrap();
        assert_eq!(&got[..992], &want[..992]);

        // Zero grid: no-op. Oversized grid: a clear error.
        smoke_add::<128>::launch(rt, 0, &x, &mut out, n as i32).unwrap();
        let e = smoke_add::<128>::launch(rt, (1, 1 << 20), &x, &mut out, n as i32).unwrap_err();
        assert!(matches!(e, CudaError::BadLaunch { .. }) && e.to_string().contains("grid"), "{e}");

        // copy_from and a wrong length.
        out.copy_from(&vec![5.0; n]).unwrap();
        assert_eq!(out.to_vec().unwrap(), vec![5.0; n]);
        assert!(matches!(out.copy_from(&[1.0]), Err(CudaError::LengthMismatch { .. })));

        // Graph: capture two launches, replay; the graph sees new buffer contents.
        let mut y = rt.zeros::<f32>(n).unwrap();
        let graph = rt
            .capture(|rt| -> Result<(), CudaError> {
                smoke_add::<128>::launch(rt, grid, &x, &mut out, n as i32)?;
                smoke_add::<128>::launch(rt, grid, &out, &mut y, n as i32)?;
                // Not allowed inside a capture:
                assert!(matches!(rt.zeros::<f32>(4), Err(CudaError::Capture(_))));
                assert!(matches!(rt.synchronize(), Err(CudaError::Capture(_))));
                Ok(())
            })
            .unwrap();
        assert_eq!(graph.num_launches(), 2);
        assert_eq!(y.to_vec().unwrap(), vec![0.0; n], "capturing runs nothing");
        graph.replay().unwrap();
        assert_eq!(y.to_vec().unwrap(), xs.iter().map(|v| v + 2.0).collect::<Vec<_>>());
        let mut x2 = rt.upload(&vec![10.0f32; n]).unwrap();
        drop(x); // the graph keeps x's memory alive
        x2.fill_zero().unwrap();
        graph.replay().unwrap();
        assert_eq!(y.to_vec().unwrap(), xs.iter().map(|v| v + 2.0).collect::<Vec<_>>());

        // A failing closure ends the capture and returns its error; the stream works afterwards.
        let r = rt.capture(|_| Err(CudaError::Capture("user error".into())));
        assert!(matches!(r, Err(CudaError::Capture(m)) if m == "user error"));

        // Timing.
        let ms = rt
            .time(|| {
                for _ in 0..100 {
                    graph.replay()?;
                }
                Ok::<(), CudaError>(())
            })
            .unwrap();
        eprintln!("100 replays of a 2-launch graph: {ms:.3} ms of GPU time");
        assert!(ms > 0.0);

        // Bad arguments name the kernel and the parameter; a host buffer is refused.
        let host = dsl_core::interp::HostBuffer::from_slice(&[0f32]);
        let e = rt.launch(&smoke_add::<128>::spec(), &Launch::from(1), &mut [Arg::Buffer(&host), Arg::BufferMut(&mut y), Arg::scalar(1i32)]);
        let e = e.unwrap_err().to_string();
        assert!(e.contains("smoke_add<BLOCK=128>") && e.contains("`x`") && e.contains("not a CudaBuffer"), "{e}");

        // Unloading and reloading comes back from the disk cache.
        rt.clear_kernel_cache().unwrap();
        let before = rt.cache_stats().disk_hits;
        smoke_add::<128>::launch(rt, grid, &x2, &mut y, n as i32).unwrap();
        assert_eq!(rt.cache_stats().disk_hits, before + 1);
        assert_eq!(y.to_vec().unwrap(), vec![1.0; n]);
    }

    #[test]
    #[ignore = "needs a GPU"]
    fn gpu_first_launch_inside_a_capture() {
        // The kernel is loaded (module load) while the stream is being captured.
        let s = seeded("capture-load", smoke_add::<128>::spec(), "smoke_add", add_ptx, &[&[A, A, ArgFact::None]]);
        let rt = &s.rt;
        let x = rt.upload(&[1f32, 2.0, 3.0]).unwrap();
        let mut out = rt.zeros::<f32>(3).unwrap();
        let graph = rt.capture(|rt| smoke_add::<128>::launch(rt, 1, &x, &mut out, 3)).unwrap();
        assert_eq!(rt.cache_stats().disk_hits, 1);
        graph.replay().unwrap();
        assert_eq!(out.to_vec().unwrap(), [2.0, 3.0, 4.0]);
        // A buffer dropped inside the capture is freed after it, and the runtime keeps working.
        let tmp = rt.zeros::<f32>(1 << 20).unwrap();
        let graph2 = rt
            .capture(|rt| {
                drop(tmp);
                smoke_add::<128>::launch(rt, 1, &x, &mut out, 3)
            })
            .unwrap();
        graph2.replay().unwrap();
        rt.synchronize().unwrap();
    }

    #[test]
    #[ignore = "needs a GPU and the code generator"]
    fn gpu_real_compile() {
        // The whole path with LLVM: no disk cache, so the first launch compiles.
        let rt = CudaRuntime::new().expect("needs a GPU").with_disk_cache(None);
        let n = 1000usize;
        let xs: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let x = rt.upload(&xs).unwrap();
        let mut out = rt.alloc::<f32>(n).unwrap();
        let t = std::time::Instant::now();
        smoke_add::<128>::launch(&rt, n.div_ceil(128) as u32, &x, &mut out, n as i32).unwrap();
        let cold = t.elapsed();
        let st = rt.cache_stats();
        eprintln!("cold launch {cold:?}: trace {:?}, compile {:?}, load {:?}", st.last_trace, st.last_compile, st.last_load);
        assert_eq!(st.compiles, 1);
        assert_eq!(out.to_vec().unwrap(), xs.iter().map(|v| v + 1.0).collect::<Vec<_>>());
    }

    #[test]
    #[ignore = "needs a GPU; leaves the CUDA context unusable: run alone"]
    fn gpu_fault_names_the_kernel() {
        let s = seeded("fault", smoke_fault::<128>::spec(), "smoke_fault", fault_ptx, &[&[A]]);
        let rt = &s.rt;
        let mut out = rt.zeros::<f32>(128).unwrap();
        // Asynchronous: the launch succeeds, the fault shows at the next wait, naming the last kernel.
        smoke_fault::<128>::launch(rt, 1, &mut out).unwrap();
        let e = rt.synchronize().unwrap_err();
        eprintln!("{e}");
        assert!(matches!(e, CudaError::DeviceFault { .. }), "{e}");
        assert!(e.to_string().contains("smoke_fault<BLOCK=128>"), "{e}");
    }

    #[test]
    #[ignore = "needs a GPU; leaves the CUDA context unusable: run alone"]
    fn gpu_fault_sync_launch_names_the_kernel() {
        let s = seeded("fault-sync", smoke_fault::<128>::spec(), "smoke_fault", fault_ptx, &[&[A]]);
        let rt = &s.rt;
        rt.set_sync_launches(true);
        let mut out = rt.zeros::<f32>(128).unwrap();
        let e = smoke_fault::<128>::launch(rt, 1, &mut out).unwrap_err();
        eprintln!("{e}");
        assert!(matches!(&e, CudaError::LaunchFailed { kernel, .. } if kernel == "smoke_fault<BLOCK=128>"), "{e}");
    }
}
