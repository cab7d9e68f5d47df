//! `pull` against a registry served from this test: Ollama's v2 routes (with a redirect to a
//! "CDN" path and an optional Bearer challenge) and Hugging Face's tree and resolve routes,
//! with faults to inject.

use kiln_library::manifest::{media, Layer, Manifest, ModelConfigBlob, CONFIG_MEDIA_TYPE};
use kiln_library::{pull, Digest, ModelName, PullConfig, PullError, PullProgress, Store};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "anonymous-token";

#[derive(Default)]
struct Faults {
    /// Digests served with one byte changed.
    corrupt: HashSet<Digest>,
    /// The next blob response stops after this many body bytes.
    drop_after: Option<u64>,
    ignore_range: bool,
    require_token: bool,
    /// A pause per 64 KiB of blob body, so a pull is still under way when a test acts.
    pace: Option<Duration>,
}

/// A file of a Hugging Face repository: path, bytes, and whether it is stored with LFS.
type RepoFile = (String, Vec<u8>, bool);

#[derive(Default)]
struct Registry {
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    blobs: Mutex<HashMap<Digest, Vec<u8>>>,
    /// Hugging Face repositories by `org/repo`.
    repos: Mutex<HashMap<String, Vec<RepoFile>>>,
    faults: Mutex<Faults>,
    /// Blob body bytes sent, by digest, to requests that began since the last reset.
    served: Mutex<HashMap<Digest, u64>>,
    /// Bumped by each reset, so a response still draining from before it is not counted.
    served_epoch: AtomicU64,
    tokens_issued: AtomicU64,
    /// `Authorization` headers seen on Hugging Face API calls.
    hf_auth: Mutex<Vec<String>>,
}

struct Server {
    url: String,
    reg: Arc<Registry>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reg = Arc::new(Registry::default());
        let (r, base) = (reg.clone(), url.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, base) = (r.clone(), base.clone());
                std::thread::spawn(move || {
                    let _ = handle(&r, &base, conn);
                });
            }
        });
        Server { url, reg }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.reg.faults.lock().unwrap()
    }

    fn served(&self, d: &Digest) -> u64 {
        self.reg.served.lock().unwrap().get(d).copied().unwrap_or(0)
    }

    fn reset_served(&self) {
        let mut served = self.reg.served.lock().unwrap();
        self.reg.served_epoch.fetch_add(1, Ordering::SeqCst);
        served.clear();
    }

    fn add_blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of_bytes(bytes);
        self.reg.blobs.lock().unwrap().insert(d, bytes.to_vec());
        d
    }

    /// Publishes `ns/model:tag` with these layers and returns its manifest.
    fn publish(&self, name: &str, layers: &[(&str, &[u8])]) -> Manifest {
        let layer = |media_type: &str, bytes: &[u8]| Layer {
            media_type: media_type.into(),
            digest: self.add_blob(bytes),
            size: bytes.len() as u64,
            from: None,
        };
        let config =
            serde_json::to_vec(&ModelConfigBlob { model_format: "gguf".into(), ..Default::default() }).unwrap();
        let m = Manifest::new(layer(CONFIG_MEDIA_TYPE, &config), layers.iter().map(|(t, b)| layer(t, b)).collect());
        self.reg.manifests.lock().unwrap().insert(name.into(), serde_json::to_vec(&m).unwrap());
        m
    }

    fn publish_repo(&self, repo: &str, files: &[(&str, &[u8])]) {
        let files = files
            .iter()
            .map(|(p, b)| {
                let lfs = p.ends_with(".gguf");
                if lfs {
                    self.add_blob(b);
                }
                (p.to_string(), b.to_vec(), lfs)
            })
            .collect();
        self.reg.repos.lock().unwrap().insert(repo.into(), files);
    }

    fn config(&self) -> PullConfig {
        PullConfig {
            ollama_registry: self.url.clone(),
            hf_endpoint: self.url.clone(),
            hf_token: None,
            insecure: true,
            max_streams: 4,
            part_size: Some(256 << 10),
            retries: 0,
        }
    }
}

