"""`python -m sweeps.worker.child`: a trial process (the only place TF loads), serving one task after
another so that a worker pays the interpreter start and TensorFlow import once.

Protocol, per task: the parent writes one JSON request line to stdin ({"task", "configs",
"entry", "checkpoint_dir"}; `task` numbers the requests 1, 2, ...; the entry trains the configs
as one population), then may write "stop TASK MEMBERS REASON" lines (MEMBERS: comma-separated
indices into that task's configs; a stop for another task is ignored, so a late one cannot
reach the next trial). The child writes JSON lines to its stdout pipe: {"type": "started",
"import_seconds"}, {"type": "event", "event"}, then either {"type": "results", "results"} (one
per config) or {"type": "error", "kind", "message"}, and waits for the next request. Anything
else the trainer or TensorFlow prints goes to stderr, so it cannot corrupt the protocol; each
request first writes TASK_MARKER there, so the parent keeps only this task's stderr tail.

The child exits at once when stdin closes: the parent retired it, or its worker died (nobody
reads our result, and a rerun elsewhere may already be resuming from our checkpoint).

What a task leaves behind for the next one in the same process: imported modules, the
TensorFlow runtime (its devices and thread pools, which is why the parent keys warm processes
on everything fixed at start-up, `devices` included), compiled-function caches and memory.
Stops, configs and the checkpoint folder are the request's own.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import sys
import time
import traceback
from collections.abc import Callable
from threading import Thread
from typing import Any, NoReturn, TextIO

EXIT_PARENT_GONE = 75
TASK_MARKER = "\x1esweeps.worker.child: next task\n"  # a stderr line the parent drops, not shown anywhere


def send(stream: TextIO, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, default=_plain) + "\n")
    stream.flush()


def _plain(value: Any) -> Any:
    """numpy scalars and arrays become plain numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def resolve(entry: str) -> Callable[..., Any]:
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def watch_stdin(requests: queue.Queue) -> NoReturn:
    """Queue each request with a fresh stop table of its own, note the members each "stop"
    line names for the current task; exit at once when stdin closes.

    Requests and stops are read by this one thread in order, so a stop sent right after its
    request is never lost, and one for an earlier task never lands in the current table.
    """
    task, stopped = None, {}
    for line in sys.stdin:
        if line.startswith("{"):
            request = json.loads(line)
            task, stopped = request.get("task"), {}
            sys.stderr.write(TASK_MARKER)
            sys.stderr.flush()
            requests.put((request, stopped))
            continue
        command, _, rest = line.strip().partition(" ")
        if command == "stop":
            number, members, reason = (rest.split(" ", 2) + ["", ""])[:3]
            if number.isdigit() and int(number) == task:
                for member in members.split(","):
                    stopped[int(member)] = reason or "pruned"
    os._exit(EXIT_PARENT_GONE)


def serve(protocol: TextIO, request: dict[str, Any], stopped: dict[int, str]) -> None:
    """Run one request to its results or error message."""
    started = time.perf_counter()
    from dqn_tf.config import ConfigError, parse_config

    try:
        configs = [parse_config(c) for c in request["configs"]]  # before the trainer import: fail fast
        trainer = resolve(request["entry"])
    except ConfigError as error:
        send(protocol, {"type": "error", "kind": "config", "message": str(error)})
        return
    send(protocol, {"type": "started", "import_seconds": time.perf_counter() - started})

    def on_event(event: dict[str, Any]) -> str | None:
        send(protocol, {"type": "event", "event": event})
        return stopped.get(event.get("member", 0))

    try:
        results = trainer(configs, on_event=on_event, checkpoint_dir=request.get("checkpoint_dir"))
    except ConfigError as error:
        send(protocol, {"type": "error", "kind": "config", "message": str(error)})
        return
    except Exception as error:  # noqa: BLE001 - any trainer bug fails this trial only
        traceback.print_exc()
        send(protocol, {"type": "error", "kind": type(error).__name__, "message": str(error)})
        return
    send(protocol, {"type": "results", "results": [result.to_dict() for result in results]})


def main() -> NoReturn:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests: queue.Queue = queue.Queue()
    Thread(target=watch_stdin, args=(requests,), daemon=True).start()
    while True:
        serve(protocol, *requests.get())


if __name__ == "__main__":
    main()  # never returns: a bug outside the trainer (an entry that does not import) exits with its traceback
