//! `kiln serve`: turns the command line into a server configuration and runs the server.

use crate::cli::ServeArgs;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// `NAME=PATH` from `--model`.
fn parse_model(spec: &str) -> Result<(String, PathBuf)> {
    match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_string(), PathBuf::from(path))),
        _ => bail!("--model expects NAME=PATH, got '{spec}'"),
    }
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let models = args.model.iter().map(|s| parse_model(s)).collect::<Result<Vec<_>>>()?;
    let models_dir = args.models.or_else(crate::client::library_dir);
    let access = kiln_server::access::AccessPolicy::from_env();
    let config = kiln_server::ServerConfig { host: args.host, models_dir, models, threads: args.threads, access };
    kiln_server::serve(config).context("running the server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs() {
        assert_eq!(parse_model("tiny=/m/t.gguf").unwrap(), ("tiny".to_string(), PathBuf::from("/m/t.gguf")));
        assert!(parse_model("tiny").is_err());
        assert!(parse_model("=x").is_err());
    }
}
