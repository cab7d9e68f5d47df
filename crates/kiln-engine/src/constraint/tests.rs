use super::*;
use kiln_gguf::GgufFile;
use std::sync::OnceLock;

/// SmolLM2's tokenizer and a compiler over it, built once for all tests.
fn smollm2() -> Option<&'static (Arc<Tokenizer>, GrammarCompiler)> {
    static CELL: OnceLock<Option<(Arc<Tokenizer>, GrammarCompiler)>> = OnceLock::new();
    CELL.get_or_init(|| load(kiln_testdata::SMOLLM2)).as_ref()
}

fn load(file: &str) -> Option<(Arc<Tokenizer>, GrammarCompiler)> {
    let path = kiln_testdata::model_path(file)?;
    let tok = Arc::new(Tokenizer::from_gguf(&GgufFile::open(path).expect("model opens")).expect("tokenizer"));
    let compiler = GrammarCompiler::new(Arc::clone(&tok)).expect("compiler");
    Some((tok, compiler))
}

fn allows(mask: &[u32], id: u32) -> bool {
    mask.get(id as usize / 32).is_some_and(|w| w & (1 << (id % 32)) != 0)
}

fn allowed_ids(c: &mut Constraint) -> Vec<u32> {
    let mask = c.allowed().expect("mask");
    (0..mask.len() as u32 * 32).filter(|&id| allows(mask, id)).collect()
}

/// Feeds `text`'s tokens one by one; returns how many the grammar allowed before the first
/// it refused (all of them when it refused none).
fn feed(tok: &Tokenizer, c: &mut Constraint, text: &str) -> usize {
    let tokens = tok.encode(text, false, false);
    for (n, &t) in tokens.iter().enumerate() {
        if !allows(c.allowed().expect("mask"), t) {
            return n;
        }
        c.commit(t).expect("an allowed token commits");
    }
    tokens.len()
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "maxLength": 10 },
            "age": { "type": "integer", "minimum": 0, "maximum": 150 },
            "pet": { "$ref": "#/$defs/pet" }
        },
        "required": ["name", "age"],
        "additionalProperties": false,
        "$defs": { "pet": { "enum": ["cat", "dog"] } }
    })
}

#[test]
fn the_first_mask_allows_only_tokens_that_can_start_the_object() {
    let Some((tok, compiler)) = smollm2() else { return };
    let mut c = compiler.compile(&Grammar::JsonSchema { schema: person_schema(), strict: true }).unwrap();
    let ids = allowed_ids(&mut c);
    assert!(!ids.is_empty());
    for id in &ids {
        let piece = tok.token_to_piece(*id, false);
        // Compact JSON: the object's brace comes first, then only what may follow it.
        assert!(piece.starts_with(b"{"), "token {id} {:?} allowed first", String::from_utf8_lossy(&piece));
        assert!(!tok.is_eog(*id) && !tok.is_control(*id));
    }
    assert!(!ids.contains(&tok.encode("hello", false, false)[0]));
}

#[test]
fn a_valid_document_completes_the_schema_and_only_the_end_may_follow() {
    let Some((tok, compiler)) = smollm2() else { return };
    for doc in [r#"{"name":"Ann","age":30}"#, r#"{"name":"Bo","age":7,"pet":"dog"}"#] {
        let mut c = compiler.compile(&Grammar::JsonSchema { schema: person_schema(), strict: true }).unwrap();
        let n = tok.encode(doc, false, false).len();
        assert_eq!(feed(tok, &mut c, doc), n, "{doc}");
        assert!(c.is_finished(), "{doc} should complete the grammar");
        let end = allowed_ids(&mut c);
        assert!(!end.is_empty() && end.iter().all(|&id| tok.is_eog(id)), "{end:?}");
    }
}

