"""GPU-time estimates: FLOPs counted on the meta device match the formula by hand; the schedule
and the calibration on the paper's timings are the documented arithmetic."""
from __future__ import annotations

import pytest
import torch

from perceptual.study import estimate, profiles
from perceptual.method.vgg import layer_names


def test_vgg16_forward_flops_match_the_formula_by_hand():
    with estimate._shapes():
        net = estimate._loss_net("vgg16-caffe")
        x = torch.zeros(2, 3, 64, 64)  # (B, 3, H, W)
        counted = estimate._count(lambda: net(x, ["relu2_2"]))
    # conv1_1 3→64, conv1_2 64→64 at 64²; conv2_1 64→128, conv2_2 128→128 at 32²: 2·H·W·Cin·Cout·9 each
    by_hand = 2 * 2 * 9 * (64 * 64 * (3 * 64 + 64 * 64) + 32 * 32 * (64 * 128 + 128 * 128))
    assert counted == by_hand
    assert layer_names(16)[:8] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1",
                                   "conv2_2"]


def test_makespan_longest_first():
    assert estimate.makespan([4, 4, 3, 3, 2], 2) == 9  # 4+3+2 | 4+3
    assert estimate.makespan([4, 4, 3, 3, 2], 8) == 4
    assert estimate.makespan([1, 2, 3], 1) == 6


def test_paper_estimate_is_calibrated_on_the_papers_four_hours():
    e = estimate.estimate(profiles.get("paper", gpu=True))
    assert e.jobs["style-la_muse"] == pytest.approx(4 * 3600)  # 40k iterations at 0.36 s: paper §4.1
    assert len(e.jobs) == 9
    assert e.titan_rate == pytest.approx(e.style_flops / 0.36)
    assert 5e11 < e.style_flops < 8e11  # ≈ 0.6 TFLOP per 256², batch-4 step with VGG-16 to relu4_3
    # Fig. 5: 50 images × 500 iterations × Table 1's per-iteration time at 256, 512, 1024
    assert e.evaluation["objective (Fig. 5)"] == pytest.approx(50 * (15.86 + 54.85 + 214.44))
    one, eight = e.hours(1), e.hours(8)
    assert one == pytest.approx((sum(e.jobs.values()) + sum(e.evaluation.values())) / 3600)
    assert eight == pytest.approx((max(e.jobs.values()) + sum(e.evaluation.values())) / 3600)  # 9 jobs, 8 GPUs
    assert e.hours(1, 66.0) == pytest.approx(one / 10)
