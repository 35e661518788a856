#!/usr/bin/env python3
"""deploy/compose.yaml read by the tools that will run it: Debian's
docker-compose 1.29 (`docker-compose config`, which needs no Docker engine) and
the Compose specification's JSON schema, which Compose v2 (`docker compose`)
validates against (the copy shipped in the npm package dclint, installed by the
ctest fixture deploy.npm_ci).

Environment: TALLY_SOURCE_DIR (the repository), TALLY_DEPLOY_NPM (the fixture's
install)."""

import json
import os
import shutil
import subprocess
import sys
import unittest

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TALLY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
COMPOSE = os.path.join(SRC, "deploy", "compose.yaml")
NPM = os.environ.get("TALLY_DEPLOY_NPM")
PASSWORDS = ("POSTGRES_PASSWORD", "TALLY_OWNER_PASSWORD", "TALLY_WORKER_PASSWORD")


def compose_v1(*args, env=None):
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing (Debian package docker-compose: scripts/install-deps.sh)"
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("COMPOSE_", "DOCKER_")) and k not in PASSWORDS}
    return subprocess.run([tool, "--project-directory", os.path.dirname(COMPOSE), "-f", COMPOSE,
                           *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


class DockerCompose129(unittest.TestCase):
    def test_config_is_accepted(self):
        r = compose_v1("config", env={p: "not-a-secret" for p in PASSWORDS})
        self.assertEqual(r.returncode, 0, r.stderr)
        config = yaml.safe_load(r.stdout)
        self.assertEqual(set(config["services"]),
                         {"kafka", "kafka-topics", "postgres", "migrate", "worker"})
        self.assertIn("postgresql://tally_worker:not-a-secret@postgres:5432/tally",
                      config["services"]["worker"]["environment"]["DATABASE_URL"])
        # Fixed volume names: the data stays whichever project name is in use.
        self.assertEqual({v["name"] for v in config["volumes"].values()},
                         {"tally_kafka-data", "tally_pg-data"})

    def test_passwords_are_required(self):
        r = compose_v1("config", "--quiet", env={"TALLY_OWNER_PASSWORD": "x",
                                                 "TALLY_WORKER_PASSWORD": "x"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("set POSTGRES_PASSWORD in deploy/.env", r.stderr)

    def test_env_example_works_as_env_file(self):
        """The example, copied to deploy/.env, is a valid --env-file that names the project."""
        r = compose_v1("--env-file", os.path.join(SRC, "deploy", "tally.env.example"),
                       "config", "--quiet", env={p: "x" for p in PASSWORDS})
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(SRC, "deploy", "tally.env.example"), encoding="utf-8") as f:
            self.assertIn("\nCOMPOSE_PROJECT_NAME=tally\n", f.read())


class ComposeSpec(unittest.TestCase):
    def test_matches_the_compose_specification(self):
        self.assertTrue(NPM, "TALLY_DEPLOY_NPM is not set: run through ctest (fixture deploy.npm_ci)")
        with open(os.path.join(NPM, "node_modules", "dclint", "schemas", "compose.schema.json"),
                  encoding="utf-8") as f:
            schema = json.load(f)
        self.assertIn("name", schema["properties"])  # a current edition of the specification
        with open(COMPOSE, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        self.assertFalse(errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors))

    def test_schema_catches_a_misspelt_key(self):
        with open(os.path.join(NPM or "", "node_modules", "dclint", "schemas",
                               "compose.schema.json"), encoding="utf-8") as f:
            schema = json.load(f)
        with open(COMPOSE, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        doc["services"]["worker"]["stop_grace_periode"] = "35s"
        self.assertTrue(list(jsonschema.Draft7Validator(schema).iter_errors(doc)))


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=[sys.argv[0]])
