//! `strftime_now(format)`: templates such as Llama 3.x put today's date in the system
//! prompt. Only the C/POSIX conversions templates use are supported, in UTC, which avoids a
//! timezone database for what is a "knowledge cutoff / today" hint.

use kiln_gotemplate::calendar::civil_from_days;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub(super) fn strftime_now(format: &str) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    strftime(format, secs)
}

/// Formats a Unix timestamp (UTC) with C `strftime` conversions, including glibc's `%-d`
/// style "no padding" flag. Unknown conversions are copied through, as glibc does.
pub fn strftime(format: &str, unix_secs: i64) -> String {
    let t = DateTime::from_unix(unix_secs);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = chars.next();
        let pad = spec != Some('-');
        if !pad {
            spec = chars.next();
        }
        let number = |out: &mut String, value: i64, width: usize| {
            let _ = if pad { write!(out, "{value:0width$}") } else { write!(out, "{value}") };
        };
        match spec {
            Some('Y') => number(&mut out, t.year, 4),
            Some('y') => number(&mut out, t.year.rem_euclid(100), 2),
            Some('m') => number(&mut out, t.month, 2),
            Some('d') => number(&mut out, t.day, 2),
            Some('e') => {
                let _ = if pad { write!(out, "{:2}", t.day) } else { write!(out, "{}", t.day) };
            }
            Some('j') => number(&mut out, t.day_of_year, 3),
            Some('H') => number(&mut out, t.hour, 2),
            Some('I') => number(&mut out, (t.hour + 11) % 12 + 1, 2),
            Some('M') => number(&mut out, t.minute, 2),
            Some('S') => number(&mut out, t.second, 2),
            Some('p') => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            Some('A') => out.push_str(DAYS[t.weekday]),
            Some('a') => out.push_str(&DAYS[t.weekday][..3]),
            Some('B') => out.push_str(MONTHS[t.month as usize - 1]),
            Some('b') | Some('h') => out.push_str(&MONTHS[t.month as usize - 1][..3]),
            Some('F') => {
                let _ = write!(out, "{:04}-{:02}-{:02}", t.year, t.month, t.day);
            }
            Some('T') => {
                let _ = write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second);
            }
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if !pad {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

struct DateTime {
    year: i64,
    month: i64,
    day: i64,
    day_of_year: i64,
    /// 0 = Monday.
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
}

impl DateTime {
    fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let day_of_year = days - days_from_civil(year, 1, 1) + 1;
        DateTime {
            year,
            month,
            day,
            day_of_year,
            // 1970-01-01 was a Thursday.
            weekday: (days + 3).rem_euclid(7) as usize,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }
}

/// Inverse of `civil_from_days`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::strftime;

    #[test]
    fn formats_known_instants() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2024-02-29 13:05:09");
        assert_eq!(strftime("%d %b %Y", t), "29 Feb 2024");
        assert_eq!(strftime("%A, %B %-d, %y %I%p %j %%", t), "Thursday, February 29, 24 01PM 060 %");
        assert_eq!(strftime("%F %T %Z %z %a", t), "2024-02-29 13:05:09 UTC +0000 Thu");
        // 1970-01-01 00:00:00, and a date before the epoch.
        assert_eq!(strftime("%Y-%m-%d %e %j %a %I %p", 0), "1970-01-01  1 001 Thu 12 AM");
        assert_eq!(strftime("%Y-%m-%d %H:%M", -1), "1969-12-31 23:59");
        // 2000-12-31: leap year, day 366.
        assert_eq!(strftime("%j %-m/%-d", 978_220_800), "366 12/31");
        // Unknown conversions and a trailing '%' are kept.
        assert_eq!(strftime("%Q %-Q 100%", 0), "%Q %-Q 100%");
    }
}
