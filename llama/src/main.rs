//! `llama` command-line tool.

mod cli;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, GpuArgs, RunArgs};
use indicatif::{ProgressBar, ProgressStyle};
use llama::backend::gpu::{GpuBackend, GpuOptions, WeightSource};
use llama::backend::{create_backend, Backend, Device};
use llama::bench::BenchSpec;
use llama::chat::{self, Message};
use llama::generate::generate;
use llama::loader::{self, LoadedModel};
use llama::sampler::{Sampler, SamplerConfig};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate { prompt, run } => cmd_generate(&prompt, &run),
        Command::Chat {
            prompt,
            system,
            run,
        } => cmd_chat(prompt.as_deref(), system.as_deref(), &run),
        Command::Info {
            model,
            model_opt,
            tensors,
        } => cmd_info(model.or(model_opt), tensors),
        Command::Convert {
            output,
            model,
            dtype,
        } => cmd_convert(model, &output, &dtype),
        Command::Bench {
            model,
            arch,
            prompt,
            gen,
            reps,
            batch,
            gpu,
            device,
            ctx_size,
        } => cmd_bench(model, arch.as_deref(), BenchSpec { prompt, gen, reps }, batch as usize, &gpu, &device, ctx_size),
    }
}

fn gpu_options(g: &GpuArgs) -> Result<GpuOptions> {
    Ok(GpuOptions {
        weights: g.weights.parse()?,
        batch: 1,
        graphs: !g.no_cuda_graph,
        programmatic: !g.no_programmatic_launch,
        tuned_configs: !g.no_tuned_configs,
        fused_combine: g.fused_combine,
        split_k: None,
        matvec_rows: (g.matvec_rows > 0).then_some(g.matvec_rows),
        matvec_fp8_activations: g.matvec_fp8_activations,
        fused_swiglu: !g.no_fused_swiglu,
        fused_norm: !g.no_fused_norm,
        fused_rope: !g.no_fused_rope,
        norm_in_residual: g.norm_in_residual,
        fused_attention_combine: g.fused_attention_combine,
    })
}

/// A progress bar on stderr (hidden when not a tty) over `total` steps.
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn cmd_bench(
    model: Option<PathBuf>,
    arch: Option<&str>,
    spec: BenchSpec,
    batch: usize,
    gpu: &GpuArgs,
    device: &str,
    ctx_size: Option<usize>,
) -> Result<()> {
    let BenchSpec { prompt, gen, reps } = spec;
    let device: Device = device.parse()?;
    if batch > 1 && device == Device::Cpu {
        bail!("--batch {batch}: the CPU backend runs one sequence; use --device cuda or interp");
    }
    let opts = GpuOptions { batch, ..gpu_options(gpu)? };
    let ctx = ctx_size.unwrap_or(prompt + gen + 2);
    let (name, mut backend): (String, Box<dyn Backend>) = match arch {
        Some(a) => {
            let config = llama::arch::by_name(a)?;
            if ctx > config.context_length {
                bail!("--ctx-size {ctx} is more than {a}'s context of {}", config.context_length);
            }
            let pb = progress_bar(config.n_layers as u64, &format!("making random {a} weights"));
            let source = WeightSource::Random { config: &config, seed: 1 };
            let mut tick = |l: usize| pb.set_position(l as u64);
            let b: Box<dyn Backend> = match device {
                Device::Cuda | Device::Auto => {
                    let rt = llama::backend::cuda_runtime(&opts)?;
                    eprintln!("device: cuda ({}, {})", rt.device_name(), rt.target());
                    let sms = rt.device_info().multiprocessors;
                    Box::new(GpuBackend::with_progress(rt, "cuda", sms, source, ctx, opts, &mut tick)?)
                }
                Device::Interp => Box::new(GpuBackend::with_progress(
                    dsl_core::interp::Interpreter::new(),
                    "interp",
                    132,
                    source,
                    ctx,
                    opts,
                    &mut tick,
                )?),
                Device::Cpu => bail!("--arch makes its weights on the GPU: use --device cuda or interp, or --model on the CPU"),
            };
            pb.finish_and_clear();
            (format!("{a} (random)"), b)
        }
        None => {
            let path = model_path(model)?;
            let m = load_model(&path)?;
            let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            (name, create_backend(device, Arc::new(m.weights), ctx, opts)?)
        }
    };
    if backend.batch() != batch {
        bail!("--batch {batch}: the {} backend runs one sequence (no usable GPU); use --device interp", backend.name());
    }
    let pb = progress_bar(3 * reps as u64, "measuring");
    let r = llama::bench::run(backend.as_mut(), spec, &mut |d, _| pb.set_position(d as u64))?;
    pb.finish_and_clear();
    let w = if backend.name() == "cpu" { "-".to_string() } else { format!("{:?}", opts.weights).to_lowercase() };
    let graph = backend.launch_mode();
    println!("| model | device | weights | decode | batch | test | tokens/s |");
    println!("| --- | --- | --- | --- | ---: | --- | ---: |");
    let row = |test: String, v: f64| println!("| {name} | {} | {w} | {graph} | {} | {test} | {v:.1} |", backend.name(), r.batch);
    row(format!("pp{prompt}"), r.prefill_tok_s);
    row(format!("tg{gen} @ ctx {prompt}"), r.decode_tok_s);
    row(format!("tg{gen} @ ctx {prompt}, logits to host"), r.decode_host_tok_s);
    Ok(())
}

