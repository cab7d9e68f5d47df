//! Converts a Hugging Face model directory to a GGUF file, as `kiln create` does inside the
//! library: `cargo run -p kiln-convert --example convert -- DIR OUT.gguf [SCHEME]`. The
//! scripts use it to make test models from checkpoints (scripts/make-minilm-gguf.sh).

use kiln_quant::QuantScheme;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, out, scheme) = match args.as_slice() {
        [dir, out] => (dir, out, None),
        [dir, out, scheme] => match QuantScheme::parse(scheme) {
            Some(s) => (dir, out, Some(s)),
            None => return fail(format!("unknown quantization scheme '{scheme}'")),
        },
        _ => return fail("usage: convert DIR OUT.gguf [SCHEME]".into()),
    };
    let file = match std::fs::File::create(out) {
        Ok(f) => f,
        Err(e) => return fail(format!("{out}: {e}")),
    };
    let mut writer = BufWriter::new(file);
    let result = kiln_convert::convert_dir(Path::new(dir), &mut writer, scheme, &mut |status| eprintln!("{status}"));
    match result.map_err(|e| e.to_string()).and_then(|_| writer.flush().map_err(|e| format!("{out}: {e}"))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            fail(e)
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
