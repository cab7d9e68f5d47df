//! The `tojson` filter as Hugging Face defines it for chat templates: Python's `json.dumps`
//! (not Jinja's HTML-escaping `tojson`).
//!
//! Byte-exact output matters because templates embed tool schemas and tool-call arguments in
//! the prompt, and models were trained on `json.dumps` formatting: `", "` and `": "`
//! separators, non-ASCII kept as is, Python's float repr (`1e+16`, `1.0`).

use minijinja::value::{from_args, Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};
use std::fmt::Write;

/// `value | tojson(ensure_ascii=False, indent=None, separators=None, sort_keys=False)`, with
/// the same parameter order as Hugging Face's filter.
pub(super) fn tojson(value: &Value, args: &[Value]) -> Result<String, Error> {
    type Args = (Option<bool>, Option<Value>, Option<Value>, Option<bool>, Kwargs);
    let (ensure_ascii, indent, separators, sort_keys, kwargs): Args = from_args(args)?;
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.or(ensure_ascii);
    let indent = kwargs.get::<Option<Value>>("indent")?.or(indent);
    let separators = kwargs.get::<Option<Value>>("separators")?.or(separators);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.or(sort_keys);
    kwargs.assert_all_used()?;

    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        // Python repeats a string indent as is and turns an int into that many spaces
        // (none for zero or less, but still one item per line).
        Some(v) => Some(match v.as_str() {
            Some(s) => s.to_owned(),
            None => " ".repeat(usize::try_from(i64::try_from(v)?).unwrap_or(0)),
        }),
    };
    let (item_sep, key_sep) = match separators.filter(|v| !v.is_none() && !v.is_undefined()) {
        Some(v) => {
            let pair: Vec<Option<String>> = v.try_iter()?.map(|s| s.as_str().map(str::to_owned)).collect();
            match <[Option<String>; 2]>::try_from(pair) {
                Ok([Some(item), Some(key)]) => (item, key),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson separators must be an (item_separator, key_separator) pair",
                    ))
                }
            }
        }
        // json.dumps drops the space after ',' when indenting: the newline separates.
        None if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
    };
    let style = Style {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(&mut out, value, 0)?;
    Ok(out)
}

struct Style {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

impl Style {
    fn write(&self, out: &mut String, value: &Value, depth: usize) -> Result<(), Error> {
        match value.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => write_number(out, value)?,
            ValueKind::String => self.write_str(out, value.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.write_container(out, ('[', ']'), &items, depth, |out, item| self.write(out, item, depth + 1))?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    entries.push((self.key_string(&key)?, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.write_container(out, ('{', '}'), &entries, depth, |out, (key, item)| {
                    self.write_str(out, key);
                    out.push_str(&self.key_sep);
                    self.write(out, item, depth + 1)
                })?;
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: object of type {kind} is not JSON serializable"),
                ))
            }
        }
        Ok(())
    }

    /// Brackets, separators and (when indenting) newlines around `items`; empty containers
    /// stay `[]`/`{}` as in Python.
    fn write_container<T>(
        &self,
        out: &mut String,
        (open, close): (char, char),
        items: &[T],
        depth: usize,
        mut write_item: impl FnMut(&mut String, &T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return Ok(());
        }
        let newline = |out: &mut String, depth: usize| {
            if let Some(indent) = &self.indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(indent);
                }
            }
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            newline(out, depth + 1);
            write_item(out, item)?;
        }
        newline(out, depth);
        out.push(close);
        Ok(())
    }

    /// Python coerces scalar keys to strings (`{1: x}` → `{"1": x}`) and rejects the rest.
    fn key_string(&self, key: &Value) -> Result<String, Error> {
        Ok(match key.kind() {
            ValueKind::String => key.as_str().unwrap_or_default().to_owned(),
            ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).to_owned(),
            ValueKind::None => "null".to_owned(),
            ValueKind::Number => {
                let mut s = String::new();
                write_number(&mut s, key)?;
                s
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
                ))
            }
        })
    }

    /// JSON string literal with `json.dumps`'s escapes: only `"`, `\` and control characters,
    /// plus, when `ensure_ascii`, everything outside printable ASCII (DEL included) as UTF-16
    /// escapes.
    fn write_str(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if c < ' ' || (self.ensure_ascii && c > '~') => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

fn write_number(out: &mut String, value: &Value) -> Result<(), Error> {
    if value.is_integer() {
        // Integers print the same in Rust and Python; go through i128 to cover u64 too.
        let _ = write!(out, "{}", i128::try_from(value.clone())?);
    } else {
        out.push_str(&python_float_repr(f64::try_from(value.clone())?));
    }
    Ok(())
}

/// Python's `repr(float)` (what `json.dumps` uses), including `NaN`/`Infinity`, which
/// `json.dumps` emits by default: shortest round-tripping digits, positional notation for
/// decimal exponents in [-4, 16), otherwise `d.ddde±XX`.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest digits, as `-d.ddde<exp>`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            let zeros = "0".repeat(point.unsigned_abs() as usize);
            format!("{sign}0.{zeros}{digits}")
        } else {
            let point = point as usize;
            if digits.len() > point {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            } else {
                format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
            }
        }
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::python_float_repr;

    #[test]
    fn floats_print_like_python_repr() {
        for (f, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (1e16, "1e+16"),
            (1.25e16, "1.25e+16"),
            (1e100, "1e+100"),
            (-1e-300, "-1e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(python_float_repr(f), python, "{f:e}");
        }
    }
}
