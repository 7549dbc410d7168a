"""Named points in training where code outside the trainer can listen (distributed runs, benchmarks).

A listener is registered with :meth:`TrainerHooks.add_hook` and called with the event's arguments; the
trainer's own methods are never replaced. The events:

==========================  =========================================  ==========================================
event                       arguments                                   when
==========================  =========================================  ==========================================
``checkpoint_saved``        path                                        after every checkpoint the run writes, in
                                                                        every process (only rank 0 writes)
``stage_started``           stage                                       a stage's model state is initialised
                                                                        (GemiRec: after the dictionary's k-means)
``epoch_trained``           stage, epoch, seconds                       after a training epoch
``validated``               stage, score, result                        after every validation
``dictionary_utilisation``  stage, when, utilisation                    each time GemiRec's trainer logs it
==========================  =========================================  ==========================================

``stage`` is ``"train"`` for a trainer without stages.
"""

from collections import defaultdict

EVENTS = ("checkpoint_saved", "stage_started", "epoch_trained", "validated", "dictionary_utilisation")


class TrainerHooks:
    """The registry of listeners and the root of the trainer's overridable steps."""

    stage = "train"  # a trainer with stages replaces this with the current stage's name

    @property
    def _hooks(self):
        hooks = self.__dict__.get("_hook_table")
        if hooks is None:
            hooks = self.__dict__["_hook_table"] = defaultdict(list)
        return hooks

    def add_hook(self, event, listener):
        """Call ``listener(*arguments)`` at ``event`` (one of :data:`EVENTS`) from now on."""
        if event not in EVENTS:
            raise ValueError(f"unknown trainer event {event!r}; allowed: {', '.join(EVENTS)}")
        self._hooks[event].append(listener)

    def remove_hooks(self, event=None):
        """Forget the listeners of ``event`` (of every event when ``None``)."""
        if event is None:
            self._hooks.clear()
        else:
            self._hooks.pop(event, None)

    def run_hooks(self, event, *arguments):
        for listener in list(self._hooks.get(event, ())):
            listener(*arguments)

    # --- steps a trainer overrides ------------------------------------------------------------------------
    def prepare_evaluation(self, eval_data):
        """Called before every evaluation, after the weights to evaluate are loaded."""

    def after_train_epoch(self, epoch_idx, losses):
        """Called after every training epoch with its losses, before the epoch's time is taken."""

    def result_extras(self):
        """What a trainer adds to a run's result (``quick_start``'s result file); GemiRec: its stage losses."""
        return {}