fn model_path(p: Option<PathBuf>) -> Result<PathBuf> {
    match p {
        Some(p) => Ok(p),
        None => Ok(llama::discover::find_default_model()?),
    }
}

/// Loads the model with a progress bar on stderr (hidden when not a tty).
fn load_model(path: &Path) -> Result<LoadedModel> {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(format!("loading {}", path.display()));
    let m = loader::load(path).with_context(|| format!("loading {}", path.display()))?;
    // Touch every page of the weights so the first forward pass is not
    // slowed down (and mis-timed) by page faults.
    let w = &m.weights;
    let mut all: Vec<&llama::tensor::Tensor> = vec![&w.tok_embd, &w.norm];
    if !w.tied_embeddings {
        all.push(&w.output);
    }
    for l in &w.layers {
        all.extend([
            &l.attn_norm,
            &l.wq,
            &l.wk,
            &l.wv,
            &l.wo,
            &l.ffn_norm,
            &l.w_gate,
            &l.w_up,
            &l.w_down,
        ]);
    }
    let total: u64 = all.iter().map(|t| t.bytes().len() as u64).sum();
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_length(total);
    pb.set_message("loading weights");
    let mut sink = 0u8;
    for t in all {
        sink ^= t.bytes().iter().step_by(4096).fold(0u8, |a, b| a ^ b);
        pb.inc(t.bytes().len() as u64);
    }
    std::hint::black_box(sink);
    pb.finish_and_clear();
    Ok(m)
}

fn setup(run: &RunArgs) -> Result<(LoadedModel, Box<dyn Backend>, Sampler)> {
    let device: Device = run.device.parse()?;
    if let Some(n) = run.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up the thread pool")?;
    }
    if !(run.top_p > 0.0 && run.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1]");
    }
    if run.temperature < 0.0 || !run.temperature.is_finite() {
        bail!("--temperature must be >= 0");
    }
    let path = model_path(run.model.clone())?;
    let m = load_model(&path)?;
    let ctx = m
        .weights
        .config
        .context_length
        .min(run.ctx_size.unwrap_or(4096));
    let backend = create_backend(device, Arc::new(m.weights.clone()), ctx, gpu_options(&run.gpu)?)?;
    let sampler = Sampler::new(SamplerConfig {
        temperature: run.temperature,
        top_k: run.top_k,
        top_p: run.top_p,
        repeat_penalty: run.repeat_penalty,
        repeat_last_n: 64,
        greedy: run.greedy,
        seed: run.seed,
    });
    Ok((m, backend, sampler))
}

fn print_stream(s: &str) -> llama::Result<()> {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) just ends the output.
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
    Ok(())
}

fn cmd_generate(prompt: &str, run: &RunArgs) -> Result<()> {
    if prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    let (m, mut backend, mut sampler) = setup(run)?;
    let ids = m.tokenizer.encode(prompt, m.tokenizer.add_bos)?;
    // Echo the prompt once generation has started (i.e. the prompt was accepted).
    let mut echoed = false;
    let g = generate(
        backend.as_mut(),
        &m.tokenizer,
        &ids,
        run.max_tokens,
        &mut sampler,
        |s| {
            if !echoed {
                echoed = true;
                print_stream(prompt)?;
            }
            print_stream(s)
        },
    )?;
    if !echoed {
        print_stream(prompt)?;
    }
    println!();
    eprintln!("{}", g.stats.summary());
    Ok(())
}

fn special_text(m: &LoadedModel, id: Option<u32>) -> String {
    id.and_then(|i| m.tokenizer.token_text(i))
        .unwrap_or_default()
}