struct Request {
    path: String,
    headers: HashMap<String, String>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok(Request { path, headers })
}

fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)
}

fn handle(reg: &Registry, base: &str, mut conn: TcpStream) -> std::io::Result<()> {
    let req = read_request(&conn)?;
    let path = req.path.split('?').next().unwrap_or("").to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let authorised = req.headers.get("authorization").is_some_and(|a| *a == format!("Bearer {TOKEN}"));
    match parts.as_slice() {
        ["token"] => {
            reg.tokens_issued.fetch_add(1, Ordering::Relaxed);
            respond(&mut conn, "200 OK", &[], format!(r#"{{"token":"{TOKEN}"}}"#).as_bytes())
        }
        ["v2", ns, model, kind, reference] => {
            if reg.faults.lock().unwrap().require_token && !authorised {
                let challenge =
                    format!(r#"Bearer realm="{base}/token",service="test",scope="repository:{ns}/{model}:pull""#);
                return respond(&mut conn, "401 Unauthorized", &[("WWW-Authenticate", challenge)], b"");
            }
            match *kind {
                "manifests" => match reg.manifests.lock().unwrap().get(&format!("{ns}/{model}:{reference}")) {
                    Some(m) => respond(&mut conn, "200 OK", &[], m),
                    None => respond(&mut conn, "404 Not Found", &[], br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
                },
                _ => respond(&mut conn, "307 Temporary Redirect", &[("Location", format!("/cdn/{reference}"))], b""),
            }
        }
        ["cdn", digest] => serve_blob(reg, &mut conn, &req, Digest::parse(digest).unwrap()),
        ["api", "models", org, repo, "tree", "main"] => {
            reg.hf_auth.lock().unwrap().push(req.headers.get("authorization").cloned().unwrap_or_default());
            let repos = reg.repos.lock().unwrap();
            let Some(files) = repos.get(&format!("{org}/{repo}")) else {
                return respond(&mut conn, "401 Unauthorized", &[], br#"{"error":"Repository not found"}"#);
            };
            let entries: Vec<serde_json::Value> = files
                .iter()
                .map(|(p, b, lfs)| {
                    let mut e = serde_json::json!({"type": "file", "path": p, "size": b.len(), "oid": "0123abcd"});
                    if *lfs {
                        e["lfs"] =
                            serde_json::json!({"oid": Digest::of_bytes(b).hex(), "size": b.len(), "pointerSize": 134});
                    }
                    e
                })
                .collect();
            respond(&mut conn, "200 OK", &[], &serde_json::to_vec(&entries).unwrap())
        }
        [org, repo, "resolve", "main", file @ ..] => {
            let repos = reg.repos.lock().unwrap();
            let found = repos.get(&format!("{org}/{repo}")).and_then(|fs| fs.iter().find(|f| f.0 == file.join("/")));
            match found {
                Some((_, b, true)) => {
                    let to = format!("/cdn/{}", Digest::of_bytes(b));
                    respond(&mut conn, "302 Found", &[("Location", to)], b"")
                }
                Some((_, b, false)) => respond(&mut conn, "200 OK", &[], b),
                None => respond(&mut conn, "404 Not Found", &[], b""),
            }
        }
        _ => respond(&mut conn, "404 Not Found", &[], b""),
    }
}

fn serve_blob(reg: &Registry, conn: &mut TcpStream, req: &Request, digest: Digest) -> std::io::Result<()> {
    let epoch = reg.served_epoch.load(Ordering::SeqCst);
    let Some(mut bytes) = reg.blobs.lock().unwrap().get(&digest).cloned() else {
        return respond(conn, "404 Not Found", &[], b"");
    };
    let (drop_after, pace) = {
        let mut f = reg.faults.lock().unwrap();
        if f.corrupt.contains(&digest) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        }
        let range = req.headers.get("range").filter(|_| !f.ignore_range).cloned();
        let (status, from, to) = match range.as_deref().and_then(parse_range) {
            Some((a, b)) => ("206 Partial Content", a, b.min(bytes.len() as u64 - 1)),
            None => ("200 OK", 0, bytes.len() as u64 - 1),
        };
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", to + 1 - from);
        if status.starts_with("206") {
            head.push_str(&format!("Content-Range: bytes {from}-{to}/{}\r\n", bytes.len()));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes())?;
        bytes = bytes[from as usize..=to as usize].to_vec();
        (f.drop_after.take(), f.pace)
    };
    let limit = drop_after.unwrap_or(u64::MAX).min(bytes.len() as u64) as usize;
    for chunk in bytes[..limit].chunks(64 << 10) {
        if let Some(p) = pace {
            std::thread::sleep(p);
        }
        conn.write_all(chunk)?;
        let mut served = reg.served.lock().unwrap();
        if reg.served_epoch.load(Ordering::SeqCst) == epoch {
            *served.entry(digest).or_default() += chunk.len() as u64;
        }
    }
    conn.flush()?;
    conn.shutdown(Shutdown::Both)
}

fn parse_range(h: &str) -> Option<(u64, u64)> {
    let (a, b) = h.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

use kiln_testdata::TempDir;

/// Bytes that differ from any other payload of the test (a simple LCG stream).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn name(s: &str) -> ModelName {
    ModelName::parse(s).unwrap()
}

fn run(
    store: &Store,
    model: &str,
    config: &PullConfig,
) -> (Result<kiln_library::LibraryModel, PullError>, Vec<PullProgress>) {
    let mut events = Vec::new();
    let result = pull(store, &name(model), config, &mut |p| events.push(p), &AtomicBool::new(false));
    (result, events)
}

fn blob_files(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const TEMPLATE: &[u8] = b"{{ .Prompt }}";
const PARAMS: &[u8] = br#"{"stop":["<|im_end|>"]}"#;

/// A 3 MiB model with a template and parameters, as `library/tiny:1`.
fn publish_tiny(server: &Server) -> (Manifest, Vec<u8>) {
    let weights = payload(3 << 20, 1);
    let m = server
        .publish("library/tiny:1", &[(media::MODEL, &weights), (media::TEMPLATE, TEMPLATE), (media::PARAMS, PARAMS)]);
    (m, weights)
}

#[test]
fn a_registry_pull_stores_the_bytes_and_reports_progress_like_ollama() {
    let server = Server::start();
    server.faults().require_token = true;
    let (manifest, weights) = publish_tiny(&server);
    let dir = TempDir::new("registry");
    let store = Store::open(&dir.0).unwrap();

    let (result, events) = run(&store, "tiny:1", &server.config());
    let model = result.unwrap();
    assert_eq!(model.manifest, manifest);
    assert_eq!(store.find(&name("tiny:1")).unwrap().manifest, manifest);
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), weights);
    assert_eq!(store.read_blob_text(&manifest.layers[1].digest).unwrap().as_bytes(), TEMPLATE);
    assert!(server.reg.tokens_issued.load(Ordering::Relaxed) >= 1);
    // Only blobs are left: no partial files, no part state.
    assert_eq!(blob_files(&store).len(), 4, "{:?}", blob_files(&store));

    assert_eq!(events.first(), Some(&PullProgress::PullingManifest));
    assert_eq!(
        events[events.len() - 3..],
        [PullProgress::VerifyingDigest, PullProgress::WritingManifest, PullProgress::Success]
    );
    // Each blob's reports come together, in order, never go back, and end complete.
    let layer_events = &events[1..events.len() - 3];
    let mut order: Vec<Digest> = Vec::new();
    let mut last: HashMap<Digest, u64> = HashMap::new();
    for e in layer_events {
        let PullProgress::Layer { digest, total, completed } = e else { panic!("unexpected {e:?}") };
        if order.last() != Some(digest) {
            assert!(!order.contains(digest), "{digest} reported in two runs");
            order.push(*digest);
        }
        assert!(completed >= last.get(digest).unwrap_or(&0) && completed <= total);
        last.insert(*digest, *completed);
    }
    let expected: Vec<Digest> = manifest.layers.iter().chain([&manifest.config]).map(|l| l.digest).collect();
    assert_eq!(order, expected);
    for l in manifest.blobs() {
        assert_eq!(last[&l.digest], l.size);
    }
    assert!(layer_events.len() > 4, "the model's progress arrives in steps");
    let json = serde_json::to_value(&layer_events[0]).unwrap();
    assert_eq!(json["status"], format!("pulling {}", &manifest.layers[0].digest.hex()[..12]));
}

#[test]
fn a_hugging_face_pull_picks_the_quant_and_keeps_the_license() {
    let server = Server::start();
    let (q4, q8) = (payload(2 << 20, 2), payload(1 << 20, 3));
    let license = b"Apache License\nVersion 2.0, January 2004\n";
    server.publish_repo(
        "org/Tiny-GGUF",
        &[
            ("Tiny-Q4_K_M.gguf", &q4),
            ("Tiny-Q8_0.gguf", &q8),
            ("mmproj-Tiny-Q4_K_M.gguf", b"projector"),
            ("LICENSE", license),
            ("README.md", b"# Tiny"),
        ],
    );
    let dir = TempDir::new("hf");
    let store = Store::open(&dir.0).unwrap();
    let config = PullConfig { hf_token: Some("hf_secret".into()), ..server.config() };

    let latest = run(&store, "hf.co/org/Tiny-GGUF", &config).0.unwrap();
    let model = latest.manifest.layer(media::MODEL).unwrap();
    assert_eq!(std::fs::read(store.blob_path(&model.digest)).unwrap(), q4);
    let lic = latest.manifest.layer(media::LICENSE).unwrap();
    assert_eq!(store.read_blob_text(&lic.digest).unwrap().as_bytes(), license);
    let config_blob: ModelConfigBlob =
        serde_json::from_str(&store.read_blob_text(&latest.manifest.config.digest).unwrap()).unwrap();
    assert_eq!((config_blob.model_format.as_str(), config_blob.file_type.as_str()), ("gguf", "Q4_K_M"));
    assert!(dir.0.join("manifests/hf.co/org/Tiny-GGUF/latest").is_file());
    assert!(server.reg.hf_auth.lock().unwrap().iter().all(|a| a == "Bearer hf_secret"));

    let q8_model = run(&store, "hf.co/org/Tiny-GGUF:q8-0", &config).0.unwrap();
    assert_eq!(std::fs::read(store.blob_path(&q8_model.manifest.layers[0].digest)).unwrap(), q8);

    let err = run(&store, "hf.co/org/Tiny-GGUF:Q2_K", &config).0.unwrap_err().to_string();
    assert!(err.contains("Q2_K") && err.contains("Q4_K_M, Q8_0"), "{err}");
    let err = run(&store, "hf.co/org/Missing-GGUF:Q2_K", &config).0.unwrap_err().to_string();
    assert_eq!(err, "model 'hf.co/org/Missing-GGUF:Q2_K' not found");
    assert_eq!(store.list().len(), 2);
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_of_it_stays() {
    let server = Server::start();
    let (manifest, _) = publish_tiny(&server);
    let bad = manifest.layers[0].digest;
    server.faults().corrupt.insert(bad);
    let dir = TempDir::new("corrupt");
    let store = Store::open(&dir.0).unwrap();

    let err = run(&store, "tiny:1", &server.config()).0.unwrap_err();
    assert!(matches!(err, PullError::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&bad.to_string()) && msg.contains("got sha256:"), "{msg}");
    assert!(!store.has_blob(&bad));
    assert!(!blob_files(&store).iter().any(|f| f.contains(&bad.hex())), "{:?}", blob_files(&store));
    assert!(store.list().is_empty());
}

#[test]
fn an_interrupted_pull_resumes_with_only_the_missing_bytes() {
    let server = Server::start();
    let (manifest, weights) = publish_tiny(&server);
    let digest = manifest.layers[0].digest;
    let dir = TempDir::new("resume");
    let store = Store::open(&dir.0).unwrap();
    server.faults().drop_after = Some(100_000);

    let err = run(&store, "tiny:1", &server.config()).0.unwrap_err();
    assert!(matches!(err, PullError::Network { .. }), "{err}");
    assert!(err.to_string().contains(&format!("/cdn/{digest}")) || err.to_string().contains(&server.url), "{err}");
    assert!(store.partial_path(&digest).is_file() && !store.has_blob(&digest));
    assert!(store.list().is_empty());
    let first = server.served(&digest);
    assert!(first < weights.len() as u64);

    server.reset_served();
    run(&store, "tiny:1", &server.config()).0.unwrap();
    let second = server.served(&digest);
    assert_eq!(first + second, weights.len() as u64, "the second pull fetched only what the first lacked");
    assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), weights);
    assert!(!store.partial_path(&digest).exists());
}

#[test]
fn a_dropped_connection_is_retried_from_where_it_stopped() {
    let server = Server::start();
    let (manifest, weights) = publish_tiny(&server);
    let digest = manifest.layers[0].digest;
    let dir = TempDir::new("retry");
    let store = Store::open(&dir.0).unwrap();
    server.faults().drop_after = Some(100_000);

    run(&store, "tiny:1", &PullConfig { retries: 1, ..server.config() }).0.unwrap();
    assert_eq!(server.served(&digest), weights.len() as u64);
    assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), weights);
}

