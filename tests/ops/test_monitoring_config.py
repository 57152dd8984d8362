"""Monitoring as code: Prometheus, Alertmanager, Grafana, Loki and Alloy configs are checked
offline, with the real promtool/amtool where they are installed (.ci/install-promtool.sh).

Metric names are the fixed ones of notes/INTERFACES.md: a typo in a rule or a panel fails here,
instead of showing an empty panel or an alert that can never fire. The exporters' metrics
(node_exporter, postgres_exporter, the backup textfile) are checked against real scrapes of the
exporters in test_exporters.py.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
PROM_DIR = OPS / "prometheus"
RULES = PROM_DIR / "rules" / "minitwit-alerts.yml"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
ALERTMANAGER = OPS / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = OPS / "grafana" / "provisioning" / "datasources" / "datasources.yml"
ALLOY = OPS / "alloy" / "config.alloy"
LOKI = OPS / "loki" / "loki.yml"
SLA = REPO / "SLA.md"

TOKEN_FILE = "/run/secrets/metrics_token"
WEBHOOK_FILE = "/run/secrets/alert_webhook_url"
RULES_GLOB_IN_CONTAINER = "/etc/prometheus/rules/*.yml"

# The metrics the app exposes (notes/INTERFACES.md), with the series a histogram expands into,
# plus `up`, which Prometheus itself records for every target.
_HISTOGRAMS = ["minitwit_http_request_duration_seconds", "minitwit_db_query_duration_seconds"]
KNOWN_METRICS = {
    "minitwit_http_requests_total",
    "minitwit_http_requests_in_flight",
    "minitwit_users",
    "minitwit_messages",
    "minitwit_follows",
    "minitwit_latest",
    "minitwit_simulator_actions_total",
    "minitwit_db_pool_size",
    "minitwit_db_connections_in_use",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "up",
} | {f"{h}_{suffix}" for h in _HISTOGRAMS for suffix in ("bucket", "sum", "count")}
KNOWN_LABELS = {"job", "instance", "node", "route", "method", "status", "le", "action",
                "outcome", "query"}
KNOWN_LABEL_VALUES = {
    "action": {"register", "tweet", "follow", "unfollow", "read_msgs", "read_msgs_user",
               "read_follows", "latest"},
    "outcome": {"success", "client_error", "server_error", "unauthorized"},
    "job": {"minitwit", "node", "postgres"},
}
# Series of the exporters, and the labels they carry: which names exist is proven on real
# scrapes of Debian's node_exporter and postgres_exporter in test_exporters.py.
EXPORTER_PREFIXES = ("node_", "pg_", "minitwit_pg_", "minitwit_backup_")
EXPORTER_LABELS = {"mountpoint", "device", "fstype", "cpu", "mode", "datname", "state", "relname",
                   "indexrelname", "queryid"}
REQUIRED_ALERTS = {"HighErrorRate", "HighLatencyP95", "SlowMeanResponse", "InstanceDown",
                   "SimulatorTrafficStopped", "ErrorBudgetBurnFast", "ErrorBudgetBurnSlow"}

# Grafana's built-in interval variables become a duration; the dashboards' own variables only
# ever stand inside a label matcher's string, where any regex will do.
GRAFANA_INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__auto": "1m"}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan", "offset", "by", "without", "on",
             "ignoring", "group_left", "group_right"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def run(*cmd: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True,
                          timeout=60)


def rule_groups() -> list[dict]:
    return [group for path in RULE_FILES for group in load_yaml(path)["groups"]]


def all_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def alert_rules() -> dict[str, dict]:
    return {r["alert"]: r for r in all_rules() if "alert" in r}


def recorded_names() -> set[str]:
    return {r["record"] for r in all_rules() if "record" in r}


def substitute_grafana_variables(expr: str) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return GRAFANA_INTERVALS.get(name, ".*")
    return _VAR.sub(repl, expr)


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (functions, keywords and labels left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", s):
        rest = s[m.end():].lstrip()
        if m.group() in _KEYWORDS or rest.startswith("("):
            continue
        names.add(m.group())
    return names


def label_uses(expr: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """Label names in matchers and grouping clauses, and the (label, op, value) matchers."""
    matchers = []
    for block in re.findall(r"\{([^}]*)\}", expr):
        matchers += re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', block)
    names = {m[0] for m in matchers}
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                            expr):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    return names, matchers


def dashboard_targets(datasource_type: str) -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression) of every target of one datasource type,
    including the queries behind template variables."""
    found = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel.get("datasource") or {}
                if ds.get("type") == datasource_type:
                    found.append((path.name, panel["title"], target["expr"]))
        for var in dash.get("templating", {}).get("list", []):
            ds = var.get("datasource") or {}
            if var.get("type") == "query" and ds.get("type") == datasource_type:
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
                assert m, f"{path.name}: variable {var['name']}: unsupported query {query!r}"
                found.append((path.name, f"variable {var['name']}", m.group(1)))
    return found


