#!/usr/bin/env python3
"""Checks deploy/: every YAML parses, and the files keep their promises to each
other and to CONTRACT.md (probes on the right paths, grace periods longer than
the shutdown timeout, replicas capped at the partition count, non-root, no
committed secrets, an environment example covering every setting).

No Docker engine or cluster is needed: this reads the files. Environment:
TALLY_SOURCE_DIR (the repository), TALLY_CONTRACT (CONTRACT.md; default: the
first shared/CONTRACT.md beside the repository or one of its parents), TALLY_WORKER_BIN (optional: its
--help lists the worker's settings)."""

import configparser
import os
import re
import subprocess
import sys
import unittest

import yaml

SRC = os.environ.get("TALLY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SRC, "deploy")


def read(*parts):
    with open(os.path.join(DEPLOY, *parts), encoding="utf-8") as f:
        return f.read()


def load_all(*parts):
    return [d for d in yaml.safe_load_all(read(*parts)) if d is not None]


def k8s(kind):
    """The one manifest of this kind under deploy/k8s."""
    found = []
    for name in sorted(os.listdir(os.path.join(DEPLOY, "k8s"))):
        if name.endswith(".yaml"):
            found += [d for d in load_all("k8s", name) if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def env_example():
    """VARIABLE → value for every assignment, commented or not."""
    out = {}
    for n, line in enumerate(read("tally.env.example").splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        m = re.match(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", s)
        if m:
            out[m.group(1)] = m.group(2)
        else:
            assert s.startswith("#"), f"tally.env.example:{n}: neither a comment nor VAR=value"
    return out


def shutdown_timeout_ms():
    return int(k8s("ConfigMap")["data"]["TALLY_SHUTDOWN_TIMEOUT_MS"])


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(text).strip())
    assert m, f"not a duration: {text}"
    v = int(m.group(1))
    return {"ms": v / 1000, "s": v, None: v, "m": v * 60}[m.group(2)]


class YamlParses(unittest.TestCase):
    def test_every_yaml_parses(self):
        n = 0
        for root, _, files in os.walk(DEPLOY):
            for name in files:
                if name.endswith((".yaml", ".yml")):
                    docs = load_all(os.path.relpath(os.path.join(root, name), DEPLOY))
                    self.assertTrue(docs, name)
                    n += 1
        self.assertGreaterEqual(n, 8)


class Dockerfile(unittest.TestCase):
    def setUp(self):
        self.text = read("Dockerfile")
        self.stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", self.text, re.M | re.I)

    def stage(self, name):
        parts = re.split(r"^FROM\s", self.text, flags=re.M)[1:]
        for body, (_, n) in zip(parts, self.stages):
            if n == name:
                return body
        self.fail(f"no stage {name}")

    def test_multi_stage_on_debian_12(self):
        self.assertGreaterEqual(len(self.stages), 3)
        self.assertEqual(self.stages[0], ("debian:12", "build"))
        self.assertIn("-dev", self.stage("build"))
        self.assertEqual(self.stages[-1][1], "worker")  # the default target

    def test_runtime_is_small_and_non_root(self):
        base = self.stage("base")
        self.assertTrue(base.startswith("debian:12-slim"))
        self.assertNotIn("-dev", base)
        self.assertNotIn("build-essential", base)
        for lib in ("libpq5", "librdkafka1", "libjansson4", "libuv1"):
            self.assertIn(lib, base)
        users = re.findall(r"^USER\s+(\S+)", base, re.M)
        self.assertTrue(users)
        self.assertNotIn(users[-1].split(":")[0], ("0", "root"))
        self.assertRegex(base, r"COPY --from=build \S*tally-worker \S*tallyctl")
        self.assertRegex(base, r"COPY migrations ")
        for stage in ("migrate", "worker"):  # every final stage ends non-root
            users = re.findall(r"^USER\s+(\S+)", self.stage(stage), re.M)
            if users:
                self.assertNotIn(users[-1].split(":")[0], ("0", "root"))

    def test_healthcheck_is_liveness(self):
        worker = self.stage("worker")
        self.assertRegex(worker, r"HEALTHCHECK .*\n?.*tallyctl\", \"health\", \"--live\"")
        self.assertIn("ENTRYPOINT [\"/usr/local/bin/tally-worker\"]", worker)

    def test_dockerignore_keeps_the_context_small(self):
        ignore = read("Dockerfile.dockerignore").split()
        self.assertEqual(ignore[ignore.index("*")], "*")
        for path in re.findall(r"^COPY (?!--from)(\S+)", self.text, re.M):
            self.assertTrue(any(p.lstrip("!").rstrip("/") == path.rstrip("/") for p in ignore
                                if p.startswith("!")), f"{path} is ignored")

    def test_migrate_script_is_valid_sh(self):
        subprocess.run(["sh", "-n", os.path.join(DEPLOY, "migrate.sh")], check=True)
        subprocess.run(["sh", "-n", os.path.join(DEPLOY, "postgres-init.sh")], check=True)
        self.assertTrue(os.access(os.path.join(DEPLOY, "migrate.sh"), os.X_OK))


class Compose(unittest.TestCase):
    def setUp(self):
        (self.c,) = load_all("compose.yaml")
        self.s = self.c["services"]

    def test_kafka_is_kraft(self):
        k = self.s["kafka"]
        self.assertTrue(k["image"].startswith("apache/kafka:"))
        roles = set(k["environment"]["KAFKA_PROCESS_ROLES"].split(","))
        self.assertEqual(roles, {"broker", "controller"})
        self.assertNotIn("zookeeper", yaml.safe_dump(self.c).lower())
        self.assertIn("healthcheck", k)

    def test_topics_are_created(self):
        t = self.s["kafka-topics"]
        script = " ".join(t["command"])
        for topic in ("tally.requests", "tally.results", "tally.audit", "tally.dlq"):
            self.assertIn(topic, script)
        self.assertEqual(t["depends_on"]["kafka"]["condition"], "service_healthy")

    def test_postgres_15_and_owner_role(self):
        pg = self.s["postgres"]
        self.assertEqual(pg["image"], "postgres:15")
        init = read("postgres-init.sh")
        self.assertIn("CREATEROLE", init)
        self.assertNotIn("SUPERUSER", init.replace("superuser", ""))

    def test_migrate_is_one_shot_as_owner(self):
        m = self.s["migrate"]
        self.assertEqual(m["restart"], "no")
        self.assertEqual(m["build"]["target"], "migrate")
        self.assertIn("tally_owner", m["environment"]["MIGRATION_DATABASE_URL"])
        self.assertIn("TALLY_WORKER_PASSWORD", m["environment"])
        script = read("migrate.sh")
        self.assertIn("tallyctl migrate", script)
        self.assertIn("GRANT tally_app TO", script)

    def test_worker_scales_and_drains(self):
        w = self.s["worker"]
        self.assertEqual(w["depends_on"]["migrate"]["condition"],
                         "service_completed_successfully")
        self.assertNotIn("ports", w)  # a fixed host port would stop --scale
        self.assertNotIn("container_name", w)
        self.assertIn("tally_worker", w["environment"]["DATABASE_URL"])
        self.assertNotIn("tally_owner", w["environment"]["DATABASE_URL"])
        default = re.search(r":-(\d+)", w["environment"]["TALLY_SHUTDOWN_TIMEOUT_MS"])
        self.assertGreater(duration_s(w["stop_grace_period"]), int(default.group(1)) / 1000)

    def test_no_literal_passwords(self):
        text = read("compose.yaml")
        for m in re.finditer(r"postgresql://[^:]+:([^@]+)@", text):
            self.assertTrue(m.group(1).startswith("${"), m.group(0))
        self.assertIn("${POSTGRES_PASSWORD:?", text)

    def test_partitions_bound_keda(self):
        default = int(re.search(r"\$\{TALLY_PARTITIONS:-(\d+)\}",
                                yaml.safe_dump(self.s["kafka-topics"])).group(1))
        so = k8s("ScaledObject")
        self.assertEqual(int(so["metadata"]["annotations"]["tally.dev/request-partitions"]),
                         default)


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.d = k8s("Deployment")
        self.pod = self.d["spec"]["template"]["spec"]
        (self.c,) = self.pod["containers"]

    def test_probes_on_the_right_paths(self):
        port = self.c["ports"][0]
        self.assertEqual(self.c["livenessProbe"]["httpGet"]["path"], "/livez")
        self.assertEqual(self.c["readinessProbe"]["httpGet"]["path"], "/readyz")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.assertIn(self.c[probe]["httpGet"]["port"], (port["name"], port["containerPort"]))
        addr = k8s("ConfigMap")["data"]["TALLY_HTTP_ADDR"]
        self.assertEqual(int(addr.rsplit(":", 1)[1]), port["containerPort"])
        self.assertTrue(addr.startswith("0.0.0.0:"))  # reachable by the kubelet

    def test_grace_longer_than_shutdown_timeout(self):
        self.assertGreater(self.pod["terminationGracePeriodSeconds"] * 1000,
                           shutdown_timeout_ms())

    def test_autoscaler_owns_the_replica_count(self):
        # A count here would reset KEDA's on every kubectl apply (issue 15).
        self.assertNotIn("replicas", self.d["spec"])

    def test_rollout_surges_and_never_drops_below_the_count(self):
        ru = self.d["spec"]["strategy"]["rollingUpdate"]
        self.assertEqual(ru["maxUnavailable"], 0)
        surge = ru["maxSurge"]
        self.assertTrue(surge >= 1 if isinstance(surge, int) else re.fullmatch(r"[1-9]\d*%", surge))
        self.assertGreater(self.d["spec"]["progressDeadlineSeconds"], self.pod[
            "terminationGracePeriodSeconds"] + self.d["spec"].get("minReadySeconds", 0))

    def test_resources_and_non_root(self):
        r = self.c["resources"]
        for k in ("cpu", "memory"):
            self.assertIn(k, r["requests"])
            self.assertIn(k, r["limits"])
        self.assertTrue(self.pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(self.pod["securityContext"]["runAsUser"], 0)
        self.assertFalse(self.c["securityContext"]["allowPrivilegeEscalation"])
        self.assertTrue(self.c["securityContext"]["readOnlyRootFilesystem"])

    def test_config_and_secret_references(self):
        (ref,) = self.c["envFrom"]
        self.assertEqual(ref["configMapRef"]["name"], k8s("ConfigMap")["metadata"]["name"])
        db = [e for e in self.c["env"] if e["name"] == "DATABASE_URL"]
        self.assertEqual(len(db), 1)
        self.assertIn("secretKeyRef", db[0]["valueFrom"])
        self.assertNotIn("DATABASE_URL", k8s("ConfigMap")["data"])

    def test_no_secret_committed(self):
        for name in os.listdir(os.path.join(DEPLOY, "k8s")):
            if name.endswith(".yaml"):
                for d in load_all("k8s", name):
                    self.assertNotEqual(d.get("kind"), "Secret", name)

    def test_pdb_selects_the_workers_and_cannot_block_drains(self):
        pdb = k8s("PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"],
                         self.d["spec"]["selector"]["matchLabels"])
        # maxUnavailable follows the autoscaler's count; a fixed minAvailable does not.
        self.assertNotIn("minAvailable", pdb["spec"])
        self.assertGreaterEqual(pdb["spec"]["maxUnavailable"], 1)
        # At KEDA's minimum a drain still leaves a worker running.
        self.assertLess(pdb["spec"]["maxUnavailable"], k8s("ScaledObject")["spec"]["minReplicaCount"])
        # Unready workers (database down) can be evicted: they hold no budget hostage.
        self.assertEqual(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow")

    def test_keda_scales_on_lag_capped_at_partitions(self):
        so = k8s("ScaledObject")
        cm = k8s("ConfigMap")["data"]
        self.assertEqual(so["spec"]["scaleTargetRef"]["name"], self.d["metadata"]["name"])
        partitions = int(so["metadata"]["annotations"]["tally.dev/request-partitions"])
        self.assertLessEqual(so["spec"]["maxReplicaCount"], partitions)
        self.assertGreaterEqual(so["spec"]["minReplicaCount"], 1)
        (t,) = so["spec"]["triggers"]
        self.assertEqual(t["type"], "kafka")
        self.assertEqual(t["metadata"]["consumerGroup"], cm["TALLY_GROUP_ID"])
        self.assertEqual(t["metadata"]["topic"], cm["TALLY_REQUEST_TOPIC"])
        self.assertEqual(t["metadata"]["bootstrapServers"], cm["KAFKA_BOOTSTRAP_SERVERS"])
        self.assertEqual(t["metadata"]["allowIdleConsumers"], "false")

    def test_migrate_job(self):
        job = k8s("Job")
        spec = job["spec"]["template"]["spec"]
        self.assertEqual(spec["restartPolicy"], "Never")
        self.assertTrue(spec["securityContext"]["runAsNonRoot"])
        (c,) = spec["containers"]
        self.assertTrue(any("secretRef" in e for e in c["envFrom"]))

    def test_kustomization_lists_the_worker_manifests(self):
        (kz,) = load_all("k8s", "kustomization.yaml")
        for f in kz["resources"]:
            self.assertTrue(os.path.exists(os.path.join(DEPLOY, "k8s", f)), f)
        # Every manifest beside it, except the Job applied on its own before.
        for f in os.listdir(os.path.join(DEPLOY, "k8s")):
            if f.endswith(".yaml") and f not in ("kustomization.yaml", "migrate-job.yaml"):
                self.assertIn(f, kz["resources"])
        self.assertNotIn("migrate-job.yaml", kz["resources"])

    def test_network_policy(self):
        np = k8s("NetworkPolicy")["spec"]
        cm = k8s("ConfigMap")["data"]
        self.assertEqual(np["podSelector"]["matchLabels"], self.d["spec"]["selector"]["matchLabels"])
        self.assertEqual(sorted(np["policyTypes"]), ["Egress", "Ingress"])
        # In: the HTTP port only, from the monitoring namespace only (kubelet
        # probes come from the node, which a NetworkPolicy does not filter).
        (rule,) = np["ingress"]
        (port,) = rule["ports"]
        self.assertIn(port["port"], (self.c["ports"][0]["name"], self.c["ports"][0]["containerPort"]))
        (peer,) = rule["from"]
        self.assertEqual(list(peer), ["namespaceSelector"])
        # Out: DNS over UDP and TCP, PostgreSQL, and the Kafka bootstrap port.
        out = {(p.get("protocol", "TCP"), p["port"]) for r in np["egress"] for p in r["ports"]}
        self.assertTrue({("UDP", 53), ("TCP", 53), ("TCP", 5432)} <= out, out)
        for server in cm["KAFKA_BOOTSTRAP_SERVERS"].split(","):
            host, port = server.rsplit(":", 1)
            self.assertIn(("TCP", int(port)), out)
            if host.endswith(".svc") or ".svc." in host:  # in-cluster: to its namespace
                peers = [peer.get("namespaceSelector", {}).get("matchLabels", {})
                         for r in np["egress"] if any(p["port"] == int(port) for p in r["ports"])
                         for peer in r.get("to", [])]
                self.assertIn({"kubernetes.io/metadata.name": host.split(".")[1]}, peers)
        self.assertEqual(len(out), 4, "egress beyond DNS, PostgreSQL and Kafka")


class Monitoring(unittest.TestCase):
    def setUp(self):
        self.mon = os.path.join(DEPLOY, "k8s", "monitoring")
        (self.kz,) = load_all("k8s", "monitoring", "kustomization.yaml")
        self.d = k8s("Deployment")

    def test_kustomization_lists_every_file(self):
        listed = set(self.kz["resources"])
        listed |= {f for g in self.kz["configMapGenerator"] for f in g["files"]}
        self.assertEqual(listed, set(os.listdir(self.mon)) - {"kustomization.yaml"})
        (gen,) = self.kz["configMapGenerator"]
        self.assertEqual(gen["options"]["labels"]["grafana_dashboard"], "1")

    def test_pod_monitor_scrapes_the_workers_as_job_tally_worker(self):
        (pm,) = load_all("k8s", "monitoring", "podmonitor.yaml")
        spec = pm["spec"]
        labels = self.d["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(spec["selector"]["matchLabels"], self.d["spec"]["selector"]["matchLabels"])
        self.assertEqual(labels[spec["jobLabel"]], "tally-worker")
        (ep,) = spec["podMetricsEndpoints"]
        (c,) = self.d["spec"]["template"]["spec"]["containers"]
        self.assertEqual(ep["port"], c["ports"][0]["name"])
        self.assertEqual(ep["path"], "/metrics")
        # The rules select the job the PodMonitor produces.
        self.assertIn('job="tally-worker"', read("k8s", "monitoring", "prometheusrule.yaml"))


class Systemd(unittest.TestCase):
    def setUp(self):
        p = configparser.ConfigParser(strict=False, interpolation=None)
        p.optionxform = str
        p.read_string(read("systemd", "tally-worker.service"))
        self.s = p["Service"]

    def test_hardened(self):
        self.assertTrue(self.s.get("DynamicUser") == "yes" or self.s.get("User") not in (None,
                                                                                      "root"))
        self.assertEqual(self.s["NoNewPrivileges"], "yes")
        self.assertIn(self.s["ProtectSystem"], ("strict", "full"))
        self.assertEqual(self.s["Restart"], "on-failure")
        self.assertEqual(self.s["CapabilityBoundingSet"], "")

    def test_environment_file_and_stop_timeout(self):
        self.assertTrue(self.s["EnvironmentFile"].lstrip("-").startswith("/"))
        self.assertGreater(duration_s(self.s["TimeoutStopSec"]),
                           int(env_example().get("TALLY_SHUTDOWN_TIMEOUT_MS")) / 1000)
        self.assertEqual(self.s["KillSignal"], "SIGTERM")


def unit_file(name):
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read_string(read("systemd", name))
    return p


class ScheduledPayouts(unittest.TestCase):
    """`tallyctl payouts due` for each schedule, daily (a later run in the
    same period is a replay), as a CronJob and as a systemd timer."""

    def test_cronjob(self):
        cj = k8s("CronJob")
        (kz,) = load_all("k8s", "kustomization.yaml")
        self.assertIn("payouts-cronjob.yaml", kz["resources"])
        spec = cj["spec"]
        self.assertEqual(len(spec["schedule"].split()), 5)
        self.assertEqual(spec["timeZone"], "Etc/UTC")  # periods are UTC
        self.assertEqual(spec["concurrencyPolicy"], "Forbid")
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        self.assertIn(pod["restartPolicy"], ("Never", "OnFailure"))
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        (c,) = pod["containers"]
        script = " ".join(c.get("command", []) + c.get("args", []))
        self.assertIn("tallyctl payouts due --schedule", script)
        for schedule in ("daily", "weekly", "monthly"):
            self.assertIn(schedule, script)
        refs = c["envFrom"]
        self.assertIn({"configMapRef": {"name": k8s("ConfigMap")["metadata"]["name"]}}, refs)
        secrets = [r["secretRef"]["name"] for r in refs if "secretRef" in r]
        self.assertEqual(len(secrets), 1)
        self.assertNotEqual(secrets[0], "tally-worker-db")  # its own role, not the worker's
        self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])

    def test_systemd_timer(self):
        timer = unit_file("tally-payouts.timer")["Timer"]
        self.assertTrue(timer["OnCalendar"].endswith("UTC"))
        self.assertEqual(timer["Persistent"], "true")
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, "systemd", timer["Unit"])))
        s = unit_file(timer["Unit"])["Service"]
        self.assertEqual(s["Type"], "oneshot")
        self.assertIn("tallyctl payouts due --schedule", s["ExecStart"])
        for schedule in ("daily", "weekly", "monthly"):
            self.assertIn(schedule, s["ExecStart"])
        self.assertTrue(s["EnvironmentFile"].lstrip("-").startswith("/"))
        self.assertEqual(s["DynamicUser"], "yes")
        self.assertEqual(s["NoNewPrivileges"], "yes")
        self.assertEqual(s["ProtectSystem"], "strict")
        self.assertEqual(s["CapabilityBoundingSet"], "")
        self.assertIn("PAYOUTS_DATABASE_URL", env_example())


