//! Timestamps in the forms the APIs use: RFC 3339 (Ollama) and Unix seconds (OpenAI).
use kiln_engine::chat_template::strftime;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` in UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}Z", strftime("%Y-%m-%dT%H:%M:%S", d.as_secs() as i64), d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3661, 5); // 2000-02-29 01:01:01
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01.000000005Z");
        assert_eq!(unix_seconds(t), 951_786_061);
    }
}
