//! A small, safe pickle interpreter (protocols 0–5 opcodes that numpy/Paddle files use).
//! It executes nothing: `GLOBAL`/`REDUCE`/`BUILD` produce inert [`Value::Object`]s that callers
//! interpret (numpy arrays via [`ndarray`]). Reads PaddleVideo's per-video `.pkl` files
//! (Python 2, protocol 2, bytes keys) and Paddle `.pdparams` (protocol 4, numpy 1.x or 2.x).

use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Rc<Vec<u8>>),
    Str(Rc<str>),
    List(Rc<RefCell<Vec<Value>>>),
    Tuple(Rc<Vec<Value>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// `module.name` as referenced by GLOBAL / STACK_GLOBAL.
    Global(Rc<str>, Rc<str>),
    Object(Rc<RefCell<Object>>),
    Mark,
}

/// The result of `callable(*args)` (REDUCE / NEWOBJ), with any `BUILD` state.
#[derive(Debug, Clone)]
pub struct Object {
    pub module: Rc<str>,
    pub name: Rc<str>,
    pub args: Vec<Value>,
    pub state: Option<Value>,
    /// Items appended / set on the object (e.g. an OrderedDict built by SETITEMS).
    pub items: Vec<(Value, Value)>,
}

impl Value {
    pub fn as_str_or_bytes(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Str(_) => "str".into(),
            Value::List(_) => "list".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(m, n) => format!("{m}.{n}"),
            Value::Object(o) => {
                let o = o.borrow();
                format!("{}.{} object", o.module, o.name)
            }
            Value::Mark => "mark".into(),
        }
    }
    /// Dict entries (a plain dict or an OrderedDict object).
    pub fn dict_items(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            Value::Object(o) if &*o.borrow().name == "OrderedDict" => {
                Some(o.borrow().items.clone())
            }
            _ => None,
        }
    }
    /// Looks a key up by str or bytes spelling (Python 2 pickles have bytes keys).
    pub fn get(&self, key: &str) -> Option<Value> {
        self.dict_items()?
            .into_iter()
            .find(|(k, _)| k.as_str_or_bytes().as_deref() == Some(key))
            .map(|(_, v)| v)
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => ndarray(self).ok().and_then(|a| {
                if a.shape.is_empty() {
                    a.to_i64().ok().and_then(|v| v.first().copied())
                } else {
                    None
                }
            }),
        }
    }
    pub fn as_list(&self) -> Option<Vec<Value>> {
        match self {
            Value::List(l) => Some(l.borrow().clone()),
            Value::Tuple(t) => Some(t.to_vec()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PickleError(pub String);

fn perr<T>(m: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(m.into()))
}

/// Values a pickle may push (every opcode that produces one counts, clones by DUP/GET too).
/// PaddleVideo's per-shard pickles push ~20 per video and `.pdparams` a few hundred in all, so
/// this is far above any real file, and it bounds what a hostile one can make us hold
/// (~100 bytes each: stack or container slot, memo entry, allocation).
pub const MAX_VALUES: usize = 1_000_000;
/// Nesting of lists / dicts / tuples / objects. Real files nest 3–5 deep; a bound keeps every
/// later walk (and the drop) shallow.
pub const MAX_DEPTH: usize = 64;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: std::collections::HashMap<u32, Value>,
    pushed: usize,
    /// Height of every container made so far (a leaf is 0, an empty container 1).
    heights: std::collections::HashMap<usize, usize>,
    /// Containers already placed inside another one: they may no longer change. Python's
    /// pickler (and so numpy, Paddle and PaddleVideo files) always fills a container before it
    /// places it, so this refuses nothing real, and it makes heights exact at insertion time:
    /// no structure deeper than [`MAX_DEPTH`] and no reference cycle can ever be built (so no
    /// drop or walk recurses deeply).
    contained: std::collections::HashSet<usize>,
    /// Every container stays alive until the end, so addresses (the keys above) are unique.
    keep: Vec<Value>,
}

/// Children of a container value (shallow clones of the `Rc`s).
fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::List(l) => l.borrow().clone(),
        Value::Tuple(t) => t.to_vec(),
        Value::Dict(d) => d
            .borrow()
            .iter()
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
        Value::Object(o) => {
            let o = o.borrow();
            let mut c = o.args.clone();
            c.extend(o.state.clone());
            c
        }
        _ => Vec::new(),
    }
}

