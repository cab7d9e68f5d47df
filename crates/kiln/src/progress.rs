//! Progress of pulls and uploads on stderr: a bar redrawn in place on a terminal; in a log,
//! a plain line at each quarter, so a long download still shows it is moving.

use crate::format::human_bytes;
use std::io::Write;

const BAR_WIDTH: usize = 25;

/// `pulling 1a2b3c4d5e6f: 45% ▕███      ▏ 45 MB/101 MB`
pub fn progress_line(label: &str, completed: u64, total: u64) -> String {
    let completed = completed.min(total);
    let pct = (completed * 100).checked_div(total).unwrap_or(100);
    let filled = (pct as usize * BAR_WIDTH) / 100;
    let bar = format!("{}{}", "█".repeat(filled), " ".repeat(BAR_WIDTH - filled));
    format!("{label}: {pct}% ▕{bar}▏ {}/{}", human_bytes(completed), human_bytes(total))
}

pub struct Progress {
    tty: bool,
    /// The label of the bar being drawn, and the last quarter printed for it.
    current: Option<(String, u64)>,
}

impl Progress {
    pub fn stderr() -> Progress {
        Progress { tty: std::io::IsTerminal::is_terminal(&std::io::stderr()), current: None }
    }

    /// Shows how far `label` (a layer, a file) has got.
    pub fn update(&mut self, label: &str, completed: u64, total: u64) {
        let quarter = (completed.min(total) * 4).checked_div(total).unwrap_or(4);
        match &mut self.current {
            Some((shown, last)) if shown == label => {
                if !self.tty && quarter <= *last {
                    return;
                }
                *last = quarter;
            }
            _ => {
                self.finish();
                self.current = Some((label.to_string(), quarter));
            }
        }
        let line = progress_line(label, completed, total);
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }

    /// Prints a status line ("writing manifest"), below any bar.
    pub fn status(&mut self, line: &str) {
        self.finish();
        eprintln!("{line}");
    }

    /// Ends the bar being drawn, leaving it on screen.
    pub fn finish(&mut self) {
        if self.current.take().is_some() && self.tty {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn lines_show_percent_bar_and_sizes() {
        let line = progress_line("pulling 1a2b3c4d5e6f", 45_000_000, 100_000_000);
        assert_eq!(line, format!("pulling 1a2b3c4d5e6f: 45% ▕{}{}▏ 45 MB/100 MB", "█".repeat(11), " ".repeat(14)));
        assert!(progress_line("x", 0, 0).starts_with("x: 100% ▕█████████████████████████▏"));
        assert!(progress_line("x", 7, 5).contains("100%"), "completed past the total is capped");
    }
}
