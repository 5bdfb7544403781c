"""Driver scale: a simulated sweep of N trials at P in flight on a real external Dask cluster.

    .venv/bin/python benchmarks/scale.py --trials 1000 --parallel 16
    .venv/bin/python benchmarks/scale.py --trials 10000 --parallel 64 --trial-seconds 1
    .venv/bin/python benchmarks/scale.py --trials 200 --parallel 16 --keep runs/scale-200
    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py --trials 1000 --storage postgresql --drivers 2

Starts `dask scheduler` and `dask worker --nworkers W --nthreads P/W` (W = P by default) as
separate processes, then runs `sweeps.driver.loop.Driver` in this process on a study of N trials of
one seed each whose trainer is `benchmarks/scale_trainer.py`: it sleeps --trial-seconds and
sends what a real trial sends (progress every 1%, --evals evaluations, --episodes episodes).
Tasks run in the workers' trial processes as real ones do (warm: a worker's first task starts one).

Prints, for this process (the driver, its Dask client and Optuna):
- wall vs ideal (N x trial seconds / P); and vs ideal with the per-task process time (start-up,
  relaying, exit: task wall seconds minus trainer seconds) included, which the driver does not
  control (see the warm-process work);
- driver CPU per trial (all threads of this process), over the whole sweep and per tenth of it
  (flat means nothing per completion grows with the finished trials), and by thread (the
  driver's loop in MainThread, Dask's client in its IO loop thread, the results writer);
- Optuna: ask and tell p50/p99, and storage wall seconds per trial;
- completion-to-refill latency p50/p99: from the moment the client learns a task finished to
  the submit of the task that takes its slot (the first P submits and the end of the sweep,
  where nothing refills, are not counted);
- driver RSS when the sweep ends and its peak (before this script loads the results).

`--storage` picks the study's storage: the run folder's journal (default), `postgresql` or
`redis` (a throwaway server on this machine, started here as the tests start theirs:
`tests/servers.py`, so run from the repository root with PYTHONPATH=$PWD), or a URL.
`--drivers D` grows the study from D drivers at once (threads of this process sharing one
client, P/D in flight each, their own run folders but on the journal, where they share one):
the CPU figures are then the D drivers' together, per trial of the study.

The sampler defaults to random: TPE's ask grows with the finished trials whatever
`n_ei_candidates` (docs/performance.md), which `--sampler tpe` shows.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from distributed import Client

from sweeps.driver import dispatch
from sweeps.driver.loop import Driver
from sweeps.driver.session import open_study
from sweeps.results import load
from sweeps.store import optuna_private
from sweeps.store.run_folder import save_run_info
from sweeps.study.loading import parse_spec
from sweeps.study.spec import StudySpec

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "benchmarks.scale_trainer:train_population"
EPISODE_STEPS = 20  # benchmarks/scale_trainer.py


@contextmanager
def dask_cluster(folder: Path, workers: int, threads: int, nice: int = 0) -> Iterator[str]:
    """A `dask scheduler` and `dask worker --nworkers workers --nthreads threads` (at `nice`);
    yields the address."""
    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = folder / "scheduler.json"

    def start(args: list[str], name: str) -> subprocess.Popen:
        return subprocess.Popen(["nice", "-n", str(nice), dask, *args], cwd=ROOT,
                                stdout=(folder / f"{name}.log").open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    procs = [start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(scheduler_file)], "scheduler")]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "scheduler.log").read_text())
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(start(["worker", address, "--host", "127.0.0.1", "--nworkers", str(workers),
                            "--nthreads", str(threads), "--no-dashboard"], "workers"))
        yield address
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, 15)
            proc.wait()


class TimedClient(Client):
    """A client that notes when each task is submitted and when the driver hears that it finished
    (the driver's own done-callback, `sweeps.dispatch.pass_outcome`, is wrapped: a callback of
    ours would cost this process more work per task than the driver does)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.submits: list[float] = []
        self.dones: list[float] = []
        self.done_cpu: list[float] = []  # this process's CPU seconds at each completion
        pass_outcome = dispatch.pass_outcome

        def noted(*args: Any) -> None:
            self.dones.append(time.perf_counter())
            self.done_cpu.append(time.process_time())
            pass_outcome(*args)

        dispatch.pass_outcome = noted

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        future = super().submit(*args, **kwargs)
        self.submits.append(time.perf_counter())
        return future