class EnvExample(unittest.TestCase):
    def test_covers_every_contract_setting(self):
        path = os.environ.get("TALLY_CONTRACT")
        d = SRC
        while path is None and os.path.dirname(d) != d:  # shared/ sits beside a parent
            d = os.path.dirname(d)
            if os.path.exists(os.path.join(d, "shared", "CONTRACT.md")):
                path = os.path.join(d, "shared", "CONTRACT.md")
        if path is None:
            # A user's clone has no shared/ beside it; the --help check below
            # still ties the example to the settings the worker really reads.
            self.skipTest("CONTRACT.md not found (set TALLY_CONTRACT)")
        with open(path, encoding="utf-8") as f:
            contract = f.read()
        named = set(re.findall(r"\bTALLY_[A-Z_]+[A-Z]\b", contract))
        named |= {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "MIGRATION_DATABASE_URL"}
        self.assertGreaterEqual(len(named), 10)
        missing = named - set(env_example())
        self.assertFalse(missing, f"tally.env.example lacks {sorted(missing)}")

    def test_covers_every_worker_setting(self):
        worker = os.environ.get("TALLY_WORKER_BIN")
        if not worker or not os.access(worker, os.X_OK):
            self.skipTest("no TALLY_WORKER_BIN")
        r = subprocess.run([worker, "--help"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            self.skipTest("tally-worker --help is not available in this build")
        named = set(re.findall(r"\b(TALLY_[A-Z_]+[A-Z]|DATABASE_URL)\b", r.stdout + r.stderr))
        self.assertTrue(named)
        missing = named - set(env_example())
        self.assertFalse(missing, f"tally.env.example lacks {sorted(missing)}")

    def test_defaults_agree_with_the_other_files(self):
        env = env_example()
        cm = k8s("ConfigMap")["data"]
        for k, v in cm.items():
            if k.startswith("TALLY_") and k != "TALLY_HTTP_ADDR":
                self.assertEqual(env.get(k), v, k)

    def test_no_real_secrets(self):
        for k, v in env_example().items():
            if "PASSWORD" in k:
                self.assertEqual(v, "CHANGE_ME", k)
            for m in re.finditer(r"://[^:/@]+:([^@]+)@", v):
                self.assertEqual(m.group(1), "CHANGE_ME", k)


if __name__ == "__main__":
    unittest.main(verbosity=1, argv=[sys.argv[0]])
