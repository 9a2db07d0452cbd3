//! A safe subset of Python's pickle virtual machine, enough for PyTorch state dicts — the same
//! idea as `torch.load(weights_only=True)`.
//!
//! Safety properties, for files from anywhere:
//! - only the opcodes a state dict uses are understood (protocols 2–5: no `INST`, `OBJ`,
//!   `NEWOBJ`, extensions or out-of-band buffers); anything else is an error;
//! - `GLOBAL` / `STACK_GLOBAL` resolve only names on [`super::torch_globals`]'s allow-list; any
//!   other (`os.system`, `builtins.eval`, ...) is refused with its name, before anything is built;
//! - the machine is a loop over a byte slice (no recursion); every length is checked against the
//!   bytes left before anything is allocated; containers nest at most [`MAX_DEPTH`] deep (so
//!   dropping them cannot overflow the stack); and copy-on-write copies are charged to a work
//!   budget proportional to the input, so a crafted pickle cannot make the reader quadratic.
//!
//! Containers are immutable, reference-counted values; `SETITEMS`/`APPENDS`/`BUILD` copy a
//! container that is also in the memo before changing it. A later `BINGET` of that container then
//! sees the old contents, unlike Python — harmless for state dicts, whose memoised containers are
//! filled right after they are made.

use super::read_error::{corrupt, ReadError};
use super::torch_globals::{self, Global, StorageRef, TensorRef};
use std::collections::HashMap;
use std::rc::Rc;

/// Deepest container nesting accepted (a state dict needs about 4).
pub const MAX_DEPTH: u32 = 64;

/// A sequence (tuple or list) with its nesting depth.
#[derive(Clone, Debug, Default)]
pub struct Seq {
    /// 1 + the deepest item's depth.
    pub depth: u32,
    /// The items.
    pub items: Vec<Value>,
}

/// A dict: key-value pairs in insertion order, with its nesting depth.
#[derive(Clone, Debug, Default)]
pub struct Map {
    /// 1 + the deepest key's or value's depth.
    pub depth: u32,
    /// The pairs, in insertion order (a repeated key appears twice).
    pub items: Vec<(Value, Value)>,
}

/// A value on the pickle machine's stack.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A wider integer, as its little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(Rc<str>),
    /// A byte string.
    Bytes(Rc<[u8]>),
    /// A tuple.
    Tuple(Rc<Seq>),
    /// A list.
    List(Rc<Seq>),
    /// A dict or `OrderedDict`.
    Dict(Rc<Map>),
    /// An allowed global (a class or function).
    Global(Global),
    /// A tensor storage, from a persistent id.
    Storage(Rc<StorageRef>),
    /// A tensor (a view of a storage).
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// Container nesting depth (0 for scalars).
    pub fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) | Value::List(s) => s.depth,
            Value::Dict(m) => m.depth,
            Value::Storage(_) | Value::Tensor(_) => 1,
            _ => 0,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// An empty dict (depth 1).
pub fn empty_dict() -> Value {
    Value::Dict(Rc::new(Map {
        depth: 1,
        items: Vec::new(),
    }))
}

/// Builds a tuple value, refusing nesting beyond [`MAX_DEPTH`].
pub fn tuple(items: Vec<Value>) -> Result<Value, ReadError> {
    Ok(Value::Tuple(Rc::new(seq(items)?)))
}

fn seq(items: Vec<Value>) -> Result<Seq, ReadError> {
    let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
    check_depth(depth)?;
    Ok(Seq { depth, items })
}

fn check_depth(depth: u32) -> Result<(), ReadError> {
    if depth > MAX_DEPTH {
        Err(corrupt(format!(
            "pickle nests containers more than {MAX_DEPTH} deep"
        )))
    } else {
        Ok(())
    }
}

/// Decodes a persistent id (the value `BINPERSID` pops) into the object it stands for.
pub type PersistentLoad<'a> = dyn FnMut(Value) -> Result<Value, ReadError> + 'a;

/// The machine's state while it runs.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Elements copied so far by copy-on-write; bounded by `budget`.
    work: usize,
    budget: usize,
}

