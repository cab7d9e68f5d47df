//! Prints a GGUF file's header: `cargo run -p kiln-gguf --example gguf_dump -- FILE`.

use std::io::Write;

use kiln_gguf::GgufFile;

fn dump(f: &GgufFile, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "GGUF v{}, {} bytes, alignment {}, data at {}",
        f.version(),
        f.file_size(),
        f.alignment(),
        f.data_offset()
    )?;
    writeln!(out, "{} metadata entries:", f.metadata().len())?;
    for (key, value) in f.metadata() {
        writeln!(out, "  {key} = {value}")?;
    }
    writeln!(out, "{} tensors:", f.tensors().len())?;
    for t in f.tensors() {
        writeln!(out, "  {t} @{} ({} bytes)", t.offset, t.size)?;
    }
    Ok(())
}

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: gguf_dump FILE.gguf");
        std::process::exit(2);
    };
    let f = match GgufFile::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = dump(&f, &mut std::io::stdout().lock());
}
