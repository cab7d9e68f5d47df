//! Go's text output of values: `fmt`'s `%v`/`Sprint`/`Sprintln`, the float
//! formats of `fmt` and `encoding/json`, JSON marshalling and Go quoting.

use crate::value::Value;

/// `fmt.Sprint(v)` for one operand: `%v` formatting.
pub(crate) fn sprint_value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Missing | Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_g(*f)),
        Value::Str(s) => out.push_str(s),
        Value::List(l) => {
            if let Some(d) = &l.meta.display {
                out.push_str(d);
                return;
            }
            out.push('[');
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            if let Some(d) = &m.meta.display {
                out.push_str(d);
                return;
            }
            let is_struct = m.meta.struct_name.is_some();
            out.push_str(if is_struct { "{" } else { "map[" });
            for (i, (k, item)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if !is_struct {
                    out.push_str(k);
                    out.push(':');
                }
                write_value(out, item);
            }
            out.push_str(if is_struct { "}" } else { "]" });
        }
    }
}

/// `fmt.Sprint(args...)`: a space goes between operands when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        write_value(&mut out, a);
    }
    out
}

/// `fmt.Sprintln(args...)`: always spaces between operands, newline at the end.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(sprint_value).collect();
    parts.join(" ") + "\n"
}

/// Shortest decimal digits and decimal exponent of `f` (f finite, non-zero):
/// `f = 0.d1d2d3... * 10^exp`, i.e. the exponent of the first digit plus one.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse::<i32>().unwrap_or(0) + 1)
}

fn exponent_form(neg: bool, digits: &str, dp: i32, min_exp_digits: usize) -> String {
    let mut out = String::from(if neg { "-" } else { "" });
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let e = dp - 1;
    out.push_str(&format!("e{}{:0width$}", if e < 0 { '-' } else { '+' }, e.abs(), width = min_exp_digits));
    out
}

/// `strconv.FormatFloat(f, 'g', -1, 64)` as used by `%v`: exponent form when
/// the decimal exponent is < -4 or >= 6 (Go's limit for shortest precision).
pub(crate) fn format_float_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let (digits, dp) = shortest_digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        return exponent_form(f < 0.0, &digits, dp, 2);
    }
    format!("{f}")
}

/// `encoding/json`'s float64 encoding: plain decimals in [1e-6, 1e21), else
/// exponent form with a minimal exponent.
pub(crate) fn format_float_json(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (digits, dp) = shortest_digits(f);
        return exponent_form(f < 0.0, &digits, dp, 1);
    }
    format!("{f}")
}

/// `json.Marshal` of a value, with Go's HTML-safe string escaping.
pub(crate) fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v);
    out
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Missing | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_json(*f)),
        Value::Str(s) => json_string(out, s),
        Value::List(l) => match &l.meta.json {
            Some(j) => out.push_str(j),
            None => {
                out.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json(out, item);
                }
                out.push(']');
            }
        },
        Value::Map(m) => match &m.meta.json {
            Some(j) => out.push_str(j),
            None => {
                out.push('{');
                for (i, (k, item)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(out, k);
                    out.push(':');
                    write_json(out, item);
                }
                out.push('}');
            }
        },
    }
}

/// Go's JSON string escaping: HTML-sensitive characters and U+2028/2029 are
/// escaped too, and control characters other than \n \r \t \b \f use \u00XX.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strconv.Quote`: Go-syntax double-quoted string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_go() {
        let cases = [
            (3.0, "3"),
            (1.5, "1.5"),
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_g(f), want, "{f}");
        }
    }

    #[test]
    fn json_floats_and_strings_like_go() {
        assert_eq!(format_float_json(1e21), "1e+21");
        assert_eq!(format_float_json(1e-7), "1e-7");
        assert_eq!(format_float_json(1e6), "1000000");
        let v = Value::from_json(&json!({"b": "<&>\u{2028}", "a": [1, null, true]}));
        assert_eq!(to_json(&v), r#"{"a":[1,null,true],"b":"\u003c\u0026\u003e\u2028"}"#);
    }

    #[test]
    fn sprint_spacing_and_composites() {
        let v = Value::from_json(&json!({"b": 1, "a": [1, "x", null]}));
        assert_eq!(sprint_value(&v), "map[a:[1 x <nil>] b:1]");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2), Value::str("a"), Value::Int(3)]), "1 2a3");
        assert_eq!(sprintln(&[Value::str("a"), Value::str("b")]), "a b\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"\n\x01é"), "\"a\\\"\\n\\x01é\"");
    }
}
