//! Naming tensors: a bounded walk from the pickled root through dicts,
//! lists and tuples, giving each tensor its dotted path and its extent in
//! its storage.

use super::vm::{Obj, V};
use super::{TorchTensor, MAX_DEPTH, MAX_NAME, MAX_NAME_BYTES, MAX_VISITS};

/// Names tensors by their path from the root.
pub(super) struct Walk<'a> {
    pub(super) arena: &'a [Obj],
    pub(super) visits: usize,
    pub(super) name_bytes: usize,
    pub(super) path: String,
    pub(super) out: Vec<TorchTensor>,
}

impl<'a> Walk<'a> {
    pub(super) fn value(&mut self, v: V, depth: usize) -> Option<()> {
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
    pub(super) fn skip(&mut self) -> Option<()> {
        self.visits += 1;
        (self.visits <= MAX_VISITS).then_some(())
    }

    pub(super) fn child(&mut self, key: &str, v: V, depth: usize) -> Option<()> {
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

    pub(super) fn tensor(
        &mut self,
        storage: u32,
        offset: u64,
        shape: &[u64],
        stride: &[u64],
    ) -> Option<()> {
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