#[test]
fn a_cancelled_pull_stops_and_keeps_its_bytes_for_the_next() {
    let server = Server::start();
    let (manifest, weights) = publish_tiny(&server);
    let digest = manifest.layers[0].digest;
    server.faults().pace = Some(Duration::from_millis(5));
    let dir = TempDir::new("cancel");
    let store = Store::open(&dir.0).unwrap();

    let cancel = AtomicBool::new(false);
    let mut on_progress = |p: PullProgress| {
        if matches!(p, PullProgress::Layer { completed, .. } if completed > 0) {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let err = pull(&store, &name("tiny:1"), &server.config(), &mut on_progress, &cancel).unwrap_err();
    assert!(matches!(err, PullError::Cancelled), "{err}");
    assert!(store.partial_path(&digest).is_file() && !store.has_blob(&digest));
    assert!(store.list().is_empty());

    server.faults().pace = None;
    server.reset_served();
    let (result, events) = run(&store, "tiny:1", &server.config());
    result.unwrap();
    let resumed_from = events
        .iter()
        .find_map(|p| match p {
            PullProgress::Layer { digest: d, completed, .. } if *d == digest => Some(*completed),
            _ => None,
        })
        .unwrap();
    assert!(resumed_from > 0, "the cancelled pull's bytes were kept");
    assert_eq!(server.served(&digest), weights.len() as u64 - resumed_from, "only the missing bytes were fetched");
    assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), weights);
}