fn cmd_chat(prompt: Option<&str>, system: Option<&str>, run: &RunArgs) -> Result<()> {
    let (m, mut backend, mut sampler) = setup(run)?;
    let template = m
        .tokenizer
        .chat_template
        .clone()
        .unwrap_or_else(|| chat::default_template(&m.tokenizer).to_string());
    let bos = special_text(&m, m.tokenizer.bos_id);
    let eos = special_text(&m, m.tokenizer.eos_id);
    let mut messages: Vec<Message> = system
        .map(|s| vec![Message::new("system", s)])
        .unwrap_or_default();
    let mut cached: Vec<u32> = Vec::new();
    let interactive = prompt.is_none();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let user = match prompt {
            Some(p) => p.to_string(),
            None => {
                eprint!("> ");
                let _ = std::io::stderr().flush();
                match lines.next() {
                    Some(l) => l.context("reading stdin")?,
                    None => break,
                }
            }
        };
        if user.trim().is_empty() {
            if interactive {
                continue;
            }
            bail!("the prompt is empty");
        }
        if interactive && matches!(user.trim(), "/exit" | "/quit") {
            break;
        }
        messages.push(Message::new("user", &user));
        let ids = loop {
            let text = chat::render(&template, &messages, &bos, &eos, true)?;
            let ids = m
                .tokenizer
                .encode(&text, m.tokenizer.add_bos && !text.starts_with(&bos))?;
            // In a long conversation, forget the oldest exchanges (keeping a
            // system message) until the prompt leaves room to answer.
            let first = usize::from(messages.first().is_some_and(|m| m.role == "system"));
            let room = ids.len() + run.max_tokens.min(256) < backend.capacity();
            if room || !interactive || messages.len() <= first + 1 {
                break ids;
            }
            messages.drain(first..(first + 2).min(messages.len() - 1));
            eprintln!("(context full: forgetting the oldest messages)");
        };
        // Reuse the cached prefix of the conversation.
        let common = cached.iter().zip(&ids).take_while(|(a, b)| a == b).count();
        backend.rewind(common);
        let g = match generate(
            backend.as_mut(),
            &m.tokenizer,
            &ids,
            run.max_tokens,
            &mut sampler,
            print_stream,
        ) {
            Ok(g) => g,
            Err(e) if interactive => {
                eprintln!("error: {e}");
                messages.pop();
                cached.clear();
                backend.rewind(0);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        println!();
        eprintln!("{}", g.stats.summary());
        cached = ids;
        cached.extend_from_slice(&g.tokens);
        messages.push(Message::new("assistant", &g.text));
        if !interactive {
            break;
        }
    }
    Ok(())
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn cmd_info(model: Option<PathBuf>, list_tensors: bool) -> Result<()> {
    let path = model_path(model)?;
    if path.is_dir() {
        let m = loader::load(&path)?;
        print_config(&m.weights.config, m.weights.tied_embeddings);
        return Ok(());
    }
    let g = llama::gguf::GgufFile::open(&path)?;
    println!("file: {}", path.display());
    println!("format: GGUF v{}", g.version);
    for (k, v) in &g.metadata {
        if k.starts_with("general.")
            || k.starts_with("llama.")
            || matches!(k.as_str(), "tokenizer.ggml.model" | "tokenizer.ggml.pre")
        {
            println!("  {k} = {}", v.summary());
        }
    }
    let cfg = llama::config::LlamaConfig::from_gguf(&g)?;
    print_config(&cfg, g.tensor_info("output.weight").is_none());
    let mut by_type: std::collections::BTreeMap<&str, (usize, u64, u64)> = Default::default();
    for t in &g.tensors {
        let e = by_type.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.n_elements();
        e.2 += t.size;
    }
    println!("tensors: {}", g.tensors.len());
    for (ty, (n, el, b)) in by_type {
        println!("  {ty:>5}: {n:>4} tensors, {el:>12} params, {}", human(b));
    }
    if list_tensors {
        for t in &g.tensors {
            println!(
                "  {:<32} {:>5} {:?} {}",
                t.name,
                t.dtype.name(),
                t.shape(),
                human(t.size)
            );
        }
    }
    Ok(())
}

fn print_config(c: &llama::config::LlamaConfig, tied: bool) {
    println!("architecture: llama");
    println!(
        "  layers: {}, d_model: {}, ffn: {}",
        c.n_layers, c.d_model, c.ffn_dim
    );
    println!(
        "  heads: {} (kv heads: {}, head dim: {})",
        c.n_heads, c.n_kv_heads, c.head_dim
    );
    println!("  vocab: {}, context: {}", c.vocab_size, c.context_length);
    println!(
        "  rope: base {}, dim {}, layout {:?}, freq factors: {}, linear scale {}",
        c.rope_base,
        c.rope_dim,
        c.rope_layout,
        if c.rope_freq_factors.is_some() {
            "yes"
        } else {
            "no"
        },
        c.rope_linear_scale
    );
    println!("  rms eps: {:e}, tied embeddings: {tied}", c.rms_eps);
    println!("  parameters: ~{:.1} M", c.n_params() as f64 / 1e6);
}

fn cmd_convert(model: Option<PathBuf>, out: &Path, dtype: &str) -> Result<()> {
    let path = model_path(model)?;
    let m = load_model(&path)?;
    llama::hf::write_hf_dir(&m.weights, &m.tokenizer, out, dtype)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