#[test]
fn documents_outside_the_schema_are_refused_where_they_leave_it() {
    let Some((tok, compiler)) = smollm2() else { return };
    let schema = Grammar::JsonSchema { schema: person_schema(), strict: true };
    // An unknown property, a number over the maximum, a value outside the enum, each with
    // the longest prefix that can still become valid.
    for (doc, valid_prefix) in [
        (r#"{"nome":"Ann"}"#, r#"{"n"#),
        (r#"{"name":"Ann","age":151}"#, r#"{"name":"Ann","age":15"#),
        (r#"{"name":"A","age":1,"pet":"cow"}"#, r#"{"name":"A","age":1,"pet":"c"#),
    ] {
        let mut c = compiler.compile(&schema).unwrap();
        let taken = feed(tok, &mut c, doc);
        let tokens = tok.encode(doc, false, false);
        assert!(taken < tokens.len(), "{doc} was accepted whole");
        let accepted = tok.decode(&tokens[..taken], false);
        assert!(valid_prefix.starts_with(&accepted), "{doc}: refused only after {accepted:?}");
    }
}

#[test]
fn json_mode_accepts_any_object_and_nothing_else() {
    let Some((tok, compiler)) = smollm2() else { return };
    let mut c = compiler.compile(&Grammar::JsonObject).unwrap();
    let doc = r#"{"a":[1,2.5,{"b":null}],"c":"d"}"#;
    assert_eq!(feed(tok, &mut c, doc), tok.encode(doc, false, false).len());
    assert!(c.is_finished());
    let mut c = compiler.compile(&Grammar::JsonObject).unwrap();
    assert_eq!(feed(tok, &mut c, "[1]"), 0, "an array is not an object");
}

#[test]
fn regex_lark_and_choice_grammars_constrain_the_answer() {
    let Some((tok, compiler)) = smollm2() else { return };
    let cases = [
        (Grammar::Regex(r"[0-9]{3}-[a-z]+".into()), "123-abc", "12a"),
        (Grammar::Lark("start: \"yes\" | \"no\"".into()), "no", "maybe"),
        (Grammar::Lark("start: item (\",\" item)*\nitem: /[a-z]+/".into()), "ab,cd", "ab,,"),
        (Grammar::Choice(vec!["red".into(), "green \"light\"".into()]), "green \"light\"", "blue"),
    ];
    for (grammar, good, bad) in cases {
        let mut c = compiler.compile(&grammar).unwrap();
        assert_eq!(feed(tok, &mut c, good), tok.encode(good, false, false).len(), "{grammar:?} refused {good}");
        // A grammar that may go on (more letters, more items) allows the end once accepting.
        assert!(allowed_ids(&mut c).iter().any(|&id| tok.is_eog(id)), "{grammar:?} cannot end after {good}");
        let mut c = compiler.compile(&grammar).unwrap();
        assert!(feed(tok, &mut c, bad) < tok.encode(bad, false, false).len(), "{grammar:?} accepted {bad}");
    }
}

#[test]
fn invalid_grammars_are_errors_naming_the_problem() {
    let Some((_, compiler)) = smollm2() else { return };
    let bad = [
        Grammar::JsonSchema { schema: json!({ "type": "strng" }), strict: true },
        Grammar::JsonSchema { schema: json!({ "type": "strng" }), strict: false },
        Grammar::JsonSchema { schema: json!({ "$ref": "#/$defs/missing" }), strict: true },
        Grammar::JsonSchema { schema: json!({ "$ref": "#/$defs/missing" }), strict: false },
        Grammar::JsonSchema { schema: json!({ "type": "string", "format": "no-such-format" }), strict: true },
        Grammar::JsonSchema { schema: json!([1]), strict: true },
        Grammar::Regex("([a-z]".into()),
        Grammar::Lark("start: undefined_rule".into()),
        Grammar::Choice(vec![]),
    ];
    for g in bad {
        match compiler.compile(&g) {
            Err(ConstraintError::Invalid(msg)) => assert!(!msg.is_empty()),
            Err(other) => panic!("{g:?}: {other}"),
            Ok(_) => panic!("{g:?} compiled"),
        }
    }
}

#[test]
fn without_strict_keywords_that_cannot_be_enforced_are_ignored() {
    let Some((tok, compiler)) = smollm2() else { return };
    let schema = json!({ "type": "string", "format": "no-such-format", "maxLength": 3 });
    let mut c = compiler.compile(&Grammar::JsonSchema { schema, strict: false }).unwrap();
    assert_eq!(feed(tok, &mut c, r#""abc""#), tok.encode(r#""abc""#, false, false).len());
    assert!(c.is_finished(), "maxLength is still enforced");
}

#[test]
fn sentencepiece_vocabularies_carry_grammars_too() {
    let Some((tok, compiler)) = load(kiln_testdata::GEMMA3) else { return };
    let schema =
        json!({ "type": "object", "properties": { "city": { "enum": ["New York", "Paris"] } }, "required": ["city"] });
    let mut c = compiler.compile(&Grammar::JsonSchema { schema, strict: true }).unwrap();
    let doc = r#"{"city":"New York"}"#;
    assert_eq!(feed(&tok, &mut c, doc), tok.encode(doc, false, false).len());
    assert!(c.is_finished());
}

#[test]
fn a_lark_grammar_can_embed_a_schema_as_a_tool_call_would() {
    let Some((tok, compiler)) = smollm2() else { return };
    let args = json!({ "type": "object", "properties": { "city": { "type": "string", "maxLength": 20 } },
                       "required": ["city"], "additionalProperties": false });
    let lark = format!("start: \"<tool_call>\" call \"</tool_call>\"\ncall: %json {args}");
    let mut c = compiler.compile(&Grammar::Lark(lark.clone())).unwrap();
    let call = r#"<tool_call>{"city":"Oslo"}</tool_call>"#;
    assert_eq!(feed(tok, &mut c, call), tok.encode(call, false, false).len());
    assert!(c.is_finished());
    let mut c = compiler.compile(&Grammar::Lark(lark)).unwrap();
    let wrong = r#"<tool_call>{"town":"Oslo"}</tool_call>"#;
    assert!(feed(tok, &mut c, wrong) < tok.encode(wrong, false, false).len());
}

#[test]
fn forced_tool_calls_accept_a_call_of_a_given_tool_only() {
    let Some((tok, compiler)) = smollm2() else { return };
    let weather = json!({ "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] });
    let tools = [json!({ "type": "function", "function": { "name": "get_weather", "parameters": weather } })];
    let grammar = crate::tools::ToolFormat::Hermes.forced_grammar(&tools, None).unwrap();
    let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
    let mut c = compiler.compile(&grammar).unwrap();
    assert_eq!(feed(tok, &mut c, call), tok.encode(call, false, false).len());
    assert!(c.is_finished());
    let other = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    let mut c = compiler.compile(&grammar).unwrap();
    assert!(feed(tok, &mut c, other) < tok.encode(other, false, false).len());
}
