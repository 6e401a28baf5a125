"""bench.weight_average.blend: the weighted sum of model folders' weights that the weight-space studies
(extrapolation, stage averages, GRPO soups) evaluate. Values checked by hand."""

import torch
from safetensors.torch import load_file, save_file

from bench.weight_average import blend


def _model(d, w, b):
    d.mkdir()
    save_file({"w": torch.tensor(w), "b": torch.tensor(b)}, str(d / "model.safetensors"))
    (d / "conrec.json").write_text(d.name)
    (d / "eval_cache").mkdir()
    return d


def test_blend_is_the_weighted_sum_and_keeps_the_first_folders_files(tmp_path):
    sft = _model(tmp_path / "sft", [1.0, 2.0], [0.0])
    r1 = _model(tmp_path / "r1", [3.0, 2.0], [1.0])
    r2 = _model(tmp_path / "r2", [1.0, 6.0], [3.0])
    # a soup of two runs scaled by alpha 2 from SFT: (1 - 2) * sft + (2 / 2) * (r1 + r2)
    out = blend([sft, r1, r2], [-1.0, 1.0, 1.0], tmp_path / "soup")
    got = load_file(str(out / "model.safetensors"))
    # w: -[1, 2] + [3, 2] + [1, 6] = [3, 6]; b: -0 + 1 + 3 = 4
    assert got["w"].tolist() == [3.0, 6.0] and got["b"].tolist() == [4.0]
    assert got["w"].dtype == torch.float32
    assert (out / "conrec.json").read_text() == "sft"  # the first folder's card
    assert not (out / "eval_cache").exists()  # no cached results of another model
