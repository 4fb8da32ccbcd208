//! What torch's pickled calls build: a storage from a persistent id
//! (BINPERSID), dicts and tensors from REDUCE of the few callables torch
//! checkpoints use (`_rebuild_tensor_v2` and friends); every other call is
//! an opaque value, never executed.

use super::vm::{Obj, Vm, V};
use super::{storage_type, MAX_DIMS, MAX_SHORT};

impl Vm<'_> {
    /// BINPERSID: torch's `('storage', StorageClass, key, location, numel)`.
    pub(super) fn persistent(&mut self, pid: V) -> V {
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
    pub(super) fn reduce(&mut self, func: V, args: V, depth: u8) -> Option<V> {
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
    pub(super) fn tensor(&self, args: &[V]) -> Option<Obj> {
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
