//! Seeded data shared by the benches: the same bytes on every run and every
//! machine, so throughput figures and compression ratios are comparable.
//!
//! Each bench uses a subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use criterion::Criterion;

pub const MIB: usize = 1 << 20;

/// Criterion settings for a 2-core shared machine: few samples, short runs,
/// so `cargo bench` stays within minutes. Compare ratios within one run only.
pub fn quick() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

/// xorshift64*: tiny, seeded, good enough for bench data (not for crypto).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1]: never 0, so `ln` is finite.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// `len` bytes of little-endian fp32 values ~ N(0, 0.02), like the weights of
/// a trained layer (Box-Muller). Sign and low mantissa bits are noise, the
/// exponent byte is concentrated: zstd -3 stores this at about 0.93 of its
/// size, as it does real checkpoints — neither incompressible nor trivial.
pub fn tensor(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        let r = (-2.0 * rng.unit().ln()).sqrt();
        let theta = std::f64::consts::TAU * rng.unit();
        for z in [r * theta.cos(), r * theta.sin()] {
            out.extend_from_slice(&((0.02 * z) as f32).to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// `len` bytes of a training log: one line per step with loss, learning
/// rate, gradient norm and timing, the way trainers print them.
pub fn text_log(len: usize, seed: u64) -> Vec<u8> {
    use std::io::Write;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 256);
    let mut step = 0u64;
    let mut loss = 2.5f64;
    while out.len() < len {
        step += 1;
        loss = (loss * 0.9995 + 0.01 * (rng.unit() - 0.5)).max(0.01);
        let lr = 3e-4 * (1.0 - step as f64 / 1e6);
        let grad = 0.5 + rng.unit();
        let ms = 180.0 + 40.0 * rng.unit();
        writeln!(
            out,
            "2026-03-01 12:{:02}:{:02} INFO train epoch={} step={step} loss={loss:.5} lr={lr:.3e} grad_norm={grad:.4} step_time={ms:.1}ms",
            (step / 60) % 60,
            step % 60,
            step / 5000,
        )
        .expect("writing to a Vec cannot fail");
    }
    out.truncate(len);
    out
}

/// Writes `bytes` to `dir/rel`, creating parent directories.
pub fn write_file(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("a file path has a parent"))
        .expect("create bench directory");
    std::fs::write(&path, bytes).expect("write bench file");
}

/// A training workspace of about 36 MiB: one 32 MiB tensor file, a 4 MiB
/// log and a config. Returns its total size in bytes. Sleeps past the stat
/// cache's racy margin (50 ms) so a second commit can trust the files.
pub fn seed_workspace(root: &Path) -> u64 {
    let files: [(&str, Vec<u8>); 3] = [
        ("checkpoints/model.bin", tensor(32 * MIB, 1)),
        ("logs/train.log", text_log(4 * MIB, 2)),
        (
            "config/training_config.json",
            br#"{"lr": 0.0003, "batch_size": 64, "epochs": 20, "model": "vit-s"}"#.to_vec(),
        ),
    ];
    let mut total = 0;
    for (rel, bytes) in &files {
        write_file(root, rel, bytes);
        total += bytes.len() as u64;
    }
    std::thread::sleep(Duration::from_millis(200));
    total
}
