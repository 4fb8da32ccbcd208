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

use crate::ckpt::segment::Dtype;

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

/// A value on the stack: scalars inline, everything else in the arena.
#[derive(Clone, Copy, Debug, PartialEq)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    /// A float, a too-large int: nothing this reader needs.
    Scalar,
    Obj(u32),
}

#[derive(Debug)]
enum Obj {
    Str(String),
    Bytes,
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    Global(String, String),
    Storage {
        key: String,
        ty: Option<StorageType>,
    },
    Tensor {
        storage: u32,
        offset: u64,
        shape: Vec<u64>,
        stride: Vec<u64>,
    },
    Opaque,
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<V>,
    /// The stacks below each MARK (as CPython's unpickler keeps them).
    meta: Vec<Vec<V>>,
    memo: HashMap<u32, V>,
    arena: Vec<Obj>,
    /// Dict items BUILD may still copy (it can copy a dict into itself).
    copy_budget: usize,
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8]) -> Self {
        Vm {
            data,
            pos: 0,
            stack: Vec::new(),
            meta: Vec::new(),
            memo: HashMap::new(),
            arena: Vec::new(),
            copy_budget: data.len(),
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64_len(&mut self) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok()
    }

    /// A newline-terminated argument (GLOBAL, PUT, INT ...), without the newline.
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let n = rest.iter().position(|&b| b == b'\n')?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    fn alloc(&mut self, obj: Obj) -> V {
        self.arena.push(obj);
        V::Obj((self.arena.len() - 1) as u32)
    }

    fn obj(&self, v: V) -> Option<&Obj> {
        match v {
            V::Obj(i) => self.arena.get(i as usize),
            _ => None,
        }
    }

    fn str_of(&self, v: V) -> Option<&str> {
        match self.obj(v)? {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    fn push_str(&mut self, bytes: &[u8]) {
        let s = String::from_utf8_lossy(bytes).into_owned();
        let v = self.alloc(Obj::Str(s));
        self.stack.push(v);
    }

    fn pop(&mut self) -> Option<V> {
        self.stack.pop()
    }

    /// Everything above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Option<Vec<V>> {
        let below = self.meta.pop()?;
        Some(std::mem::replace(&mut self.stack, below))
    }

    fn top(&self) -> Option<V> {
        self.stack.last().copied()
    }

    fn memo_put(&mut self, key: u32) -> Option<()> {
        let v = self.top()?;
        self.memo.insert(key, v);
        Some(())
    }

    fn memo_get(&mut self, key: u32) -> Option<()> {
        let v = *self.memo.get(&key)?;
        self.stack.push(v);
        Some(())
    }

    fn parse_int(text: &[u8]) -> Option<V> {
        let t = std::str::from_utf8(text).ok()?.trim_end_matches('L');
        Some(match t {
            "00" => V::Bool(false),
            "01" => V::Bool(true),
            _ => t.parse::<i64>().map(V::Int).unwrap_or(V::Scalar),
        })
    }

    /// Runs to STOP; returns the pickled object.
    fn run(&mut self) -> Option<V> {
        loop {
            let op = self.u8()?;
            match op {
                b'\x80' => {
                    self.u8()?; // PROTO
                }
                b'\x95' => {
                    self.take(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => {
                    let below = std::mem::take(&mut self.stack);
                    self.meta.push(below);
                }
                b'0' => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?;
                    self.stack.push(v);
                }
                b'N' => self.stack.push(V::None),
                b'\x88' => self.stack.push(V::Bool(true)),
                b'\x89' => self.stack.push(V::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(V::Int(v.into()));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(V::Int(u16::from_le_bytes([b[0], b[1]]).into()));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(V::Int(v.into()));
                }
                b'\x8a' | b'\x8b' => {
                    let n = if op == b'\x8a' {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    let v = if n <= 8 {
                        let fill = if b.last().is_some_and(|x| x & 0x80 != 0) {
                            0xff
                        } else {
                            0
                        };
                        let mut w = [fill; 8];
                        w[..n].copy_from_slice(b);
                        V::Int(i64::from_le_bytes(w))
                    } else {
                        V::Scalar
                    };
                    self.stack.push(v);
                }
                b'I' | b'L' => {
                    let t = self.line()?;
                    let v = Self::parse_int(t)?;
                    self.stack.push(v);
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(V::Scalar);
                }
                b'F' => {
                    self.line()?;
                    self.stack.push(V::Scalar);
                }
                b'X' | b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.push_text(op, b);
                }
                b'\x8c' | b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push_text(op, b);
                }
                b'\x8d' | b'\x8e' => {
                    let n = self.u64_len()?;
                    let b = self.take(n)?;
                    self.push_text(op, b);
                }
                b'V' | b'S' => {
                    let b = self.line()?;
                    let b = if op == b'S' {
                        b.strip_prefix(b"'")
                            .and_then(|x| x.strip_suffix(b"'"))
                            .or_else(|| b.strip_prefix(b"\"").and_then(|x| x.strip_suffix(b"\"")))?
                    } else {
                        b
                    };
                    self.push_str(b);
                }
                b')' => {
                    let v = self.alloc(Obj::Tuple(Vec::new()));
                    self.stack.push(v);
                }
                b']' => {
                    let v = self.alloc(Obj::List(Vec::new()));
                    self.stack.push(v);
                }
                b'}' => {
                    let v = self.alloc(Obj::Dict(Vec::new()));
                    self.stack.push(v);
                }
                b't' | b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(if op == b't' {
                        Obj::Tuple(items)
                    } else {
                        Obj::List(items)
                    });
                    self.stack.push(v);
                }
                b'\x85' | b'\x86' | b'\x87' => {
                    let n = (op - b'\x84') as usize;
                    let at = self.stack.len().checked_sub(n)?;
                    let items = self.stack.split_off(at);
                    let v = self.alloc(Obj::Tuple(items));
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    let v = self.alloc(Obj::Dict(pairs));
                    self.stack.push(v);
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend_list(vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend_dict(vec![(key, value)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.extend_dict(pairs)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let k = std::str::from_utf8(self.line()?).ok()?.parse().ok()?;
                    self.memo_put(k)?;
                }
                b'\x94' => {
                    let k = u32::try_from(self.memo.len()).ok()?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b'g' => {
                    let k = std::str::from_utf8(self.line()?).ok()?.parse().ok()?;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    let v = self.alloc(Obj::Global(module, name));
                    self.stack.push(v);
                }
                b'\x93' => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (module, name) = (self.str_of(module)?, self.str_of(name)?);
                    if module.len() > MAX_SHORT || name.len() > MAX_SHORT {
                        return None;
                    }
                    let g = Obj::Global(module.to_string(), name.to_string());
                    let v = self.alloc(g);
                    self.stack.push(v);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid);
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args, 0)?;
                    self.stack.push(v);
                }
                b'\x81' => {
                    // NEWOBJ: an instance of a class; a dict stands in, so
                    // that its SETITEMS and BUILD state stay reachable.
                    self.pop()?;
                    self.pop()?;
                    let v = self.alloc(Obj::Dict(Vec::new()));
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: an object's state; a dict state of a dict-like
                    // object is merged in, anything else dropped.
                    let state = self.pop()?;
                    let target = self.top()?;
                    let items = match self.obj(state) {
                        Some(Obj::Dict(items)) => items.clone(),
                        _ => Vec::new(),
                    };
                    self.copy_budget = self.copy_budget.checked_sub(items.len())?;
                    if let V::Obj(i) = target {
                        if let Some(Obj::Dict(d)) = self.arena.get_mut(i as usize) {
                            d.extend(items);
                        }
                    }
                }
                _ => return None,
            }
        }
    }

    fn push_text(&mut self, op: u8, bytes: &[u8]) {
        if matches!(op, b'B' | b'C' | b'\x8e') {
            let v = self.alloc(Obj::Bytes);
            self.stack.push(v);
        } else {
            self.push_str(bytes);
        }
    }

    fn extend_list(&mut self, items: Vec<V>) -> Option<()> {
        let V::Obj(i) = self.top()? else {
            return None;
        };
        match self.arena.get_mut(i as usize)? {
            Obj::List(l) => l.extend(items),
            Obj::Opaque => {}
            _ => return None,
        }
        Some(())
    }

    fn extend_dict(&mut self, items: Vec<(V, V)>) -> Option<()> {
        let V::Obj(i) = self.top()? else {
            return None;
        };
        match self.arena.get_mut(i as usize)? {
            Obj::Dict(d) => d.extend(items),
            Obj::Opaque => {}
            _ => return None,
        }
        Some(())
    }

    /// BINPERSID: torch's `('storage', StorageClass, key, location, numel)`.
    fn persistent(&mut self, pid: V) -> V {
        let storage = (|| {
            let Obj::Tuple(t) = self.obj(pid)? else {
                return None;
            };
            if t.len() < 3 || self.str_of(t[0])? != "storage" {
                return None;
            }
            let ty = match self.obj(t[1])? {
                Obj::Global(m, c) => storage_type(m, c),
                _ => None,
            };
            let key = match t[2] {
                V::Int(i) => i.to_string(),
                v => Some(self.str_of(v)?)
                    .filter(|k| k.len() <= MAX_SHORT)?
                    .to_string(),
            };
            Some(Obj::Storage { key, ty })
        })();
        self.alloc(storage.unwrap_or(Obj::Opaque))
    }

    /// REDUCE of the callables torch checkpoints use; others are opaque.
    /// Nothing is copied: a large memoized tuple can be an argument of
    /// every REDUCE.
    fn reduce(&mut self, func: V, args: V, depth: u8) -> Option<V> {
        enum Call {
            Dict,
            Tensor,
            Value(V),
            FromType(V, V),
            Opaque,
        }
        let Some(Obj::Global(module, name)) = self.obj(func) else {
            return Some(self.alloc(Obj::Opaque));
        };
        let Some(Obj::Tuple(a)) = self.obj(args) else {
            return None;
        };
        let call = match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict")
                if a.is_empty() =>
            {
                Call::Dict
            }
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
                Call::Tensor
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Call::Value(a.first().copied().unwrap_or(V::None))
            }
            ("torch._utils", "_rebuild_from_type_v2") if depth == 0 && a.len() >= 3 => {
                Call::FromType(a[0], a[2])
            }
            _ => Call::Opaque,
        };
        let obj = match call {
            Call::Dict => Obj::Dict(Vec::new()),
            Call::Tensor => match self.obj(args) {
                Some(Obj::Tuple(a)) => self.tensor(a).unwrap_or(Obj::Opaque),
                _ => Obj::Opaque,
            },
            Call::Value(v) => return Some(v),
            Call::FromType(f, a) => return self.reduce(f, a, depth + 1),
            Call::Opaque => Obj::Opaque,
        };
        Some(self.alloc(obj))
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
    fn tensor(&self, args: &[V]) -> Option<Obj> {
        let storage = match args.first()? {
            V::Obj(i) if matches!(self.arena.get(*i as usize)?, Obj::Storage { .. }) => *i,
            _ => return None,
        };
        let offset = u64::try_from(match args.get(1)? {
            V::Int(i) => *i,
            _ => return None,
        })
        .ok()?;
        let ints = |v: &V| -> Option<Vec<u64>> {
            let Obj::Tuple(t) = self.obj(*v)? else {
                return None;
            };
            if t.len() > MAX_DIMS {
                return None;
            }
            t.iter()
                .map(|x| match x {
                    V::Int(i) => u64::try_from(*i).ok(),
                    _ => None,
                })
                .collect()
        };
        let shape = ints(args.get(2)?)?;
        let stride = ints(args.get(3)?)?;
        (shape.len() == stride.len()).then_some(Obj::Tensor {
            storage,
            offset,
            shape,
            stride,
        })
    }
}