def all_prometheus_expressions() -> list[tuple[str, str]]:
    exprs = [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in all_rules()]
    exprs += [(f"{f}: {title}", substitute_grafana_variables(e))
              for f, title, e in dashboard_targets("prometheus")]
    return exprs


# ----------------------------------------------------------------------------- Prometheus config

def _checkable_copy(config: Path, tmp_path: Path) -> Path:
    """The config with its container paths pointed at real files, so that `promtool check
    config` checks the secret file and loads and checks the rule files too."""
    token = tmp_path / "metrics_token"
    token.write_text("test-token\n")
    text = config.read_text()
    assert TOKEN_FILE in text and RULES_GLOB_IN_CONTAINER in text
    text = text.replace(TOKEN_FILE, str(token))
    text = text.replace(RULES_GLOB_IN_CONTAINER, str(PROM_DIR / "rules" / "*.yml"))
    copy = tmp_path / config.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-swarm.yml"])
def test_promtool_check_config(promtool, tmp_path, name):
    result = run(promtool, "check", "config", _checkable_copy(PROM_DIR / name, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout
    for path in RULE_FILES:
        count = sum(len(g["rules"]) for g in load_yaml(path)["groups"])
        assert f"{path}\n  SUCCESS: {count} rules found" in result.stdout


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-swarm.yml"])
def test_scrape_job_uses_token_file_and_alertmanager(name):
    config = load_yaml(PROM_DIR / name)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "minitwit")
    assert job["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_FILE}
    assert "bearer_token" not in job and "credentials" not in job["authorization"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == [RULES_GLOB_IN_CONTAINER]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]


def test_compose_config_scrapes_the_app_service():
    config = load_yaml(PROM_DIR / "prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "minitwit")
    assert job["static_configs"] == [{"targets": ["app:5000"]}]


def _relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus' relabelling, for the actions these configs use (keep, replace)."""
    labels = dict(labels)
    for c in configs:
        action = c.get("action", "replace")
        value = c.get("separator", ";").join(labels.get(n, "") for n in c.get("source_labels", []))
        m = re.fullmatch(c.get("regex", "(.*)"), value)
        if action == "keep":
            if not m:
                return None
        elif action == "replace":
            if m:
                template = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", c.get("replacement", "$1"))
                result = m.expand(template)
                if result:
                    labels[c["target_label"]] = result
                else:
                    labels.pop(c["target_label"], None)
        else:
            raise AssertionError(f"relabel action {action} not simulated")
    return labels


def test_swarm_discovery_keeps_one_target_per_running_app_task():
    config = load_yaml(PROM_DIR / "prometheus-swarm.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "minitwit")
    assert job["dockerswarm_sd_configs"][0]["role"] == "tasks"
    assert job["dockerswarm_sd_configs"][0]["host"] == "unix:///var/run/docker.sock"

    def task(service, slot, state, network, address):
        return {"__address__": address, "__meta_dockerswarm_service_name": service,
                "__meta_dockerswarm_task_slot": str(slot),
                "__meta_dockerswarm_task_desired_state": state,
                "__meta_dockerswarm_network_name": network,
                "__meta_dockerswarm_node_hostname": f"node{slot}"}

    # What dockerswarm_sd finds: one target per task, network and published port (app
    # publishes 8080:5000), the ingress network included.
    discovered = [
        task("minitwit_app", 1, "running", "minitwit_internal", "10.0.1.5:8080"),
        task("minitwit_app", 1, "running", "ingress", "10.0.0.5:8080"),
        task("minitwit_app", 2, "running", "minitwit_internal", "10.0.1.6:8080"),
        task("minitwit_app", 2, "running", "ingress", "10.0.0.6:8080"),
        task("minitwit_app", 3, "shutdown", "minitwit_internal", "10.0.1.4:8080"),
        task("minitwit_db", 1, "running", "minitwit_internal", "10.0.1.9:5432"),
        task("minitwit_grafana", 1, "running", "minitwit_internal", "10.0.1.8:3000"),
    ]
    kept = [t for t in (_relabel(d, job["relabel_configs"]) for d in discovered) if t]
    assert sorted((t["__address__"], t["instance"], t["node"]) for t in kept) == [
        ("10.0.1.5:5000", "minitwit_app.1", "node1"),
        ("10.0.1.6:5000", "minitwit_app.2", "node2"),
    ]


@pytest.mark.parametrize("job, service, port", [("node", "minitwit_node-exporter", 9100),
                                                ("postgres", "minitwit_postgres-exporter", 9187)])
def test_swarm_discovery_finds_the_exporters(job, service, port):
    config = load_yaml(PROM_DIR / "prometheus-swarm.yml")
    scrape = next(j for j in config["scrape_configs"] if j["job_name"] == job)
    assert scrape["dockerswarm_sd_configs"][0]["role"] == "tasks"

    def task(name, slot, state, network, node):
        return {"__address__": f"10.0.{slot}.{len(network)}:80", "__meta_dockerswarm_service_name": name,
                "__meta_dockerswarm_task_slot": str(slot), "__meta_dockerswarm_task_desired_state": state,
                "__meta_dockerswarm_network_name": network, "__meta_dockerswarm_node_hostname": node}

    discovered = [task(service, 1, "running", "minitwit_internal", "node1"),
                  task(service, 1, "running", "ingress", "node1"),
                  task(service, 2, "shutdown", "minitwit_internal", "node2"),
                  task("minitwit_app", 1, "running", "minitwit_internal", "node1")]
    kept = [t for t in (_relabel(d, scrape["relabel_configs"]) for d in discovered) if t]
    assert len(kept) == 1 and kept[0]["__address__"].endswith(f":{port}") and kept[0]["node"] == "node1"
    # node_exporter's instance is the machine, so that an alert names it.
    assert kept[0]["instance"] == ("node1" if job == "node" else f"{service}.1")


@pytest.mark.parametrize("name", ["compose.yml", "stack.yml"])
def test_exporters_are_scraped_under_the_names_the_deployment_gives_them(name):
    services = load_yaml(REPO / name)["services"]
    assert {"node-exporter", "postgres-exporter", "db-monitoring-role"} <= services.keys()
    compose = load_yaml(PROM_DIR / "prometheus.yml")
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in compose["scrape_configs"]}
    assert targets["node"] == ["node-exporter:9100"] and targets["postgres"] == ["postgres-exporter:9187"]


# ----------------------------------------------------------------------------- rules

def test_promtool_check_rules(promtool):
    assert RULES in RULE_FILES and len(RULE_FILES) > 1
    result = run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tests", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests(promtool, tests):
    result = run(promtool, "test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_required_alerts_exist_with_severity_and_text():
    alerts = alert_rules()
    assert alerts.keys() >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_alert_is_unit_tested_firing_and_quiet():
    fires, quiet = set(), set()
    for case in (c for path in RULE_TESTS for c in load_yaml(path)["tests"]):
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = set(alert_rules())
    assert alerts - fires == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"


def test_rule_metric_and_label_names_are_known():
    _assert_known_names([(f"rule {r.get('alert') or r.get('record')}", r["expr"])
                         for r in all_rules()])


def test_recording_rule_names_follow_convention():
    for name in recorded_names():
        level, metric, ops = name.split(":")
        assert level and ops and metric.startswith("minitwit_"), name


# ----------------------------------------------------------------------------- metric name check

def _assert_known_names(exprs: list[tuple[str, str]]) -> None:
    allowed = KNOWN_METRICS | recorded_names()
    problems = []
    for where, expr in exprs:
        if unknown := {n for n in metric_names(expr) - allowed if not n.startswith(EXPORTER_PREFIXES)}:
            problems.append(f"{where}: unknown metric(s) {sorted(unknown)}")
        labels, matchers = label_uses(expr)
        if unknown := labels - KNOWN_LABELS - EXPORTER_LABELS:
            problems.append(f"{where}: unknown label(s) {sorted(unknown)}")
        for label, op, value in matchers:
            known = KNOWN_LABEL_VALUES.get(label)
            if op in {"=", "!="} and known is not None and value not in known:
                problems.append(f"{where}: {label}{op}{value!r} is not a known value")
    assert not problems, "\n".join(problems)


def test_name_check_catches_typos():
    assert metric_names('sum by (route) (rate(minitwit_http_request_total{status=~"5.."}[5m]))'
                        ) == {"minitwit_http_request_total"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(a_bucket[1m]))) > 1e3"
                        ) == {"a_bucket"}
    assert metric_names("x offset 1h and on (job) job:y:rate5m or vector(0)"
                        ) == {"x", "job:y:rate5m"}
    with pytest.raises(AssertionError, match="minitwit_user"):
        _assert_known_names([("typo", "max(minitwit_user)")])
    with pytest.raises(AssertionError, match="statuscode"):
        _assert_known_names([("typo", 'sum by (statuscode) (minitwit_http_requests_total)')])
    with pytest.raises(AssertionError, match="servererror"):
        _assert_known_names([("typo", 'minitwit_simulator_actions_total{outcome="servererror"}')])


# ----------------------------------------------------------------------------- Grafana

def test_datasources_provisioned_with_fixed_uids():
    sources = {d["uid"]: d for d in load_yaml(DATASOURCES)["datasources"]}
    assert sources["prometheus"]["type"] == "prometheus"
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    assert sources["prometheus"]["isDefault"] is True
    assert sources["loki"]["type"] == "loki" and sources["loki"]["url"] == "http://loki:3100"


def test_dashboards_are_well_formed():
    uids = {d["uid"] for d in load_yaml(DATASOURCES)["datasources"]}
    assert {p.stem for p in DASHBOARDS} >= {"minitwit-http", "minitwit-business",
                                            "minitwit-simulator", "minitwit-database",
                                            "minitwit-logs"}
    seen_uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] not in seen_uids and dash["title"], path.name
        seen_uids.add(dash["uid"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dash["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{path.name}: {panel['title']} is too wide"
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                ds = target.get("datasource") or panel["datasource"]
                assert ds["uid"] in uids, f"{path.name}: {panel['title']}: unknown datasource"
                assert target["expr"].strip() and target["refId"]


def test_node_and_postgres_dashboards_are_linked_from_the_others():
    dashboards = {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}
    assert {"minitwit-nodes", "minitwit-postgres"} <= dashboards.keys()
    for name, dash in dashboards.items():  # the dropdown of every dashboard lists all tagged ones
        assert "minitwit" in dash["tags"], name
        assert any(link["type"] == "dashboards" and link["tags"] == ["minitwit"] for link in dash["links"]), name
    direct = {name: {link.get("url") for link in dash["links"]} for name, dash in dashboards.items()}
    assert {"/d/minitwit-postgres", "/d/minitwit-nodes"} <= direct["minitwit-database"]
    assert {"/d/minitwit-postgres", "/d/minitwit-nodes"} <= direct["minitwit-http"]
    assert all(url.removeprefix("/d/") in {d["uid"] for d in dashboards.values()}
               for urls in direct.values() for url in urls if url)


def test_every_prometheus_panel_query_parses_with_promtool(promtool, tmp_path):
    targets = dashboard_targets("prometheus")
    assert len(targets) > 40
    rules = {"groups": [{"name": "dashboard-queries", "rules": [
        {"record": f"dashboard:query_{i}:check", "expr": substitute_grafana_variables(expr)}
        for i, (_, _, expr) in enumerate(targets)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", path)
    if result.returncode != 0:
        listing = "\n".join(f"query_{i}: {f}: {t}: {e}" for i, (f, t, e) in enumerate(targets))
        pytest.fail(result.stdout + result.stderr + "\n" + listing)


def test_panel_query_check_rejects_a_broken_query(promtool, tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "dashboard:query_0:check", "expr": "sum(rate(minitwit_users[5m])"}]}]}))
    assert run(promtool, "check", "rules", path).returncode != 0


def test_dashboard_metric_and_label_names_are_known():
    _assert_known_names([(f"{f}: {title}", substitute_grafana_variables(e))
                         for f, title, e in dashboard_targets("prometheus")])


# ----------------------------------------------------------------------------- Alertmanager

def test_amtool_check_config(amtool):
    result = run(amtool, "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_reach_the_chat_with_a_secret_url():
    config = load_yaml(ALERTMANAGER)
    receivers = {r["name"]: r for r in config["receivers"]}
    for receiver in receivers.values():
        chats = receiver.get("slack_configs", []) + receiver.get("webhook_configs", [])
        assert chats, f"receiver {receiver['name']} sends nowhere"
        for chat in chats:
            assert chat.get("api_url_file", chat.get("url_file")) == WEBHOOK_FILE
            assert "api_url" not in chat and "url" not in chat, "webhook URL must stay secret"
            assert chat["send_resolved"] is True
    assert "smtp_smarthost" not in config.get("global", {})


@pytest.mark.parametrize("severity", ["critical", "warning"])
def test_every_severity_routes_to_the_chat(amtool, severity):
    alerts = [name for name, r in alert_rules().items() if r["labels"]["severity"] == severity]
    assert alerts
    result = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 "--verify.receivers=team-chat", f"severity={severity}", f"alertname={alerts[0]}",
                 "job=minitwit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_inhibit_rules_name_real_alerts():
    alerts = set(alert_rules())
    for rule in load_yaml(ALERTMANAGER)["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            m = re.fullmatch(r'alertname(=~|=)"?([^"]*)"?', matcher)
            assert m, matcher
            assert set(m.group(2).split("|")) <= alerts, matcher


# ----------------------------------------------------------------------------- logs

def test_loki_stores_structured_metadata_with_retention():
    config = load_yaml(LOKI)
    schema = config["schema_config"]["configs"][-1]
    assert schema["schema"] == "v13" and schema["store"] == "tsdb"
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"


def _alloy_blocks_and_stage(stage: str) -> tuple[set[str], set[str], set[str]]:
    text = re.sub(r"//[^\n]*", "", ALLOY.read_text())
    assert text.count("{") == text.count("}"), "unbalanced braces"
    blocks = set(re.findall(r'^([a-z_]+\.[a-z_.]+)\s+"(\w+)"\s*\{', text, re.MULTILINE))
    declared = {f"{kind}.{label}" for kind, label in blocks}
    refs = set(re.findall(r"=\s*\[?\s*([a-z_]+\.[a-z_]+\.\w+)\.(?:receiver|targets|rules)\b", text))
    m = re.search(stage + r"\s*\{\s*values\s*=\s*\{([^}]*)\}", text)
    assert m, f"{stage} not found"
    keys = set(re.findall(r"(\w+)\s*=", m.group(1)))
    return declared, refs, keys


def test_alloy_pipeline_references_resolve_and_labels_stay_low_cardinality():
    declared, refs, labels = _alloy_blocks_and_stage("stage.labels")
    assert refs and refs <= declared, f"undeclared components: {refs - declared}"
    assert labels == {"level"}
    _, _, metadata = _alloy_blocks_and_stage("stage.structured_metadata")
    assert {"request_id", "route", "status"} <= metadata


def test_log_queries_use_labels_the_shipper_sets():
    stream_labels = {"service", "container", "stream", "level", "source"}
    _, _, metadata = _alloy_blocks_and_stage("stage.structured_metadata")
    targets = dashboard_targets("loki")
    assert targets
    for f, title, expr in targets:
        selector = re.match(r"[^{]*\{([^}]*)\}", expr)
        assert selector, f"{f}: {title}: no stream selector"
        used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector.group(1)))
        assert used and used <= stream_labels, f"{f}: {title}: {used - stream_labels}"
        filters = set(re.findall(r"\|\s*(\w+)\s*(?:=~|!~|!=|=)", expr[selector.end():]))
        assert filters <= metadata | stream_labels, f"{f}: {title}: {filters}"


# ----------------------------------------------------------------------------- SLA.md

def _normalise(expr: str) -> str:
    return " ".join(expr.split())


def test_sla_documents_every_alert_with_its_promql():
    sla = _normalise(SLA.read_text())
    for name, rule in alert_rules().items():
        assert name in sla, f"SLA.md does not mention {name}"
        assert _normalise(rule["expr"]) in sla, f"SLA.md does not show the PromQL of {name}"
    for record in recorded_names():
        if any(record in r["expr"] for r in alert_rules().values()):
            rule = next(r for r in all_rules() if r.get("record") == record)
            assert _normalise(rule["expr"]) in sla, f"SLA.md does not define {record}"


def test_every_alert_sla_md_names_exists_with_the_severity_it_states():
    """The other way round: an alert deleted from the rules, or given another severity, while
    SLA.md still promises it. Each table row lists its alerts and then their severities in the
    same order."""
    rules = alert_rules()
    rows = [line for line in SLA.read_text().splitlines() if line.startswith("|") and "`" in line]
    named = 0
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        alerts = re.findall(r"`([A-Z][A-Za-z0-9]+)`", " ".join(cells[:-1]))
        severities = [s.strip() for s in cells[-1].split(",")]
        if not alerts or not set(severities) <= {"critical", "warning", "info"}:
            continue
        assert len(alerts) == len(severities), f"SLA.md: {len(alerts)} alerts, {len(severities)} severities: {row}"
        for alert, severity in zip(alerts, severities, strict=True):
            assert alert in rules, f"SLA.md promises {alert}, which no rule defines"
            assert rules[alert]["labels"]["severity"] == severity, f"{alert}: SLA.md says {severity}"
            named += 1
    assert named == len(rules), f"SLA.md's tables name {named} alerts, the rules define {len(rules)}"


def test_install_script_is_idempotent(promtool):
    if Path(promtool).parent != REPO / ".tools" / "bin":
        pytest.skip("promtool comes from PATH, not from .ci/install-promtool.sh")
    result = run("bash", REPO / ".ci" / "install-promtool.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already in" in result.stdout


def test_infrastructure_alerts_link_their_runbook_sections():
    """Each alert's runbook_url is docs/operating.md#<alertname in lower case>, a section that exists."""
    runbook = (REPO / "docs" / "operating.md").read_text()
    rules = load_yaml(PROM_DIR / "rules" / "infrastructure-alerts.yml")["groups"][0]["rules"]
    for rule in rules:
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"docs/operating.md#{name.lower()}", name
        assert re.search(rf"^### {name}$", runbook, re.MULTILINE), f"docs/operating.md: no section {name}"
