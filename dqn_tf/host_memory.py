"""How much host memory a replay buffer needs, how much there is, and refusing what cannot fit.

The buffer is preallocated, but numpy's zeroed pages only become real memory as the ring fills:
a buffer too large for the host would start fine and be killed hours later. So a config is
refused before anything is allocated when its full buffer exceeds the memory available now:
MemAvailable (or psutil's `available`), lowered to the headroom of the process's cgroup limit
(containers, Dask workers with memory limits) when there is one.
"""

from __future__ import annotations

from pathlib import Path

from dqn_tf.errors import ConfigError
from dqn_tf.observations import ObsSpec

ROW_BYTES = 4 + 4 + 4  # action int32, reward float32, done float32
FRAME_ROW_BYTES = 1 + 4  # per transition of pixel replay: age uint8, episode start slot int32
INITIAL_STARTS = 64  # episode-start stacks the pixel replay holds before it grows (by doubling)
NO_LIMIT = 2**60  # cgroup v1 reports "unlimited" as a huge number


def replay_bytes(capacity: int, obs: ObsSpec, members: int = 1, n_envs: int = 1) -> int:
    """Bytes of a full ReplayBuffer: vectors store obs and next obs per transition; images store
    one frame per transition (`obs.frame_stack` frames make an observation), plus a few frames of
    slack, the stacks episodes start from and the last step's next observations."""
    if not obs.is_image:
        return members * capacity * (2 * obs.nbytes + ROW_BYTES)
    frame = obs.nbytes // obs.frame_stack
    frames = capacity + obs.frame_stack * n_envs
    starts = (n_envs + INITIAL_STARTS) * (obs.nbytes + 8) + 8  # stacks, last use, ring position
    last_step = n_envs * (obs.nbytes + 8 + 8)  # next observations, age, start slot
    return members * (frames * frame + capacity * (ROW_BYTES + FRAME_ROW_BYTES) + starts + last_step)


def available_bytes() -> int:
    """Memory this process can still take: the host's available memory, lowered to its cgroup's headroom."""
    available = _host_available()
    headroom = _cgroup_headroom()
    return available if headroom is None else min(available, headroom)


def check_replay_fits(buffer_size: int, obs: ObsSpec, members: int, n_envs: int) -> int:
    """Raise ConfigError unless a full buffer fits in memory now; returns the bytes it needs."""
    needed = replay_bytes(buffer_size, obs, members, n_envs)
    available = available_bytes()
    if needed > available:
        per_transition = needed / (buffer_size * members)
        fits = int(available / per_transition)
        raise ConfigError(
            f"buffer_size = {buffer_size}: the replay buffer needs {needed:,} bytes ({_human(needed)}; "
            f"{per_transition:,.0f} bytes per transition x {buffer_size:,} transitions x {members} member(s), "
            f"observations {obs.dtype} {list(obs.shape)}) but {available:,} bytes ({_human(available)}) of memory "
            f"are available: at most {max(fits, 0):,} transitions fit (leave room for TensorFlow and the envs); "
            "lower buffer_size, train fewer members together, or use a bigger machine"
        )
    return needed


def _host_available() -> int:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    import psutil  # not Linux: psutil (a dependency of distributed) knows the platform's way

    return int(psutil.virtual_memory().available)


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, else v1); None without a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory.limit_in_bytes", "memory.usage_in_bytes")):
        for folder in _cgroup_folders():
            limit_path, usage_path = folder / limit_file, folder / usage_file
            if limit_path.exists() and usage_path.exists():
                limit = limit_path.read_text().strip()
                if limit == "max" or int(limit) >= NO_LIMIT:
                    return None
                return max(int(limit) - int(usage_path.read_text().strip()), 0)
    return None


def _cgroup_folders() -> list[Path]:
    """This process's cgroup folders (v2 unified, then v1 memory), as mounted in /sys/fs/cgroup."""
    root, folders = Path("/sys/fs/cgroup"), []
    cgroup = Path("/proc/self/cgroup")
    if cgroup.exists():
        for line in cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            relative = path.lstrip("/")
            if controllers == "":
                folders += [root / relative, root]
            elif "memory" in controllers.split(","):
                folders += [root / "memory" / relative, root / "memory"]
    return folders


def _human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
