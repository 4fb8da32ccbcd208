//! The opcodes: one step of the pickle machine per opcode, until STOP. Any
//! opcode not listed here means "does not parse".

use super::vm::{pairs, Obj, Vm, V};
use super::MAX_SHORT;

impl Vm<'_> {
    /// Runs to STOP; returns the pickled object.
    pub(super) fn run(&mut self) -> Option<V> {
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
}
