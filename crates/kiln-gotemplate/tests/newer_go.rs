//! Features newer than the Go release the fixtures were generated with
//! (range over integers: Go 1.22; `else with`: Go 1.23). Expectations are
//! written by hand from the Go documentation.

use kiln_gotemplate::GoTemplate;
use serde_json::json;

fn render(src: &str, data: serde_json::Value) -> String {
    GoTemplate::parse(src).unwrap().execute(&data).unwrap()
}

#[test]
fn range_over_int() {
    assert_eq!(render("{{ range 3 }}{{ . }}{{ end }}", json!({})), "012");
    assert_eq!(render("{{ range $i := len .xs }}{{ $i }},{{ end }}", json!({"xs": [0, 0]})), "0,1,");
    assert_eq!(render("{{ range 0 }}x{{ else }}none{{ end }}", json!({})), "none");
    assert!(GoTemplate::parse("{{ range $i, $j := 3 }}{{ end }}").unwrap().execute(&json!({})).is_err());
}

#[test]
fn else_with() {
    let src = "{{ with .a }}a={{ . }}{{ else with .b }}b={{ . }}{{ else }}none{{ end }}";
    assert_eq!(render(src, json!({"a": "", "b": "B"})), "b=B");
    assert_eq!(render(src, json!({})), "none");
}

#[test]
fn parser_never_panics_on_random_input() {
    // A small xorshift generator keeps this deterministic without dependencies.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "{{}}-/* .$:=|()\"'`\\abcifrangeendelsewith0123456789,\n\tné".chars().collect();
    for _ in 0..20_000 {
        let len = (next() % 40) as usize;
        let src: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        if let Ok(t) = GoTemplate::parse(&src) {
            let _ = t.execute(&json!({"a": [1, {"b": null}], "s": "x"}));
        }
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = GoTemplate::parse(&String::from_utf8_lossy(&bytes));
    }
}
