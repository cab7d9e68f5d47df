"""End-to-end tests of the model library through the official `ollama` client: pulls from the
test registry (tests/e2e/registry.py, both the Ollama registry protocol and Hugging Face's),
create from a Modelfile's fields or an uploaded GGUF, copy, delete, blobs.

Run by scripts/test-e2e.sh, which sets KILN_URL (the server), KILN_REGISTRY (the test
registry), KILN_MODELS (the server's library directory) and KILN_SMOLLM2 (the model file the
registry serves).
"""

import hashlib
import os
import pathlib
import subprocess

import httpx
import ollama
import pytest

URL = os.environ["KILN_URL"]
REGISTRY = os.environ["KILN_REGISTRY"]
LIBRARY = pathlib.Path(os.environ["KILN_MODELS"])
SMOLLM2 = os.environ["KILN_SMOLLM2"]
GREEDY = {"temperature": 0, "num_predict": 8, "repeat_penalty": 1}
HF_NAME = "hf.co/kiln-test/SmolLM2-135M-Instruct-GGUF:Q4_1"
SYSTEM = "You are a geography assistant."
QUESTION = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the capital of France?"}]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


SMOL_HEX = sha256_file(SMOLLM2)
SMOL_BLOB = LIBRARY / "blobs" / f"sha256-{SMOL_HEX}"


@pytest.fixture(scope="module")
def oc():
    return ollama.Client(host=URL)


def show_raw(name):
    """`/api/show` as JSON: the client's ShowResponse has no `system` or `messages` fields."""
    r = httpx.post(URL + "/api/show", json={"model": name})
    r.raise_for_status()
    return r.json()


def names(oc):
    return {m.model for m in oc.list().models}


def faults(**kw):
    httpx.post(REGISTRY + "/_faults", json=kw).raise_for_status()


def served(digest_hex):
    return httpx.get(REGISTRY + "/_stats").json()["served"].get("sha256:" + digest_hex, 0)


def forget(oc, name):
    try:
        oc.delete(name)
    except ollama.ResponseError:
        pass


def test_interrupted_pull_resumes_with_identical_bytes(oc):
    forget(oc, "smollm2:135m")
    assert not SMOL_BLOB.exists()
    before = served(SMOL_HEX)
    # The connection drops after 20 MiB and the registry then fails the retry: the pull stops.
    faults(drop_after=20 << 20, fail_next=1)
    with pytest.raises(ollama.ResponseError):
        for _ in oc.pull("smollm2:135m", stream=True):
            pass
    assert "smollm2:135m" not in names(oc)
    partial = LIBRARY / "blobs" / f"sha256-{SMOL_HEX}-partial"
    assert partial.exists() and not SMOL_BLOB.exists()
    first = served(SMOL_HEX) - before
    assert first >= 20 << 20

    updates = list(oc.pull("smollm2:135m", stream=True))
    assert updates[0].status == "pulling manifest"
    assert updates[-1].status == "success"
    layer = [u for u in updates if u.digest == "sha256:" + SMOL_HEX]
    assert layer and layer[-1].completed == layer[-1].total == os.path.getsize(SMOLLM2)
    assert "smollm2:135m" in names(oc)
    assert sha256_file(SMOL_BLOB) == SMOL_HEX
    assert not partial.exists()
    # The second pull fetched only what the first did not have.
    assert served(SMOL_HEX) - before == os.path.getsize(SMOLLM2)


def test_pulled_registry_model_uses_its_go_template_and_parameters(oc):
    if "smollm2:135m" not in names(oc):
        oc.pull("smollm2:135m")
    show = oc.show("smollm2:135m")
    assert "{{" in show.template and ".Messages" in show.template
    assert 'stop' in show.parameters and "<|im_end|>" in show.parameters
    assert "Apache" in show.license
    assert show.details.family == "llama"
    # Through its Go template the conversation renders as through the GGUF's own Jinja one.
    pulled = oc.chat(model="smollm2:135m", messages=QUESTION, options=GREEDY)
    local = oc.chat(model="smollm2", messages=QUESTION, options=GREEDY)
    assert pulled.prompt_eval_count == local.prompt_eval_count
    assert pulled.message.content == local.message.content
    assert "Paris" in pulled.message.content


def test_pull_from_hugging_face(oc):
    forget(oc, HF_NAME)
    final = oc.pull(HF_NAME)
    assert final.status == "success"
    assert HF_NAME in names(oc)
    show = oc.show(HF_NAME)
    assert "Apache" in show.license
    # No template layer: the GGUF's chat template is used.
    assert "<|im_start|>" in show.template
    r = oc.chat(model=HF_NAME, messages=QUESTION, options=GREEDY)
    assert "Paris" in r.message.content
    # Same weights as the registry pull: one blob in the library, not two.
    blobs = [p for p in (LIBRARY / "blobs").iterdir() if p.stat().st_size == os.path.getsize(SMOLLM2)]
    assert len(blobs) == 1


