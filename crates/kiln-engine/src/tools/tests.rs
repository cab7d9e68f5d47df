use super::*;

/// Splits `answer` fed in pieces of `n` characters.
fn split_in_pieces(format: ToolFormat, answer: &str, n: usize) -> Vec<Part> {
    let mut s = ToolCallSplitter::new(format);
    let mut all = Vec::new();
    let chars: Vec<char> = answer.chars().collect();
    for piece in chars.chunks(n).map(|c| c.iter().collect::<String>()) {
        for part in s.push(&piece) {
            merge(&mut all, part);
        }
    }
    for part in s.finish() {
        merge(&mut all, part);
    }
    all
}

fn merge(all: &mut Vec<Part>, part: Part) {
    match part {
        Part::Content(t) => content(all, &t),
        call => all.push(call),
    }
}

fn call(name: &str, arguments: Value) -> Part {
    let Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
    Part::Call(ToolCall { name: name.into(), arguments })
}

fn text(t: &str) -> Part {
    Part::Content(t.into())
}

/// The answer gives `want` however it is cut into pieces.
fn check(format: ToolFormat, answer: &str, want: &[Part]) {
    for n in 1..=answer.chars().count().max(1) {
        assert_eq!(split_in_pieces(format, answer, n), want, "{answer:?} in pieces of {n}");
    }
}

#[test]
fn hermes_calls_are_lifted_out_of_the_text() {
    let answer = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>";
    check(
        ToolFormat::Hermes,
        answer,
        &[text("Let me look."), call("get_weather", json!({"city": "Paris"})), call("now", json!({}))],
    );
    check(ToolFormat::Hermes, "No call <tool here>.", &[text("No call <tool here>.")]);
    check(ToolFormat::Hermes, "", &[]);
}

#[test]
fn malformed_calls_stay_content() {
    let broken = "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call> after";
    check(ToolFormat::Hermes, broken, &[text(broken)]);
    check(ToolFormat::Hermes, "<tool_call>{\"name\": \"f\"", &[text("<tool_call>{\"name\": \"f\"")]);
    check(ToolFormat::Llama3, "{\"answer\": 42}", &[text("{\"answer\": 42}")]);
}

#[test]
fn llama3_calls_are_bare_json_or_after_the_python_tag() {
    check(
        ToolFormat::Llama3,
        " {\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}",
        &[call("add", json!({"a": 1, "b": 2}))],
    );
    check(
        ToolFormat::Llama3,
        "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": \"y\"}}",
        &[call("a", json!({})), call("b", json!({"x": "y"}))],
    );
    check(ToolFormat::Llama3, "It is {not} JSON", &[text("It is {not} JSON")]);
}

#[test]
fn mistral_calls_come_as_a_list_or_name_and_args() {
    check(
        ToolFormat::Mistral,
        "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"q\": \"é\"}}, {\"name\": \"g\", \"arguments\": \"{}\"}]",
        &[call("f", json!({"q": "é"})), call("g", json!({}))],
    );
    check(
        ToolFormat::Mistral,
        "[TOOL_CALLS]f[ARGS]{\"q\": 1}[TOOL_CALLS]g[ARGS]{}",
        &[call("f", json!({"q": 1})), call("g", json!({}))],
    );
}

#[test]
fn deepseek_calls_use_its_tool_tokens() {
    let v3 = "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Oslo\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
    check(ToolFormat::DeepSeek, v3, &[text("Sure."), call("get_weather", json!({"city": "Oslo"}))]);
    let v31 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>a<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁call▁begin｜>b<｜tool▁sep｜>{\"n\": 2}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
    check(ToolFormat::DeepSeek, v31, &[call("a", json!({})), call("b", json!({"n": 2}))]);
}

#[test]
fn formats_are_found_in_templates() {
    let qwen = "{%- if tools %}<tools>{% endif %}<tool_call>\\n{\"name\": <function-name>}";
    assert_eq!(ToolFormat::of_template(qwen), Some(ToolFormat::Hermes));
    let llama = "<|start_header_id|>ipython<|end_header_id|>{\"name\": function name, \"parameters\": ...}";
    assert_eq!(ToolFormat::of_template(llama), Some(ToolFormat::Llama3));
    assert_eq!(ToolFormat::of_template("{{ '[TOOL_CALLS]' }}"), Some(ToolFormat::Mistral));
    assert_eq!(ToolFormat::of_template("{{'<｜tool▁calls▁begin｜>'}}"), Some(ToolFormat::DeepSeek));
    assert_eq!(ToolFormat::of_template("{% for m in messages %}{{ m.content }}{% endfor %}"), None);
}

fn tools() -> Vec<Value> {
    let weather = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    vec![
        json!({"type": "function", "function": {"name": "get_weather", "parameters": weather}}),
        json!({"type": "function", "function": {"name": "now"}}),
    ]
}

#[test]
fn forced_grammars_offer_each_tool_or_the_named_one() {
    let Ok(Grammar::Lark(all)) = ToolFormat::Hermes.forced_grammar(&tools(), None) else { panic!("not Lark") };
    assert!(all.starts_with("start: \"<tool_call>\\n\" (call0 | call1) \"\\n</tool_call>\""), "{all}");
    assert!(all.contains("\"const\":\"get_weather\"") && all.contains("\"const\":\"now\""), "{all}");
    let Ok(Grammar::Lark(one)) = ToolFormat::Llama3.forced_grammar(&tools(), Some("now")) else { panic!("not Lark") };
    assert!(one.starts_with("start: (call0)\n") && one.contains("\"parameters\"") && !one.contains("get_weather"));
    assert_eq!(
        ToolFormat::Hermes.forced_grammar(&tools(), Some("missing")),
        Err(ToolError::NoSuchTool("missing".into()))
    );
}