/// Runs the pickle at the start of `data` until its `STOP` and returns the value with the number
/// of bytes it took (legacy `.pth` files hold several pickles back to back).
pub fn unpickle(
    data: &[u8],
    persistent_load: &mut PersistentLoad<'_>,
) -> Result<(Value, usize), ReadError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        work: 0,
        budget: data.len().saturating_mul(16).saturating_add(1 << 20),
    };
    let value = m.run(persistent_load)?;
    Ok((value, m.pos))
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(corrupt(format!(
                "pickle ends early: {n} bytes wanted at offset {} of {}",
                self.pos,
                self.data.len()
            ))),
        }
    }

    fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ReadError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ReadError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length that must fit in the bytes left.
    fn len_bytes(&mut self, n: u64) -> Result<&'a [u8], ReadError> {
        let n = usize::try_from(n).map_err(|_| corrupt("pickle length beyond memory"))?;
        self.take(n)
    }

    fn line(&mut self) -> Result<&'a str, ReadError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("pickle GLOBAL name without its newline"))?;
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|_| corrupt("pickle GLOBAL name is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }

    fn text(&mut self, n: u64) -> Result<Value, ReadError> {
        let b = self.len_bytes(n)?;
        let s = std::str::from_utf8(b).map_err(|_| corrupt("pickle string is not UTF-8"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn pop(&mut self) -> Result<Value, ReadError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(corrupt("pickle pops an empty stack"));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&mut self) -> Result<&mut Value, ReadError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(corrupt("pickle uses an empty stack"));
        }
        Ok(self.stack.last_mut().expect("checked above"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, ReadError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| corrupt("pickle pops a MARK that was never set"))?;
        Ok(self.stack.split_off(mark))
    }

    fn charge(&mut self, n: usize) -> Result<(), ReadError> {
        self.work = self.work.saturating_add(n);
        if self.work > self.budget {
            Err(corrupt(
                "pickle copies more data than a state dict could need",
            ))
        } else {
            Ok(())
        }
    }

    fn memo_get(&self, i: u32) -> Result<Value, ReadError> {
        self.memo
            .get(&i)
            .cloned()
            .ok_or_else(|| corrupt(format!("pickle memo entry {i} read before it is written")))
    }

    fn memo_put(&mut self, i: u32) -> Result<(), ReadError> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    /// Adds `pairs` (flat key, value, key, value, ...) to the dict on top of the stack.
    fn set_items(&mut self, flat: Vec<Value>) -> Result<(), ReadError> {
        if !flat.len().is_multiple_of(2) {
            return Err(corrupt("pickle SETITEMS with an odd number of items"));
        }
        let depth = 1 + flat.iter().map(Value::depth).max().unwrap_or(0);
        check_depth(depth)?;
        let cost = match self.top()? {
            Value::Dict(m) if Rc::strong_count(m) > 1 => m.items.len(),
            _ => 0,
        };
        self.charge(cost + flat.len())?;
        let Value::Dict(map) = self.top()? else {
            return Err(corrupt("pickle SETITEM(S) on something that is not a dict"));
        };
        let map = Rc::make_mut(map);
        map.depth = map.depth.max(depth);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.items.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), ReadError> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        check_depth(depth)?;
        let cost = match self.top()? {
            Value::List(s) if Rc::strong_count(s) > 1 => s.items.len(),
            _ => 0,
        };
        self.charge(cost + items.len())?;
        let Value::List(list) = self.top()? else {
            return Err(corrupt("pickle APPEND(S) on something that is not a list"));
        };
        let list = Rc::make_mut(list);
        list.depth = list.depth.max(depth);
        list.items.extend(items);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), ReadError> {
        let g = torch_globals::resolve(module, name)?;
        self.stack.push(Value::Global(g));
        Ok(())
    }

    fn run(&mut self, persistent_load: &mut PersistentLoad<'_>) -> Result<Value, ReadError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(ReadError::Unsupported(format!(
                            "pickle protocol {proto} (at most 5)"
                        )));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(corrupt("pickle STOP with values left on the stack"));
                    }
                    return Ok(v);
                }
                b'}' => self.stack.push(empty_dict()),
                b']' => self.stack.push(Value::List(Rc::new(Seq {
                    depth: 1,
                    items: Vec::new(),
                }))),
                b')' => self.stack.push(tuple(Vec::new())?),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'X' => {
                    let n = self.u32()? as u64;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as u64;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e => {
                    // BINSTRING, SHORT_BINSTRING (Python 2 str), BINBYTES, SHORT_BINBYTES,
                    // BINBYTES8.
                    let n = match op {
                        b'U' | b'C' => self.u8()? as u64,
                        0x8e => self.u64()?,
                        _ => self.u32()? as u64,
                    };
                    let b = self.len_bytes(n)?;
                    self.stack.push(Value::Bytes(Rc::from(b)));
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as u64
                    } else {
                        self.u32()? as u64
                    };
                    let b = self.len_bytes(n)?;
                    self.stack.push(long(b));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.stack.push(Value::Float(v));
                }
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'N' => self.stack.push(Value::None),
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(corrupt("pickle TUPLE1-3 with too few values"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.charge(n)?;
                    self.stack.push(tuple(items)?);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.charge(items.len())?;
                    self.stack.push(tuple(items)?);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(seq(items)?)));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(empty_dict());
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len())
                        .map_err(|_| corrupt("pickle memo too large"))?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?;
                        }
                        _ => return Err(corrupt("pickle STACK_GLOBAL without two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let Value::Global(g) = func else {
                        return Err(corrupt(format!(
                            "pickle REDUCE calls a {}, not a function",
                            func.kind()
                        )));
                    };
                    let Value::Tuple(args) = args else {
                        return Err(corrupt("pickle REDUCE arguments are not a tuple"));
                    };
                    let v = torch_globals::call(g, &args.items)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    torch_globals::build(obj, state)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent_load(pid)?;
                    self.stack.push(v);
                }
                other => {
                    return Err(ReadError::Unsupported(format!(
                        "pickle opcode {other:#04x} at offset {at} (a weights-only load \
                         understands only what state dicts use)"
                    )))
                }
            }
        }
    }
}

