"""Interruptions of a training run for the tests, through the trainer's callbacks (the command
line has no test flags): a stop after N optimizer steps, or a real SIGINT at a named point.

    run(argv, callbacks=interruption(after=13))            # as if Ctrl-C came after step 13
    run(argv, callbacks=interruption(at_phase="startup"))  # SIGINT to this process there

Phases: startup, epoch-start:E, step:N (before global step N), validation:E, checkpoint:E, test.
``python tests/support/interrupted_training.py`` does the same in a process of its own.
"""
import signal

from models.training.config import TrainerCallbacks


def interruption(after=None, at_phase=None):
    """TrainerCallbacks that stop the run once ``after`` steps are done, or send this process a
    real SIGINT (what a person's Ctrl-C delivers) when the run reaches ``at_phase``."""
    def on_phase(name):
        if name == at_phase:
            signal.raise_signal(signal.SIGINT)

    def stop_requested(steps_done):
        return after is not None and steps_done >= after

    return TrainerCallbacks(on_phase=on_phase, stop_requested=stop_requested)
