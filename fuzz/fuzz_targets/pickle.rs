//! The PyTorch pickle reader and the checkpoint tensor listing on arbitrary
//! bytes: never panic, and what they return is consistent.
//!
//! The input is read twice: as a `data.pkl` (tensors must lie in storages
//! the pickle names, spans at least one element), and as a whole checkpoint
//! file, a zip or a safetensors (tensor ranges must lie inside the file).
//! Seed the corpus with the fixtures: `cp ../tests/fixtures/*.pt
//! ../tests/fixtures/*.npz corpus/pickle/`, plus their `data.pkl` entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapstore::ckpt::{self, pickle};

fuzz_target!(|data: &[u8]| {
    if let Some(p) = pickle::parse_torch(data) {
        for t in &p.tensors {
            assert!(p.storage(&t.storage).is_some());
            assert!(t.bytes == 0 || t.span >= t.ty.elem);
        }
    }
    let size = data.len() as u64;
    for locate in [false, true] {
        for t in ckpt::tensors(data, size, locate).unwrap_or_default() {
            assert!(t.offset.checked_add(t.len).is_some_and(|e| e <= size));
        }
    }
});