#[test]
fn blobs_already_stored_are_not_fetched_again() {
    let server = Server::start();
    let (first, weights) = publish_tiny(&server);
    let shared = first.layers[0].digest;
    let second = server.publish("me/tiny:2", &[(media::MODEL, &weights), (media::PARAMS, br#"{"temperature":0}"#)]);
    let dir = TempDir::new("skip");
    let store = Store::open(&dir.0).unwrap();
    run(&store, "tiny:1", &server.config()).0.unwrap();

    server.reset_served();
    let (result, events) = run(&store, "me/tiny:2", &server.config());
    assert_eq!(result.unwrap().manifest, second);
    assert_eq!(server.served(&shared), 0);
    let size = weights.len() as u64;
    let reports: Vec<&PullProgress> =
        events.iter().filter(|e| matches!(e, PullProgress::Layer { digest, .. } if *digest == shared)).collect();
    assert_eq!(reports, [&PullProgress::Layer { digest: shared, total: size, completed: size }]);
}

#[test]
fn concurrent_pulls_of_one_model_share_the_download() {
    let server = Server::start();
    let (manifest, weights) = publish_tiny(&server);
    let digest = manifest.layers[0].digest;
    server.faults().pace = Some(Duration::from_millis(1));
    let dir = TempDir::new("concurrent");
    let store = Store::open(&dir.0).unwrap();
    let config = server.config();

    let results: Vec<_> = std::thread::scope(|s| {
        let pulls: Vec<_> = (0..2).map(|_| s.spawn(|| run(&store, "tiny:1", &config).0)).collect();
        pulls.into_iter().map(|p| p.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap().manifest, manifest);
    }
    assert_eq!(server.served(&digest), weights.len() as u64);
    assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), weights);
}

#[test]
fn unknown_models_and_unreachable_registries_say_so() {
    let server = Server::start();
    let dir = TempDir::new("unknown");
    let store = Store::open(&dir.0).unwrap();
    let err = run(&store, "nope", &server.config()).0.unwrap_err();
    assert_eq!(err.to_string(), "model 'nope:latest' not found");

    // A port nothing listens on: bind one, then let it go.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = PullConfig { ollama_registry: format!("http://127.0.0.1:{port}"), ..server.config() };
    let err = run(&store, "nope", &config).0.unwrap_err().to_string();
    assert!(err.contains(&format!("http://127.0.0.1:{port}/v2/library/nope/manifests/latest")), "{err}");
}

#[test]
fn a_server_that_ignores_range_still_delivers() {
    let server = Server::start();
    let (manifest, weights) = publish_tiny(&server);
    server.faults().ignore_range = true;
    let dir = TempDir::new("norange");
    let store = Store::open(&dir.0).unwrap();
    run(&store, "tiny:1", &server.config()).0.unwrap();
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), weights);
}

