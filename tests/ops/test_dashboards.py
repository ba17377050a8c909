"""deploy/'s Grafana dashboard and Prometheus rules, checked for real: promtool validates the
files, then a real Prometheus (loading deploy/prometheus/prometheus.yml and alerts.yml) scrapes
a real gateway that served every kind of traffic the panels chart, and every panel query and
alert expression runs on what it scraped.

A query that names a metric the server does not export returns nothing rather than an error,
so each panel must return data, and each metric name a rule or panel uses must have been
scraped: a renamed metric shows here, not as an empty panel or an alert that never fires.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ROOT,
    SERVED_NAME,
    ServerProcess,
    b64,
    chat_line,
    free_port,
    image_messages,
    jsonl,
    openai_client,
    png_bytes,
    require_file,
    store_gateway,
    wait_until,
    wait_until_done,
)

logger = logging.getLogger(__name__)

DASHBOARD = ROOT / "deploy" / "grafana" / "openai-ocr-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
JOB = "openai-ocr"
#: Grafana's variables, as a dashboard on this Prometheus would resolve them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "$job": JOB}
#: The one alert the traffic provokes on purpose (a few 502s among a dozen answers).
PROVOKED = {"OpenAIOCRHighErrorRatio"}
LOOP = "<|ref|>table<|/ref|><|det|>[[100, 100, 899, 900]]<|/det|>\n" + "".join(
    f"| {n} | {n + 1} |\n" for n in range(600))
CLEAN = "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nThe page read cleanly."


def program(name: str) -> str:
    """A program of the Debian package `prometheus`: skipped without it, a failure under CI."""
    return str(require_file(shutil.which(name) or f"/usr/bin/{name}", "prometheus"))


def loops_under_the_default_guard(body: dict[str, Any]) -> tuple[str, str]:
    """DeepSeek-OCR on a hard page: a loop cut at max_tokens, unless the n-gram guard is
    stricter than the default (30), so every page loops once and `stricter_guard` recovers it."""
    if (body.get("vllm_xargs") or {}).get("ngram_size", 30) >= 30:
        return LOOP, "length"
    return CLEAN, "stop"


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    """An input series of a promtool unit test, on the job and one instance."""
    labels = {"job": JOB, "instance": "ocr-1:8000", **labels}
    return {"series": name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


OCR_OK = {"route": "/ocr", "method": "POST", "status": "200"}
#: (input series a minute apart, the alerts firing after 30 minutes) of the states the live
#: server cannot be put in: an engine gone, a full queue, a stuck batch runner, no target.
SCENARIOS: dict[str, tuple[list[dict[str, str]], set[str]]] = {
    "busy but healthy": ([
        series("up", "1x40"),
        series("openai_ocr_requests_total", "0+100x40", **OCR_OK),
        series("openai_ocr_requests_total", "0+1x40", **{**OCR_OK, "status": "502"}),
        series("openai_ocr_engine_queue_length", "50x40"),
        series("openai_ocr_engine_rejected_total", "3x40"),
        series("openai_ocr_engine_timeouts_total", "1x40"),
        series("openai_ocr_batch_queue_lines", "500x40"),
        series("openai_ocr_batch_lines_total", "0+20x40", result="completed"),
    ], set()),
    "engine gone, queue full, batches stuck": ([
        series("up", "1x40"),
        series("openai_ocr_requests_total", "0+1x40", **OCR_OK),
        series("openai_ocr_requests_total", "0+10x40", **{**OCR_OK, "status": "502"}),
        series("openai_ocr_engine_queue_length", "250x40"),
        series("openai_ocr_engine_rejected_total", "0+5x40"),
        series("openai_ocr_engine_timeouts_total", "0+1x40"),
        series("openai_ocr_batch_queue_lines", "5x40"),  # no line ever finished: no counter series
    ], {"OpenAIOCREngineUnreachable", "OpenAIOCRHighErrorRatio", "OpenAIOCRQueueSaturated",
        "OpenAIOCRRejectingRequests", "OpenAIOCREngineTimeouts", "OpenAIOCRBatchStalled"}),
    "server down": ([series("up", "1 1 0x40")], {"OpenAIOCRDown"}),
    "no target": ([series("up", "1x40", job="another-job")], {"OpenAIOCRTargetMissing"}),
}


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables resolved) of every dashboard target."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unresolved variable in {panel['title']!r}: {expr}"
            found.append((panel["title"], expr))
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def query(prometheus: str, promql: str) -> dict[str, Any]:
    """An instant query's `data` (result type and result); fails on a PromQL error."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", f"{promql}: {body}"
    return dict(body["data"])


