//! Request options: Ollama's `options` object and OpenAI's top-level fields, both mapped onto
//! the engine's `GenerateOptions` and checked before a request reaches the model thread, so
//! a nonsensical value is a 400 rather than garbage text.

use crate::choices::Siblings;
use crate::error::ApiError;
use kiln_engine::sampler::SamplingParams;
use kiln_engine::GenerateOptions;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The largest context a request may ask for. The KV cache is allocated up front, so this
/// bounds the memory one request can make the server reserve.
pub const MAX_NUM_CTX: usize = 1 << 20;

/// Context size when a request names none (Ollama's current default).
pub const DEFAULT_NUM_CTX: usize = 4096;

/// `stop` as either API sends it: one string or a list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// Ollama's `options` (Modelfile parameters). Unknown keys are ignored, as Ollama does.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct OllamaOptions {
    pub temperature: Option<f32>,
    pub top_k: Option<i64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub seed: Option<i64>,
    pub num_predict: Option<i64>,
    pub num_ctx: Option<i64>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub stop: Option<Stop>,
}

/// What the model thread needs to run one request.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    pub generate: GenerateOptions,
    pub num_ctx: usize,
    /// Set when this request is one of several choices answering the same prompt.
    pub siblings: Option<Siblings>,
}

/// Checks a context size asked for by a client.
pub fn check_num_ctx(n: i64) -> Result<usize, ApiError> {
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_NUM_CTX).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!("invalid option num_ctx = {n}: expected 1 to {MAX_NUM_CTX}"))),
    }
}

/// Ollama's `seed`: negative means "random", as in Ollama.
fn seed(s: Option<i64>) -> Option<u64> {
    s.and_then(|s| u64::try_from(s).ok())
}

/// Ollama's `num_predict`: -1 (or -2, "fill the context") means no limit.
fn max_tokens(n: Option<i64>) -> Result<Option<usize>, ApiError> {
    match n {
        None | Some(-1) | Some(-2) => Ok(None),
        Some(n) => usize::try_from(n).map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid option num_predict = {n}: expected -1 or a count >= 0"))
        }),
    }
}

fn finish(
    sampling: SamplingParams,
    max_tokens: Option<usize>,
    stop: Vec<String>,
    num_ctx: usize,
) -> Result<RequestOptions, ApiError> {
    sampling.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::bad_request("invalid option stop: stop strings must not be empty"));
    }
    Ok(RequestOptions {
        generate: GenerateOptions { sampling, max_tokens, stop, ..GenerateOptions::default() },
        num_ctx,
        siblings: None,
    })
}

impl OllamaOptions {
    /// A model's PARAMETERs as options.
    pub fn from_params(params: &serde_json::Map<String, serde_json::Value>) -> Result<OllamaOptions, ApiError> {
        serde_json::from_value(serde_json::Value::Object(params.clone()))
            .map_err(|e| ApiError::internal(format!("the model's parameters are invalid: {e}")))
    }

    /// These options over `base` (the model's parameters): what the request leaves unset,
    /// the model decides.
    pub fn over(self, base: OllamaOptions) -> OllamaOptions {
        OllamaOptions {
            temperature: self.temperature.or(base.temperature),
            top_k: self.top_k.or(base.top_k),
            top_p: self.top_p.or(base.top_p),
            min_p: self.min_p.or(base.min_p),
            seed: self.seed.or(base.seed),
            num_predict: self.num_predict.or(base.num_predict),
            num_ctx: self.num_ctx.or(base.num_ctx),
            repeat_penalty: self.repeat_penalty.or(base.repeat_penalty),
            repeat_last_n: self.repeat_last_n.or(base.repeat_last_n),
            presence_penalty: self.presence_penalty.or(base.presence_penalty),
            frequency_penalty: self.frequency_penalty.or(base.frequency_penalty),
            stop: self.stop.or(base.stop),
        }
    }

