//! Limits from the environment: KILN_MAX_LOADED_MODELS (default 3, as Ollama on a CPU),
//! KILN_MAX_MEMORY (bytes of weights plus KV caches; default 90 % of the machine's memory,
//! so loading one more model unloads idle ones rather than swapping), KILN_NUM_PARALLEL and
//! KILN_MAX_QUEUE (batch size and queue bound of each model).

use crate::registry::LoadLimits;

/// Reads a size: plain bytes, or a number with K/M/G/T (powers of 1024; `GiB`, `GB` and `G`
/// all mean the same, since nobody sizes memory in powers of ten).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// MemTotal from /proc/meminfo, in bytes.
pub(crate) fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The limits the environment asks for; an unreadable value is an error, not a default.
pub fn from_env() -> Result<LoadLimits, String> {
    let mut limits = LoadLimits::default();
    if let Some(n) = count_var("KILN_MAX_LOADED_MODELS", 1)? {
        limits.max_models = n;
    }
    limits.max_bytes = match std::env::var("KILN_MAX_MEMORY") {
        Ok(v) => parse_bytes(&v).ok_or_else(|| format!("KILN_MAX_MEMORY: expected a size such as 8GiB, got {v:?}"))?,
        Err(_) => total_memory().map(|m| m / 10 * 9).unwrap_or(u64::MAX),
    };
    Ok(limits)
}

/// A count from the environment: `None` when unset, an error when not a count >= `min`.
fn count_var(name: &str, min: usize) -> Result<Option<usize>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= min)
            .map(Some)
            .ok_or_else(|| format!("{name}: expected a count >= {min}, got {v:?}")),
    }
}

/// KILN_NUM_PARALLEL (sequences per batch; `None`: chosen from memory per model) and
/// KILN_MAX_QUEUE (requests waiting beyond those; default 512, as Ollama).
pub fn parallel_from_env() -> Result<(Option<usize>, usize), String> {
    let num_parallel = count_var("KILN_NUM_PARALLEL", 1)?;
    let max_queue = count_var("KILN_MAX_QUEUE", 0)?.unwrap_or(crate::worker::DEFAULT_MAX_QUEUE);
    Ok((num_parallel, max_queue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("8GiB"), Some(8 << 30));
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes("1.5 gb"), Some(3 << 29));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        for bad in ["", "G", "-1G", "0", "8 apples", "1e400"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn this_machine_reports_its_memory() {
        assert!(total_memory().is_some_and(|m| m > 1 << 20));
    }
}
