"""File > Open Sample Study (and ``hounsfield --demo``): the built-in sample study, its built-in models run on it one
after the other, then the views jump to the top finding, so the first thing a visitor sees is AI output."""
from __future__ import annotations

from PySide6.QtCore import QObject

from viewer.core.jobs import Progress
from viewer.qt.workers import start_job


def _prepare_sample(_token):
    yield Progress(0, 1, "Preparing the sample study")
    from viewer.core.sample import demo_study_path

    return str(demo_study_path())


class DemoRunner(QObject):
    """Opens the sample study in ``window`` and queues the built-in models on it."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.models: list[str] = []  # built-in models still to run on the sample study
        self.jump_pending = False

    def reset(self) -> None:
        """Another study is being opened: run nothing more."""
        self.models = []
        self.jump_pending = False

    def open(self) -> None:
        """Generate the sample study on first use (on a worker), then open it."""
        window = self.window
        handle = start_job(_prepare_sample, "sample", parent=self)
        handle.progressed.connect(window.job_status.show_progress)
        handle.finished.connect(self._open_study)
        handle.failed.connect(window.on_job_failed)
        window.job_status.busy("Preparing the sample study")

    def _open_study(self, path: str) -> None:
        from viewer.core.sample import DEMO_MODELS

        window = self.window
        window.open_paths([path], remember=False)
        self.models = [m for m in DEMO_MODELS if any(info.id == m for info in window.ai_panel.models)]
        self.jump_pending = bool(self.models)

    def run_next(self) -> None:
        """Start the next queued model when the lane is free; after the last, jump to the top finding."""
        lane, panel = self.window.inference, self.window.ai_panel
        while self.models and not lane.busy:
            if panel.select_model(self.models.pop(0)) and lane.start() is not None:
                return
        if self.jump_pending and not self.models and not lane.busy:
            self.jump_pending = False
            self.jump_to_top_finding()

    def jump_to_top_finding(self) -> bool:
        """Show the highest-scoring finding shown, unless the user has scrolled this series; True when it jumped."""
        window = self.window
        if window.viewer.user_navigated:
            return False
        shown = window.findings_panel.shown()
        if not shown:
            return False
        top = max(shown, key=lambda f: f.score if isinstance(f.score, (int, float)) else -1.0)
        window.inference.go_to_finding(top.index)
        return True
