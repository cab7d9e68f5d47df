//! `fmt.Sprintf` for the verbs templates use: %v %s %d %q %f %t %x %c %%,
//! with flags, width and precision; mismatches print Go's `%!v(type=value)`.

use crate::format::{format_float_g, go_quote, sprint_value};
use crate::value::Value;

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        spec.width = read_int(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(read_int(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        let body = match format_arg(verb, &spec, arg) {
            Some(s) => s,
            None => {
                out.push_str(&bad_verb(verb, arg));
                continue;
            }
        };
        out.push_str(&pad(body, &spec, matches!(arg, Value::Int(_) | Value::Float(_))));
    }
    if next_arg < args.len() {
        let extra: Vec<String> =
            args[next_arg..].iter().map(|a| format!("{}={}", a.type_name(), sprint_value(a))).collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn read_int(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    n
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Missing | Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", arg.type_name(), sprint_value(arg)),
    }
}

fn signed(s: String, spec: &Spec, negative: bool) -> String {
    if spec.plus && !negative {
        format!("+{s}")
    } else {
        s
    }
}

fn format_arg(verb: char, spec: &Spec, arg: &Value) -> Option<String> {
    Some(match (verb, arg) {
        ('v', Value::Float(f)) | ('g', Value::Float(f)) => signed(format_float_g(*f), spec, *f < 0.0),
        ('v', Value::Int(i)) | ('d', Value::Int(i)) => signed(i.to_string(), spec, *i < 0),
        ('v', _) => sprint_value(arg),
        ('s', Value::Str(s)) => match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        },
        ('s', Value::List(_) | Value::Map(_)) => sprint_value(arg),
        ('q', Value::Str(s)) => go_quote(s),
        ('q', Value::Int(i)) => format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{fffd}')),
        ('t', Value::Bool(b)) => b.to_string(),
        ('f' | 'F', Value::Float(f)) => signed(format!("{:.*}", spec.prec.unwrap_or(6), f), spec, *f < 0.0),
        ('e', Value::Float(f)) => signed(exp_format(*f, spec.prec.unwrap_or(6)), spec, *f < 0.0),
        ('x', Value::Int(i)) => format!("{i:x}"),
        ('X', Value::Int(i)) => format!("{i:X}"),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('c', Value::Int(i)) => char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
        _ => return None,
    })
}

/// Go's `%e`: at least two exponent digits.
fn exp_format(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn pad(body: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return body };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        body + &" ".repeat(fill)
    } else if spec.zero && numeric {
        let (sign, digits) = match body.strip_prefix(['-', '+']) {
            Some(rest) => (&body[..1], rest),
            None => ("", body.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        " ".repeat(fill) + &body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_verbs() {
        let args = [Value::Int(3), Value::str("s"), Value::Float(1.5), Value::Float(2.345), Value::str("ab")];
        assert_eq!(sprintf("%d %s %f %5.2f|%-4s|", &args), "3 s 1.500000  2.35|ab  |");
        assert_eq!(
            sprintf("%q %v %x %05d %%", &[Value::str("q\""), Value::Nil, Value::Int(255), Value::Int(-42)]),
            "\"q\\\"\" <nil> ff -0042 %"
        );
    }

    #[test]
    fn mismatches_like_go() {
        assert_eq!(sprintf("%d", &[Value::Float(2.0)]), "%!d(float64=2)");
        assert_eq!(sprintf("%d %s", &[Value::Int(1)]), "1 %!s(MISSING)");
        assert_eq!(sprintf("x", &[Value::str("y")]), "x%!(EXTRA string=y)");
        assert_eq!(sprintf("%s", &[Value::Nil]), "%!s(<nil>)");
    }
}