fn pairs(items: Vec<V>) -> Option<Vec<(V, V)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    Some(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// Names tensors by their path from the root.
struct Walk<'a> {
    arena: &'a [Obj],
    visits: usize,
    name_bytes: usize,
    path: String,
    out: Vec<TorchTensor>,
}

impl<'a> Walk<'a> {
    fn value(&mut self, v: V, depth: usize) -> Option<()> {
        let V::Obj(i) = v else {
            return Some(());
        };
        if depth > MAX_DEPTH {
            return Some(());
        }
        let arena = self.arena;
        match arena.get(i as usize)? {
            Obj::Dict(items) => {
                for (k, v) in items {
                    match k {
                        V::Int(n) => self.child(&n.to_string(), *v, depth)?,
                        V::Obj(j) => match arena.get(*j as usize)? {
                            Obj::Str(s) => self.child(s, *v, depth)?,
                            _ => self.skip()?,
                        },
                        _ => self.skip()?,
                    }
                }
            }
            Obj::List(items) | Obj::Tuple(items) => {
                for (n, v) in items.iter().enumerate() {
                    self.child(&n.to_string(), *v, depth)?;
                }
            }
            Obj::Tensor {
                storage,
                offset,
                shape,
                stride,
            } => self.tensor(*storage, *offset, shape, stride)?,
            _ => {}
        }
        Some(())
    }

