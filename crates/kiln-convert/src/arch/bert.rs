//! `bert`: BERT encoders as sentence-transformers ships them (all-MiniLM-L6-v2 and kin), for
//! embeddings: no pooler or masked-LM head, attention not causal, the pooling type from
//! `1_Pooling/config.json`.

use std::path::Path;

use kiln_gguf::Value;

use crate::arch::{base_metadata, Mapper};
use crate::config::{read_json_object, HfConfig};
use crate::error::ConvertError;
use crate::plan::ModelPlan;

/// llama.cpp's pooling type ids.
const POOLING_MEAN: u32 = 1;
const POOLING_CLS: u32 = 2;
const POOLING_LAST: u32 = 3;

pub(crate) fn plan(dir: &Path, config: &HfConfig, m: &mut Mapper) -> Result<ModelPlan, ConvertError> {
    let mut plan = ModelPlan::default();
    base_metadata(&mut plan, "bert", config)?;
    plan.set("bert.attention.causal", Value::Bool(false));
    if let Some(pooling) = pooling_type(dir)? {
        plan.set("bert.pooling_type", Value::U32(pooling));
    }
    // Heads for pre-training and classification are not part of an embedding model.
    m.ignore(|n| {
        let n = n.strip_prefix("bert.").unwrap_or(n);
        n == "embeddings.position_ids" || n.starts_with("pooler.") || n.starts_with("cls.")
    });
    let prefix = if m.has("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
    let hf = |s: &str| format!("{prefix}{s}");
    for (from, to) in [
        ("embeddings.word_embeddings.weight", "token_embd.weight"),
        ("embeddings.position_embeddings.weight", "position_embd.weight"),
        ("embeddings.token_type_embeddings.weight", "token_types.weight"),
    ] {
        m.copy(&mut plan, &hf(from), to)?;
    }
    layer_norm(&mut plan, m, &hf("embeddings.LayerNorm"), "token_embd_norm")?;
    for b in 0..config.u32("num_hidden_layers")? {
        let layer = |s: &str| hf(&format!("encoder.layer.{b}.{s}"));
        for (from, to) in [
            ("attention.self.query", "attn_q"),
            ("attention.self.key", "attn_k"),
            ("attention.self.value", "attn_v"),
            ("attention.output.dense", "attn_output"),
            ("intermediate.dense", "ffn_up"),
            ("output.dense", "ffn_down"),
        ] {
            m.copy(&mut plan, &layer(&format!("{from}.weight")), &format!("blk.{b}.{to}.weight"))?;
            m.copy(&mut plan, &layer(&format!("{from}.bias")), &format!("blk.{b}.{to}.bias"))?;
        }
        layer_norm(&mut plan, m, &layer("attention.output.LayerNorm"), &format!("blk.{b}.attn_output_norm"))?;
        layer_norm(&mut plan, m, &layer("output.LayerNorm"), &format!("blk.{b}.layer_output_norm"))?;
    }
    Ok(plan)
}

/// A LayerNorm's scale and shift, under either of the names checkpoints use for them.
fn layer_norm(plan: &mut ModelPlan, m: &mut Mapper, hf: &str, gguf: &str) -> Result<(), ConvertError> {
    for (names, kind) in [(["weight", "gamma"], "weight"), (["bias", "beta"], "bias")] {
        let name = names.iter().map(|n| format!("{hf}.{n}")).find(|n| m.has(n)).unwrap_or(format!("{hf}.{kind}"));
        m.copy(plan, &name, &format!("{gguf}.{kind}"))?;
    }
    Ok(())
}

/// The pooling of a sentence-transformers model: the `Pooling` module `modules.json` lists.
fn pooling_type(dir: &Path) -> Result<Option<u32>, ConvertError> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&modules_path).map_err(ConvertError::io(&modules_path))?;
    let modules: Vec<serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| ConvertError::Json { path: modules_path.clone(), message: e.to_string() })?;
    let Some(pooling_dir) = modules
        .iter()
        .find(|m| m["type"].as_str().is_some_and(|t| t.ends_with("Pooling")))
        .and_then(|m| m["path"].as_str())
    else {
        return Ok(None);
    };
    let config_path = crate::paths::join_inside(dir, pooling_dir)
        .ok_or_else(|| ConvertError::Json {
            path: modules_path.clone(),
            message: format!("module path {pooling_dir:?} is not inside the model directory"),
        })?
        .join("config.json");
    let pooling = read_json_object(&config_path, "modules.json names a Pooling module")?;
    let flag = |k: &str| pooling.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    let mode = pooling.get("pooling_mode").and_then(serde_json::Value::as_str);
    match () {
        _ if flag("pooling_mode_mean_tokens") || mode == Some("mean") => Ok(Some(POOLING_MEAN)),
        _ if flag("pooling_mode_cls_token") || mode == Some("cls") => Ok(Some(POOLING_CLS)),
        _ if flag("pooling_mode_lasttoken") || mode == Some("lasttoken") => Ok(Some(POOLING_LAST)),
        _ => Err(ConvertError::Json {
            path: config_path,
            message: "only mean, CLS and last-token pooling are supported".into(),
        }),
    }
}