/// A `LONG1` / `LONG4` payload: little-endian two's complement.
fn long(b: &[u8]) -> Value {
    if b.len() <= 8 {
        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut full = [fill; 8];
        full[..b.len()].copy_from_slice(b);
        Value::Int(i64::from_le_bytes(full))
    } else {
        Value::BigInt(Rc::from(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_pid(_: Value) -> Result<Value, ReadError> {
        Err(corrupt("no persistent ids here"))
    }

    fn load(data: &[u8]) -> Result<Value, ReadError> {
        unpickle(data, &mut no_pid).map(|(v, _)| v)
    }

    // Byte strings below are what CPython 3's `pickle.dumps(obj, protocol=2)` writes; they were
    // checked with `pickletools.dis`.

    #[test]
    fn python_scalars_and_containers() {
        // pickle.dumps({'a': [1, -2, 3.5, None, True], 'b': (300, 70000)}, 2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03M,\x01Jp\x11\x01\x00\x86q\x04u.";
        let Value::Dict(d) = load(data).unwrap() else {
            panic!()
        };
        assert_eq!(d.items.len(), 2);
        let Value::List(l) = &d.items[0].1 else {
            panic!()
        };
        let got: Vec<String> = l.items.iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(
            got,
            ["Int(1)", "Int(-2)", "Float(3.5)", "None", "Bool(true)"]
        );
        let Value::Tuple(t) = &d.items[1].1 else {
            panic!()
        };
        assert!(matches!(t.items[..], [Value::Int(300), Value::Int(70000)]));
    }

    #[test]
    fn long1_is_twos_complement() {
        // LONG1 with the bytes of pickle.encode_long(-129) (7f ff), and pickle.dumps(2**40, 2);
        // pickle.loads gives -129 and 1099511627776.
        assert!(matches!(
            load(b"\x80\x02\x8a\x02\x7f\xff.").unwrap(),
            Value::Int(-129)
        ));
        assert!(matches!(
            load(b"\x80\x02\x8a\x06\x00\x00\x00\x00\x00\x01.").unwrap(),
            Value::Int(1_099_511_627_776)
        ));
    }

    #[test]
    fn forbidden_globals_are_named() {
        // pickle.dumps of a class whose __reduce__ returns (os.system, ('echo hi',)).
        let data = b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
        let e = load(data).unwrap_err();
        assert_eq!(e, ReadError::Forbidden("posix.system".into()));
        // Protocol 4 STACK_GLOBAL builtins.eval.
        let data = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93X\x01\x00\x00\x001\x85R.";
        assert_eq!(
            load(data).unwrap_err(),
            ReadError::Forbidden("builtins.eval".into())
        );
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u.";
        assert!(load(data).is_ok());
        for n in 0..data.len() {
            assert!(
                matches!(load(&data[..n]), Err(ReadError::Corrupt(_))),
                "prefix {n}"
            );
        }
        // A string claiming 4 GiB in a 10-byte file: an error, no allocation.
        assert!(matches!(
            load(b"\x80\x02X\xff\xff\xff\xff"),
            Err(ReadError::Corrupt(_))
        ));
        // INST (protocol 0 class instantiation) is not understood.
        assert!(matches!(
            load(b"(ios\nsystem\n."),
            Err(ReadError::Unsupported(_))
        ));
        // BINGET of an unwritten memo slot, POP of an empty stack, STOP with leftovers.
        assert!(load(b"h\x05.").is_err());
        assert!(load(b"0.").is_err());
        assert!(load(b"NN.").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        // 100,000 nested lists: ']' * n then 'a' * (n - 1).
        let n = 100_000;
        let mut data = vec![b']'; n];
        data.extend(std::iter::repeat_n(b'a', n - 1));
        data.push(b'.');
        assert!(matches!(load(&data), Err(ReadError::Corrupt(_))));
        // Nesting within the limit is fine.
        let n = MAX_DEPTH as usize;
        let mut data = vec![b']'; n];
        data.extend(std::iter::repeat_n(b'a', n - 1));
        data.push(b'.');
        assert_eq!(load(&data).unwrap().depth(), MAX_DEPTH);
    }

    #[test]
    fn copy_on_write_is_budgeted() {
        // A memoised list of 100k items, then many single APPENDs through BINGET, each of which
        // would copy the list: refused once the copies exceed the budget.
        let mut data = b"]q\x00(".to_vec();
        data.extend(std::iter::repeat_n(b"N".as_slice(), 100_000).flatten());
        // APPENDS, memoise the full list again, POP it.
        data.extend(b"eq\x000");
        for _ in 0..2000 {
            data.extend(b"h\x00Na0");
        }
        data.extend(b"N.");
        let e = load(&data).unwrap_err();
        assert!(e.to_string().contains("copies more data"), "{e}");
    }
}
