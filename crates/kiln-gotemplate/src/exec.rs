//! Walks the parse tree over a value, with Go's evaluation rules for fields,
//! variables, pipelines, control structures and function calls.

use crate::ast::{Arg, Branch, Command, Literal, Node, Pipeline};
use crate::error::{Position, TemplateError};
use crate::format::sprint_value;
use crate::funcs::{arity, call, FuncSet};
use crate::parser::Tree;
use crate::value::Value;

/// Go's `missingkey` option and function map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// `missingkey=zero`: a missing map key yields a nil interface instead of an invalid value.
    pub missing_zero: bool,
    pub funcs: FuncSet,
    /// Whether `{{template}}` can see the templates the source defines.
    pub with_defines: bool,
}

/// Limits `{{template}}` recursion, which Go bounds as well.
const MAX_DEPTH: usize = 200;

enum Flow {
    Normal,
    Break,
    Continue,
}

type Res<T> = Result<T, TemplateError>;

pub(crate) fn execute(src: &str, tree: &Tree, root: &[Node], data: &Value, opts: Options) -> Res<String> {
    let mut ex = Exec { src, tree, opts, vars: vec![("$".into(), data.clone())], out: String::new(), depth: 0 };
    ex.walk(data, root)?;
    Ok(ex.out)
}

struct Exec<'a> {
    src: &'a str,
    tree: &'a Tree,
    opts: Options,
    vars: Vec<(String, Value)>,
    out: String,
    depth: usize,
}

