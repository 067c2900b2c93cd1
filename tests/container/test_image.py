"""The CPU image, built from the Dockerfile, served as production runs it: read-only root, /tmp tmpfs, no
capabilities, no privilege escalation. Its answers, models, metrics, health check, user, the missing torch,
and a `docker stop` under load that loses no request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.edge.middleware import RequestLedger
from tests.container.conftest import CPU_IMAGE_LIMIT_MB, BuiltImage, record
from tests.container.engine import docker
from tests.container.torch_index import free_port
from tools.bench.stress.probe import metric_sum

# The first test to need the image builds it: up to ~5 min cold on 2 cores.
pytestmark = pytest.mark.timeout(1800)
HARDENING = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# What precision=auto serves on CPU: int8, or fp32 where int8 failed validation; the image ships only that.
CPU_PRECISIONS = {"int8", "fp32"}


@dataclass
class Served:
    name: str
    url: str
    image: BuiltImage
    seconds_to_ready: float

    def exec(self, *command: str) -> Any:
        return docker("exec", self.name, *command, check=False, timeout=60)

    def logs(self) -> str:
        done = docker("logs", "--tail", "60", self.name, check=False)
        return done.stdout + done.stderr


def wait_ready(url: str, name: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = docker("inspect", "-f", "{{.State.Status}}", name, check=False).stdout.strip()
        assert state in {"created", "running"}, f"the container is {state}"
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"not ready within {timeout} s")


@pytest.fixture(scope="module")
def served(cpu_image: BuiltImage) -> Iterator[Served]:
    """The image on the host's network (port chosen free), hardened as the compose file and k8s run it."""
    port = free_port()
    name = f"bertserve-image-test-{port}"
    docker("rm", "-f", name, check=False)
    started = time.monotonic()
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--network=host",
        *HARDENING,
        "-e",
        f"BERTSERVE_PORT={port}",
        cpu_image.tag,
    )
    server = Served(name, f"http://127.0.0.1:{port}", cpu_image, 0.0)
    try:
        server.seconds_to_ready = wait_ready(server.url, name, 180)
    except AssertionError as error:
        logs = server.logs()
        docker("rm", "-f", name, check=False)
        raise AssertionError(f"{error}\n--- container log\n{logs}") from None
    record("time to ready (docker run)", f"{time.monotonic() - started:.1f} s")
    try:
        yield server
    finally:
        docker("rm", "-f", name, check=False)


def post(server: Served, path: str, body: dict[str, Any]) -> Any:
    """The results of one request (the body also names the model that served it)."""
    response = httpx.post(f"{server.url}/{path}", json=body, timeout=30)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    answer = response.json()
    assert answer["model"].endswith("-minilm"), answer
    return answer["results"]


def best_labels(results: list[Any]) -> list[str]:
    return [(r[0] if isinstance(r, list) else r)["label"] for r in results]


@pytest.fixture(scope="module")
def shipped(cpu_image: BuiltImage) -> dict[str, set[str]]:
    """model -> the precisions of the ONNX files in the image's /models."""
    program = (
        "import pathlib; print(*(p.relative_to('/models') for p in pathlib.Path('/models').glob('*/*')))"
    )
    listing = docker("run", "--rm", "--network=none", cpu_image.tag, "python", "-c", program).stdout.split()
    models: dict[str, set[str]] = {}
    for path in listing:
        model, _, name = path.partition("/")
        files = models.setdefault(model, set())
        if name.endswith(".onnx"):
            files.add(name.split(".")[1])
    return models


def test_image_size_and_variants(cpu_image: BuiltImage, shipped: dict[str, set[str]]) -> None:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", cpu_image.tag).stdout)
    megabytes = size / 1e6
    record("image size (cpu)", f"{megabytes:.0f} MB (limit {CPU_IMAGE_LIMIT_MB} MB; base {cpu_image.base})")
    record("variants shipped", ", ".join(f"{m} {'+'.join(sorted(p))}" for m, p in sorted(shipped.items())))
    assert len(shipped) == 4, shipped
    for model, precisions in shipped.items():
        assert len(precisions) == 1 and precisions <= CPU_PRECISIONS, f"{model} ships {precisions}"
    assert megabytes <= CPU_IMAGE_LIMIT_MB, f"the CPU image is {megabytes:.0f} MB"