    /// Counts one visit; None once the budget is spent.
    fn skip(&mut self) -> Option<()> {
        self.visits += 1;
        (self.visits <= MAX_VISITS).then_some(())
    }

    fn child(&mut self, key: &str, v: V, depth: usize) -> Option<()> {
        self.skip()?;
        if self.path.len() + key.len() >= MAX_NAME {
            return Some(()); // a name nobody can read: not listed
        }
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
        let r = self.value(v, depth + 1);
        self.path.truncate(len);
        r
    }

    fn tensor(&mut self, storage: u32, offset: u64, shape: &[u64], stride: &[u64]) -> Option<()> {
        let Some(Obj::Storage { key, ty: Some(ty) }) = self.arena.get(storage as usize) else {
            return Some(()); // a storage of an unknown class: not listed
        };
        let Some((numel, span)) = extent(shape, stride) else {
            return Some(());
        };
        let (Some(offset), Some(span), Some(bytes)) = (
            offset.checked_mul(ty.elem),
            span.checked_mul(ty.elem),
            numel.checked_mul(ty.elem),
        ) else {
            return Some(());
        };
        self.name_bytes += self.path.len();
        if self.name_bytes > MAX_NAME_BYTES {
            return None;
        }
        let name = if self.path.is_empty() {
            "tensor".to_string()
        } else {
            self.path.clone()
        };
        self.out.push(TorchTensor {
            name,
            storage: key.clone(),
            ty: *ty,
            shape: shape.to_vec(),
            offset,
            span,
            bytes,
        });
        Some(())
    }
}

