"""The Optuna samplers and pruners a study may name, in one table, and the factories that build
them from a study (`sampler:`/`pruner:` sections); also each driver session's sampler seed.

Optuna is imported when a component is built, not when the table is read: the study file's
schema (`sweeps.study.spec`) lists the names without loading Optuna.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import uuid
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import optuna

    from sweeps.study.spec import StudySpec


@dataclasses.dataclass(frozen=True)
class Component:
    """One sampler or pruner: its Optuna class, the optional packages it needs, whether it draws
    without looking at finished trials (`blind`: the driver may ask its next trial ahead), and
    the constructor arguments the driver sets itself (`reserved`: a study may not)."""

    path: str  # "optuna.samplers.TPESampler"
    needs: tuple[str, ...] = ()
    blind: bool = False
    reserved: tuple[str, ...] = ()

    @property
    def cls(self) -> type:
        module, _, name = self.path.rpartition(".")
        return getattr(importlib.import_module(module), name)


_SAMPLER_RESERVED = ("seed", "search_space", "constant_liar")
SAMPLERS: dict[str, Component] = {
    "tpe": Component("optuna.samplers.TPESampler", reserved=_SAMPLER_RESERVED),
    "random": Component("optuna.samplers.RandomSampler", blind=True, reserved=_SAMPLER_RESERVED),
    "cmaes": Component("optuna.samplers.CmaEsSampler", needs=("cmaes",), reserved=_SAMPLER_RESERVED),
    "gp": Component("optuna.samplers.GPSampler", needs=("torch", "scipy"), reserved=_SAMPLER_RESERVED),
    "qmc": Component("optuna.samplers.QMCSampler", needs=("scipy",), blind=True, reserved=_SAMPLER_RESERVED),
    "grid": Component("optuna.samplers.GridSampler", blind=True, reserved=_SAMPLER_RESERVED),
}
PRUNERS: dict[str, Component] = {
    "median": Component("optuna.pruners.MedianPruner"),
    "percentile": Component("optuna.pruners.PercentilePruner"),
    "successive_halving": Component("optuna.pruners.SuccessiveHalvingPruner"),
    "hyperband": Component("optuna.pruners.HyperbandPruner"),
    "none": Component("optuna.pruners.NopPruner"),
}
SESSION_ATTR = "driver_session:"  # study user attrs, one per driver session: {"seed": ...}


def make_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with `seed` (default `sampler.seed`). TPE gets
    `constant_liar` so parallel asks spread out."""
    from sweeps.study.space import grid_space

    name, options = spec.sampler.name, dict(spec.sampler.options)
    seed = spec.sampler.seed if seed is None else seed
    if name == "tpe":
        options.setdefault("constant_liar", True)
    if name == "grid":
        return SAMPLERS[name].cls(grid_space(spec), seed=seed, **options)
    return SAMPLERS[name].cls(seed=seed, **options)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The study's pruner; hyperband's resource defaults to the trainer's step budget."""
    name, options = spec.pruner.name, dict(spec.pruner.options)
    if name == "hyperband":
        options.setdefault("max_resource", int(spec.trainer.get("total_timesteps", 50_000)))
    return PRUNERS[name].cls(**options)


def session_seed(study: optuna.Study, seed: int | None) -> int | None:
    """This driver session's sampler seed: drivers sharing a study must not draw the same trials.

    Every session records itself on the study (user attr `driver_session:<id>`). The first
    session on a study uses `seed` itself, so a fresh sweep is reproducible; the k-th (k counted
    from the sessions recorded before it; a study that ran trials but has no record, as older
    versions left them, counts as one) uses a seed derived from (seed, k), so resuming is
    reproducible too. Two sessions starting at the same moment may count the same k; of any two
    such, at least one sees the other's record appear while registering (each writes, then
    reads), and that one mixes its own random id in. `seed` None stays None: every session draws
    at random.
    """
    from optuna.trial import TrialState

    if seed is None:
        return None

    def recorded() -> set[str]:
        return {key for key in study.user_attrs if key.startswith(SESSION_ATTR)}

    before = recorded()
    ran = study.get_trials(deepcopy=False, states=tuple(s for s in TrialState if s != TrialState.WAITING))
    earlier = len(before) if before else int(bool(ran))
    me = uuid.uuid4()
    key = f"{SESSION_ATTR}{me.hex}"
    study.set_user_attr(key, {"index": earlier})
    raced = bool(recorded() - before - {key})
    if earlier == 0 and not raced:
        chosen = seed
    else:
        entropy = [seed, earlier, me.int] if raced else [seed, earlier]
        chosen = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    study.set_user_attr(key, {"index": earlier, "seed": chosen})
    return chosen


def constructor_options(component: Component) -> list[str]:
    """The keyword options a study may give `component` (its constructor's, minus reserved)."""
    return [name for name, p in inspect.signature(component.cls).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in component.reserved]
