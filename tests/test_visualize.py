"""recbole_gemirec.visualize: the interests picture and the dictionary utilisation picture."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_DIR, train_tiny

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("visualize")
    result = train_tiny(workdir, "GemiRec", interest_category_field="category", recipe="paper", gpt_layers=2,
                        stage_epochs={"retrieval": 2, "dictionary": 1, "joint": 1})
    return str(workdir / result["checkpoint"])


def visualize_cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "recbole_gemirec.visualize"] + list(args), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == PNG_SIGNATURE, path
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_cli_writes_both_pictures(checkpoint, tmp_path):
    proc = visualize_cli(["--checkpoint", checkpoint, "--user", "7", "--out", str(tmp_path / "pics")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("interests_7.png", "dictionary_utilisation.png"):
        path = tmp_path / "pics" / name
        assert path.is_file() and path.stat().st_size > 10_000, name
        width, height = png_size(path)
        assert width >= 600 and height >= 300, (name, width, height)
        assert f"wrote {path.relative_to(tmp_path)}" in proc.stdout or str(path) in proc.stdout


def test_picture_data_splits_history_and_future_and_retrieves_per_interest(checkpoint, in_tmp):
    import numpy as np

    from recbole_gemirec.serving.export import load_for_serving
    from recbole_gemirec.visualize import interest_picture_data, user_row

    config, model, dataset, _, _ = load_for_serving(checkpoint)
    _, sequence = user_row(dataset, config, "7")
    data = interest_picture_data(model, dataset, config, "7", n=6, future=4)
    assert data["history"] + data["future"] == sequence and len(data["future"]) == 4
    assert data["queries"].shape == (6, 65) and data["codes"].shape == (6, model.interest_levels)  # u + K; bias column
    assert data["retrieved"].shape == (6, 6) and (data["retrieved"] > 0).all()
    for slot in range(5):  # each interest's own top items, best first
        scores = data["items"] @ data["queries"][slot]
        np.testing.assert_allclose(np.sort(scores)[::-1][:6], scores[data["retrieved"][slot] - 1], rtol=1e-5)


def test_unknown_user_is_a_clear_error(checkpoint, tmp_path):
    proc = visualize_cli(["--checkpoint", checkpoint, "--user", "nobody", "--out", str(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "user token 'nobody' is not in dataset tiny" in proc.stderr
    assert "np.str_" not in proc.stderr and re.search(r"e\.g\. '[^']+', '", proc.stderr)  # tokens as typed
    assert not list(tmp_path.glob("*.png"))


def test_utilisation_picture_has_whole_number_ticks(checkpoint, in_tmp, monkeypatch):
    import matplotlib.pyplot as plt

    from recbole_gemirec.serving.export import load_for_serving
    from recbole_gemirec.visualize import draw_utilisation

    _, model, _, _, _ = load_for_serving(checkpoint)
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read its ticks
    draw_utilisation(model, "u.png")
    for ax in figures[0].axes:
        for ticks in (ax.get_xticks(), ax.get_yticks()):
            assert all(float(t).is_integer() for t in ticks), ticks


def test_an_unwritable_out_directory_is_named_before_anything_is_loaded(tmp_path, capsys):
    # was FileExistsError from os.makedirs after the model and the data had loaded
    from recbole_gemirec import visualize

    taken = tmp_path / "a-file"
    taken.write_text("not a directory\n", encoding="utf-8")
    status = visualize.main(["--checkpoint", str(tmp_path / "never-read.pth"), "--user", "1", "--out", str(taken)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --out={str(taken)!r} cannot be written"), err


def test_a_seed_tsne_cannot_take_is_refused_before_loading(tmp_path, capsys):
    # --seed=-5 was sklearn's InvalidParameterError traceback after the model and the data had loaded
    from recbole_gemirec import visualize

    status = visualize.main(["--checkpoint", str(tmp_path / "never-read.pth"), "--user", "1", "--out",
                             str(tmp_path / "pics"), "--seed", "-5"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["error: --seed=-5 is not allowed; allowed: an integer from 0 to 4294967295"]