/// Elements of a tensor and the storage elements it spans.
fn extent(shape: &[u64], stride: &[u64]) -> Option<(u64, u64)> {
    let numel = shape.iter().try_fold(1u64, |a, &s| a.checked_mul(s))?;
    if numel == 0 {
        return Some((0, 0));
    }
    let last = shape
        .iter()
        .zip(stride)
        .try_fold(0u64, |a, (&s, &st)| a.checked_add((s - 1).checked_mul(st)?))?;
    Some((numel, last.checked_add(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds protocol-2 pickles the way torch.save writes them.
    #[derive(Default)]
    struct P(Vec<u8>, u8);

    impl P {
        fn op(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn s(self, s: &str) -> Self {
            let mut p = self
                .op(b"X")
                .op(&(s.len() as u32).to_le_bytes())
                .op(s.as_bytes());
            p = p.put();
            p
        }
        fn put(mut self) -> Self {
            let k = self.1;
            self.1 += 1;
            self.op(&[b'q', k])
        }
        fn int(self, i: u8) -> Self {
            self.op(&[b'K', i])
        }
        fn global(self, m: &str, n: &str) -> Self {
            self.op(format!("c{m}\n{n}\n").as_bytes()).put()
        }
        /// `_rebuild_tensor_v2((storage), offset, shape, stride, False, OrderedDict())`.
        fn tensor(
            self,
            storage_class: &str,
            key: &str,
            offset: u8,
            shape: &[u8],
            stride: &[u8],
        ) -> Self {
            let mut p = self
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(b"(")
                .op(b"(")
                .s("storage")
                .global("torch", storage_class)
                .s(key)
                .s("cpu")
                .int(100)
                .op(b"tQ")
                .int(offset)
                .op(b"(");
            for &d in shape {
                p = p.int(d);
            }
            p = p.op(b"t(");
            for &d in stride {
                p = p.int(d);
            }
            p.op(b"t\x89")
                .global("collections", "OrderedDict")
                .op(b")R")
                .op(b"tR")
                .put()
        }
    }

    fn state_dict() -> Vec<u8> {
        P::default()
            .op(b"\x80\x02")
            .global("collections", "OrderedDict")
            .op(b")R")
            .put()
            .op(b"(")
            .s("fc.weight")
            .tensor("FloatStorage", "0", 0, &[4, 3], &[3, 1])
            .s("fc.bias")
            .tensor("HalfStorage", "1", 2, &[4], &[1])
            .s("view")
            .tensor("FloatStorage", "0", 3, &[3, 2], &[1, 3])
            .s("steps")
            .tensor("LongStorage", "2", 0, &[], &[])
            .op(b"u.")
            .0
    }

    #[test]
    fn state_dict_tensors_and_storages() {
        let p = parse_torch(&state_dict()).expect("parses");
        let names: Vec<&str> = p.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["fc.weight", "fc.bias", "view", "steps"]);
        let w = &p.tensors[0];
        assert_eq!((w.ty.name, w.offset, w.span, w.bytes), ("F32", 0, 48, 48));
        assert_eq!(w.shape, [4, 3]);
        let b = &p.tensors[1];
        assert_eq!((b.ty.dtype, b.offset, b.bytes), (Dtype::F16, 4, 8));
        // A transposed view: 6 elements spanning storage elements 3..=8.
        let v = &p.tensors[2];
        assert_eq!(
            (v.storage.as_str(), v.offset, v.span, v.bytes),
            ("0", 12, 24, 24)
        );
        // A scalar holds one element.
        assert_eq!((p.tensors[3].bytes, p.tensors[3].span), (8, 8));
        assert_eq!(p.storages.len(), 3);
        assert_eq!(p.storage("1").unwrap().unwrap().dtype, Dtype::F16);
    }

    #[test]
    fn every_prefix_and_garbage_is_none_not_a_panic() {
        let data = state_dict();
        for n in 0..data.len() {
            assert!(parse_torch(&data[..n]).is_none(), "prefix {n} parsed");
        }
        assert!(parse_torch(b"\x80\x02\xff.").is_none());
        assert!(parse_torch(b"").is_none());
        // Memo get of a missing key, SETITEMS on a non-dict, a bare mark.
        assert!(parse_torch(b"h\x05.").is_none());
        assert!(parse_torch(b"K\x01(K\x02K\x03u.").is_none());
        assert!(parse_torch(b"(.").is_none());
    }

    #[test]
    fn self_referencing_and_shared_containers_are_bounded() {
        // A list that contains itself: the walk stops at MAX_DEPTH.
        let p = parse_torch(b"]q\x00h\x00a.").expect("parses");
        assert!(p.tensors.is_empty());
        // 40 levels of a dict holding the previous one twice would be 2^40
        // paths; the visit budget refuses it.
        let mut d = b"}q\x00".to_vec();
        for i in 1..40u8 {
            d.extend_from_slice(&[
                b'}',
                b'q',
                i,
                b'(',
                b'K',
                1,
                b'h',
                i - 1,
                b'K',
                2,
                b'h',
                i - 1,
                b'u',
            ]);
        }
        d.push(b'.');
        assert!(parse_torch(&d).is_none());
    }

    #[test]
    fn a_large_memoized_argument_is_not_copied_per_reduce() {
        // A 200k-element tuple, then 200k REDUCEs of a torch callable and
        // 200k BINPERSIDs on it: linear work, or this test would not finish.
        let mut d = b"\x80\x02(".to_vec();
        d.extend(std::iter::repeat_n(b"K\x01".as_slice(), 200_000).flatten());
        d.extend_from_slice(b"tq\x00ctorch._utils\n_rebuild_parameter\nq\x01");
        for _ in 0..200_000 {
            d.extend_from_slice(b"h\x01h\x00R0h\x00Q0");
        }
        d.extend_from_slice(b"N.");
        let p = parse_torch(&d).expect("parses");
        assert!(p.tensors.is_empty() && p.storages.is_empty());
    }

    /// The `data.pkl` of a fixture written by torch.save (tests/fixtures/make_pt.py).
    pub(crate) fn fixture_pickle(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let stem = name.trim_end_matches(".pt");
        let mut e = z.by_name(&format!("{stem}/data.pkl")).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut out).unwrap();
        out
    }

    /// Name, dtype, shape, storage key, byte offset, bytes.
    type Row<'a> = (&'a str, &'a str, Vec<u64>, &'a str, u64, u64);

    #[test]
    fn torch_save_checkpoint() {
        let p = parse_torch(&fixture_pickle("small_v1.pt")).expect("torch's pickle parses");
        let got: Vec<Row> = p
            .tensors
            .iter()
            .map(|t| {
                let (n, d, s, k) = (
                    t.name.as_str(),
                    t.ty.name,
                    t.shape.clone(),
                    t.storage.as_str(),
                );
                (n, d, s, k, t.offset, t.bytes)
            })
            .collect();
        let want: Vec<Row> = vec![
            ("model.fc1.weight", "F32", vec![16, 8], "0", 0, 512),
            ("model.fc1.bias", "F32", vec![16], "1", 0, 64),
            ("model.fc2.weight", "F16", vec![4, 16], "2", 0, 128),
            ("model.fc2.bias", "F16", vec![4], "3", 0, 8),
            ("model.emb.weight", "BF16", vec![8, 4], "4", 0, 64),
            ("model.pos_ids", "I64", vec![10], "5", 0, 80),
            // A view of rows 2..4 of fc1.weight: same storage, 16 elements in.
            ("model.fc1.rows", "F32", vec![2, 8], "0", 64, 64),
            ("optimizer.state.0.step", "F32", vec![], "6", 0, 4),
            ("optimizer.state.0.exp_avg", "F32", vec![16, 8], "7", 0, 512),
            (
                "optimizer.state.0.exp_avg_sq",
                "F32",
                vec![16, 8],
                "8",
                0,
                512,
            ),
            ("optimizer.state.1.step", "F32", vec![], "9", 0, 4),
            ("optimizer.state.1.exp_avg", "F32", vec![16], "10", 0, 64),
            ("optimizer.state.1.exp_avg_sq", "F32", vec![16], "11", 0, 64),
        ];
        assert_eq!(got, want);
        assert_eq!(p.storages.len(), 12);
        let dtype = |k: &str| p.storage(k).unwrap().unwrap().dtype;
        assert_eq!(
            [dtype("0"), dtype("2"), dtype("4"), dtype("5")],
            [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::Other]
        );
    }

    proptest::proptest! {
        /// Random byte flips of a real torch pickle: never a panic, and
        /// whatever parses is internally consistent.
        #[test]
        fn mutated_torch_pickles_never_panic(flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6), cut in proptest::prelude::any::<usize>()) {
            let mut data = fixture_pickle("small_v1.pt");
            for (at, b) in flips {
                let n = data.len();
                data[at % n] = b;
            }
            data.truncate(data.len() - cut % 4);
            if let Some(p) = parse_torch(&data) {
                for t in &p.tensors {
                    proptest::prop_assert!(t.bytes == 0 || t.span >= t.ty.elem);
                    proptest::prop_assert!(p.storage(&t.storage).is_some());
                }
            }
        }

        #[test]
        fn mutated_pickles_never_panic(flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8)) {
            let mut data = state_dict();
            for (at, b) in flips {
                let n = data.len();
                data[at % n] = b;
            }
            if let Some(p) = parse_torch(&data) {
                for t in &p.tensors {
                    proptest::prop_assert!(t.bytes == 0 || t.span >= t.ty.elem);
                }
            }
        }
    }
}