    /// Maps onto the engine's options with Ollama's defaults for what is missing.
    pub fn resolve(&self) -> Result<RequestOptions, ApiError> {
        let d = SamplingParams::default();
        let top_k = match self.top_k {
            None => d.top_k,
            Some(k) if k <= 0 => 0,
            Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
        };
        let repeat_last_n = match self.repeat_last_n {
            None => d.repeat_last_n,
            Some(-1) => SamplingParams::WHOLE_HISTORY,
            Some(n) => usize::try_from(n).map_err(|_| {
                ApiError::bad_request(format!("invalid option repeat_last_n = {n}: expected -1 or a count >= 0"))
            })?,
        };
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k,
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            repeat_last_n,
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            seed: seed(self.seed),
            ..SamplingParams::default()
        };
        let num_ctx = self.num_ctx.map(check_num_ctx).transpose()?.unwrap_or(DEFAULT_NUM_CTX);
        let stop = self.stop.clone().map(Stop::into_vec).unwrap_or_default();
        finish(sampling, max_tokens(self.num_predict)?, stop, num_ctx)
    }
}

/// The sampling fields of OpenAI's chat and completion requests, plus the `num_ctx`
/// extension (OpenAI has no way to size the context).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct OpenAiSampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub num_ctx: Option<i64>,
    /// Token id (as a string) → bias in [-100, 100].
    pub logit_bias: Option<BTreeMap<String, f32>>,
}

