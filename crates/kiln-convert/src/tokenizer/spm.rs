//! SentencePiece vocabularies (`tokenizer.model`, as Llama 2 and Mistral 7B ship) as llama.cpp's
//! converter writes them: pieces, scores and types from the model, then the added tokens of
//! `added_tokens.json` and `tokenizer_config.json` laid over them.
//!
//! `tokenizer.model` is a protobuf `ModelProto` whose field 1 repeats `SentencePiece` messages
//! (1: piece, 2: score, 3: type). Only those fields are read; the rest is skipped by wire type.

use std::path::Path;

use serde_json::Value as Json;

use crate::config::read_json_object;
use crate::error::ConvertError;
use crate::tokenizer::{looks_special, CONTROL, NORMAL, UNUSED, USER_DEFINED};

/// SentencePiece's own type numbers for the kinds llama.cpp keeps (NORMAL and USER_DEFINED
/// pieces both become llama.cpp's NORMAL).
const SPM_UNKNOWN: u64 = 2;
const SPM_CONTROL: u64 = 3;
const SPM_UNUSED: u64 = 5;
const SPM_BYTE: u64 = 6;

/// Score of an added token, and of ids the model has no piece for.
const ADDED_SCORE: f32 = -1000.0;
const MISSING_SCORE: f32 = -10000.0;

/// One piece of the model.
#[derive(Debug, PartialEq)]
struct Piece {
    text: String,
    score: f32,
    kind: u64,
}

fn corrupt(message: impl Into<String>) -> ConvertError {
    ConvertError::Tokenizer(format!("tokenizer.model is not a SentencePiece model: {}", message.into()))
}

/// A protobuf reader over one message's bytes.
struct Wire<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, ConvertError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or_else(|| corrupt("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ConvertError> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt("a field runs past the end"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field as (number, wire type, value bytes or varint); `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, ConvertError> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Bytes(self.take(8)?),
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Bytes(self.take(4)?),
            other => return Err(corrupt(format!("unsupported wire type {other}"))),
        };
        Ok(Some((key >> 3, value)))
    }
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, ConvertError> {
    let mut piece = Piece { text: String::new(), score: 0.0, kind: 1 };
    let mut wire = Wire { bytes, pos: 0 };
    while let Some((number, value)) = wire.field()? {
        match (number, value) {
            (1, Field::Bytes(b)) => {
                piece.text = String::from_utf8(b.to_vec()).map_err(|_| corrupt("a piece is not UTF-8"))?;
            }
            (2, Field::Bytes(b)) if b.len() == 4 => piece.score = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (3, Field::Varint(v)) => piece.kind = v,
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_model(bytes: &[u8]) -> Result<Vec<Piece>, ConvertError> {
    let mut wire = Wire { bytes, pos: 0 };
    let mut pieces = Vec::new();
    while let Some((number, value)) = wire.field()? {
        if let (1, Field::Bytes(b)) = (number, value) {
            pieces.push(parse_piece(b)?);
        }
    }
    if pieces.is_empty() {
        return Err(corrupt("it has no pieces"));
    }
    Ok(pieces)
}

/// A SentencePiece vocabulary by id, as llama.cpp's metadata holds it.
pub(crate) struct Vocabulary {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    /// llama.cpp's token types.
    pub types: Vec<i32>,
}

/// The SentencePiece vocabulary in `dir`, `n_vocab` long (the config's `vocab_size`, else the
/// model's piece count).
pub(crate) fn vocabulary(dir: &Path, n_vocab: Option<usize>) -> Result<Vocabulary, ConvertError> {
    let path = dir.join("tokenizer.model");
    let pieces = parse_model(&std::fs::read(&path).map_err(ConvertError::io(&path))?)?;
    let n = n_vocab.unwrap_or(pieces.len());
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![MISSING_SCORE; n];
    let mut types = vec![UNUSED; n];
    for (i, piece) in pieces.into_iter().enumerate().take(n) {
        types[i] = match piece.kind {
            SPM_UNKNOWN => 2,
            SPM_CONTROL => CONTROL,
            SPM_UNUSED => UNUSED,
            SPM_BYTE => 6,
            _ => NORMAL,
        };
        tokens[i] = piece.text;
        scores[i] = piece.score;
    }
    let added_path = dir.join("added_tokens.json");
    if added_path.is_file() {
        for (text, id) in read_json_object(&added_path, "")? {
            let Some(id) = id.as_u64().map(|i| i as usize).filter(|&i| i < n) else { continue };
            tokens[id] = text;
            scores[id] = ADDED_SCORE;
            types[id] = USER_DEFINED;
        }
    }
    let config_path = dir.join("tokenizer_config.json");
    if config_path.is_file() {
        let config = read_json_object(&config_path, "")?;
        let decoder = config.get("added_tokens_decoder").and_then(Json::as_object);
        for (id, token) in decoder.into_iter().flatten() {
            let Some(id) = id.parse::<usize>().ok().filter(|&i| i < n) else { continue };
            let Some(text) = token["content"].as_str() else { continue };
            if token["special"].as_bool() == Some(true) || looks_special(text) {
                tokens[id] = text.to_string();
                types[id] = CONTROL;
            } else {
                tokens[id] = text.replace('\u{2581}', " ");
                types[id] = USER_DEFINED;
            }
            scores[id] = ADDED_SCORE;
        }
    }
    Ok(Vocabulary { tokens, scores, types })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut body = vec![0x0a];
        varint(text.len() as u64, &mut body);
        body.extend_from_slice(text.as_bytes());
        body.push(0x15);
        body.extend_from_slice(&score.to_le_bytes());
        body.push(0x18);
        varint(kind, &mut body);
        let mut out = vec![0x0a];
        varint(body.len() as u64, &mut out);
        out.extend(body);
        out
    }

    #[test]
    fn pieces_parse_and_unknown_fields_are_skipped() {
        let mut model = piece("<unk>", 0.0, SPM_UNKNOWN);
        model.extend(piece("▁the", -1.5, 1));
        // Field 2 (trainer spec), a nested message to skip.
        model.extend([0x12, 0x02, 0x08, 0x01]);
        let pieces = parse_model(&model).unwrap();
        assert_eq!(
            pieces,
            [
                Piece { text: "<unk>".into(), score: 0.0, kind: SPM_UNKNOWN },
                Piece { text: "▁the".into(), score: -1.5, kind: 1 },
            ]
        );
    }

    #[test]
    fn truncated_models_are_errors() {
        let model = piece("<unk>", 0.0, SPM_UNKNOWN);
        let err = parse_model(&model[..model.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("not a SentencePiece model: a field runs past the end"), "{err}");
        assert!(parse_model(&[]).unwrap_err().to_string().contains("no pieces"));
        assert!(parse_model(&[0x0b]).unwrap_err().to_string().contains("wire type 3"));
    }
}
