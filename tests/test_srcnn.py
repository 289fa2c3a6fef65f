"""The published SRCNN: .mat layout, Y-only inference, the test code's border geometry."""
import numpy as np
import pytest
import torch
from scipy.io import savemat
from scipy.ndimage import correlate

from perceptual.core import colour, data
from perceptual.method import srcnn


def _random_mat(path, k2: int, seed: int = 0) -> dict:
    """A weight file laid out as the authors' (weights_conv1 (81, 64), weights_conv2 (64, k2², 32), …)."""
    rng = np.random.default_rng(seed)
    w = {"weights_conv1": rng.normal(0, 0.1, (81, 64)), "biases_conv1": rng.normal(0, 0.1, (64, 1)),
         "weights_conv2": rng.normal(0, 0.1, (64, k2 * k2, 32)), "biases_conv2": rng.normal(0, 0.1, (32, 1)),
         "weights_conv3": rng.normal(0, 0.1, (32, 25)), "biases_conv3": rng.normal(0, 0.1, (1, 1))}
    savemat(path, w)
    return w


def _matlab_reference(w: dict, image: np.ndarray) -> np.ndarray:
    """SRCNN.m literally: imfilter(…, 'same', 'replicate') with column-major reshaped kernels."""
    k2 = int(round(np.sqrt(w["weights_conv2"].shape[1])))
    a = [np.maximum(correlate(image, w["weights_conv1"][:, i].reshape(9, 9, order="F"), mode="nearest")
                    + w["biases_conv1"][i, 0], 0) for i in range(64)]
    b = []
    for i in range(32):
        acc = sum(correlate(a[j], w["weights_conv2"][j, :, i].reshape(k2, k2, order="F"), mode="nearest")
                  for j in range(64))
        b.append(np.maximum(acc + w["biases_conv2"][i, 0], 0))
    return sum(correlate(b[i], w["weights_conv3"][i].reshape(5, 5, order="F"), mode="nearest")
               for i in range(32)) + w["biases_conv3"][0, 0]


@pytest.mark.parametrize("k2", [1, 5])  # 9-1-5 and 9-5-5 (the paper's ImageNet ×4 model)
def test_mat_layout_matches_the_matlab_test_code(tmp_path, k2):
    w = _random_mat(tmp_path / "x4.mat", k2)
    net = srcnn.load_mat(tmp_path / "x4.mat")
    assert net.arch == {"filters": [9, k2, 5], "channels": [64, 32, 1]}
    image = np.random.default_rng(1).uniform(size=(14, 17))
    ours = net.forward_y(torch.from_numpy(image).float()[None, None])[0, 0].double().numpy()
    assert ours.shape == image.shape  # the test code keeps the size
    assert np.abs(ours - _matlab_reference(w, image)).max() < 1e-4


def test_geometry_by_hand(tmp_path):
    """One-hot kernels: conv1 takes MATLAB kernel entry (row 1, column 9) = column-major index 72,
    i.e. out(y, x) = in(y − 4, x + 4); conv2 and conv3 pass channel 0 through. With replicated
    borders the output is the input shifted down-left, edge pixels repeated."""
    w = {"weights_conv1": np.zeros((81, 64)), "biases_conv1": np.zeros((64, 1)),
         "weights_conv2": np.zeros((64, 1, 32)), "biases_conv2": np.zeros((32, 1)),
         "weights_conv3": np.zeros((32, 25)), "biases_conv3": np.zeros((1, 1))}
    w["weights_conv1"][72, 0] = 1.0
    w["weights_conv2"][0, 0, 0] = 1.0
    w["weights_conv3"][0, 12] = 1.0  # the 5×5 centre, (2, 2) → 2 + 5·2
    savemat(tmp_path / "m.mat", w)
    net = srcnn.load_mat(tmp_path / "m.mat")
    image = np.array([[(10 * y + x) / 100 for x in range(6)] for y in range(5)])  # in(y, x) = 0.yx
    out = net.forward_y(torch.tensor(image, dtype=torch.float32)[None, None])[0, 0].numpy()
    expected = np.array([[image[max(y - 4, 0), min(x + 4, 5)] for x in range(6)] for y in range(5)])
    assert out == pytest.approx(expected, abs=1e-6)
    assert out[0, 0] == pytest.approx(0.04) and out[4, 3] == pytest.approx(0.05) and out[4, 0] == pytest.approx(0.04)
    # valid-only, the network would lose (9−1)/2 + (1−1)/2 + (5−1)/2 = 6 px per side
    assert sum(c.kernel_size[0] // 2 for c in net.convs) == 6


def test_rgb_in_rgb_out_on_y(tmp_path):
    """An identity network: the output is the input, up to Y rounded to 8 bits; colour is kept."""
    w = {"weights_conv1": np.zeros((81, 64)), "biases_conv1": np.zeros((64, 1)),
         "weights_conv2": np.zeros((64, 1, 32)), "biases_conv2": np.zeros((32, 1)),
         "weights_conv3": np.zeros((32, 25)), "biases_conv3": np.zeros((1, 1))}
    w["weights_conv1"][40, 0] = w["weights_conv2"][0, 0, 0] = w["weights_conv3"][0, 12] = 1.0
    savemat(tmp_path / "id.mat", w)
    net = srcnn.load_mat(tmp_path / "id.mat")
    x = torch.rand(1, 3, 12, 13) * 200 + 20
    y = net(x)
    assert y.shape == x.shape and (y - x).abs().max() < 1.0
    ycc = colour.rgb_to_ycbcr(x)
    assert torch.allclose(colour.rgb_to_ycbcr(y)[:, 1:], ycc[:, 1:], atol=1e-3)  # Cb, Cr from the input
    assert torch.equal(colour.rgb_to_ycbcr(y)[:, :1].round(), ycc[:, :1].clamp(0, 255).round())
    assert torch.allclose(colour.ycbcr_to_rgb(ycc), x, atol=1e-3)


def test_bad_file_and_missing_download(tmp_path, monkeypatch):
    savemat(tmp_path / "bad.mat", {"weights_conv1": np.zeros((80, 64))})
    with pytest.raises(ValueError, match="not an SRCNN"):
        srcnn.load_mat(tmp_path / "bad.mat")

    def offline(*args, **kwargs):
        raise data.DataError("download of https://example.invalid/x4.mat failed: HTTP 404")

    monkeypatch.setattr(data, "fetch", offline)
    path, note = srcnn.published_file()
    assert path is None and "could not be downloaded" in note and "HTTP 404" in note
    path, note = srcnn.published_file(fetch=False)
    assert path is None and "perceptual data fetch srcnn-x4" in note


def test_registry_entry():
    ds = data.get("srcnn-x4")
    (rel, url, digest), = ds.files()
    assert rel.endswith(".mat") and "9-5-5%28ImageNet%29/x4.mat" in url
    assert digest == "sha256:3f94150d24e5b60dab2b74f4eaf358aefdc72cbe724d86990435bf877ed452ed"
