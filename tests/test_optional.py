"""metaleep without learn2learn (the ``l2l`` extra): everything but learn2learn's models works.

Each check runs in a fresh interpreter in which ``import learn2learn`` fails
(``sys.modules["learn2learn"] = None``), as in an environment installed without the extra.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCK = 'import sys; sys.modules["learn2learn"] = None\n'


def _run(code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "check.py"
    script.write_text(BLOCK + textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**_environment(), "MPLBACKEND": "Agg"},
    )


def _environment() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_training_evaluation_study_and_cli_without_learn2learn(tmp_path: Path) -> None:
    result = _run(
        """
        import numpy as np, torch
        torch.set_num_threads(1)
        from metaleep.backbones import TrainConfig, evaluate, train
        from metaleep.backbones.testing import toy_dataset, toy_split
        from metaleep.episodes import EpisodeSampler, EpisodeSpec
        from metaleep.episodes.manifest import suite_from_episodes
        from metaleep.study import StudyConfig, run_study
        from metaleep.study.runner import StudyBackbone

        data = toy_dataset(classes=24, per_class=8)
        split = toy_split(data)
        for algorithm in ("maml", "fomaml", "anil"):
            config = TrainConfig(algorithm=algorithm, arch="conv2-8", ways=3, shots=1,
                                 queries=2, meta_batch=2, iterations=2, eval_every=1,
                                 eval_episodes=2)
            backbone = train(config, data, split)
            mean, _ = evaluate(backbone, data, split, EpisodeSpec(3, 1, 2), episodes=3)
            assert 0 <= mean <= 1, mean

        spec = EpisodeSpec(ways=5, shots=2, queries=3)
        pool = np.arange(12, 24)
        drawn = EpisodeSampler(data, spec, classes=pool, seed=3).sample_many(4)
        suite = suite_from_episodes(drawn, [spec] * 4, name="toy", dataset=data, split="toy",
                                    part="test", pool=pool, seed=3)
        torch.manual_seed(0)
        from metaleep.backbones.models import build_backbone
        backbones = [
            StudyBackbone("maml", build_backbone("conv2-8", out_features=5).eval(), "fomaml",
                          np.arange(12), fingerprint="m", inner={"lr": 0.3}, source_data=data),
            StudyBackbone("supervised", build_backbone("conv2-8", out_features=12).eval(),
                          "supervised", np.arange(12), fingerprint="s", source_data=data),
        ]
        config = StudyConfig(suite="toy", backbones=("maml", "supervised"),
                             adaptations=("maml", "anil", "retrain_head", "prototype"))
        result = run_study(config, out_dir="study", dataset=data, suite=suite,
                           backbones=backbones, progress=False, n_boot=50)
        assert len(result.table) == 4 * (2 * 4 + 2 * 2), len(result.table)
        assert result.report.is_file()

        try:
            build_backbone("omniglot-cnn", out_features=5)
        except ImportError as err:
            print("ERROR:", err)
        assert sys.modules["learn2learn"] is None and "gym" not in sys.modules
        print("OK")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "OK"
    error = next(line for line in lines if line.startswith("ERROR:"))
    assert error.startswith(
        "ERROR: arch 'omniglot-cnn' (a learn2learn model) needs learn2learn, which could not be "
        "imported (import of learn2learn halted; None in sys.modules). learn2learn 0.2.0 (the "
        "`metaleep[l2l]` extra) has no wheel on PyPI and its sdist does not build on Python "
        ">= 3.11: in a clone of metaleep run `bash tools/install.sh`"
    )


def test_cli_help_without_learn2learn(tmp_path: Path) -> None:
    result = _run(
        """
        from metaleep.cli import main
        sys.argv = ["metaleep", "--help"]
        try:
            main()
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
        assert sys.modules["learn2learn"] is None
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for command in ("run", "train", "episodes", "data"):
        assert command in result.stdout


def test_learn2learn_is_imported_without_gym_notice(tmp_path):
    """gym prints a notice about NumPy 2 to stderr when imported; metaleep's import of
    learn2learn drops it (and only it), so notebooks and commands stay quiet."""
    pytest.importorskip("learn2learn")
    script = tmp_path / "quiet.py"
    script.write_text(
        "import sys\n"
        "from metaleep.backbones import import_learn2learn\n"
        "l2l = import_learn2learn()\n"
        "print(l2l.__name__)\n"
        "print('other text', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "default", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_environment(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "learn2learn\n"
    assert done.stderr == "other text\n"


def test_progress_bar_is_the_text_bar_without_ipywidgets(tmp_path):
    """Without ipywidgets tqdm.auto's notebook bar warns 'IProgress not found'; the bar metaleep
    uses is then the text bar."""
    from tqdm.std import tqdm

    from metaleep._optional import progress_bar

    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        bar = progress_bar(total=2, disable=True)
        assert type(bar) is tqdm
    else:  # pragma: no cover - with ipywidgets the notebook bar is fine
        from tqdm.auto import tqdm as auto

        assert isinstance(progress_bar(total=2, disable=True), auto)


def test_without_gym_notice_drops_the_notice_and_nothing_else(capsys) -> None:
    from metaleep._optional import without_gym_notice

    with without_gym_notice():
        print(
            "Gym has been unmaintained since 2022 and does not support NumPy 2.0", file=sys.stderr
        )
    assert capsys.readouterr().err == ""
    with without_gym_notice():
        print("the user's own message", file=sys.stderr)
    assert capsys.readouterr().err == "the user's own message\n"


def test_a_model_file_importing_learn2learn_prints_no_gym_notice(tmp_path: Path) -> None:
    """`--backbones mine.py:build` where mine.py imports learn2learn: gym's notice is not
    printed (a fresh interpreter, so learn2learn is imported there for the first time)."""
    pytest.importorskip("learn2learn")
    (tmp_path / "mine.py").write_text(
        "import learn2learn  # noqa: F401\nfrom torch import nn\n\n"
        "def build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, 5))\n"
    )
    code = (
        "from metaleep.backbones.wrap import load_factory; load_factory('mine.py:build', name='m')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_environment(),
    )
    assert result.returncode == 0, result.stderr
    assert "Gym has been unmaintained" not in result.stderr + result.stdout