def test_build_arguments_stay_out_of_the_image(cpu_image: BuiltImage) -> None:
    """The build's index URLs (where a mirror's credentials would be) are in neither config nor history."""
    config = docker("image", "inspect", cpu_image.tag).stdout
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", cpu_image.tag).stdout
    for key, value in cpu_image.build_args.items():
        if key.endswith("_URL"):
            assert value not in config and value not in history, f"{key} leaked into the image"
    assert "PIP_INDEX_URL" not in history and "TORCH_INDEX_URL" not in history
    labels = json.loads(config)[0]["Config"]["Labels"]
    assert labels["io.bertserve.runtime"] == "cpu"


def test_the_health_check_turns_healthy(served: Served) -> None:
    started = time.monotonic()
    status = ""
    while time.monotonic() - started < 60:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", served.name).stdout.strip()
        if status == "healthy":
            break
        assert status == "starting", f"health: {status}\n{served.logs()}"
        time.sleep(0.5)
    assert status == "healthy", f"still {status} after 60 s"
    record("HEALTHCHECK healthy after ready", f"{time.monotonic() - started:.1f} s (interval 10 s)")


def test_runs_as_uid_10001_without_torch(served: Served) -> None:
    user = served.exec("python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert user.stdout.split() == ["10001", "10001"], user
    torch = served.exec("python", "-c", "import torch")
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr, torch
    pip = served.exec("python", "-m", "pip", "--version")
    assert pip.returncode != 0, "the serving venv carries no pip"


def test_the_root_filesystem_is_read_only(served: Served) -> None:
    root = served.exec("python", "-c", "open('/opt/bertserve/x', 'w')")
    assert root.returncode != 0 and "Read-only file system" in root.stderr, root
    tmp = served.exec("python", "-c", "open('/tmp/x', 'w').write('ok')")
    assert tmp.returncode == 0, tmp
    caps = served.exec("python", "-c", "print(open('/proc/self/status').read())")
    eff = next(line for line in caps.stdout.splitlines() if line.startswith("CapEff:"))
    assert int(eff.split()[1], 16) == 0, eff
    assert "NoNewPrivs:\t1" in caps.stdout


def test_the_four_endpoints_answer(served: Served) -> None:
    classify = post(served, "classify", {"inputs": ["I loved this film.", "A dull, lifeless script."]})
    assert best_labels(classify) == ["POSITIVE", "NEGATIVE"], classify
    pair = post(
        served,
        "pair",
        {
            "inputs": [
                {"text": "He bought a car yesterday.", "text_pair": "Yesterday he purchased a car."},
                {"text": "He bought a car yesterday.", "text_pair": "The weather in Oslo is cold in winter."},
            ]
        },
    )
    assert best_labels(pair) == ["equivalent", "not_equivalent"], pair
    context = "Ada lives in London and works in Cambridge."
    qa = post(served, "qa", {"inputs": {"question": "Where does Ada live?", "context": context}})
    assert qa["answer"] == "London" and context[qa["start"] : qa["end"]] == "London", qa
    text = "Angela Merkel met Emmanuel Macron in Paris."
    ner = post(served, "ner", {"inputs": text})
    found = {(e["entity_group"], text[e["start"] : e["end"]]) for e in ner}
    assert {("PER", "Angela Merkel"), ("PER", "Emmanuel Macron"), ("LOC", "Paris")} <= found, ner
    bad = httpx.post(f"{served.url}/classify", json={"inputs": 3}, timeout=10)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/json"), bad.text


def test_models_and_metrics(served: Served, shipped: dict[str, set[str]]) -> None:
    models = httpx.get(f"{served.url}/v1/models", timeout=10).json()["models"]
    assert sorted(m["task"] for m in models) == ["classify", "ner", "pair", "qa"], models
    for model in models:
        assert {model["precision"]} == shipped[model["name"]], (model, shipped)
        assert model["provider"] == "CPUExecutionProvider", model
    metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
    assert "bertserve_ready 1.0" in metrics
    assert 'bertserve_requests_total{code="200",model="sst2-minilm",task="classify"}' in metrics
    assert metrics.count("bertserve_model_ready{") == 4


@dataclass
class Outcomes:
    ok: int = 0
    refused: int = 0  # the connection refused: never accepted, safe to retry
    draining: int = 0  # 503 while draining: answered, safe to retry
    lost: list[str] = field(default_factory=list)  # a timeout, or an answer other than 200 / 503
    # The connection reset with no answer. Either the server read the request and lost it, or the
    # kernel had queued the connection when the listener closed and the server never read it; the
    # server's shutdown ledger tells which.
    reset: list[str] = field(default_factory=list)
    in_flight_at_stop: int = 0

    @property
    def answers(self) -> int:
        """Responses the clients received, whatever their status."""
        return self.ok + self.draining + sum(1 for lost in self.lost if not lost.startswith("timeout"))


class StopClients:
    """Clients that keep sending while the server stops, each request on a new connection."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.body = {
            "inputs": [f"Review {i}: the film was fine, the ending a little long." for i in range(32)]
        }
        self.outcomes = Outcomes()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._send_until_done) for _ in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> Outcomes:
        self.done.set()
        for thread in self.threads:
            thread.join(70)
        return self.outcomes

    def _send_until_done(self) -> None:
        with httpx.Client(timeout=60, headers={"connection": "close"}) as http:
            while not self.done.is_set():
                sent_before_stop = not self.stopping.is_set()
                try:
                    response = http.post(f"{self.url}/classify", json=self.body)
                except httpx.ConnectError:
                    with self.lock:
                        self.outcomes.refused += 1
                    time.sleep(0.05)
                    continue
                except httpx.TimeoutException as error:
                    with self.lock:
                        self.outcomes.lost.append(f"timeout: {type(error).__name__}")
                    continue
                except httpx.TransportError as error:
                    with self.lock:
                        self.outcomes.reset.append(f"{type(error).__name__}: {error}")
                    continue
                with self.lock:
                    self._count(response, in_flight_at_stop=sent_before_stop and self.stopping.is_set())

    def _count(self, response: httpx.Response, *, in_flight_at_stop: bool) -> None:
        if response.status_code == 200:
            self.outcomes.ok += 1
            self.outcomes.in_flight_at_stop += in_flight_at_stop
        elif response.status_code == 503:
            self.outcomes.draining += 1
        else:
            self.outcomes.lost.append(f"{response.status_code}: {response.text[:200]}")


def test_docker_stop_loses_no_request(served: Served) -> None:
    """Clients keep sending while `docker stop` runs: every request the server read is answered, every
    answer reaches its client, and the server exits 0 before the grace period."""
    metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
    answered_before = int(metric_sum(metrics, "bertserve_requests_total"))  # inference answers
    clients = StopClients(served.url, clients=6)
    clients.start()
    time.sleep(3)
    clients.stopping.set()
    started = time.monotonic()
    docker("stop", "-t", "35", served.name, timeout=60)
    drain = time.monotonic() - started
    time.sleep(0.5)
    outcomes = clients.finish()
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", served.name).stdout.strip()
    logs = served.logs()
    ledger = RequestLedger.last_in(logs)
    in_flight, unread = outcomes.in_flight_at_stop, len(outcomes.reset)
    record("docker stop under load", f"{drain:.1f} s ({in_flight} in flight answered, {unread} reset unread)")
    assert outcomes.lost == [], f"lost requests: {outcomes.lost[:5]} ({len(outcomes.lost)})"
    assert outcomes.ok > 0 and in_flight > 0, outcomes
    assert ledger is not None, f"no shutdown ledger in the log\n{logs}"
    assert ledger.unanswered == 0, f"the server read {ledger.unanswered} requests it did not answer\n{logs}"
    # Every answer the server gave reached its client, so a reset is a request the server never read.
    assert ledger.answered - answered_before == outcomes.answers, (ledger, answered_before, outcomes)
    assert exit_code == "0", f"exit code {exit_code}\n{logs}"
    assert drain < 30, "SIGTERM did not stop the server before the grace period (SIGKILL)"
