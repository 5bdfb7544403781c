"""`python -m sweeps.child`: one training run in its own process (the only place TF loads).

Protocol: the parent writes one JSON request line to stdin ({"configs", "entry",
"checkpoint_dir"}; the entry trains the configs as one population), then may write
"stop MEMBERS REASON" lines (MEMBERS: comma-separated indices into the configs). The child
writes JSON lines to its stdout pipe: {"type": "started", "import_seconds"}, {"type": "event",
"event"}, then either {"type": "results", "results"} (one per config) or {"type": "error",
"kind", "message"}. Anything else the trainer or TensorFlow prints goes to stderr, so it
cannot corrupt the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

EXIT_PARENT_GONE = 75


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


def watch_stdin(stopped: dict[int, str]) -> None:
    """Note the members each "stop" line names; exit at once when the parent goes away (stdin closes).

    A parent gone means its worker died: nobody reads our result, and a rerun elsewhere may
    already be resuming from our checkpoint, so training on would only compete with it.
    """
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "stop":
            members, _, reason = rest.partition(" ")
            for member in members.split(","):
                stopped[int(member)] = reason or "pruned"
    os._exit(EXIT_PARENT_GONE)


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.readline())
    stopped: dict[int, str] = {}  # member -> why it stops
    threading.Thread(target=watch_stdin, args=(stopped,), daemon=True).start()

    started = time.perf_counter()
    from dqn_tf.config import ConfigError, parse_config

    try:
        configs = [parse_config(c) for c in request["configs"]]  # before the trainer import: fail fast
        trainer = resolve(request["entry"])
    except ConfigError as error:
        send(protocol, {"type": "error", "kind": "config", "message": str(error)})
        return 1
    send(protocol, {"type": "started", "import_seconds": time.perf_counter() - started})

    def on_event(event: dict[str, Any]) -> str | None:
        send(protocol, {"type": "event", "event": event})
        return stopped.get(event.get("member", 0))

    try:
        results = trainer(configs, on_event=on_event, checkpoint_dir=request.get("checkpoint_dir"))
    except ConfigError as error:
        send(protocol, {"type": "error", "kind": "config", "message": str(error)})
        return 1
    except Exception as error:  # noqa: BLE001 - any trainer bug fails this trial only
        traceback.print_exc()
        send(protocol, {"type": "error", "kind": type(error).__name__, "message": str(error)})
        return 1
    send(protocol, {"type": "results", "results": [result.to_dict() for result in results]})
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # skip TensorFlow's slow interpreter teardown; everything is already sent
