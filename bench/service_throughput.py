"""Throughput and latency of the prediction service, against a trivial endpoint on
the same server, and with quantiles against the point forecast alone, in one run.

Starts the service as deployed (gunicorn, 2 uvicorn workers, preload) on 127.0.0.1
with a freshly trained model in a throwaway SQLite registry, then drives it with wrk
(Debian package ``wrk``). Every number is printed with the wrk settings behind it.

    uv run python bench/service_throughput.py
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from solar_mlops.pipeline import train_and_register
from solar_mlops.registry import Registry
from solar_mlops.training import TrainingConfig

CONNECTIONS = 16
DURATION_S = 10
WARMUP_S = 3

# Requests are formatted once, when wrk starts: per-request Lua work would take CPU from
# the server under test (wrk shares its two cores) and bias the comparison.
ONE_ROW = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- 96 half hours of one day: a forecast service is asked about the same upcoming slots
local base, pool = 1371794400, {}
for i = 1, 2000 do
  local body = string.format('{"rows":[{"time":"%s","ghi":%d,"temp_air":%d}]}',
    os.date("!%Y-%m-%dT%H:%M:%SZ", base + 1800 * math.random(0, 95)),
    math.random(0, 1000), math.random(-5, 35))
  pool[i] = wrk.format(nil, nil, nil, body)
end
request = function() return pool[math.random(1, #pool)] end
"""

ONE_ROW_UNIQUE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- a new instant on every request (60,000 of them): no solar geometry is reused
local base, pool, n = 1262304000, {}, 0
for i = 1, 60000 do
  local body = string.format('{"rows":[{"time":"%s","ghi":%d,"temp_air":%d}]}',
    os.date("!%Y-%m-%dT%H:%M:%SZ", base + 5000 * i + math.random(0, 999)),
    math.random(0, 1000), math.random(-5, 35))
  pool[i] = wrk.format(nil, nil, nil, body)
