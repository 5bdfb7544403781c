"""How a session's trials end and leave the driver: told to Optuna (or found taken over by
another driver whose lease outlived this one's), forgotten, their stop events and checkpoint
folders released; Ctrl-C and an unreachable storage stop every run. Part of `Driver`
(`sweeps.driver.loop`), whose state it shares: the loop decides when, this says how.
"""

from __future__ import annotations

import contextlib
import time

from distributed import Event
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from sweeps.driver import dispatch, recovery
from sweeps.driver.trial import LiveTrial
from sweeps.store.checkpoints import remove_folders_of
from sweeps.store.optuna_private import trial_id


class TrialEndings:
    """The `Driver`'s methods for ending trials (its attributes: study, spec, storage, trials,
    futures, writer, tally, heartbeat, asker, forming, ended, stops_set, run_dir, client, topic;
    its methods say, show, stop_trial, on_done, dead)."""

    def finish(self, trial: LiveTrial) -> None:
        """Hand the trial's rows to the writer (its log has them at once: a kill from here on
        loses none), then tell Optuna how the trial ended; its stop event and checkpoint folders
        go in `tidy`. A trial another driver took over is only forgotten: its copy runs there."""
        stopped = trial.pruned
        told = None if trial.taken_over else self.tell(trial)
        self.drop(trial)
        if told is None:  # its runs here ended; its checkpoint folder stays for the copy
            if not trial.taken_over:
                self.say(self.taken_over(trial))
            self.release(trial, folders=False)
            return
        state, value = told
        self.writer.add_trial(trial.number, trial.rows())
        self.tally.count(state, value, trial.number, time.monotonic() - trial.started)
        if state == TrialState.FAIL:
            self.say(f"trial {trial.number} FAILED: {dispatch.first_line(trial.fail_reason or '')}")
        elif state == TrialState.COMPLETE:
            late = " (its members trained to the end before the stop reached them)" if stopped else ""
            self.say(f"trial {trial.number} finished: {value:.2f}{late}")
        self.ended.append(trial)
        self.writer.changed()
        self.show()

    def tell(self, trial: LiveTrial) -> tuple[TrialState, float | None] | None:
        """Tell Optuna how the trial ended: (state, value), or None when another driver had
        taken it over. A tell whose connection dropped after it was stored was retried and found
        the trial finished (`sweeps.store.outages`): what is stored is this driver's."""
        try:
            with self.pace.timed("tell"):
                return trial.conclude(self.study, self.spec.objective)
        except (UpdateFinishedTrialError, ValueError):
            stored = self.storage.get_trial(trial_id(trial.optuna_trial))
            if not stored.state.is_finished():
                raise
            if stored.user_attrs.get("fail_reason") == recovery.DRIVER_LOST:
                return None
            return stored.state, stored.value

    def drop(self, trial: LiveTrial) -> None:
        """This session is done with `trial`: no lease, not in flight."""
        self.asker.asked.discard(trial.number)
        self.heartbeat.drop(trial_id(trial.optuna_trial))
        del self.trials[trial.number]

    # -- leases -----------------------------------------------------------------------------
    def on_tick(self) -> None:
        """After each heartbeat: this session's trials that another driver took over stop here;
        other drivers' expired trials are taken over (and what they add is asked by `fill`)."""
        self.find_lost()
        mine = {trial_id(trial.optuna_trial) for trial in self.trials.values()}
        recovery.take_over(self.study, self.spec.storage.grace, self.dead, mine.__contains__, self.say)
        self.asker.count()

    def find_lost(self) -> None:
        for trial in recovery.taken_from(self.study, self.trials.values()):
            self.lose(trial)

    def lose(self, trial: LiveTrial) -> None:
        """Another driver took `trial` over (this session's lease on it expired): stop its runs
        here; it is forgotten once they return (`finish`)."""
        trial.taken_over = True
        self.heartbeat.drop(trial_id(trial.optuna_trial))
        self.say(self.taken_over(trial) + ": stopping its runs here")
        self.stop_trial(trial)
        if trial.settled:
            self.finish(trial)

    def taken_over(self, trial: LiveTrial) -> str:
        return (f"trial {trial.number} was taken over by another driver (this one missed its heartbeats for "
                f"storage.grace = {self.spec.storage.grace} s)")

    def tidy(self) -> None:
        """Between events: the ended trials' stop events and checkpoint folders; raise what
        stopped the writer, if anything did."""
        for trial in self.ended:
            self.release(trial)
        self.ended.clear()
        self.writer.check()

    def release(self, trial: LiveTrial, folders: bool = True) -> None:
        """Free what the ended trial held outside this process: its stop event on the scheduler,
        if it was set (`clear` deletes an event nobody waits on; one never set is not there) and
        its checkpoint folders (nothing resumes them: it was not re-queued)."""
        if trial.number in self.stops_set:
            self.stops_set.discard(trial.number)
            with contextlib.suppress(OSError, TimeoutError):  # best effort: the event is tiny
                trial.stop.clear()
        if folders:
            remove_folders_of(self.run_dir, [trial.checkpoint_key])

    # -- lifecycle --------------------------------------------------------------------------
    def stop_runs(self) -> None:
        """Stop every run of this session, keeping their checkpoints. First: a worker that
        outlives this driver (an external cluster) keeps the checkpoints of the tasks it stops.
        Stop events stay set: they are how the workers' children learn to stop."""
        with contextlib.suppress(OSError, TimeoutError):
            Event(dispatch.interrupt_event_name(self.topic), client=self.client).set()
        for future in list(self.futures):
            future.cancel()
        for trial in self.trials.values():
            trial.stop.set()
        self.trials.clear()

    def interrupt(self) -> None:
        """Ctrl-C: tell the trials whose tasks have finished, stop the runs (`stop_runs`), mark
        every trial this session asked that is still RUNNING FAIL ("interrupted") and re-queue it
        (also one re-queued before: interrupts are not the trial's fault)."""
        for future in [future for future in self.futures if future.status == "finished"]:
            with contextlib.suppress(Exception):  # best effort: what is not told is re-queued
                self.on_done(self.futures.pop(future), dispatch.task_outcome(future))
        self.stop_runs()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number in self.asker.asked:
                recovery.requeue(self.study, trial, recovery.INTERRUPTED)
        self.say("interrupted: running trials marked FAIL and re-queued; run the same command to resume")