impl OpenAiSampling {
    /// The request's fields over the model's parameters (`base`), then OpenAI's defaults
    /// (temperature 1, top_p 1, no penalties), then Ollama's for the rest, which is what
    /// Ollama's compatibility layer does.
    pub fn resolve(&self, base: OllamaOptions) -> Result<RequestOptions, ApiError> {
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            if let Some(v) = v {
                if !(-2.0..=2.0).contains(&v) {
                    return Err(ApiError::bad_request(format!("invalid {name} = {v}: expected a number in [-2, 2]")));
                }
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(ApiError::bad_request(format!("invalid temperature = {t}: expected a number in [0, 2]")));
            }
        }
        let limit = self.max_completion_tokens.or(self.max_tokens);
        if let Some(n) = limit.filter(|&n| n < 1) {
            return Err(ApiError::bad_request(format!("invalid max_tokens = {n}: expected a count >= 1")));
        }
        let request = OllamaOptions {
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: self.stop.clone(),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            num_predict: limit,
            num_ctx: self.num_ctx,
            ..OllamaOptions::default()
        };
        let openai_defaults = OllamaOptions {
            temperature: Some(1.0),
            top_p: Some(1.0),
            presence_penalty: Some(0.0),
            frequency_penalty: Some(0.0),
            ..OllamaOptions::default()
        };
        let mut options = request.over(base.over(openai_defaults)).resolve()?;
        options.generate.sampling.logit_bias = self.logit_bias()?;
        options.generate.sampling.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(options)
    }

    /// `logit_bias` with its keys read as token ids (whether the vocabulary has them is the
    /// engine's to check).
    fn logit_bias(&self) -> Result<Vec<(u32, f32)>, ApiError> {
        let Some(map) = &self.logit_bias else { return Ok(Vec::new()) };
        map.iter()
            .map(|(k, &b)| match k.parse::<u32>() {
                Ok(id) => Ok((id, b)),
                Err(_) => Err(ApiError::bad_request(format!("invalid logit_bias key {k:?}: expected a token id"))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ollama(json: &str) -> Result<RequestOptions, ApiError> {
        serde_json::from_str::<OllamaOptions>(json).unwrap().resolve()
    }

    fn openai(json: &str) -> Result<RequestOptions, ApiError> {
        serde_json::from_str::<OpenAiSampling>(json).unwrap().resolve(OllamaOptions::default())
    }

    #[test]
    fn model_parameters_sit_under_the_request() {
        let params = serde_json::json!({"temperature":0.2,"num_ctx":2048,"stop":["<|im_end|>"],"top_k":5});
        let base = || OllamaOptions::from_params(params.as_object().unwrap()).unwrap();
        let o =
            serde_json::from_str::<OllamaOptions>(r#"{"temperature":0.9}"#).unwrap().over(base()).resolve().unwrap();
        assert_eq!((o.generate.sampling.temperature, o.num_ctx, o.generate.sampling.top_k), (0.9, 2048, 5));
        assert_eq!(o.generate.stop, ["<|im_end|>"]);
        // OpenAI requests: the model's temperature beats OpenAI's default of 1, the request beats both.
        let o = serde_json::from_str::<OpenAiSampling>("{}").unwrap().resolve(base()).unwrap();
        assert_eq!((o.generate.sampling.temperature, o.generate.sampling.top_p), (0.2, 1.0));
        let o =
            serde_json::from_str::<OpenAiSampling>(r#"{"temperature":0,"stop":"x"}"#).unwrap().resolve(base()).unwrap();
        assert_eq!((o.generate.sampling.temperature, o.generate.stop.clone()), (0.0, vec!["x".to_string()]));
        let bad = serde_json::json!({"temperature":"hot"});
        assert!(OllamaOptions::from_params(bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn ollama_defaults() {
        let o = ollama("{}").unwrap();
        assert_eq!(o.num_ctx, DEFAULT_NUM_CTX);
        assert_eq!(o.generate.max_tokens, None);
        assert_eq!(o.generate.sampling, SamplingParams::default());
    }

    #[test]
    fn ollama_values_map_through() {
        let o = ollama(
            r#"{"temperature":0,"top_k":-1,"top_p":0.5,"min_p":0.1,"seed":7,"num_predict":8,"num_ctx":2048,
                "repeat_penalty":1,"repeat_last_n":-1,"presence_penalty":0.5,"frequency_penalty":0.25,
                "stop":["\n","END"],"mirostat":0}"#,
        )
        .unwrap();
        let s = &o.generate.sampling;
        assert_eq!((s.temperature, s.top_k, s.top_p, s.min_p, s.seed), (0.0, 0, 0.5, 0.1, Some(7)));
        assert_eq!((s.repeat_penalty, s.repeat_last_n), (1.0, SamplingParams::WHOLE_HISTORY));
        assert_eq!((s.presence_penalty, s.frequency_penalty), (0.5, 0.25));
        assert_eq!(o.generate.max_tokens, Some(8));
        assert_eq!(o.generate.stop, vec!["\n".to_string(), "END".to_string()]);
        assert_eq!(o.num_ctx, 2048);
        assert_eq!(ollama(r#"{"seed":-1,"num_predict":-2,"stop":"x"}"#).unwrap().generate.sampling.seed, None);
    }

    #[test]
    fn absurd_ollama_values_are_rejected() {
        for bad in [
            r#"{"temperature":-1}"#,
            r#"{"top_p":7}"#,
            r#"{"num_ctx":0}"#,
            r#"{"num_ctx":2000000}"#,
            r#"{"num_predict":-5}"#,
            r#"{"repeat_last_n":-3}"#,
            r#"{"stop":[""]}"#,
        ] {
            let e = ollama(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn wrong_types_do_not_parse() {
        assert!(serde_json::from_str::<OllamaOptions>(r#"{"temperature":"hot"}"#).is_err());
        assert!(serde_json::from_str::<OpenAiSampling>(r#"{"stop":3}"#).is_err());
    }

    #[test]
    fn openai_defaults_and_limits() {
        let o = openai("{}").unwrap();
        assert_eq!((o.generate.sampling.temperature, o.generate.sampling.top_p), (1.0, 1.0));
        assert_eq!(o.generate.max_tokens, None);
        let o = openai(r#"{"max_tokens":5,"max_completion_tokens":9,"stop":"\n","num_ctx":512}"#).unwrap();
        assert_eq!(o.generate.max_tokens, Some(9));
        assert_eq!(o.generate.stop, vec!["\n".to_string()]);
        assert_eq!(o.num_ctx, 512);
        for bad in [
            r#"{"temperature":-1}"#,
            r#"{"temperature":3}"#,
            r#"{"top_p":7}"#,
            r#"{"max_tokens":0}"#,
            r#"{"presence_penalty":5}"#,
        ] {
            assert!(openai(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logit_bias_keys_are_token_ids_and_values_bounded() {
        let o = openai(r#"{"logit_bias":{"15":-100,"7":2.5}}"#).unwrap();
        assert_eq!(o.generate.sampling.logit_bias, [(15, -100.0), (7, 2.5)]);
        for bad in [r#"{"logit_bias":{"x":1}}"#, r#"{"logit_bias":{"-3":1}}"#, r#"{"logit_bias":{"3":101}}"#] {
            assert_eq!(openai(bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
