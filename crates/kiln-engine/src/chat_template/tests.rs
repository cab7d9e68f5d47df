use super::*;
use std::path::{Path, PathBuf};

/// A fixture file written by `scripts/gen-template-fixtures.py`: conversations rendered by
/// Python's jinja2 the way transformers does it.
#[derive(serde::Deserialize)]
struct Fixture {
    template: String,
    bos_token: String,
    eos_token: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    /// Deserialized straight into a minijinja value to keep JSON key order.
    extra: Option<Value>,
    expected: Option<String>,
    raises: Option<String>,
    fails: Option<String>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn check_fixture(name: &str) {
    let dir = fixture_dir();
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let fixture: Fixture = serde_json::from_str(&read(&format!("{name}.json"))).unwrap();
    let template = ChatTemplate::new(&read(&fixture.template), &fixture.bos_token, &fixture.eos_token).unwrap();
    assert!(!fixture.cases.is_empty());
    for case in &fixture.cases {
        let rendered = match &case.extra {
            Some(extra) => template.render_with(&case.messages, case.add_generation_prompt, extra),
            None => template.render(&case.messages, case.add_generation_prompt),
        };
        let label = format!("{name}/{}", case.name);
        match (&case.expected, &case.raises, &case.fails, rendered) {
            (Some(expected), _, _, Ok(got)) => assert_eq!(&got, expected, "{label}"),
            (_, Some(expected), _, Err(TemplateError::Raised(got))) => {
                assert_eq!(&got, expected, "{label}")
            }
            (_, _, Some(_), Err(TemplateError::Render(_))) => {}
            (_, _, _, got) => panic!(
                "{label}: expected {:?} / raise {:?} / failure {:?}, got {got:?}",
                case.expected, case.raises, case.fails
            ),
        }
    }
}

#[test]
fn templates_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
}

#[test]
fn smollm2_matches_jinja2() {
    check_fixture("smollm2");
}

#[test]
fn gemma3_matches_jinja2() {
    check_fixture("gemma3");
}

#[test]
fn qwen25_chatml_matches_jinja2() {
    check_fixture("qwen2.5");
}

#[test]
fn hf_conventions_match_jinja2() {
    check_fixture("hf-conventions");
}

fn user(content: &str) -> ChatMessage {
    ChatMessage::new("user", content)
}

#[test]
fn smollm2_inserts_its_default_system_prompt() {
    let source = std::fs::read_to_string(fixture_dir().join("smollm2.jinja")).unwrap();
    let t = ChatTemplate::new(&source, "<|im_start|>", "<|im_end|>").unwrap();
    assert_eq!(
        t.render(&[user("Hi")], true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn syntax_errors_are_reported_at_construction() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}", "", "").unwrap_err();
    assert!(matches!(err, TemplateError::Syntax(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("invalid chat template: syntax error"), "{msg}");
    assert!(msg.contains("chat_template:1"), "{msg}");

    let err = ChatTemplate::new("line one\n{{ 1 + }}", "", "").unwrap_err();
    assert!(err.to_string().contains("chat_template:2"), "{err}");
}

#[test]
fn raise_exception_carries_the_message() {
    let t = ChatTemplate::new(
        "{% macro check(m) %}{% if m.role == 'system' %}{{ raise_exception('System role not \
         supported') }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let err = t.render(&[user("ok"), ChatMessage::new("system", "no")], false).unwrap_err();
    assert!(matches!(&err, TemplateError::Raised(m) if m == "System role not supported"), "{err:?}");
    assert_eq!(err.to_string(), "chat template rejected the conversation: System role not supported");
}

#[test]
fn other_render_failures_are_render_errors() {
    let t = ChatTemplate::new("{{ messages[0].content.nope() }}", "", "").unwrap();
    let err = t.render(&[user("x")], false).unwrap_err();
    assert!(matches!(err, TemplateError::Render(_)), "{err:?}");
    assert!(err.to_string().starts_with("chat template failed to render: "), "{err}");
}

#[test]
fn render_with_adds_variables_without_overriding_the_conversation() {
    #[derive(serde::Serialize)]
    struct Extra {
        enable_thinking: bool,
        add_generation_prompt: &'static str,
        bos_token: &'static str,
    }
    let t = ChatTemplate::new(
        "{% macro tokens() %}{{ bos_token }}{{ eos_token }}{% endmacro %}\
         {{ messages | length }} {{ add_generation_prompt }} {{ enable_thinking }} {{ tokens() }}",
        "<s>",
        "</s>",
    )
    .unwrap();
    let extra = Extra { enable_thinking: false, add_generation_prompt: "overridden?", bos_token: "<x>" };
    assert_eq!(t.render_with(&[user("a")], true, extra).unwrap(), "1 True False <s></s>");
}

#[test]
fn strftime_now_formats_the_current_date() {
    let t = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", "", "").unwrap();
    let date = t.render(&[], false).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Allow for the day rolling over between the two clock reads.
    let candidates = [strftime::strftime("%Y-%m-%d", now), strftime::strftime("%Y-%m-%d", now - 5)];
    assert!(candidates.contains(&date), "{date} vs {candidates:?}");
}

#[test]
fn tojson_rejects_bad_arguments() {
    let t = ChatTemplate::new("{{ messages | tojson(separators=[',']) }}", "", "").unwrap();
    assert!(t.render(&[], false).is_err());
    let t = ChatTemplate::new("{{ messages | tojson(colour='red') }}", "", "").unwrap();
    assert!(t.render(&[], false).is_err());
    let t = ChatTemplate::new("{{ messages | tojson(indent=0) }}", "", "").unwrap();
    assert_eq!(t.render(&[user("x")], false).unwrap(), "[\n{\n\"role\": \"user\",\n\"content\": \"x\"\n}\n]");
}