impl Exec<'_> {
    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Res<T> {
        let rest = self.src.get(pos..).unwrap_or("");
        let context = rest[..rest.find("}}").unwrap_or(rest.len()).min(40)].trim().to_string();
        Err(TemplateError::Exec { pos: Position::locate(self.src, pos), context, message: message.into() })
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Res<Flow> {
        for node in nodes {
            match self.node(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, dot: &Value, node: &Node) -> Res<Flow> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    match v {
                        Value::Missing => self.out.push_str("<no value>"),
                        v => self.out.push_str(&sprint_value(&v)),
                    }
                }
            }
            Node::If(b) | Node::With(b) => return self.if_or_with(dot, b, matches!(node, Node::With(_))),
            Node::Range(b) => return self.range(dot, b),
            Node::Template { pos, name, pipe } => self.template(dot, *pos, name, pipe.as_ref())?,
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn scoped<T>(&mut self, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        let mark = self.vars.len();
        let r = f(self);
        self.vars.truncate(mark);
        r
    }

    fn if_or_with(&mut self, dot: &Value, b: &Branch, is_with: bool) -> Res<Flow> {
        self.scoped(|ex| {
            let v = ex.pipeline(dot, &b.pipe)?;
            if v.is_true() {
                let inner = if is_with { &v } else { dot };
                ex.walk(inner, &b.list)
            } else if let Some(else_list) = &b.else_list {
                ex.walk(dot, else_list)
            } else {
                Ok(Flow::Normal)
            }
        })
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> Res<Flow> {
        self.scoped(|ex| {
            let v = ex.pipeline(dot, &b.pipe)?;
            let items: Vec<(Value, Value)> = match &v {
                Value::List(l) => l.items.iter().enumerate().map(|(i, e)| (Value::Int(i as i64), e.clone())).collect(),
                Value::Map(m) if m.meta.struct_name.is_none() => {
                    m.entries.iter().map(|(k, e)| (Value::str(k.as_str()), e.clone())).collect()
                }
                // Go 1.22+ ranges over integers.
                Value::Int(n) => {
                    if b.pipe.decl.len() > 1 {
                        return ex.err(b.pipe.pos, format!("can't use {n} to iterate over more than one variable"));
                    }
                    (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
                }
                Value::Missing | Value::Nil => Vec::new(),
                other => return ex.err(b.pipe.pos, format!("range can't iterate over {}", sprint_value(other))),
            };
            if items.is_empty() {
                return match &b.else_list {
                    Some(list) => ex.walk(dot, list),
                    None => Ok(Flow::Normal),
                };
            }
            let top = ex.vars.len();
            for (index, elem) in items {
                match b.pipe.decl.len() {
                    1 => ex.vars[top - 1].1 = elem.clone(),
                    2 => {
                        ex.vars[top - 1].1 = elem.clone();
                        ex.vars[top - 2].1 = index;
                    }
                    _ => {}
                }
                if let Flow::Break = ex.scoped(|ex| ex.walk(&elem, &b.list))? {
                    break;
                }
            }
            Ok(Flow::Normal)
        })
    }

    fn template(&mut self, dot: &Value, pos: usize, name: &str, pipe: Option<&Pipeline>) -> Res<()> {
        let body = if self.opts.with_defines { self.tree.defines.get(name) } else { None };
        let Some(body) = body else {
            return self.err(pos, format!("no such template {name:?}"));
        };
        if self.depth >= MAX_DEPTH {
            return self.err(pos, format!("exceeded maximum template depth ({MAX_DEPTH})"));
        }
        let new_dot = match pipe {
            Some(p) => self.pipeline(dot, p)?,
            None => Value::Missing,
        };
        let saved = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
        self.depth += 1;
        let r = self.walk(&new_dot, body);
        self.depth -= 1;
        self.vars = saved;
        r.map(|_| ())
    }

    fn pipeline(&mut self, dot: &Value, pipe: &Pipeline) -> Res<Value> {
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(dot, cmd, value)?.unwrap_interface());
        }
        let value = value.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => return self.err(pipe.pos, format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn command(&mut self, dot: &Value, cmd: &Command, fin: Option<Value>) -> Res<Value> {
        let has_args = cmd.args.len() > 1 || fin.is_some();
        let not_a_function = |ex: &Self, what: &str| -> Res<()> {
            if has_args {
                return ex.err(cmd.pos, format!("can't give argument to non-function {what}"));
            }
            Ok(())
        };
        match &cmd.args[0] {
            Arg::Field(idents) => self.field_chain(cmd.pos, dot.clone(), idents, has_args),
            Arg::Variable(name, idents) => {
                let v = self.variable(cmd.pos, name)?;
                if idents.is_empty() {
                    not_a_function(self, name)?;
                    return Ok(v);
                }
                self.field_chain(cmd.pos, v, idents, has_args)
            }
            Arg::Chain(base, idents) => {
                let v = self.arg(dot, cmd.pos, base)?;
                self.field_chain(cmd.pos, v, idents, has_args)
            }
            Arg::Function(name) => self.function(dot, cmd.pos, name, &cmd.args[1..], fin),
            Arg::Pipe(p) => {
                not_a_function(self, "(pipeline)")?;
                self.pipeline(dot, p)
            }
            Arg::Dot => {
                not_a_function(self, ".")?;
                Ok(dot.clone())
            }
            Arg::Nil => self.err(cmd.pos, "nil is not a command"),
            Arg::Literal(l) => {
                not_a_function(self, "literal")?;
                Ok(literal(l))
            }
        }
    }

    fn variable(&self, pos: usize, name: &str) -> Res<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.err(pos, format!("undefined variable: {name}")),
        }
    }

    fn field_chain(&self, pos: usize, mut receiver: Value, idents: &[String], has_args: bool) -> Res<Value> {
        for (i, name) in idents.iter().enumerate() {
            let last = i + 1 == idents.len();
            receiver = self.field(pos, &receiver, name, last && has_args)?;
        }
        Ok(receiver)
    }

    fn field(&self, pos: usize, receiver: &Value, name: &str, has_args: bool) -> Res<Value> {
        match receiver {
            Value::Missing => Ok(Value::Missing),
            Value::Nil => self.err(pos, format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Map(m) => {
                if let Some(type_name) = m.meta.struct_name {
                    return match m.entries.get(name) {
                        Some(_) if has_args => {
                            self.err(pos, format!("{name} has arguments but cannot be invoked as function"))
                        }
                        Some(v) => Ok(v.clone()),
                        None => self.err(pos, format!("can't evaluate field {name} in type {type_name}")),
                    };
                }
                if has_args {
                    return self.err(pos, format!("{name} is not a method but has arguments"));
                }
                Ok(match m.entries.get(name) {
                    Some(v) => v.clone(),
                    None if self.opts.missing_zero => Value::Nil,
                    None => Value::Missing,
                })
            }
            other => self.err(pos, format!("can't evaluate field {name} in type {}", other.type_name())),
        }
    }

    fn arg(&mut self, dot: &Value, pos: usize, arg: &Arg) -> Res<Value> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Literal(l) => Ok(literal(l)),
            Arg::Field(idents) => self.field_chain(pos, dot.clone(), idents, false),
            Arg::Variable(name, idents) => {
                let v = self.variable(pos, name)?;
                self.field_chain(pos, v, idents, false)
            }
            Arg::Pipe(p) => self.pipeline(dot, p),
            Arg::Chain(base, idents) => {
                let v = self.arg(dot, pos, base)?;
                self.field_chain(pos, v, idents, false)
            }
            Arg::Function(name) => self.function(dot, pos, name, &[], None),
        }
    }

    fn function(&mut self, dot: &Value, pos: usize, name: &str, args: &[Arg], fin: Option<Value>) -> Res<Value> {
        if !self.opts.funcs.contains(name) {
            return self.err(pos, format!("{name:?} is not a defined function"));
        }
        let count = args.len() + usize::from(fin.is_some());
        let (fixed, variadic) = arity(name);
        if count < fixed || (!variadic && count != fixed) {
            let at_least = if variadic { "at least " } else { "" };
            return self.err(pos, format!("wrong number of args for {name}: want {at_least}{fixed} got {count}"));
        }
        if name == "and" || name == "or" {
            return self.and_or(dot, pos, name == "or", args, fin);
        }
        let mut values = Vec::with_capacity(count);
        for a in args {
            values.push(self.arg(dot, pos, a)?);
        }
        values.extend(fin);
        call(name, &values).or_else(|e| self.err(pos, format!("error calling {name}: {e}")))
    }

    /// `and`/`or` evaluate arguments lazily and return the deciding operand.
    fn and_or(&mut self, dot: &Value, pos: usize, is_or: bool, args: &[Arg], fin: Option<Value>) -> Res<Value> {
        let mut v = Value::Missing;
        for a in args {
            v = self.arg(dot, pos, a)?;
            if v.is_true() == is_or {
                return Ok(v);
            }
        }
        Ok(fin.unwrap_or(v))
    }
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Str(s) => Value::str(s.as_str()),
    }
}
