#!/usr/bin/env python3
"""Checks the PgBouncer example (deploy/pgbouncer/, deploy/compose.pgbouncer.yaml,
deploy/k8s/pgbouncer/): the settings that work for Tally (transaction pooling,
and the workers with TALLY_PREPARED_STATEMENTS=off since PgBouncer 1.18 keeps
no prepared statements), and that the files agree with each other (port, uid,
paths, names) and with the base manifests they extend. Reads the files only;
no Docker engine or cluster. Environment: TALLY_SOURCE_DIR (the repository)."""

import configparser
import os
import re
import subprocess
import unittest

import yaml

SRC = os.environ.get("TALLY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SRC, "deploy")


def read(*parts):
    with open(os.path.join(DEPLOY, *parts), encoding="utf-8") as f:
        return f.read()


def docs(*parts):
    return [d for d in yaml.safe_load_all(read(*parts)) if d is not None]


def ini():
    """pgbouncer.ini as (the %include paths, the [pgbouncer] section)."""
    text = read("pgbouncer", "pgbouncer.ini")
    includes = re.findall(r"^%include\s+(\S+)\s*$", text, re.M)
    cp = configparser.ConfigParser(comment_prefixes=(";", "#"), interpolation=None)
    cp.read_string("\n".join(l for l in text.splitlines() if not l.startswith("%include")))
    return includes, cp["pgbouncer"]


def dockerfile_uid():
    m = re.search(r"^USER\s+(\d+):(\d+)\s*$", read("pgbouncer", "Dockerfile"), re.M)
    assert m, "deploy/pgbouncer/Dockerfile: USER uid:gid, numeric"
    return int(m.group(1)), int(m.group(2))


class PgBouncerIni(unittest.TestCase):
    def test_transaction_pooling_without_prepared_statements(self):
        _, p = ini()
        self.assertEqual(p["pool_mode"], "transaction")
        # 1.18 does not know max_prepared_statements: the workers go unnamed.
        self.assertNotIn("max_prepared_statements", p)
        self.assertEqual(p["reserve_pool_size"], "0")
        self.assertLessEqual(int(p["default_pool_size"]), int(p["max_client_conn"]))

    def test_entrypoint_writes_what_the_ini_reads(self):
        includes, p = ini()
        ep = read("pgbouncer", "entrypoint.sh")
        self.assertIn("dir=/run/pgbouncer", ep)
        self.assertEqual(includes, ["/run/pgbouncer/databases.ini"])
        self.assertEqual(p["auth_file"], "/run/pgbouncer/userlist.txt")
        self.assertIn('"$dir/databases.ini"', ep)
        self.assertIn('"$dir/userlist.txt"', ep)
        self.assertIn("exec pgbouncer /etc/pgbouncer/pgbouncer.ini", ep)
        subprocess.run(["sh", "-n", os.path.join(DEPLOY, "pgbouncer", "entrypoint.sh")],
                       check=True)

    def test_image_is_debian_12_and_not_root(self):
        df = read("pgbouncer", "Dockerfile")
        self.assertRegex(df, re.compile(r"^FROM debian:12", re.M), "the PgBouncer tests use")
        self.assertIn("install -y --no-install-recommends pgbouncer", df)
        for src in re.findall(r"^COPY\s+(\S+)\s+\S+\s*$", df, re.M):
            self.assertTrue(os.path.exists(os.path.join(SRC, src)), src)
            self.assertIn("!" + src, read("pgbouncer", "Dockerfile.dockerignore"))
        uid, gid = dockerfile_uid()
        self.assertNotEqual(uid, 0)
        self.assertIn(f"install -d -o {uid} -g {gid}", df)


class Compose(unittest.TestCase):
    def setUp(self):
        (self.c,) = docs("compose.pgbouncer.yaml")
        self.s = self.c["services"]
        (self.base,) = docs("compose.yaml")

    def test_workers_go_through_the_pooler_unnamed(self):
        w = self.s["worker"]["environment"]
        self.assertEqual(w["TALLY_PREPARED_STATEMENTS"], "off")
        _, p = ini()
        self.assertIn(f"@pgbouncer:{p['listen_port']}/tally", w["DATABASE_URL"])
        self.assertIn("worker", self.base["services"])
        self.assertIn("postgres", self.s["pgbouncer"]["depends_on"])
        self.assertIn("pgbouncer", self.s["worker"]["depends_on"])

    def test_pgbouncer_service(self):
        pb = self.s["pgbouncer"]
        self.assertEqual(pb["build"]["dockerfile"], "deploy/pgbouncer/Dockerfile")
        self.assertEqual(pb["environment"]["PGBOUNCER_DB_HOST"], "postgres")
        _, p = ini()
        self.assertEqual(pb["expose"], [p["listen_port"]])
        self.assertTrue(pb["read_only"])
        uid, gid = dockerfile_uid()
        self.assertEqual(pb["tmpfs"], [f"/run/pgbouncer:uid={uid},gid={gid},mode=0700"])
        self.assertGreater(pb["ulimits"]["nofile"]["soft"], int(p["max_client_conn"]))

    def test_no_literal_passwords(self):
        text = read("compose.pgbouncer.yaml")
        for m in re.finditer(r"postgresql://[^:]+:([^@]+)@", text):
            self.assertTrue(m.group(1).startswith("${"), m.group(0))
        self.assertIn("${TALLY_WORKER_PASSWORD:?", text)


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.k = docs("k8s", "pgbouncer", "kustomization.yaml")[0]
        (self.d,) = docs("k8s", "pgbouncer", "deployment.yaml")
        (self.c,) = self.d["spec"]["template"]["spec"]["containers"]

    def test_overlay_of_the_base(self):
        self.assertIn("..", self.k["resources"])
        for name in self.k["resources"] + [p["path"] for p in self.k["patches"]]:
            if name != "..":
                self.assertTrue(os.path.exists(os.path.join(DEPLOY, "k8s", "pgbouncer", name)))
        base = docs("k8s", "kustomization.yaml")[0]
        self.assertNotIn("pgbouncer", base["resources"], "the overlay includes the base, not back")

    def test_workers_unnamed(self):
        (patch,) = docs("k8s", "pgbouncer", "worker-config.yaml")
        (cm,) = docs("k8s", "configmap.yaml")
        self.assertEqual(patch["metadata"]["name"], cm["metadata"]["name"])
        self.assertEqual(patch["data"], {"TALLY_PREPARED_STATEMENTS": "off"})

    def test_port_uid_and_mounts_agree(self):
        _, p = ini()
        (port,) = self.c["ports"]
        self.assertEqual(port["containerPort"], int(p["listen_port"]))
        (svc,) = docs("k8s", "pgbouncer", "service.yaml")
        self.assertEqual(svc["spec"]["ports"][0]["port"], int(p["listen_port"]))
        self.assertEqual(svc["spec"]["selector"], self.d["spec"]["selector"]["matchLabels"])
        sc = self.d["spec"]["template"]["spec"]["securityContext"]
        uid, gid = dockerfile_uid()
        self.assertEqual((sc["runAsUser"], sc["runAsGroup"]), (uid, gid))
        self.assertTrue(sc["runAsNonRoot"])
        self.assertTrue(self.c["securityContext"]["readOnlyRootFilesystem"])
        (mount,) = self.c["volumeMounts"]
        self.assertEqual(mount["mountPath"], "/run/pgbouncer")

    def test_password_from_a_secret(self):
        pw = [e for e in self.c["env"] if e["name"] == "TALLY_WORKER_PASSWORD"]
        self.assertEqual(len(pw), 1)
        self.assertIn("secretKeyRef", pw[0]["valueFrom"])
        for name in os.listdir(os.path.join(DEPLOY, "k8s", "pgbouncer")):
            for d in docs("k8s", "pgbouncer", name):
                self.assertNotEqual(d.get("kind"), "Secret", name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
