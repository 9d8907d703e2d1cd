//! Reading YAML as curtin does (PyYAML's `safe_load`, YAML 1.1): plain scalars resolved by
//! PyYAML's rules ([`super::resolve`]), merge keys (`<<`) applied as PyYAML applies them, and
//! a key given twice in a mapping taken from its last occurrence (PyYAML keeps the last
//! silently; here each one is also reported, with both lines).
//!
//! saphyr-parser turns the text into events with their positions and scalar styles; this
//! module builds the value from them, one event at a time (no recursion), and keeps the
//! position of every node for messages.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::collections::HashMap;
use yaml_serde::{Mapping, Value};

use super::resolve::{self, Implicit};
use crate::path::{scalar_string, Seg};

/// Deeper than this is refused (PyYAML stops near 300 levels, on Python's recursion limit).
pub const MAX_NESTING: usize = 128;
/// Aliases may repeat what an anchor holds, but the whole value stays below this many nodes:
/// a "billion laughs" document is refused instead of filling the memory of a RAM-only system.
pub const MAX_NODES: usize = 1_000_000;

/// A document read: its value, where each node is, and the keys given twice.
#[derive(Debug, Clone)]
pub struct Read {
    pub value: Value,
    pub marks: Marks,
    pub duplicates: Vec<Duplicate>,
}

/// A key given more than once in one mapping; the last one is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The path of the key (its mapping's path, then the key).
    pub path: Vec<Seg>,
    /// 1-based line of the occurrence that was replaced.
    pub first_line: usize,
    /// 1-based line and column of the occurrence kept.
    pub line: usize,
    pub column: usize,
}

/// Where a node starts (1-based line and column), and where its children do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    pub line: usize,
    pub column: usize,
    kids: Kids,
}

#[derive(Debug, Clone, Default, PartialEq)]
enum Kids {
    #[default]
    None,
    Seq(Vec<Marks>),
    /// The key and its value's marks, in the mapping's order.
    Map(Vec<(Value, Marks)>),
}

impl Marks {
    /// The marks of the value under `key`, for a mapping.
    pub fn key(&self, key: &str) -> Option<&Marks> {
        match &self.kids {
            Kids::Map(m) => m
                .iter()
                .rev()
                .find(|(k, _)| scalar_string(k).as_deref() == Some(key))
                .map(|(_, m)| m),
            _ => None,
        }
    }

    /// The marks of item `i`, for a sequence.
    pub fn index(&self, i: usize) -> Option<&Marks> {
        match &self.kids {
            Kids::Seq(s) => s.get(i),
            _ => None,
        }
    }

    /// The marks at `path`, as deep as the path goes.
    pub fn at(&self, path: &[Seg]) -> Option<&Marks> {
        path.iter().try_fold(self, |m, seg| match seg {
            Seg::Key(k) => m.key(k),
            Seg::Index(i) => m.index(*i),
        })
    }
}

/// A document that cannot be read: what and where (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// The value of a single-document YAML text, as PyYAML's `safe_load` builds it (`Null` for an
/// empty text). For readers of config that need no positions (`state/config`, fetched parts).
pub fn from_str(text: &str) -> Result<Value, ReadError> {
    read(text).map(|r| r.value)
}

/// Read one YAML document; more than one (`---`) is an error, as in `safe_load`.
pub fn read(text: &str) -> Result<Read, ReadError> {
    let mut b = Builder::default();
    let mut docs = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| ReadError {
            message: e.info().to_string(),
            line: e.marker().line(),
            column: e.marker().col() + 1,
        })?;
        if let Event::DocumentStart(_) = ev {
            docs += 1;
            if docs > 1 {
                return Err(at(
                    span,
                    "holds several YAML documents (`---`); pass each as its own -c file",
                ));
            }
        }
        b.event(ev, span)?;
    }
    let (value, marks) = b.root.unwrap_or_default();
    Ok(Read {
        value,
        marks,
        duplicates: b.duplicates,
    })
}

