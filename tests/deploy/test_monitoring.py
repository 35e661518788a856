#!/usr/bin/env python3
"""The monitoring under deploy/k8s/monitoring: the PrometheusRule's rules pass
`promtool check rules` and the unit tests of rules.test.yaml (`promtool test
rules`), each alert with a case that fires and one that stays quiet, a
severity, and a runbook entry in docs/OPERATIONS.md; the Grafana dashboard
parses, its queries pass promtool's parser, its panels do not overlap; and
every metric name that the rules and the dashboard use is in the metrics table
of docs/OPERATIONS.md, whose names src/ renders (except those still
listed in metrics-pending.txt).

Environment: TALLY_SOURCE_DIR (the repository), TALLY_DEPLOY_TMP (scratch)."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TALLY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
MON = os.path.join(SRC, "deploy", "k8s", "monitoring")
OPERATIONS = os.path.join(SRC, "docs", "OPERATIONS.md")
JOB = 'job="tally-worker"'

# Series that come from elsewhere than the worker, and who provides them.
EXTERNAL = {
    "up": "Prometheus itself",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    "kube_deployment_status_condition": "kube-state-metrics",
}
PROMQL_WORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
                "group_left", "group_right", "inf", "nan", "atan2"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rules():
    (doc,) = [d for d in yaml.safe_load_all(read(os.path.join(MON, "prometheusrule.yaml"))) if d]
    return doc["spec"]


def all_rules():
    return [r for g in rules()["groups"] for r in g["rules"]]


def alerts():
    return {r["alert"]: r for r in all_rules() if "alert" in r}


def dashboard():
    return json.loads(read(os.path.join(MON, "tally-worker-dashboard.json")))


def dashboard_exprs():
    """[(panel title, expr)] of every query target."""
    out = []
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return out


def metric_names(expr):
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"\{[^}]*\}", " ", e)   # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[0-9][0-9a-zA-Z_.]*|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if m.group(1) and not m.group(2) and m.group(1) not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def grafana_to_promql(expr):
    """A dashboard query with Grafana's variables replaced by something PromQL parses."""
    e = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    return re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", e)


