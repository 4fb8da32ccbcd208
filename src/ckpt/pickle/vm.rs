//! The pickle machine: values, the object arena, the stack with its marks,
//! the memo, and the small operations the opcodes are made of. Opcodes are
//! in `opcodes.rs`, what torch's callables build in `rebuild.rs`.

use std::collections::HashMap;

use super::StorageType;

/// A value on the stack: scalars inline, everything else in the arena.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum V {
    None,
    Bool(bool),
    Int(i64),
    /// A float, a too-large int: nothing this reader needs.
    Scalar,
    Obj(u32),
}

#[derive(Debug)]
pub(super) enum Obj {
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

pub(super) struct Vm<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) stack: Vec<V>,
    /// The stacks below each MARK (as CPython's unpickler keeps them).
    pub(super) meta: Vec<Vec<V>>,
    pub(super) memo: HashMap<u32, V>,
    pub(super) arena: Vec<Obj>,
    /// Dict items BUILD may still copy (it can copy a dict into itself).
    pub(super) copy_budget: usize,
}

impl<'a> Vm<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
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

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(super) fn u64_len(&mut self) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok()
    }

    /// A newline-terminated argument (GLOBAL, PUT, INT ...), without the newline.
    pub(super) fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let n = rest.iter().position(|&b| b == b'\n')?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    pub(super) fn alloc(&mut self, obj: Obj) -> V {
        self.arena.push(obj);
        V::Obj((self.arena.len() - 1) as u32)
    }

    pub(super) fn obj(&self, v: V) -> Option<&Obj> {
        match v {
            V::Obj(i) => self.arena.get(i as usize),
            _ => None,
        }
    }

    pub(super) fn str_of(&self, v: V) -> Option<&str> {
        match self.obj(v)? {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn push_str(&mut self, bytes: &[u8]) {
        let s = String::from_utf8_lossy(bytes).into_owned();
        let v = self.alloc(Obj::Str(s));
        self.stack.push(v);
    }

    pub(super) fn pop(&mut self) -> Option<V> {
        self.stack.pop()
    }

    /// Everything above the topmost mark, which is removed.
    pub(super) fn pop_mark(&mut self) -> Option<Vec<V>> {
        let below = self.meta.pop()?;
        Some(std::mem::replace(&mut self.stack, below))
    }

    pub(super) fn top(&self) -> Option<V> {
        self.stack.last().copied()
    }

    pub(super) fn memo_put(&mut self, key: u32) -> Option<()> {
        let v = self.top()?;
        self.memo.insert(key, v);
        Some(())
    }

    pub(super) fn memo_get(&mut self, key: u32) -> Option<()> {
        let v = *self.memo.get(&key)?;
        self.stack.push(v);
        Some(())
    }

    pub(super) fn parse_int(text: &[u8]) -> Option<V> {
        let t = std::str::from_utf8(text).ok()?.trim_end_matches('L');
        Some(match t {
            "00" => V::Bool(false),
            "01" => V::Bool(true),
            _ => t.parse::<i64>().map(V::Int).unwrap_or(V::Scalar),
        })
    }

    pub(super) fn push_text(&mut self, op: u8, bytes: &[u8]) {
        if matches!(op, b'B' | b'C' | b'\x8e') {
            let v = self.alloc(Obj::Bytes);
            self.stack.push(v);
        } else {
            self.push_str(bytes);
        }
    }

    pub(super) fn extend_list(&mut self, items: Vec<V>) -> Option<()> {
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

    pub(super) fn extend_dict(&mut self, items: Vec<(V, V)>) -> Option<()> {
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
}

pub(super) fn pairs(items: Vec<V>) -> Option<Vec<(V, V)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    Some(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}
