//! How the commands write sizes, times and tables, the way Ollama's CLI writes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// "101 MB", "4.7 GB", "512 B": decimal units, one decimal below ten.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] =
        [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "KB")];
    let Some(&(scale, unit)) = UNITS.iter().find(|(scale, _)| n >= *scale) else {
        return format!("{n} B");
    };
    let value = n as f64 / scale as f64;
    if value < 10.0 && value.fract() != 0.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{} {unit}", value as u64)
    }
}

/// "Less than a second", "2 minutes", "About an hour", "3 days": a span in words.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    match seconds {
        0 => return "Less than a second".into(),
        1 => return "1 second".into(),
        2..=59 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    match hours {
        1 => "About an hour".into(),
        2..48 => format!("{hours} hours"),
        48..336 => format!("{} days", hours / 24),
        336..1440 => format!("{} weeks", hours / 24 / 7),
        1440..17520 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// "2 minutes ago", "4 minutes from now", or "Forever" for more than twenty years ahead
/// (how servers report a model kept loaded for good).
pub fn relative_time(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead > Duration::from_secs(20 * 365 * 86_400) => "Forever".into(),
        Ok(ahead) => format!("{} from now", human_duration(ahead)),
        Err(behind) => format!("{} ago", human_duration(behind.duration())),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads an RFC 3339 timestamp (`2024-05-01T12:00:00.5Z`, `...+02:00`), as the APIs send them.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| s.as_bytes()[i] != c) || !matches!(s.as_bytes()[10], b'T' | b't' | b' ') {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let since_epoch = Duration::new(secs.unsigned_abs(), nanos);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(since_epoch)
    } else {
        UNIX_EPOCH.checked_sub(since_epoch)
    }
}

/// Rows as columns padded to the widest cell, three spaces apart, as `ollama list` prints.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ollama() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_000), "1 KB");
        assert_eq!(human_bytes(100_600_000), "100 MB");
        assert_eq!(human_bytes(4_700_000_000), "4.7 GB");
        assert_eq!(human_bytes(2_000_000_000), "2 GB");
        assert_eq!(human_bytes(1_500_000_000_000), "1.5 TB");
    }

    #[test]
    fn spans_read_in_words() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(42)), "42 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(4 * 60 + 59)), "4 minutes");
        assert_eq!(human_duration(s(3600 + 600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(21 * 86_400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86_400)), "3 months");
        assert_eq!(human_duration(s(3 * 365 * 86_400)), "3 years");
    }

    #[test]
    fn times_relative_to_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(relative_time(now - Duration::from_secs(125), now), "2 minutes ago");
        assert_eq!(relative_time(now + Duration::from_secs(4 * 60 + 30), now), "4 minutes from now");
        assert_eq!(relative_time(now + Duration::from_secs(100 * 365 * 86_400), now), "Forever");
    }

    #[test]
    fn rfc3339_timestamps_parse() {
        let at = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(at("2000-02-29T01:01:01.000000005Z"), Some(Duration::new(951_786_061, 5)));
        assert_eq!(at("2000-02-29T03:01:01.5+02:00"), Some(Duration::new(951_786_061, 500_000_000)));
        assert_eq!(at("2000-02-28T20:01:01-05:00"), Some(Duration::new(951_786_061, 0)));
        assert_eq!(at("yesterday"), None);
        assert_eq!(at("2000-02-29 01:01:01"), None);
    }

    #[test]
    fn tables_pad_columns() {
        let rows = vec![
            vec!["NAME".to_string(), "ID".to_string(), "SIZE".to_string()],
            vec!["smollm2:latest".to_string(), "abc".to_string(), "101 MB".to_string()],
        ];
        assert_eq!(table(&rows), "NAME             ID    SIZE\nsmollm2:latest   abc   101 MB\n");
    }
}
