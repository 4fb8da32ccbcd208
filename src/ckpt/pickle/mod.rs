//! Just enough of Python's pickle to read the `data.pkl` of a PyTorch zip
//! checkpoint (`torch.save`, protocol 2): which storage holds which dtype,
//! and where every tensor lives (its dotted name, dtype, shape, storage key,
//! byte offset and extent in the storage). Nothing is executed or imported:
//! globals are names, `REDUCE` of a handful of known callables builds
//! dicts and tensors, and every other call yields an opaque value.
//!
//! Why not a crate: `serde-pickle` (1.2) rejects `BINPERSID` (every storage
//! reference) as an unsupported opcode and keeps no name for an unknown
//! `GLOBAL`, so `torch.FloatStorage` and `torch.HalfStorage` are
//! indistinguishable; `pytorch-reader` (0.22) opens a whole checkpoint file
//! and hides each tensor's storage key and offset, which is exactly what
//! segmenting and `snap diff` need, from a `data.pkl` read out of the store.
//!
//! Bounds: the input is at most `MAX_PICKLE` bytes and every opcode consumes
//! at least one byte, so the stack, the memo and the object arena are bounded
//! by the input size; strings are allocated only after their length is known
//! to fit in the remaining input; the walk that names tensors is limited in
//! depth (`MAX_DEPTH`), visits (`MAX_VISITS`) and name bytes
//! (`MAX_NAME_BYTES`). Any unknown opcode, truncation, type confusion or
//! exceeded bound gives `None`; nothing panics.

use std::collections::HashMap;

use crate::ckpt::Dtype;

mod opcodes;
mod rebuild;
#[cfg(test)]
mod tests;
mod vm;
mod walk;

use vm::{Obj, Vm};
use walk::Walk;

/// Largest `data.pkl` that is parsed.
pub const MAX_PICKLE: usize = 64 << 20;
/// Deepest nesting of dicts and lists searched for tensors.
pub const MAX_DEPTH: usize = 32;
/// Most containers visited while naming tensors (shared ones count again).
pub const MAX_VISITS: usize = 1 << 22;
/// Most bytes of tensor names produced.
pub const MAX_NAME_BYTES: usize = 64 << 20;
/// Longest global name and storage key copied out of the memo (torch's are
/// a few bytes; a copy per opcode of a long one would be quadratic).
const MAX_SHORT: usize = 256;
/// Longest tensor name (dotted path).
const MAX_NAME: usize = 4096;
/// Most dimensions of a tensor.
const MAX_DIMS: usize = 64;

/// The element type of a PyTorch storage, from its class (`torch.FloatStorage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageType {
    /// The name `snap diff` shows (safetensors' spelling: `F32`, `BF16`, `I64`).
    pub name: &'static str,
    /// Bytes per element.
    pub elem: u64,
    /// What the codec needs to know.
    pub dtype: Dtype,
}

/// The storage classes `torch.save` writes, with their element types.
pub fn storage_type(module: &str, class: &str) -> Option<StorageType> {
    if module != "torch" {
        return None;
    }
    let (name, elem, dtype) = match class {
        "FloatStorage" => ("F32", 4, Dtype::F32),
        "HalfStorage" => ("F16", 2, Dtype::F16),
        "BFloat16Storage" => ("BF16", 2, Dtype::BF16),
        "DoubleStorage" => ("F64", 8, Dtype::Other),
        "LongStorage" => ("I64", 8, Dtype::Other),
        "IntStorage" => ("I32", 4, Dtype::Other),
        "ShortStorage" => ("I16", 2, Dtype::Other),
        "CharStorage" => ("I8", 1, Dtype::Other),
        "ByteStorage" | "UntypedStorage" => ("U8", 1, Dtype::Other),
        "BoolStorage" => ("BOOL", 1, Dtype::Other),
        "ComplexFloatStorage" => ("C64", 8, Dtype::Other),
        "ComplexDoubleStorage" => ("C128", 16, Dtype::Other),
        "Float8_e4m3fnStorage" => ("F8_E4M3", 1, Dtype::Other),
        "Float8_e5m2Storage" => ("F8_E5M2", 1, Dtype::Other),
        _ => return None,
    };
    Some(StorageType { name, elem, dtype })
}

/// One tensor of a checkpoint, located in its storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchTensor {
    /// Dotted path through the dicts and lists (`model.fc1.weight`,
    /// `optimizer.state.0.exp_avg`).
    pub name: String,
    pub storage: String,
    pub ty: StorageType,
    pub shape: Vec<u64>,
    /// Byte offset of the first element in the storage.
    pub offset: u64,
    /// Bytes of the storage the tensor's elements span (a strided view
    /// spans more than it holds; an empty tensor spans nothing).
    pub span: u64,
    /// Bytes of the tensor's elements: elements times element size.
    pub bytes: u64,
}

/// What a `data.pkl` says about its checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TorchPickle {
    /// Every storage referenced, by key, with its element type (None when
    /// the class is unknown or two references disagree).
    pub storages: HashMap<String, Option<StorageType>>,
    /// Tensors in the order the walk meets them (dict order).
    pub tensors: Vec<TorchTensor>,
}

impl TorchPickle {
    pub fn storage(&self, key: &str) -> Option<&Option<StorageType>> {
        self.storages.get(key)
    }
}

/// Parses a torch.save `data.pkl`; None if it is not one this reader follows.
pub fn parse_torch(data: &[u8]) -> Option<TorchPickle> {
    if data.len() > MAX_PICKLE {
        return None;
    }
    let mut vm = Vm::new(data);
    let root = vm.run()?;
    let mut out = TorchPickle::default();
    for obj in &vm.arena {
        if let Obj::Storage { key, ty } = obj {
            let t = out.storages.entry(key.clone()).or_insert(*ty);
            if *t != *ty {
                *t = None;
            }
        }
    }
    let mut walk = Walk {
        arena: &vm.arena,
        visits: 0,
        name_bytes: 0,
        path: String::new(),
        out: Vec::new(),
    };
    walk.value(root, 0)?;
    out.tensors = walk.out;
    Some(out)
}