fn container_id(v: &Value) -> Option<usize> {
    match v {
        Value::List(l) => Some(Rc::as_ptr(l) as *const u8 as usize),
        Value::Tuple(t) => Some(Rc::as_ptr(t) as *const u8 as usize),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const u8 as usize),
        Value::Object(o) => Some(Rc::as_ptr(o) as *const u8 as usize),
        _ => None,
    }
}

impl<'a> Machine<'a> {
    fn height(&self, v: &Value) -> usize {
        container_id(v)
            .and_then(|id| self.heights.get(&id).copied())
            .unwrap_or(0)
    }

    /// Registers a container made from `children` (fresh: nothing holds it yet).
    fn made<'v>(
        &mut self,
        v: &Value,
        children: impl IntoIterator<Item = &'v Value>,
    ) -> Result<(), PickleError> {
        let Some(id) = container_id(v) else {
            return Ok(());
        };
        self.heights.insert(id, 1);
        self.keep.push(v.clone());
        self.insert(v, children)
    }

    /// Pushes a freshly made container (or any value) after registering it.
    fn push_made(&mut self, v: Value) -> Result<(), PickleError> {
        let ch = children(&v);
        self.made(&v, &ch)?;
        self.stack.push(v);
        Ok(())
    }

    /// Checks and records placing `children` into the existing container `target`.
    fn insert<'v>(
        &mut self,
        target: &Value,
        children: impl IntoIterator<Item = &'v Value>,
    ) -> Result<(), PickleError> {
        let Some(id) = container_id(target) else {
            return Ok(());
        };
        if self.contained.contains(&id) {
            return perr(format!(
                "a {} is changed after it was placed inside another container (Python's pickler never does that; a hostile file?)",
                target.type_name()
            ));
        }
        let mut h = self.heights.get(&id).copied().unwrap_or(1);
        for c in children {
            if let Some(cid) = container_id(c) {
                if cid == id {
                    return perr("a container is placed inside itself (a reference cycle)");
                }
                self.contained.insert(cid);
            }
            h = h.max(self.height(c) + 1);
        }
        if h > MAX_DEPTH {
            return perr(format!(
                "values are nested more than {MAX_DEPTH} deep; PaddleVideo's files nest 3–5 deep"
            ));
        }
        self.heights.insert(id, h);
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if self.data.len() - self.pos < n {
            return perr(format!(
                "truncated pickle: wanted {n} bytes at offset {}",
                self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return perr("unterminated text line");
        };
        self.pos += n + 1;
        Ok(&rest[..n])
    }
    fn pop(&mut self) -> Result<Value, PickleError> {
        self.stack
            .pop()
            .ok_or_else(|| PickleError("stack underflow".into()))
    }
    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack
            .last_mut()
            .ok_or_else(|| PickleError("stack underflow".into()))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(i) = self.stack.iter().rposition(|v| matches!(v, Value::Mark)) else {
            return perr("MARK not found");
        };
        let items = self.stack.split_off(i + 1);
        self.stack.pop();
        Ok(items)
    }
    fn bytes(&mut self, n: usize) -> Result<Value, PickleError> {
        Ok(Value::Bytes(Rc::new(self.take(n)?.to_vec())))
    }
    fn string(&mut self, n: usize) -> Result<Value, PickleError> {
        let b = self.take(n)?;
        Ok(Value::Str(Rc::from(String::from_utf8_lossy(b).as_ref())))
    }
    fn setitems(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        self.insert(target, &items)?;
        let pairs: Vec<(Value, Value)> = items
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        match target {
            Value::Dict(d) => d.borrow_mut().extend(pairs),
            Value::Object(o) => o.borrow_mut().items.extend(pairs),
            other => return perr(format!("SETITEM on a {}", other.type_name())),
        }
        Ok(())
    }
    fn appends(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        self.insert(target, &items)?;
        match target {
            Value::List(l) => l.borrow_mut().extend(items),
            Value::Object(o) => o
                .borrow_mut()
                .items
                .extend(items.into_iter().map(|v| (Value::None, v))),
            other => return perr(format!("APPEND on a {}", other.type_name())),
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let before = self.stack.len();
            let op = self.u8()?;
            self.step(op, before)?;
            if op == b'.' {
                return self.pop();
            }
        }
    }

    /// Executes one opcode (STOP is handled by `run`).
    fn step(&mut self, op: u8, before: usize) -> Result<(), PickleError> {
        let r = self.exec(op);
        if self.stack.len() > before || matches!(op, b'p' | b'q' | b'r' | 0x94) {
            self.pushed += 1;
            if self.pushed > MAX_VALUES {
                return perr(format!(
                    "the pickle makes more than {MAX_VALUES} values; PaddleVideo's files make far fewer (a hostile or damaged file?)"
                ));
            }
        }
        r
    }

    fn exec(&mut self, op: u8) -> Result<(), PickleError> {
        {
            match op {
                0x80 => {
                    self.u8()?;
                } // PROTO
                0x95 => {
                    self.u64()?;
                } // FRAME
                b'.' => {} // STOP: `run` pops the result
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(Value::Int(v))
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Value::Int(v))
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.stack.push(Value::Int(v))
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    if n > 8 {
                        return perr("integer wider than 64 bits");
                    }
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v))
                }
                b'I' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    let v = match s.as_ref() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(
                            s.parse()
                                .map_err(|_| PickleError(format!("bad INT '{s}'")))?,
                        ),
                    };
                    self.stack.push(v)
                }
                b'L' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    let v = s
                        .trim_end_matches('L')
                        .parse()
                        .map_err(|_| PickleError(format!("bad LONG '{s}'")))?;
                    self.stack.push(Value::Int(v))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.stack.push(Value::Float(v))
                }
                b'F' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    self.stack.push(Value::Float(
                        s.parse()
                            .map_err(|_| PickleError(format!("bad FLOAT '{s}'")))?,
                    ))
                }
                // Python 2 str: raw bytes (numpy array payloads, bytes keys).
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v)
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v)
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v)
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v)
                }
                0x8e => {
                    let n = self.u64()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v)
                }
                0x96 => {
                    let n = self.u64()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v)
                } // BYTEARRAY8
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                b'V' => {
                    // UNICODE (protocol 0, raw-unicode-escape); only plain ASCII expected.
                    let l = self.line()?;
                    self.stack
                        .push(Value::Str(Rc::from(String::from_utf8_lossy(l).as_ref())))
                }
                b'S' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    let s = s.trim_matches(|c| c == '\'' || c == '"');
                    self.stack
                        .push(Value::Bytes(Rc::new(s.as_bytes().to_vec())))
                }
                b')' => self.push_made(Value::Tuple(Rc::new(Vec::new())))?,
                b'}' => self.push_made(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?,
                b']' => self.push_made(Value::List(Rc::new(RefCell::new(Vec::new()))))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_made(Value::Tuple(Rc::new(items)))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_made(Value::List(Rc::new(RefCell::new(items))))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = Value::Dict(Rc::new(RefCell::new(Vec::new())));
                    self.made(&d, [])?;
                    self.setitems(&d, items)?;
                    self.stack.push(d)
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return perr("stack underflow in TUPLEn");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_made(Value::Tuple(Rc::new(items)))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let t = self.top()?.clone();
                    self.appends(&t, vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.appends(&t, items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let t = self.top()?.clone();
                    self.setitems(&t, vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.setitems(&t, items)?
                }
                0x90 => {
                    // ADDITEMS (sets): keep as a list
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.appends(&t, items)?
                }
                0x8f => self.push_made(Value::List(Rc::new(RefCell::new(Vec::new()))))?, // EMPTY_SET
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_made(Value::List(Rc::new(RefCell::new(items))))?
                } // FROZENSET
                b'p' => {
                    let l = self.line()?;
                    let i = String::from_utf8_lossy(l)
                        .parse()
                        .map_err(|_| PickleError("bad PUT".into()))?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'r' => {
                    let i = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'g' | b'h' | b'j' => {
                    let i = match op {
                        b'g' => {
                            let l = self.line()?;
                            String::from_utf8_lossy(l)
                                .parse()
                                .map_err(|_| PickleError("bad GET".into()))?
                        }
                        b'h' => self.u8()? as u32,
                        _ => self.u32()?,
                    };
                    let v = self
                        .memo
                        .get(&i)
                        .cloned()
                        .ok_or_else(|| PickleError(format!("memo {i} missing")))?;
                    self.stack.push(v)
                }
                b'c' => {
                    let m = String::from_utf8_lossy(self.line()?).into_owned();
                    let n = String::from_utf8_lossy(self.line()?).into_owned();
                    self.stack
                        .push(Value::Global(Rc::from(m.as_str()), Rc::from(n.as_str())))
                }
                0x93 => {
                    let n = self.pop()?;
                    let m = self.pop()?;
                    let (Some(m), Some(n)) = (m.as_str_or_bytes(), n.as_str_or_bytes()) else {
                        return perr("STACK_GLOBAL needs two strings");
                    };
                    self.stack
                        .push(Value::Global(Rc::from(m.as_str()), Rc::from(n.as_str())))
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let Value::Global(module, name) = callable else {
                        return perr(format!("REDUCE on a {}", callable.type_name()));
                    };
                    let args = args.as_list().unwrap_or_default();
                    // Python 3 pickles bytes at protocol ≤ 2 as `_codecs.encode(str, 'latin1')`.
                    if (&*module, &*name) == ("_codecs", "encode") {
                        if let Some(Value::Str(s)) = args.first() {
                            let enc = args
                                .get(1)
                                .and_then(|e| e.as_str_or_bytes())
                                .unwrap_or_else(|| "utf-8".into());
                            let bytes = if enc == "latin1" || enc == "latin-1" {
                                s.chars()
                                    .map(|c| {
                                        if (c as u32) < 256 {
                                            Ok(c as u8)
                                        } else {
                                            Err(PickleError("non-latin1 char in bytes".into()))
                                        }
                                    })
                                    .collect::<Result<Vec<u8>, _>>()?
                            } else {
                                s.as_bytes().to_vec()
                            };
                            self.stack.push(Value::Bytes(Rc::new(bytes)));
                            return Ok(());
                        }
                    }
                    if matches!(
                        (&*module, &*name),
                        ("__builtin__", "bytes") | ("builtins", "bytes")
                    ) && args.is_empty()
                    {
                        self.stack.push(Value::Bytes(Rc::new(Vec::new())));
                        return Ok(());
                    }
                    self.push_made(Value::Object(Rc::new(RefCell::new(Object {
                        module,
                        name,
                        args,
                        state: None,
                        items: Vec::new(),
                    }))))?
                }
                0x92 => {
                    // NEWOBJ_EX: cls, args, kwargs
                    let _kw = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let Value::Global(module, name) = callable else {
                        return perr("NEWOBJ_EX on a non-class");
                    };
                    let args = args.as_list().unwrap_or_default();
                    self.push_made(Value::Object(Rc::new(RefCell::new(Object {
                        module,
                        name,
                        args,
                        state: None,
                        items: Vec::new(),
                    }))))?
                }
                b'b' => {
                    let state = self.pop()?;
                    let top = self.top()?.clone();
                    match &top {
                        Value::Object(o) => {
                            let (t, o) = (Value::Object(o.clone()), o.clone());
                            self.insert(&t, [&state])?;
                            o.borrow_mut().state = Some(state)
                        }
                        Value::Dict(d) => {
                            if let Some(items) = state.dict_items() {
                                let (t, d) = (Value::Dict(d.clone()), d.clone());
                                let flat: Vec<Value> = items
                                    .iter()
                                    .flat_map(|(k, v)| [k.clone(), v.clone()])
                                    .collect();
                                self.insert(&t, &flat)?;
                                d.borrow_mut().extend(items)
                            }
                        }
                        other => return perr(format!("BUILD on a {}", other.type_name())),
                    }
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v)
                }
                b'1' => {
                    self.pop_mark()?;
                }
                0x97 => {} // NEXT_BUFFER not supported, READONLY_BUFFER no-op
                op => {
                    return perr(format!(
                        "unsupported pickle opcode {op:#04x} at offset {}",
                        self.pos - 1
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Parses a whole pickle.
pub fn loads(data: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: Default::default(),
        pushed: 0,
        heights: Default::default(),
        contained: Default::default(),
        keep: Vec::new(),
    };
    m.run()
}

/// numpy dtypes we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    U8,
    I8,
    I32,
    I64,
    F32,
    F64,
    Bool,
}

impl DType {
    fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }
}

/// A numpy array recovered from `numpy.core.multiarray._reconstruct` (or `numpy._core`) +
/// `BUILD(version, shape, dtype, is_fortran, rawdata)`, or a numpy scalar.
#[derive(Debug, Clone)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Rc<Vec<u8>>,
}

fn parse_dtype(v: &Value) -> Result<DType, PickleError> {
    let Value::Object(o) = v else {
        return perr(format!("expected numpy.dtype, got {}", v.type_name()));
    };
    let o = o.borrow();
    if &*o.name != "dtype" {
        return perr(format!("expected numpy.dtype, got {}.{}", o.module, o.name));
    }
    let code = o
        .args
        .first()
        .and_then(|a| a.as_str_or_bytes())
        .unwrap_or_default();
    // state = (version, byteorder, ...); '>' would be big-endian.
    if let Some(Value::Tuple(t)) = &o.state {
        if let Some(bo) = t.get(1).and_then(|b| b.as_str_or_bytes()) {
            if bo == ">" {
                return perr("big-endian numpy arrays are not supported");
            }
        }
    }
    Ok(match code.as_str() {
        "u1" => DType::U8,
        "i1" => DType::I8,
        "b1" => DType::Bool,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        other => return perr(format!("unsupported numpy dtype '{other}'")),
    })
}

fn is_numpy_module(m: &str) -> bool {
    m == "numpy.core.multiarray" || m == "numpy._core.multiarray" || m == "numpy"
}

/// Interprets a value as a numpy array (or scalar, shape `[]`).
pub fn ndarray(v: &Value) -> Result<NdArray, PickleError> {
    let Value::Object(o) = v else {
        return perr(format!("expected a numpy array, got {}", v.type_name()));
    };
    let o = o.borrow();
    if !is_numpy_module(&o.module) {
        return perr(format!(
            "expected a numpy array, got {}.{}",
            o.module, o.name
        ));
    }
    match &*o.name {
        "_reconstruct" => {
            let Some(Value::Tuple(st)) = &o.state else {
                return perr("numpy array without state");
            };
            if st.len() < 5 {
                return perr("numpy array state too short");
            }
            let shape: Vec<usize> = st[1]
                .as_list()
                .ok_or_else(|| PickleError("array shape is not a tuple".into()))?
                .iter()
                .map(|d| match d {
                    Value::Int(x) if *x >= 0 => Ok(*x as usize),
                    other => perr(format!(
                        "array shape entry is {}, not a non-negative int",
                        other.type_name()
                    )),
                })
                .collect::<Result<_, _>>()?;
            let dtype = parse_dtype(&st[2])?;
            if matches!(st[3], Value::Bool(true)) {
                return perr("Fortran-ordered arrays are not supported");
            }
            let Value::Bytes(data) = &st[4] else {
                return perr(format!(
                    "array data is a {} (object arrays are not supported)",
                    st[4].type_name()
                ));
            };
            let need = shape
                .iter()
                .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
                .ok_or_else(|| PickleError(format!("array shape {shape:?} overflows")))?;
            if data.len() != need {
                return perr(format!(
                    "array data has {} bytes, shape {:?} needs {need}",
                    data.len(),
                    shape,
                ));
            }
            Ok(NdArray {
                shape,
                dtype,
                data: data.clone(),
            })
        }
        "scalar" => {
            let dtype = parse_dtype(
                o.args
                    .first()
                    .ok_or_else(|| PickleError("scalar without dtype".into()))?,
            )?;
            let Some(Value::Bytes(data)) = o.args.get(1) else {
                return perr("scalar without data");
            };
            if data.len() != dtype.size() {
                return perr(format!(
                    "numpy scalar has {} bytes, its dtype needs {}",
                    data.len(),
                    dtype.size()
                ));
            }
            Ok(NdArray {
                shape: vec![],
                dtype,
                data: data.clone(),
            })
        }
        other => perr(format!("expected a numpy array, got numpy {other}")),
    }
}

impl NdArray {
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }
    pub fn to_f64(&self) -> Result<Vec<f64>, PickleError> {
        let d = &self.data;
        Ok(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            DType::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            _ => self.to_i64()?.into_iter().map(|x| x as f64).collect(),
        })
    }
    pub fn to_i64(&self) -> Result<Vec<i64>, PickleError> {
        let d = &self.data;
        Ok(match self.dtype {
            DType::U8 | DType::Bool => d.iter().map(|&x| x as i64).collect(),
            DType::I8 => d.iter().map(|&x| x as i8 as i64).collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            other => return perr(format!("expected an integer array, got {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Hand-assembled programs with named opcodes (pickletools' names).
    use super::*;

    const PROTO: u8 = 0x80;
    const STOP: u8 = b'.';
    const MARK: u8 = b'(';
    const EMPTY_DICT: u8 = b'}';
    const EMPTY_LIST: u8 = b']';
    const EMPTY_TUPLE: u8 = b')';
    const TUPLE2: u8 = 0x86;
    const BININT1: u8 = b'K';
    const BININT: u8 = b'J';
    const LONG1: u8 = 0x8a;
    const BINFLOAT: u8 = b'G';
    const SHORT_BINUNICODE: u8 = 0x8c;
    const SHORT_BINBYTES: u8 = b'C';
    const SETITEM: u8 = b's';
    const SETITEMS: u8 = b'u';
    const APPEND: u8 = b'a';
    const APPENDS: u8 = b'e';
    const BINPUT: u8 = b'q';
    const BINGET: u8 = b'h';
    const MEMOIZE: u8 = 0x94;
    const DUP: u8 = b'2';
    const NEWTRUE: u8 = 0x88;
    const GLOBAL: u8 = b'c';
    const REDUCE: u8 = b'R';
    const BUILD: u8 = b'b';

    fn s(out: &mut Vec<u8>, text: &str) {
        out.push(SHORT_BINUNICODE);
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }

    #[test]
    fn scalars_strings_containers_and_the_memo() {
        let mut p = vec![PROTO, 4, EMPTY_DICT, MEMOIZE, MARK];
        s(&mut p, "video");
        p.extend([SHORT_BINBYTES, 3, b'a', b'b', b'c']);
        s(&mut p, "label");
        p.extend([EMPTY_LIST, BINPUT, 7, MARK, BININT1, 5, BININT]);
        p.extend((-3i32).to_le_bytes());
        p.extend([LONG1, 2, 0x00, 0x80]); // -32768
        p.extend([APPENDS]);
        s(&mut p, "again");
        p.extend([BINGET, 7]); // the same list again
        s(&mut p, "f");
        p.push(BINFLOAT);
        p.extend(1.5f64.to_be_bytes());
        s(&mut p, "t");
        p.extend([NEWTRUE, EMPTY_TUPLE, TUPLE2]);
        p.extend([SETITEMS, STOP]);
        let v = loads(&p).unwrap();
        assert_eq!(v.get("video").unwrap().as_str_or_bytes().unwrap(), "abc");
        let labels: Vec<i64> = v
            .get("label")
            .unwrap()
            .as_list()
            .unwrap()
            .iter()
            .map(|x| x.as_int().unwrap())
            .collect();
        assert_eq!(labels, [5, -3, -32768]);
        assert_eq!(v.get("again").unwrap().as_list().unwrap().len(), 3);
        assert!(matches!(v.get("f"), Some(Value::Float(x)) if x == 1.5));
        assert_eq!(v.get("t").unwrap().as_list().unwrap().len(), 2);
    }

    #[test]
    fn a_numpy_array_is_recovered_and_checked() {
        // _reconstruct(ndarray, (0,), b'b') then BUILD (1, (2, 3), dtype('u1'), False, data).
        let mut p = vec![PROTO, 2, GLOBAL];
        p.extend(b"numpy.core.multiarray\n_reconstruct\n");
        p.extend([GLOBAL]);
        p.extend(b"numpy\nndarray\n");
        p.extend([
            BININT1,
            0,
            b'\x85',
            SHORT_BINBYTES,
            1,
            b'b',
            b'\x87',
            REDUCE,
            MARK,
            BININT1,
            1,
            BININT1,
            2,
            BININT1,
            3,
            TUPLE2,
            GLOBAL,
        ]);
        p.extend(b"numpy\ndtype\n");
        s(&mut p, "u1");
        p.extend([
            0x89,
            NEWTRUE,
            b'\x87',
            REDUCE,
            0x89,
            SHORT_BINBYTES,
            6,
            1,
            2,
            3,
            4,
            5,
            6,
            b't',
            BUILD,
            STOP,
        ]);
        let a = ndarray(&loads(&p).unwrap()).unwrap();
        assert_eq!(
            (a.shape.clone(), a.dtype, a.to_i64().unwrap()),
            (vec![2, 3], DType::U8, vec![1, 2, 3, 4, 5, 6])
        );
        // The same header over 5 bytes of data: refused.
        let at = p.len() - 10;
        let mut short = p.clone();
        short[at] = 5;
        short.remove(at + 1);
        assert!(
            ndarray(&loads(&short).unwrap())
                .unwrap_err()
                .0
                .contains("needs 6")
        );
    }

    #[test]
    fn malformed_programs_are_errors_not_panics() {
        let cases: &[(&[u8], &str)] = &[
            (&[PROTO, 2, APPEND, STOP], "stack underflow"),
            (&[PROTO, 2, 0xfe], "unsupported pickle opcode 0xfe"),
            (&[PROTO, 2, BININT], "truncated pickle"),
            (&[PROTO, 2, BINGET, 9], "memo 9 missing"),
            (&[PROTO, 2, EMPTY_LIST, DUP, APPEND, STOP], "inside itself"),
            (
                &[PROTO, 2, BININT1, 0, BININT1, 1, BININT1, 2, SETITEM, STOP],
                "SETITEM on a int",
            ),
            (
                &[PROTO, 2, LONG1, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1],
                "wider than 64 bits",
            ),
            // A list placed in another, then changed: refused (heights stay exact).
            (
                &[
                    PROTO, 2, EMPTY_LIST, BINPUT, 0, EMPTY_LIST, BINGET, 0, APPEND, BINGET, 0,
                    EMPTY_LIST, APPEND, STOP,
                ],
                "changed after it was placed",
            ),
        ];
        for (prog, want) in cases {
            let e = loads(prog).unwrap_err().0;
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(loads(&[]).is_err());
    }
}
