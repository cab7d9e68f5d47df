"""End-to-end tests of importing Hugging Face safetensors directories: through the official
`ollama` client (each file uploaded as a blob, `files` naming them, as Ollama's own client
does) and through `kiln create` with a Modelfile, with and without quantization.

The model is the tiny random-weight `qwen2` fixture (crates/kiln-models/tests/fixtures/hf);
beside it, `model.gguf` is llama.cpp's conversion of the same directory, so a model created
from the directory must generate exactly what that file generates.

Run by scripts/test-e2e.sh (KILN_URL, KILN_BIN). Every model made here is deleted again, so the
library holds what it held before.
"""

import os
import pathlib
import shutil
import subprocess

import httpx
import ollama
import pytest

URL = os.environ["KILN_URL"]
ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates/kiln-models/tests/fixtures/hf/qwen2"
# The same kind of model with a SentencePiece tokenizer.model, and a sentence-transformers BERT
# (crates/kiln-convert/tests/fixtures).
SPM_FIXTURE = ROOT / "crates/kiln-convert/tests/fixtures/llama-spm"
BERT_FIXTURE = ROOT / "crates/kiln-convert/tests/fixtures/bert"
GREEDY = {"temperature": 0, "num_predict": 12, "repeat_penalty": 1}
PROMPT = "the quick brown fox"


@pytest.fixture(scope="module")
def oc():
    return ollama.Client(host=URL)


def upload_dir(oc, path):
    """Every file of the directory (one level of subdirectories too), by its relative path."""
    return {p.relative_to(path).as_posix(): oc.create_blob(p) for p in sorted(path.rglob("*")) if p.is_file()}


def generate(oc, name):
    return oc.generate(model=name, prompt=PROMPT, raw=True, options=GREEDY)


@pytest.mark.parametrize("fixture,family", [(FIXTURE, "qwen2"), (SPM_FIXTURE, "llama")])
def test_client_imports_a_directory_and_it_generates_as_llama_cpps_conversion(oc, fixture, family):
    updates = list(oc.create(model="tiny-import", files=upload_dir(oc, fixture / "hf"), stream=True))
    statuses = [u.status for u in updates]
    assert statuses[0] == "parsing modelfile" and "converting model" in statuses, statuses
    assert statuses[-1] == "success"
    oc.create(model="tiny-import-llamacpp", files={"model.gguf": oc.create_blob(fixture / "model.gguf")})
    try:
        details = oc.show("tiny-import").details
        assert (details.family, details.quantization_level) == (family, "F32")
        ours, theirs = generate(oc, "tiny-import"), generate(oc, "tiny-import-llamacpp")
        assert ours.eval_count > 0
        assert ours.response == theirs.response
    finally:
        oc.delete("tiny-import")
        oc.delete("tiny-import-llamacpp")


def test_imported_bert_embeds_as_llama_cpps_conversion(oc):
    oc.create(model="tiny-bert", files=upload_dir(oc, BERT_FIXTURE / "hf"))
    oc.create(model="tiny-bert-llamacpp", files={"model.gguf": oc.create_blob(BERT_FIXTURE / "model.gguf")})
    try:
        assert oc.show("tiny-bert").details.family == "bert"
        ours = oc.embed(model="tiny-bert", input=PROMPT).embeddings
        theirs = oc.embed(model="tiny-bert-llamacpp", input=PROMPT).embeddings
        assert len(ours[0]) == 64
        assert ours == theirs
    finally:
        oc.delete("tiny-bert")
        oc.delete("tiny-bert-llamacpp")


def test_client_imports_with_quantize(oc):
    updates = list(oc.create(model="tiny-qwen2:q8_0", files=upload_dir(oc, FIXTURE / "hf"), quantize="q8_0",
                             stream=True))
    assert "quantizing F32 model to Q8_0" in [u.status for u in updates]
    try:
        assert oc.show("tiny-qwen2:q8_0").details.quantization_level == "Q8_0"
        assert generate(oc, "tiny-qwen2:q8_0").eval_count > 0
    finally:
        oc.delete("tiny-qwen2:q8_0")


def test_bad_directories_and_schemes_are_clear_errors(oc):
    files = upload_dir(oc, FIXTURE / "hf")
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="broken", files=files, quantize="q3_K_S")
    assert e.value.status_code == 400 and "unsupported quantization type" in str(e.value)
    del files["tokenizer.json"]
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="broken", files=files)
    assert e.value.status_code == 400 and "tokenizer.json or tokenizer.model is missing" in str(e.value)
    assert "broken:latest" not in {m.model for m in oc.list().models}


def kiln(*args):
    env = dict(os.environ, KILN_HOST=URL)
    out = subprocess.run([os.environ["KILN_BIN"], *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("quantize", [None, "q4_0"])
def test_cli_creates_from_a_modelfile_next_to_the_directory(oc, tmp_path, quantize):
    shutil.copytree(FIXTURE / "hf", tmp_path / "hf")
    (tmp_path / "Modelfile").write_text("FROM ./hf\nPARAMETER temperature 0\n")
    name = f"tiny-cli:{quantize or 'f32'}"
    out = kiln("create", name, "-f", str(tmp_path / "Modelfile"), *(["--quantize", quantize] if quantize else []))
    assert "converting model" in out.stderr and "success" in out.stderr
    if quantize:
        assert "quantizing F32 model to Q4_0" in out.stderr
    try:
        show = httpx.post(URL + "/api/show", json={"model": name}).json()
        assert show["details"]["quantization_level"] == (quantize or "f32").upper()
        kiln("run", name, PROMPT, "--num-predict", "4")
    finally:
        oc.delete(name)


def test_a_model_cards_license_id_comes_along(oc, tmp_path):
    # A directory without a LICENSE file, whose README.md front matter names the license (as
    # Hugging Face model cards do): the id goes into the GGUF and `kiln show --license` reads it.
    shutil.copytree(FIXTURE / "hf", tmp_path / "hf")
    (tmp_path / "hf" / "README.md").write_text("---\nlanguage: en\nlicense: apache-2.0\n---\n# Tiny\n")
    (tmp_path / "Modelfile").write_text("FROM ./hf\n")
    kiln("create", "tiny-card", "-f", str(tmp_path / "Modelfile"))
    try:
        info = httpx.post(URL + "/api/show", json={"model": "tiny-card"}).json()["model_info"]
        assert info["general.license"] == "apache-2.0"
        out = kiln("show", "tiny-card", "--license")
        assert "Apache" in out.stdout and "does not recognise" not in out.stdout
    finally:
        oc.delete("tiny-card")