def refill_latencies(submits: list[float], dones: list[float]) -> list[float]:
    """Each completion paired with the first later submit not already paired (first in, first out)."""
    latencies, waiting, j = [], [], 0
    events = sorted([(t, 1) for t in dones] + [(t, 0) for t in submits])
    for moment, is_done in events:
        if is_done:
            waiting.append(moment)
        elif j < len(waiting):
            latencies.append(moment - waiting[j])
            j += 1
    return latencies


class Stopwatch:
    """Wall seconds of every call of the functions it wraps, by name (thread-safe enough: appends)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.calls[name].append(time.perf_counter() - began)
        return timed


def instrument(studies: list[Any], watch: Stopwatch) -> None:
    """Time `study.ask`, the tell (`sweeps.store.optuna_private.tell` calls `Study.tell`'s body) and every
    storage call (instance attributes shadow methods)."""
    optuna_private.tell_body = watch.wrap("tell", optuna_private.tell_body)
    for study in studies:
        study.ask = watch.wrap("ask", study.ask)
        storage = optuna_private.storage_of(study)
        for name in dir(type(storage)):
            if not name.startswith("_") and callable(getattr(storage, name)):
                setattr(storage, name, watch.wrap(f"storage.{name}", getattr(storage, name)))


@contextmanager
def storage_url(name: str) -> Iterator[str | None]:
    """The study's storage URL: None for the run folder's journal, a throwaway local server's for
    `postgresql` and `redis`, else `name` itself."""
    if name not in ("postgresql", "redis"):
        yield None if name == "journal" else name
        return
    from tests.servers import Postgres, Redis, postgres_bin, redis_binary

    server = Postgres(postgres_bin()) if name == "postgresql" else Redis(redis_binary())
    server.start()
    try:
        yield server.new_database() if name == "postgresql" else server.url()
    finally:
        server.stop()


def make_spec(args: argparse.Namespace) -> StudySpec:
    freq = max(1, args.episodes * EPISODE_STEPS // args.evals)
    return parse_spec({
        "study": "scale",
        "env_id": "CartPole-v1",
        "trainer": {"total_timesteps": freq * args.evals, "eval_freq": freq, "n_eval_episodes": 1,
                    "learning_starts": 0, "train_freq": max(1, round(1000 * args.trial_seconds / args.evals))},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                  "gamma": {"type": "float", "low": 0.9, "high": 0.999}},
        "objective": {"metric": "final"},
        "budget": {"n_trials": args.trials, "timeout": None},
        "sampler": {"name": args.sampler, "seed": 0},
        "pruner": {"name": args.pruner},
        "parallel": args.parallel // args.drivers,
    })


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (from /proc)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = names.get(int(task.name), (task / "comm").read_text().strip())
            out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ms(values: list[float] | np.ndarray, q: float) -> str:
    return f"{1000 * float(np.percentile(values, q)):.1f}" if len(values) else "-"


def report(args: argparse.Namespace, spec: StudySpec, client: TimedClient, watch: Stopwatch,
           wall: float, cpu: float, run_dir: Path, load_before: float,
           threads: dict[str, float], rss: tuple[float, float]) -> None:
    n, p = args.trials, args.parallel
    trials = load(run_dir)["trials"]
    assert (trials["state"] == "COMPLETE").sum() >= n, trials["state"].value_counts()
    trial_s = spec.trainer["train_freq"] * args.evals / 1000
    ideal = n * trial_s / p
    task_wall = float(trials["wall_seconds"].mean())
    process = task_wall - float(trials["train_seconds"].mean())
    with_process = n * task_wall / p
    print(f"scale: {n} trials of {trial_s:g} s at {p} in flight from {args.drivers} driver(s) on storage "
          f"{args.storage} ({args.workers} worker processes x "
          f"{p // args.workers} threads), sampler {args.sampler}, pruner {args.pruner}, {args.evals} evals, "
          f"{args.episodes} episodes and 100 progress events per trial; cluster at nice {args.nice}; "
          f"{os.cpu_count()} cores, load average "
          f"{load_before:.2f} before / {os.getloadavg()[0]:.2f} after (other work skews it)")
    print(f"wall {wall:.1f} s vs ideal {ideal:.1f} s (N x trial s / P): {100 * (wall / ideal - 1):+.1f}%")
    print(f"per-task process time (start-up, relay, exit): {process:.2f} s, of which start-up "
          f"{trials['startup_seconds'].mean():.2f} s; wall vs ideal with it ({with_process:.1f} s): "
          f"{100 * (wall / with_process - 1):+.1f}%")
    done_cpu = np.array(client.done_cpu)
    tenths = [f"{1000 * (b[-1] - b[0]) / max(1, len(b) - 1):.1f}" for b in np.array_split(done_cpu, 10) if len(b) > 1]
    print(f"driver CPU per trial (all drivers): {1000 * cpu / n:.1f} ms (per tenth of the sweep: {' '.join(tenths)} ms)")
    busiest = sorted(threads.items(), key=lambda item: -item[1])[:3]
    ended = cpu - sum(threads.values())  # threads gone by the end: the results writer, the outcome readers
    print("  by thread: " + ", ".join(f"{name} {1000 * seconds / n:.1f}" for name, seconds in busiest)
          + f", threads ended by the end (results writer, outcome readers) {1000 * ended / n:.1f} ms")
    storage = sum(sum(v) for k, v in watch.calls.items() if k.startswith("storage."))
    top = sorted(((sum(v), k) for k, v in watch.calls.items() if k.startswith("storage.")), reverse=True)[:3]
    print(f"optuna: ask p50 {ms(watch.calls['ask'], 50)} p99 {ms(watch.calls['ask'], 99)} ms, tell p50 "
          f"{ms(watch.calls['tell'], 50)} p99 {ms(watch.calls['tell'], 99)} ms; storage {1000 * storage / n:.1f} ms "
          f"wall per trial ({', '.join(f'{k[8:]} {1000 * s / n:.1f}' for s, k in top)})")
    latencies = refill_latencies(client.submits, client.dones)
    print(f"completion-to-refill latency: p50 {ms(latencies, 50)} ms, p99 {ms(latencies, 99)} ms, "
          f"max {ms(latencies, 100)} ms ({len(latencies)} refills)")
    print(f"driver RSS: {rss[0]:.0f} MB at the end, peak {rss[1]:.0f} MB; threads {threading.active_count()}")


class Quiet:
    """The driver's monitor: keeps the warnings (slow asks) and drops the per-trial lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, tally: Any) -> None:
        pass

    def log(self, line: str) -> None:
        if not line.startswith(("trial ", "no new trials")):
            self.lines.append(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="N: trials to finish")
    parser.add_argument("--parallel", type=int, default=16, help="P: tasks in flight")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default P; P must divide by it)")
    parser.add_argument("--trial-seconds", type=float, default=1.0, help="each trial's sleep")
    parser.add_argument("--evals", type=int, default=10, help="evaluations per trial")
    parser.add_argument("--episodes", type=int, default=300, help="training episodes per trial")
    parser.add_argument("--sampler", default="random", choices=["random", "tpe", "qmc"])
    parser.add_argument("--pruner", default="none", choices=["none", "median"])
    parser.add_argument("--nice", type=int, default=0,
                        help="run the scheduler, workers and trials at this nice level (10: the driver "
                             "gets a core first, as on a cluster where it has a node of its own)")
    parser.add_argument("--storage", default="journal",
                        help="journal (the run folder's), postgresql or redis (a throwaway server started here), or a URL")
    parser.add_argument("--drivers", type=int, default=1, help="drivers growing the study at once (P must divide by it)")
    parser.add_argument("--keep", type=Path, default=None, help="run folder to keep (default: a temporary one)")
    args = parser.parse_args()
    args.workers = args.workers or args.parallel
    if args.parallel % args.workers or args.parallel % args.drivers:
        parser.error("--parallel must be a multiple of --workers and of --drivers")
    spec = make_spec(args)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        with storage_url(args.storage) as url, \
                dask_cluster(Path(tmp), args.workers, args.parallel // args.workers, args.nice) as address, \
                TimedClient(address, timeout=60) as client:
            client.wait_for_workers(args.workers, timeout=120)
            folders = [run_dir if k == 0 or url is None else run_dir / f"driver-{k}" for k in range(args.drivers)]
            save_run_info(spec, run_dir, url)  # a run folder `dqn-sweep status/report` can read
            studies = [open_study(spec, folder, url) for folder in folders]
            watch = Stopwatch()
            instrument(studies, watch)
            monitor = Quiet()
            drivers = [Driver(spec, study, client, folder, monitor=monitor, entry=ENTRY)
                       for study, folder in zip(studies, folders)]
            cpu, began, threads = time.process_time(), time.perf_counter(), thread_cpu()
            if len(drivers) == 1:
                drivers[0].drive()
            else:
                with ThreadPoolExecutor(len(drivers)) as pool:
                    list(pool.map(Driver.drive, drivers))
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
            rss = (rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # before `report` loads results
            threads = {name: seconds - threads.get(name, 0.0) for name, seconds in thread_cpu().items()}
        report(args, spec, client, watch, wall, cpu, run_dir, load_before, threads, rss)
        for line in monitor.lines:
            print(f"driver said: {line}")


if __name__ == "__main__":
    main()