fn at(span: Span, message: impl Into<String>) -> ReadError {
    ReadError {
        message: message.into(),
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// A collection being built.
enum Open {
    Seq {
        items: Vec<Value>,
        marks: Vec<Marks>,
    },
    Map {
        /// Explicit keys, in order, with where each was first given.
        explicit: Mapping,
        marks: Vec<(Value, Marks)>,
        /// `<<` values, in order.
        merges: Vec<(Value, Marks)>,
        /// A key read, waiting for its value (`true` for `<<`).
        key: Option<(Value, Marks, bool)>,
    },
}

struct Frame {
    open: Open,
    anchor: usize,
    here: Marks,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<(Value, Marks)>,
    anchors: HashMap<usize, (Value, Marks, usize)>,
    duplicates: Vec<Duplicate>,
    nodes: usize,
}

impl Builder {
    fn event(&mut self, ev: Event, span: Span) -> Result<(), ReadError> {
        let here = Marks {
            line: span.start.line(),
            column: span.start.col() + 1,
            kids: Kids::None,
        };
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain;
                let merge = plain && tag.is_none() && resolve::implicit(&text) == Implicit::Merge;
                let v = scalar(&text, plain, tag.as_deref()).map_err(|m| at(span, m))?;
                self.done(v, here, anchor, 1, merge, span)
            }
            Event::SequenceStart(anchor, tag) => {
                collection_tag(tag.as_deref(), "seq").map_err(|m| at(span, m))?;
                self.open(
                    Open::Seq {
                        items: vec![],
                        marks: vec![],
                    },
                    anchor,
                    here,
                    span,
                )
            }
            Event::MappingStart(anchor, tag) => {
                collection_tag(tag.as_deref(), "map").map_err(|m| at(span, m))?;
                self.open(
                    Open::Map {
                        explicit: Mapping::new(),
                        marks: vec![],
                        merges: vec![],
                        key: None,
                    },
                    anchor,
                    here,
                    span,
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let f = self
                    .stack
                    .pop()
                    .expect("an end event closes an open collection");
                let (v, kids) = match f.open {
                    Open::Seq { items, marks } => (Value::Sequence(items), Kids::Seq(marks)),
                    Open::Map {
                        explicit,
                        marks,
                        merges,
                        ..
                    } => {
                        let (m, marks) =
                            flatten(explicit, marks, merges).map_err(|m| at(span, m))?;
                        (Value::Mapping(m), Kids::Map(marks))
                    }
                };
                let here = Marks { kids, ..f.here };
                self.done(v, here, f.anchor, 0, false, span)
            }
            Event::Alias(id) => {
                let Some((v, m, n)) = self.anchors.get(&id).cloned() else {
                    return Err(at(span, "an alias to an anchor not defined before it"));
                };
                self.done(
                    v,
                    Marks {
                        kids: m.kids,
                        ..here
                    },
                    0,
                    n,
                    false,
                    span,
                )
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => Ok(()),
        }
    }

    fn open(
        &mut self,
        open: Open,
        anchor: usize,
        here: Marks,
        span: Span,
    ) -> Result<(), ReadError> {
        if self.stack.len() >= MAX_NESTING {
            return Err(at(
                span,
                format!("nested more than {MAX_NESTING} levels deep"),
            ));
        }
        self.stack.push(Frame { open, anchor, here });
        Ok(())
    }

    /// A node is complete: count it, remember its anchor, and put it in its parent.
    /// `nodes` is how many nodes it adds (collections were counted as their items came).
    fn done(
        &mut self,
        v: Value,
        marks: Marks,
        anchor: usize,
        nodes: usize,
        merge_key: bool,
        span: Span,
    ) -> Result<(), ReadError> {
        self.nodes += nodes.max(1);
        if self.nodes > MAX_NODES {
            return Err(at(
                span,
                format!(
                    "aliases repeat more than {MAX_NODES} values: refused (no config is this big)"
                ),
            ));
        }
        if anchor != 0 {
            let size = count(&v);
            self.anchors
                .insert(anchor, (v.clone(), marks.clone(), size));
        }
        let Some(mut parent) = self.stack.pop() else {
            self.root = Some((v, marks));
            return Ok(());
        };
        match &mut parent.open {
            Open::Seq { items, marks: ms } => {
                items.push(v);
                ms.push(marks);
            }
            Open::Map {
                explicit,
                marks: ms,
                merges,
                key,
            } => match key.take() {
                None => *key = Some((v, marks, merge_key)),
                Some((_, _, true)) => merges.push((v, marks)),
                Some((k, km, false)) => match ms.iter().position(|(mk, _)| *mk == k) {
                    Some(first) => {
                        let mut path = self.path();
                        path.push(seg_of(&k));
                        self.duplicates.push(Duplicate {
                            path,
                            first_line: ms[first].1.line,
                            line: km.line,
                            column: km.column,
                        });
                        // The last value wins; the key keeps its first place, as in a dict.
                        ms[first].1 = marks;
                        explicit.insert(k, v);
                    }
                    None => {
                        explicit.insert(k.clone(), v);
                        ms.push((k, marks));
                    }
                },
            },
        }
        self.stack.push(parent);
        Ok(())
    }

    /// The key path of the node being built in the innermost open collection.
    fn path(&self) -> Vec<Seg> {
        let mut p = Vec::new();
        for f in &self.stack {
            match &f.open {
                Open::Seq { items, .. } => p.push(Seg::Index(items.len())),
                Open::Map {
                    key: Some((k, ..)), ..
                } => p.push(seg_of(k)),
                Open::Map { .. } => {}
            }
        }
        p
    }
}

fn seg_of(k: &Value) -> Seg {
    Seg::Key(scalar_string(k).unwrap_or_else(|| "?".into()))
}

/// How many nodes a value holds (for the alias budget).
fn count(v: &Value) -> usize {
    let mut n = 0;
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        n += 1;
        match v {
            Value::Sequence(s) => todo.extend(s),
            Value::Mapping(m) => m.iter().for_each(|(k, v)| todo.extend([k, v])),
            Value::Tagged(t) => todo.push(&t.value),
            _ => {}
        }
    }
    n
}

/// PyYAML's `flatten_mapping`: the merged mappings first (of a list of them, the earlier one
/// wins), then the mapping's own keys over them.
fn flatten(
    explicit: Mapping,
    marks: Vec<(Value, Marks)>,
    merges: Vec<(Value, Marks)>,
) -> Result<(Mapping, Vec<(Value, Marks)>), String> {
    if merges.is_empty() {
        return Ok((explicit, marks));
    }
    let mut out = Mapping::new();
    let mut out_marks: Vec<(Value, Marks)> = Vec::new();
    let mut put = |k: Value, v: Value, m: Marks, out: &mut Mapping| {
        match out_marks.iter().position(|(mk, _)| *mk == k) {
            Some(i) => out_marks[i].1 = m,
            None => out_marks.push((k.clone(), m)),
        }
        out.insert(k, v);
    };
    let bad = "a merge key (`<<`) takes a mapping or a list of mappings";
    for (v, m) in merges {
        let parts: Vec<(Mapping, Marks)> = match v {
            Value::Mapping(map) => vec![(map, m)],
            Value::Sequence(items) => {
                let mut parts = Vec::new();
                for (i, item) in items.into_iter().enumerate().rev() {
                    let Value::Mapping(map) = item else {
                        return Err(bad.into());
                    };
                    parts.push((map, m.index(i).cloned().unwrap_or_default()));
                }
                parts
            }
            _ => return Err(bad.into()),
        };
        for (map, pm) in parts {
            for (k, v) in map {
                let km = scalar_string(&k)
                    .and_then(|s| pm.key(&s).cloned())
                    .unwrap_or_else(|| pm.clone());
                put(k, v, km, &mut out);
            }
        }
    }
    let mut by_key: HashMap<Value, Marks> = marks.into_iter().collect();
    for (k, v) in explicit {
        let m = by_key.remove(&k).unwrap_or_default();
        put(k, v, m, &mut out);
    }
    Ok((out, out_marks))
}

/// The YAML core tags' shorthand (`!!int` and the like).
const CORE: &str = "tag:yaml.org,2002:";

/// A scalar with its tag, as PyYAML's safe constructors make it.
fn scalar(text: &str, plain: bool, tag: Option<&Tag>) -> Result<Value, String> {
    let Some(tag) = tag else {
        return Ok(if plain {
            resolve::plain(text)
        } else {
            Value::String(text.into())
        });
    };
    // `! text`: the non-specific tag, a string.
    if non_specific(tag) {
        return Ok(Value::String(text.into()));
    }
    let bad = |what: &str| format!("{text:?} is not {what} (tagged !!{})", tag.suffix);
    if tag.handle != CORE {
        return Err(format!(
            "unknown tag {tag}: curtin reads configs with PyYAML's safe loader, which refuses it"
        ));
    }
    Ok(match tag.suffix.as_str() {
        "str" => Value::String(text.into()),
        "int" => resolve::int(text.trim()).ok_or_else(|| bad("an integer"))?,
        "float" => resolve::float(text.trim())
            .or_else(|| resolve::int(text.trim()).and_then(|v| v.as_f64().map(Value::from)))
            .ok_or_else(|| bad("a number"))?,
        "bool" => Value::Bool(resolve::bool_of(text.trim()).ok_or_else(|| bad("a boolean"))?),
        "null" => Value::Null,
        "timestamp" => Value::String(text.into()),
        // Bytes in PyYAML; kept tagged, with the base64 text, for `write_files` to decode.
        "binary" => Value::Tagged(Box::new(yaml_serde::value::TaggedValue {
            tag: yaml_serde::value::Tag::new(format!("{CORE}binary")),
            value: Value::String(text.into()),
        })),
        other => {
            return Err(format!(
                "tag !!{other} on a scalar: curtin's YAML reader (PyYAML safe_load) cannot build it"
            ))
        }
    })
}

fn collection_tag(tag: Option<&Tag>, kind: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if non_specific(t) => Ok(()),
        Some(t) if t.handle == CORE && t.suffix == kind => Ok(()),
        Some(t) => Err(format!(
            "tag {t} on a collection: curtin's YAML reader (PyYAML safe_load) cannot build it"
        )),
    }
}