/// A library directory on a small tmpfs of its own, so the disk can fill up for real. Mounting
/// needs root, which the test machines have; elsewhere set KILN_SKIP_MOUNT_TESTS=1.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(kib: u64) -> Option<SmallDisk> {
        let dir = TempDir::new("full-disk");
        std::fs::create_dir_all(&dir.0).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir.0)
            .output()
            .expect("running mount");
        if !out.status.success() {
            if std::env::var_os("KILN_SKIP_MOUNT_TESTS").is_some() {
                return None;
            }
            panic!(
                "mounting a tmpfs for the full-disk test failed (run as root, or set KILN_SKIP_MOUNT_TESTS=1): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(SmallDisk { dir })
    }

    fn grow(&self, kib: u64) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.dir.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir.0).output();
    }
}

#[test]
fn a_full_disk_fails_the_pull_clearly_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount(2048) else { return };
    let server = Server::start();
    let (manifest, weights) = publish_tiny(&server);
    let small = payload(100_000, 7);
    server.publish("library/small:1", &[(media::MODEL, &small)]);
    let store = Store::open(&disk.dir.0).unwrap();
    run(&store, "small:1", &server.config()).0.unwrap();

    // 3 MiB of weights do not fit in what is left of 2 MiB.
    let err = run(&store, "tiny:1", &server.config()).0.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains(&disk.dir.0.display().to_string()), "the error names the path: {text}");
    // The model already there is untouched; the new one is not listed.
    let names: Vec<String> = store.list().iter().map(|m| m.name.to_string()).collect();
    assert_eq!(names, ["small:1"]);
    let small_digest = store.find(&name("small:1")).unwrap().manifest.layers[0].digest;
    assert_eq!(std::fs::read(store.blob_path(&small_digest)).unwrap(), small);

    // With room made, the same pull completes with the right bytes.
    disk.grow(16 << 10);
    run(&store, "tiny:1", &server.config()).0.unwrap();
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), weights);
}