def test_unknown_models_and_quants_are_clear_errors(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.pull("no-such-model:1b")
    assert e.value.status_code == 404 and "not found" in str(e.value)
    with pytest.raises(ollama.ResponseError) as e:
        oc.pull("hf.co/kiln-test/SmolLM2-135M-Instruct-GGUF:Q8_0")
    assert "Q4_1" in str(e.value)


def test_digest_mismatch_leaves_nothing_behind(oc):
    before = sorted(p.name for p in (LIBRARY / "blobs").iterdir())
    with pytest.raises(ollama.ResponseError) as e:
        oc.pull("corrupt")
    assert "digest mismatch" in str(e.value)
    assert "corrupt:latest" not in names(oc)
    after = sorted(p.name for p in (LIBRARY / "blobs").iterdir())
    # No new model blob, no partial download: only the small config blob may remain.
    new = [n for n in after if n not in before]
    assert all(not n.endswith("-partial") and not n.endswith(".json") for n in new)
    assert all((LIBRARY / "blobs" / n).stat().st_size < 4096 for n in new)
    assert not (LIBRARY / "manifests" / "registry.ollama.ai" / "library" / "corrupt").exists()


def test_create_from_a_model_with_modelfile_fields(oc):
    if "smollm2:135m" not in names(oc):
        oc.pull("smollm2:135m")
    updates = list(oc.create(model="geo", from_="smollm2:135m", system=SYSTEM,
                             parameters={"temperature": 0, "num_predict": 8, "repeat_penalty": 1},
                             license="Custom terms", stream=True))
    assert updates[-1].status == "success"
    show = oc.show("geo")
    assert show_raw("geo")["system"] == SYSTEM
    assert "num_predict" in show.parameters
    assert show.license == "Custom terms"
    assert "SYSTEM" in show.modelfile and "PARAMETER temperature" in show.modelfile
    # The model's system prompt and parameters apply when the request gives none.
    r = oc.chat(model="geo", messages=QUESTION[1:])
    direct = oc.chat(model="smollm2:135m", messages=QUESTION, options=GREEDY)
    assert r.message.content == direct.message.content
    assert r.eval_count <= 8


def test_create_from_an_uploaded_gguf(oc):
    digest = oc.create_blob(SMOLLM2)
    assert digest == "sha256:" + SMOL_HEX
    assert httpx.head(f"{URL}/api/blobs/{digest}").status_code == 200
    oc.create(model="me/uploaded:v1", files={"smol.gguf": digest}, messages=[
        {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}])
    assert "me/uploaded:v1" in names(oc)
    assert [m["role"] for m in show_raw("me/uploaded:v1")["messages"]] == ["user", "assistant"]
    r = oc.generate(model="me/uploaded:v1", prompt="The capital of France is", raw=True, options=GREEDY)
    assert r.response.startswith(" Paris")


def test_blob_uploads_are_verified():
    wrong = "sha256:" + "0" * 64
    assert httpx.head(f"{URL}/api/blobs/{wrong}").status_code == 404
    r = httpx.post(f"{URL}/api/blobs/{wrong}", content=b"not what the digest says")
    assert r.status_code == 400 and "digest mismatch" in r.json()["error"]
    assert httpx.head(f"{URL}/api/blobs/{wrong}").status_code == 404
    assert httpx.head(f"{URL}/api/blobs/sha256:nothex").status_code == 400


def test_create_errors(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="broken", from_="no-such-model")
    assert "not found" in str(e.value)
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="broken", from_="smollm2:135m", template="{{ if .System }}unclosed")
    assert e.value.status_code == 400
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="broken", from_="smollm2:135m", parameters={"temprature": 1})
    assert "unknown parameter" in str(e.value)
    with pytest.raises(ollama.ResponseError) as e:
        oc.create(model="broken", from_="smollm2:135m", adapters={"lora.gguf": "sha256:" + SMOL_HEX})
    assert "ADAPTER" in str(e.value)
    assert "broken:latest" not in names(oc)


def test_copy_and_delete(oc):
    if "smollm2:135m" not in names(oc):
        oc.pull("smollm2:135m")
    oc.copy("smollm2:135m", "copied:latest")
    assert {"smollm2:135m", "copied:latest"} <= names(oc)
    oc.delete("copied")
    assert "copied:latest" not in names(oc)
    # The blobs stay while another model uses them.
    assert SMOL_BLOB.exists()
    with pytest.raises(ollama.ResponseError) as e:
        oc.delete("copied")
    assert e.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as e:
        oc.copy("no-such-model", "x")
    assert e.value.status_code == 404


def test_deleting_the_last_user_of_a_blob_removes_it(oc):
    command_line = {"smollm2:latest", "gemma3:latest", "named:latest", "minilm:latest"}
    library = sorted(names(oc) - command_line)
    # The earlier tests left several library models over the one SmolLM2 blob.
    assert len(library) >= 2
    for name in library[:-1]:
        oc.delete(name)
        assert SMOL_BLOB.exists()
    oc.delete(library[-1])
    assert not SMOL_BLOB.exists()
    # Models given on the command line are not in the library and stay.
    assert command_line <= names(oc)


def test_cli_pull_list_and_rm():
    env = dict(os.environ, KILN_HOST=URL)
    kiln = os.environ["KILN_BIN"]
    out = subprocess.run([kiln, "pull", HF_NAME], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "success" in out.stderr + out.stdout
    listing = subprocess.run([kiln, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert HF_NAME in listing.stdout
    # The repository's LICENSE came along and is recognised.
    lic = subprocess.run([kiln, "show", HF_NAME, "--license"], env=env, capture_output=True, text=True, timeout=60)
    assert lic.returncode == 0, lic.stderr
    assert "Apache License" in lic.stdout and "not legal advice" in lic.stdout
    assert "does not recognise" not in lic.stdout
    rm = subprocess.run([kiln, "rm", HF_NAME], env=env, capture_output=True, text=True, timeout=60)
    assert rm.returncode == 0, rm.stderr
    listing = subprocess.run([kiln, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert HF_NAME not in listing.stdout


def test_cli_run_pulls_a_missing_model(oc):
    forget(oc, "smollm2:135m")
    env = dict(os.environ, KILN_HOST=URL)
    out = subprocess.run([os.environ["KILN_BIN"], "run", "smollm2:135m", "What is the capital of France?",
                          "--temperature", "0", "--num-predict", "8"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "success" in out.stderr
    assert "Paris" in out.stdout
    assert "smollm2:135m" in names(oc)