/// `!` alone (saphyr-parser gives it as an empty handle and the suffix `!`).
fn non_specific(t: &Tag) -> bool {
    (t.handle.is_empty() && t.suffix == "!") || (t.handle == "!" && t.suffix.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Value {
        from_str(text).unwrap()
    }

    fn err(text: &str) -> ReadError {
        read(text).unwrap_err()
    }

    #[test]
    fn merge_keys_as_pyyaml_applies_them() {
        let doc = "a: &a {x: 1, y: 2}\nb: &b {y: 20, w: 4}\n\
                   one: {<<: *a, x: 10}\nlist: {<<: [*b, *a], q: 1}\n";
        let r = read(doc).unwrap();
        assert_eq!(r.value["one"], v("{x: 10, y: 2}"));
        // Of a list, the earlier mapping wins; the merged keys come first.
        assert_eq!(
            yaml_serde::to_string(&r.value["list"]).unwrap(),
            "x: 1\ny: 20\nw: 4\nq: 1\n"
        );
        assert!(
            r.duplicates.is_empty(),
            "overriding a merged key is no duplicate"
        );
        // The own key's position, not the anchor's.
        let m = r.marks.key("one").unwrap().key("x").unwrap();
        assert_eq!((m.line, m.column), (3, 18));
        assert!(err("a: {<<: 3}").message.contains("merge key"));
    }

    #[test]
    fn duplicates_keep_the_last_value_in_the_first_place() {
        let r = read("k:\n  a: 1\n  b: 2\n  a: 3\n").unwrap();
        assert_eq!(
            yaml_serde::to_string(&r.value).unwrap(),
            "k:\n  a: 3\n  b: 2\n"
        );
        assert_eq!(
            r.duplicates,
            [Duplicate {
                path: vec![Seg::Key("k".into()), Seg::Key("a".into())],
                first_line: 2,
                line: 4,
                column: 3
            }]
        );
        let m = r
            .marks
            .at(&[Seg::Key("k".into()), Seg::Key("a".into())])
            .unwrap();
        assert_eq!((m.line, m.column), (4, 6));
        // In a list item, the path has the index.
        let r = read("- {x: 1}\n- {x: 1, x: 2}\n").unwrap();
        assert_eq!(r.duplicates[0].path, [Seg::Index(1), Seg::Key("x".into())]);
    }

    #[test]
    fn tags_as_the_safe_loader_builds_them() {
        assert_eq!(
            v("[!!str 12, !!int '7', !!float '2', !!bool 'on', !!null '', ! yes]"),
            v("['12', 7, 2.0, true, null, 'yes']")
        );
        let b = v("c: !!binary aGk=");
        let Value::Tagged(t) = &b["c"] else {
            panic!("{b:?}")
        };
        assert_eq!(t.tag, "tag:yaml.org,2002:binary");
        assert_eq!(t.value, "aGk=");
        for bad in [
            "a: !local x",
            "a: !!python/name:os.system x",
            "a: !!set {x}",
        ] {
            assert!(err(bad).message.contains("tag"), "{bad}");
        }
        assert!(err("a: !!int twelve").message.contains("not an integer"));
    }

    #[test]
    fn anchors_aliases_and_their_limit() {
        assert_eq!(v("a: &x [1, 2]\nb: *x\n")["b"], v("[1, 2]"));
        assert!(err("a: *nowhere").line == 1);
        // Nine levels of ten aliases: 10^9 values, refused before they are built.
        let mut doc = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            doc.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        let e = err(&doc);
        assert!(e.message.contains("aliases repeat more than"), "{e:?}");
    }

    #[test]
    fn documents_nesting_and_syntax() {
        assert_eq!(v(""), Value::Null);
        assert_eq!(v("# only a comment\n"), Value::Null);
        assert_eq!(v("%YAML 1.1\n---\na: 1\n...\n"), v("a: 1"));
        let e = err("a: 1\n---\nb: 2\n");
        assert_eq!(
            (e.line, e.message.contains("several YAML documents")),
            (2, true)
        );
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let e = err(&deep);
        assert_eq!(e.message, "nested more than 128 levels deep");
        assert_eq!((e.line, e.column), (1, 129));
        let e = err("a: b: c\n");
        assert_eq!((e.line, e.column), (1, 5));
    }
}