def loaded_rules(prometheus: str) -> dict[str, dict[str, Any]]:
    """The rules Prometheus loaded, by name, with their evaluation health."""
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    return {rule["name"]: rule for group in groups for rule in group["rules"]}


def last_scrape(prometheus: str) -> float:
    """When the server's latest scrape began (0 before the first): `timestamp()` of a bare
    selector is its sample's time (of any other expression, the time of the query)."""
    result = query(prometheus, f'timestamp(up{{job="{JOB}"}})')["result"]
    return float(result[0]["value"][1]) if result else 0.0


def wait_for_scrape_after(prometheus: str, moment: float) -> None:
    """Until a scrape that began after `moment` is stored (a deadline, not a sleep)."""
    wait_until(lambda: last_scrape(prometheus) > moment, 15, "a scrape of the server", poll_s=0.2)


def send_traffic(url: str, fake: FakeUpstream) -> None:
    """One round of each answer the panels chart: pages that loop then recover, a chat
    completion, a batch run to the end, a 4xx, and 502s from an upstream that refuses."""
    for _ in range(2):
        page = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "output": "json"}, timeout=60)
        assert page.status_code == 200, page.text
        assert "recovered" in page.json()["pages"][0]["quality"]["flags"]
    sdk = openai_client(url)
    sdk.chat.completions.create(model=SERVED_NAME, messages=image_messages(png_bytes()))
    lines = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl([chat_line(f"l{i}", "Free OCR.") for i in range(2)]))),
                             purpose="batch")
    batch = sdk.batches.create(input_file_id=lines.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert wait_until_done(sdk, batch.id).status == "completed"
    bad = httpx.post(f"{url}/ocr", json={"image_base64": "not base64 at all!"}, timeout=60)
    assert 400 <= bad.status_code < 500, bad.text
    fake.api_key = "a key the gateway does not send"  # the upstream answers 401: a 502 here
    try:
        for _ in range(3):
            refused = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=60)
            assert refused.status_code == 502, refused.text
    finally:
        fake.api_key = None


@pytest.fixture(scope="module")
def gateway_with_store(fake_upstream: tuple[FakeUpstream, str],
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeUpstream]]:
    """A gateway with a store (batches) and the one-step recovery ladder, in front of the
    session's fake upstream scripted to loop."""
    fake, upstream_url = fake_upstream
    fake.reset()
    fake.reply_fn = loops_under_the_default_guard
    try:
        with store_gateway(upstream_url, tmp_path_factory.mktemp("store"),
                           ocr={"recovery": {"ladder": ["stricter_guard"]}}) as url:
            yield url, fake
    finally:
        fake.reset()


