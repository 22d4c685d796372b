"""The window asks before running a model on a series it was not made for: "no" runs nothing, "yes" runs it.
The real built-in chest detector on the real sagittal brain MR, offscreen."""
from __future__ import annotations

from tests.qt.conftest import open_and_wait
from viewer.core.sample import DEMO_MODELS

RUN_TIMEOUT_MS = 120_000


def test_the_chest_detector_asks_on_the_brain_mr_no_runs_nothing_yes_runs(main_window, qtbot, mr_sagittal_dir):
    window = open_and_wait(qtbot, main_window, [mr_sagittal_dir])
    lane = window.inference
    assert window.ai_panel.select_model(DEMO_MODELS[0])
    assert "Made for: CT chest · findings up to 60 mm" in window.ai_panel.info_label.text()
    assert window.ai_panel.select_model(DEMO_MODELS[1])  # the segmentation: its nodule label's largest nodule
    assert "Made for: CT chest · nodules up to 60 mm" in window.ai_panel.info_label.text()
    assert window.ai_panel.select_model(DEMO_MODELS[0])
    asked: list[tuple[list, str]] = []
    statuses: list[str] = []
    lane.status_message.connect(statuses.append)

    def answer(reply):
        def confirm(reasons, model_name=""):
            asked.append((list(reasons), model_name))
            return reply
        return confirm

    window.confirm_unsuitable = answer(False)
    assert lane.start() is None
    assert len(asked) == 1 and lane.run is None and lane.layer("detection") is None
    reasons, name = asked[0]
    assert {r.code for r in reasons} == {"modality", "body_part"} and "Chest CT" in name  # BRAIN, from its header
    assert "not run" in statuses[-1] and "this series is MR" in statuses[-1]

    window.confirm_unsuitable = answer(True)
    with qtbot.waitSignal(lane.run_done, timeout=RUN_TIMEOUT_MS):
        assert lane.start() is not None
    assert len(asked) == 2
    layer = lane.layer("detection")
    assert layer is not None  # it ran; whatever it found was kept within the model's 60 mm maximum
    assert all(size.max() <= 60 for size in layer.detections.sizes_mm)
    # (the 216 mm "nodule" it once made no longer comes up: its findings must lie in or against "lungs")


def test_lidc_starts_without_asking(main_window, qtbot, lidc_dir):
    window = open_and_wait(qtbot, main_window, [lidc_dir])
    asked = []
    window.confirm_unsuitable = lambda reasons, model_name="": asked.append(reasons) or False
    lane = window.inference
    assert window.ai_panel.select_model(DEMO_MODELS[0])
    with qtbot.waitSignal(lane.run_done, timeout=RUN_TIMEOUT_MS):
        assert lane.start() is not None  # started at once: a chest CT is what it was made for
        lane.cancel()
    assert asked == []