def docs_metrics():
    """name → type from the metrics table of docs/OPERATIONS.md."""
    out = {}
    for line in read(OPERATIONS).splitlines():
        m = re.match(r"^\|\s*`((?:tally|process)_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def allowed_names():
    names = set(EXTERNAL) | {r["record"] for r in all_rules() if "record" in r}
    for name, kind in docs_metrics().items():
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def promtool(*args, cwd=None):
    tool = shutil.which("promtool")
    assert tool, "promtool is missing (Debian package prometheus: scripts/install-deps.sh)"
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def scratch():
    base = os.environ.get("TALLY_DEPLOY_TMP")
    if base:
        os.makedirs(base, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=base)


class Rules(unittest.TestCase):
    def test_promtool_check_and_unit_tests(self):
        with scratch() as d:
            with open(os.path.join(d, "tally-rules.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(rules(), f)
            shutil.copy(os.path.join(HERE, "rules.test.yaml"), d)
            r = promtool("check", "rules", "tally-rules.yaml", cwd=d)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(f"SUCCESS: {len(all_rules())} rules found", r.stdout)
            r = promtool("test", "rules", "rules.test.yaml", cwd=d)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_alert_fires_and_stays_quiet_in_a_test(self):
        tests = yaml.safe_load(read(os.path.join(HERE, "rules.test.yaml")))["tests"]
        cases = [c for t in tests for c in t.get("alert_rule_test", [])]
        for name in alerts():
            mine = [c for c in cases if c["alertname"] == name]
            self.assertTrue(any(c.get("exp_alerts") for c in mine), f"{name} never fires in a test")
            self.assertTrue(any(not c.get("exp_alerts") for c in mine),
                            f"{name} has no case where it stays quiet")
        self.assertFalse({c["alertname"] for c in cases} - set(alerts()), "tests of unknown alerts")

    def test_alerts_are_routable_and_documented(self):
        text = read(OPERATIONS)
        section = text[text.index("\n## Alerts and runbook\n"):]
        section = section[:section.index("\n## ", 1)]
        entries = set(re.findall(r"^### (\w+)$", section, re.M))
        self.assertEqual(entries, set(alerts()), "runbook entries and alerts differ")
        for name, rule in alerts().items():
            self.assertIn(rule["labels"]["severity"], ("critical", "warning"), name)
            self.assertEqual(set(rule["annotations"]), {"summary", "description", "runbook"}, name)
            self.assertEqual(rule["annotations"]["runbook"], f"docs/OPERATIONS.md#{name.lower()}")
            self.assertTrue(name.startswith("Tally"), name)

    def test_worker_series_are_selected_by_job(self):
        """process_* names are everybody's: every selector of a worker series names the job."""
        exprs = [r["expr"] for r in all_rules()] + [e for _, e in dashboard_exprs()]
        for expr in exprs:
            for m in re.finditer(r"(?<![\w:])((?:tally|process)_[a-z0-9_]+)(\{[^}]*\})?", expr):
                self.assertIn(JOB, m.group(2) or "", f"{m.group(1)} without {JOB} in: {expr}")


class Dashboard(unittest.TestCase):
    def setUp(self):
        self.d = dashboard()

    def test_identity_and_variables(self):
        self.assertEqual(self.d["uid"], "tally-workers")
        names = [v["name"] for v in self.d["templating"]["list"]]
        self.assertEqual(names[0], "datasource")
        for p in self.d["panels"]:
            if p["type"] != "row":
                self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])

    def test_panels_have_queries_and_do_not_overlap(self):
        ids, cells = set(), set()
        for p in self.d["panels"]:
            self.assertNotIn(p["id"], ids)
            ids.add(p["id"])
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, f"{p['title']} overlaps another panel")
                    cells.add((x, y))
            if p["type"] != "row":
                self.assertTrue(p.get("targets"), p["title"])
                self.assertTrue(p.get("description"), p["title"])

    def test_queries_parse(self):
        """Every query through promtool's PromQL parser, as recording rules of a scratch file."""
        exprs = [grafana_to_promql(e) for _, e in dashboard_exprs()]
        self.assertGreaterEqual(len(exprs), 30)
        group = {"name": "dashboard",
                 "rules": [{"record": f"dashboard:query_{i}", "expr": e}
                           for i, e in enumerate(exprs)]}
        with scratch() as d:
            with open(os.path.join(d, "dashboard.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": [group]}, f)
            r = promtool("check", "rules", "dashboard.yaml", cwd=d)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class MetricNames(unittest.TestCase):
    def test_extractor(self):
        e = ('sum by (le, type) (rate(a_bucket{x="b{c}", y=~"$v"}[5m])) > 0.5 and on (i) '
             'b:rec:sum offset 10m or absent(up{job="j"} == 1) unless count(c) by (z)')
        self.assertEqual(metric_names(e), {"a_bucket", "b:rec:sum", "up", "c"})

    def test_rules_and_dashboard_use_documented_names(self):
        allowed = allowed_names()
        used = {}
        for r in all_rules():
            for n in metric_names(r["expr"]):
                used.setdefault(n, f"rule {r.get('alert') or r.get('record')}")
        for title, expr in dashboard_exprs():
            for n in metric_names(expr):
                used.setdefault(n, f"panel {title}")
        for v in dashboard()["templating"]["list"]:
            m = re.match(r"label_values\((\w+)", v.get("definition", ""))
            if v["type"] == "query":
                self.assertTrue(m, v["name"])
                used.setdefault(m.group(1), f"variable {v['name']}")
        unknown = {n: where for n, where in used.items() if n not in allowed}
        self.assertFalse(unknown, "not in docs/OPERATIONS.md's metrics table: "
                         + ", ".join(f"{n} ({w})" for n, w in sorted(unknown.items())))
        self.assertGreaterEqual(len(used), 20)

    def test_documented_names_are_rendered_by_the_worker(self):
        source = ""
        for path in sorted(glob.glob(os.path.join(SRC, "src", "**", "*.c"), recursive=True)):
            source += read(path)
        pending = {line.strip() for line in read(os.path.join(HERE, "metrics-pending.txt"))
                   .splitlines() if line.strip() and not line.startswith("#")}
        documented = docs_metrics()
        self.assertFalse(pending - set(documented), "pending names missing from the docs table")
        for name in documented:
            rendered = re.search(r'"' + re.escape(name) + r'["{ ]', source) is not None
            if name in pending:
                self.assertFalse(rendered, f"{name} is rendered by src/ now: delete its line "
                                 "from tests/deploy/metrics-pending.txt")
            else:
                self.assertTrue(rendered, f"{name} is documented but src/ does not render it")


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=[sys.argv[0]])
