use llama::sampler::{argmax, Sampler, SamplerConfig};

fn cfg() -> SamplerConfig {
    SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        greedy: false,
        seed: 1,
    }
}

#[test]
fn greedy_is_argmax() {
    let l = [0.1, 3.0, -1.0, 2.9];
    assert_eq!(argmax(&l), 1);
    let mut s = Sampler::new(SamplerConfig {
        greedy: true,
        ..cfg()
    });
    assert_eq!(s.sample(&l, &[]), 1);
    let mut s = Sampler::new(SamplerConfig {
        temperature: 0.0,
        ..cfg()
    });
    assert_eq!(s.sample(&l, &[]), 1);
}

#[test]
fn top_k_one_and_tiny_top_p_are_greedy() {
    let l = [0.1, 3.0, -1.0, 2.9];
    let mut s = Sampler::new(SamplerConfig {
        top_k: 1,
        temperature: 5.0,
        ..cfg()
    });
    let mut p = Sampler::new(SamplerConfig {
        top_p: 0.01,
        temperature: 5.0,
        ..cfg()
    });
    for _ in 0..50 {
        assert_eq!(s.sample(&l, &[]), 1);
        assert_eq!(p.sample(&l, &[]), 1);
    }
}

#[test]
fn top_k_restricts_support() {
    let l = [0.0, 1.0, 0.9, 0.8, -5.0];
    let mut s = Sampler::new(SamplerConfig {
        top_k: 2,
        temperature: 10.0,
        ..cfg()
    });
    for _ in 0..200 {
        let t = s.sample(&l, &[]);
        assert!(t == 1 || t == 2, "{t}");
    }
}

#[test]
fn seeded_runs_repeat() {
    let l: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
    let run = |seed| {
        let mut s = Sampler::new(SamplerConfig {
            seed,
            temperature: 0.8,
            top_k: 20,
            top_p: 0.95,
            ..cfg()
        });
        (0..30).map(|_| s.sample(&l, &[])).collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn temperature_sampling_follows_softmax() {
    // p(1) = 3 / (1 + 3) = 0.75
    let l = [0.0, 3f32.ln()];
    let mut s = Sampler::new(cfg());
    let n = 4000;
    let ones = (0..n).filter(|_| s.sample(&l, &[]) == 1).count();
    let f = ones as f64 / n as f64;
    assert!((f - 0.75).abs() < 0.03, "{f}");
}

#[test]
fn repetition_penalty() {
    let l = [2.0, 1.9, -1.0, -1.1];
    let mut s = Sampler::new(SamplerConfig {
        greedy: true,
        repeat_penalty: 1.5,
        ..cfg()
    });
    assert_eq!(s.sample(&l, &[0]), 1);
    let mut v = l.to_vec();
    s.apply_repeat_penalty(&mut v, &[0, 2, 0]);
    assert_eq!(v, vec![2.0 / 1.5, 1.9, -1.5, -1.1]);
    // Outside the window: no effect.
    let s2 = Sampler::new(SamplerConfig {
        repeat_penalty: 1.5,
        repeat_last_n: 1,
        ..cfg()
    });
    let mut v = l.to_vec();
    s2.apply_repeat_penalty(&mut v, &[0, 3]);
    assert_eq!(v, vec![2.0, 1.9, -1.0, -1.1 * 1.5]);
}
