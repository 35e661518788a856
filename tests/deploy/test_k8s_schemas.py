#!/usr/bin/env python3
"""Every Kubernetes manifest under deploy/k8s (subfolders included), and the
ConfigMaps that kustomize generates from them, against the API schemas of the
npm packages kubernetes-models, @kubernetes-models/keda and
@kubernetes-models/prometheus-operator: types, required fields and formats
(their JSON schemas) and unknown fields (TypeScript's excess-property check on
their interfaces). validate_k8s.mjs does the checking; this reads the YAML the
way kubectl does (YAML 1.1) and hands it over as JSON.

Environment: TALLY_SOURCE_DIR (the repository), TALLY_DEPLOY_NPM (where the
ctest fixture deploy.npm_ci installed package-lock.json), TALLY_DEPLOY_TMP."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TALLY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
K8S = os.path.join(SRC, "deploy", "k8s")
NPM = os.environ.get("TALLY_DEPLOY_NPM")

# kubectl apply (client side) keeps the whole object in an annotation limited
# to 256 KiB; a larger generated ConfigMap would only apply server side.
ANNOTATION_LIMIT = 262144


def manifests():
    """[(source, document)] for every object that `kubectl apply -k` would send."""
    out = []
    for root, dirs, files in os.walk(K8S):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, SRC)
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            for i, doc in enumerate(docs, 1):
                if str(doc.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"):
                    out += generated_config_maps(root, doc, rel)
                else:
                    out.append((f"{rel}#{i}", doc))
    return out


def generated_config_maps(root, kz, rel):
    """The ConfigMaps of a kustomization's configMapGenerator, as kustomize builds them."""
    out = []
    for gen in kz.get("configMapGenerator", []):
        opts = gen.get("options", {})
        data = {}
        for entry in gen.get("files", []):
            key, _, path = entry.rpartition("=")
            with open(os.path.join(root, path), encoding="utf-8") as f:
                data[key or os.path.basename(path)] = f.read()
        for entry in gen.get("literals", []):
            key, _, value = entry.partition("=")
            data[key] = value
        meta = {"name": gen["name"]}
        if opts.get("labels"):
            meta["labels"] = opts["labels"]
        out.append((f"{rel} configMapGenerator {gen['name']}",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}))
    return out


class Schemas(unittest.TestCase):
    def test_every_manifest_validates(self):
        self.assertTrue(NPM and os.path.isdir(os.path.join(NPM, "node_modules")),
                        "no npm packages: run through ctest (fixture deploy.npm_ci) "
                        "or set TALLY_DEPLOY_NPM")
        node = shutil.which("node")
        self.assertTrue(node, "node is missing (the machine's Node.js 20)")
        found = manifests()
        kinds = {d["kind"] for _, d in found}
        # The files this repository must ship; more are welcome and checked too.
        for kind in ("Deployment", "ConfigMap", "Service", "PodDisruptionBudget", "ScaledObject",
                     "Job", "NetworkPolicy", "PodMonitor", "PrometheusRule"):
            self.assertIn(kind, kinds)
        tmp = os.environ.get("TALLY_DEPLOY_TMP") or tempfile.gettempdir()
        os.makedirs(tmp, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=tmp, delete=False) as f:
            json.dump([{"source": s, "doc": d} for s, d in found], f)
        try:
            r = subprocess.run([node, os.path.join(HERE, "validate_k8s.mjs"), NPM, f.name],
                               capture_output=True, text=True, timeout=100)
        finally:
            os.unlink(f.name)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        self.assertEqual(r.returncode, 0, "manifests do not match their schemas (above)")
        self.assertIn(f"{len(found)} manifests checked, 0 problems", r.stdout)

    def test_generated_config_maps_fit_kubectl_apply(self):
        for source, doc in manifests():
            if "configMapGenerator" in source:
                size = len(json.dumps(doc).encode())
                self.assertLess(size, ANNOTATION_LIMIT, source)


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=[sys.argv[0]])