@pytest.fixture(scope="module")
def prometheus(gateway_with_store: tuple[str, FakeUpstream], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on deploy/'s config (alerts.yml loaded), scraping the gateway every
    second; yields its base URL once it scraped the gateway."""
    binary = program("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERTS)]
    (job,) = [c for c in config["scrape_configs"] if c["job_name"] == JOB]
    job["static_configs"] = [{"targets": [gateway_with_store[0].removeprefix("http://")]}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
           f"--web.listen-address={url.removeprefix('http://')}", "--log.level=warn"]
    with ServerProcess(cmd, url, folder / "prometheus.log", ready_path="/-/ready") as server:
        wait_for_scrape_after(url, 0)
        (up,) = query(url, f'up{{job="{JOB}"}}')["result"]
        assert up["value"][1] == "1", server.log()
        yield url


@pytest.fixture(scope="module")
def scraped(prometheus: str, gateway_with_store: tuple[str, FakeUpstream]) -> str:
    """Prometheus once it stored two rounds of traffic: counters a scrape first sees already
    counted have no rate until they count again, so each series must move between scrapes."""
    for round_ in (1, 2):
        send_traffic(*gateway_with_store)
        wait_for_scrape_after(prometheus, time.time())
        logger.info("traffic round %d scraped", round_)
    return prometheus


def test_promtool_accepts_the_rules_and_the_config() -> None:
    """The files Prometheus loads: rule syntax, PromQL, and the config with its rule file."""
    promtool = program("promtool")
    for args in (["check", "rules", str(ALERTS)], ["check", "config", str(CONFIG)]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_alerts_fire_when_they_should(scenario: str, tmp_path: Path) -> None:
    """promtool's rule unit tests (`for:` included) on synthetic series: the ALERTS series
    Prometheus writes say which alerts fire."""
    inputs, firing = SCENARIOS[scenario]
    unit = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": inputs,
        "promql_expr_test": [{"expr": 'count by (alertname) (ALERTS{alertstate="firing"})', "eval_time": "30m",
                              "exp_samples": [{"labels": f'{{alertname="{name}"}}', "value": 1}
                                              for name in sorted(firing)]}]}]}
    (tmp_path / "unit.yml").write_text(yaml.safe_dump(unit))
    done = subprocess.run([program("promtool"), "test", "rules", str(tmp_path / "unit.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_has_a_for_a_severity_and_a_text() -> None:
    for rule in alert_rules():
        assert rule.get("for") and rule["labels"].get("severity") in ("critical", "warning", "info"), rule
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule


def test_the_dashboard_uses_a_datasource_variable() -> None:
    """Imported anywhere, every panel and target asks the Prometheus the user picks."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert "DS_PROMETHEUS" in [v["name"] for v in dashboard["templating"]["list"]]
    for panel in dashboard["panels"]:
        for source in [panel.get("datasource"), *[t.get("datasource") for t in panel.get("targets", [])]]:
            assert source in (None, {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}), panel["title"]


def test_every_metric_the_files_name_is_exported(scraped: str) -> None:
    """A misspelt metric gives an empty panel and an alert that never fires: each name must be
    among the series Prometheus scraped from the server."""
    names = set(httpx.get(f"{scraped}/api/v1/label/__name__/values", timeout=10).json()["data"])
    used = {name for _, expr in panel_queries() for name in re.findall(r"\bopenai_ocr_\w+", expr)}
    used |= {name for rule in alert_rules() for name in re.findall(r"\bopenai_ocr_\w+", rule["expr"])}
    assert used - names == set()


@pytest.mark.parametrize("title, expr", panel_queries(), ids=[t for t, _ in panel_queries()])
def test_each_panel_query_returns_data(scraped: str, title: str, expr: str) -> None:
    assert query(scraped, expr)["result"], f"{title!r} has no data: {expr}"


def test_alert_expressions_run_and_only_the_provoked_one_fires(scraped: str) -> None:
    """On a healthy server after that traffic, only the 5xx share is over its threshold."""
    firing = {rule["alert"] for rule in alert_rules() if query(scraped, rule["expr"])["result"]}
    assert firing == PROVOKED


def test_prometheus_loaded_and_evaluated_every_rule(scraped: str) -> None:
    """Prometheus itself ran each rule without an error (the rules API reports its health)."""
    assert set(loaded_rules(scraped)) == {rule["alert"] for rule in alert_rules()}
    wait_until(lambda: all(rule["health"] == "ok" for rule in loaded_rules(scraped).values()), 10,
               "every rule evaluated", poll_s=0.2)

