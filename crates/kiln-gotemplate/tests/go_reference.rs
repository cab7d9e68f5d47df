//! Every corpus case must render byte-for-byte as Go's text/template rendered
//! it (tests/fixtures/go_outputs.json, produced by scripts/gen-gotemplate-fixtures.sh),
//! or fail where Go failed.

use std::path::Path;

use kiln_gotemplate::{GoTemplate, MissingKey};
use serde_json::Value;

fn render(case: &Value) -> Result<String, String> {
    let src = case["template"].as_str().expect("template source");
    let t = GoTemplate::parse(src).map_err(|e| e.to_string())?;
    let t = match case.get("missingkey").and_then(Value::as_str) {
        Some("zero") => t.with_missing_key(MissingKey::Zero),
        Some(other) => panic!("unsupported missingkey option {other}"),
        None => t,
    };
    t.execute(&case["data"]).map_err(|e| e.to_string())
}

#[test]
fn corpus_matches_go() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fixtures/go_outputs.json")).unwrap()).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("corpus")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in files {
        let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let expected = &fixture[name];
            let got = render(&case);
            match (expected.get("output").and_then(Value::as_str), got) {
                (Some(want), Ok(got)) if want == got => {}
                (None, Err(_)) if expected.get("error").is_some() => {}
                (want, got) => {
                    failures.push(format!("{name}:\n  go:   {want:?} {}\n  rust: {got:?}", expected["error"]))
                }
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases differ:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 60, "corpus too small: {checked}");
    assert_eq!(checked, fixture.as_object().unwrap().len(), "fixture is stale; regenerate it");
}
