"""bench.beam_width refuses a root without the seeds' models before it loads any data."""

import pytest

from bench.beam_width import main


def test_a_root_without_the_seeds_models_is_named(tmp_path):
    (tmp_path / "seed_0" / "final").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"no model at \[.*seed_1/final'\]; pass roots holding seed_S/final"):
        main(["--model", f"m={tmp_path}", "--data", "synthetic:", "--seeds", "0", "1"])