end
request = function() n = n % #pool + 1; return pool[n] end
"""


def batch_script(rows: int) -> str:
    start = 1370070000  # 2013-06-01 00:00 -07:00
    body = json.dumps(
        {"rows": [
            {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 1800 * i)),
             "ghi": float((i * 37) % 1000), "temp_air": 20.0}
            for i in range(rows)
        ]}
    )  # fmt: skip
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )


def wrk(
    url: str,
    script: str | None,
    connections: int,
    work: Path,
    duration: int = DURATION_S,
    master_pid: int | None = None,
) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if script is not None:
        path = work / f"script-{abs(hash(script))}.lua"
        path.write_text(script)
        command += ["-s", str(path)]
    pipe = subprocess.PIPE
    with subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True) as process:
        time.sleep(duration / 2)
        split = [] if master_pid is None else connections_per_worker(master_pid, url)
        out, err = process.communicate()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, out, err)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses:\n{out}")

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": latency("50%"), "p99_ms": latency("99%"), "split": split}


def workers(master_pid: int) -> list[str]:
    return Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()


def connections_per_worker(master_pid: int, url: str) -> list[int]:
    """wrk's connections each worker holds. The workers race to accept them, and an
    uneven split (see UV_TCP_SINGLE_ACCEPT in gunicorn_conf) moves p99 and throughput
    more than most code changes do, so every run shows it."""
    port = urllib.parse.urlsplit(url).port
    established: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        # local address "0100007F:4AFB", state "01" (ESTABLISHED), socket inode
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(f"socket:[{fields[9]}]")
    return [len(established & open_files(pid)) for pid in workers(master_pid)]


def open_files(pid: str) -> set[str]:
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            targets.add(str(fd.readlink()))
    return targets


def worker_rss_mib(master_pid: int) -> list[float]:
    sizes = []
    for pid in workers(master_pid):
        status = Path(f"/proc/{pid}/status").read_text()
        kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        sizes.append(kib / 1024)
    return sizes


@contextlib.contextmanager
def service(work: Path):  # type: ignore[no-untyped-def]
    uri = f"sqlite:///{work / 'mlflow.db'}"
    with contextlib.chdir(work):
        train_and_register(Registry(tracking_uri=uri), TrainingConfig(tune=False, backtest=False))
    port = 18731
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SOLAR_BIND": f"127.0.0.1:{port}",
           "SOLAR_MODEL_CACHE_DIR": str(work / "cache"), "SOLAR_WORKERS": "2",
           "SOLAR_PREDICTION_STORE_URL": f"sqlite:///{work / 'predictions.db'}",
           "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}  # fmt: skip
    log = (work / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        ["gunicorn", "-c", "python:solar_mlops.service.gunicorn_conf"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/health/ready", timeout=1)
                break
            time.sleep(0.5)
        else:
            raise RuntimeError((work / "gunicorn.log").read_text())
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as scratch, service(Path(scratch)) as (url, pid):
        work = Path(scratch)
        wrk(f"{url}/predict", ONE_ROW, CONNECTIONS, work, duration=WARMUP_S)

        def run(path: str, script: str | None, connections: int = CONNECTIONS) -> dict:
            return wrk(f"{url}{path}", script, connections, work, master_pid=pid)

        runs = {
            "trivial GET /health/live": run("/health/live", None),
            "/predict 1 row": run("/predict", ONE_ROW),
            "/predict 1 row, point only": run("/predict?quantiles=false", ONE_ROW),
            "/predict 1 row (again)": run("/predict", ONE_ROW),
            "/predict 1 row, point only (again)": run("/predict?quantiles=false", ONE_ROW),
            "/predict 1 row, unique times": run("/predict", ONE_ROW_UNIQUE),
            "/predict 100 rows": run("/predict", batch_script(100)),
            "/predict 1000 rows, 1 connection": run("/predict", batch_script(1000), 1),
        }
        rss = worker_rss_mib(pid)

    print(f"gunicorn, 2 uvicorn workers, {os.cpu_count()} cores; wrk -t1 -c{CONNECTIONS} "
          f"-d{DURATION_S}s on 127.0.0.1 (the 1000-row run uses -c1)")  # fmt: skip
    print(f"{'run':<36}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}  connections per worker")
    for name, r in runs.items():
        split = "+".join(str(n) for n in sorted(r["split"]))
        print(f"{name:<36}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}  {split}")
    trivial = runs["trivial GET /health/live"]["rps"]
    one = runs["/predict 1 row"]
    ratio = one["rps"] / trivial
    print(f"\n1-row /predict throughput / trivial endpoint: {ratio:.2f}")
    # Quantiles cost two more boosters per call: the cost, from runs taken in turn.
    with_quantiles = runs["/predict 1 row"]["rps"] + runs["/predict 1 row (again)"]["rps"]
    point_only = (
        runs["/predict 1 row, point only"]["rps"]
        + runs["/predict 1 row, point only (again)"]["rps"]
    )
    quantile_cost = with_quantiles / point_only
    print(f"1-row /predict with quantiles / point only (?quantiles=false): {quantile_cost:.3f}")
    unique = runs["/predict 1 row, unique times"]["rps"] / trivial
    print(f"1-row, unique times / trivial: {unique:.2f}")
    print(f"100-row /predict: {runs['/predict 100 rows']['rps'] * 100:.0f} rows/s")
    print("resident memory per worker (MiB): " + ", ".join(f"{m:.0f}" for m in rss))
    checks = {
        "1-row throughput >= 0.4 x trivial": ratio >= 0.4,
        "1-row throughput with quantiles >= 0.9 x point only": quantile_cost >= 0.9,
        "1-row p99 <= 15 ms at 16 connections": one["p99_ms"] <= 15,
        "1000-row batch served in <= 50 ms (median)":
            runs["/predict 1000 rows, 1 connection"]["p50_ms"] <= 50,
    }  # fmt: skip
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
