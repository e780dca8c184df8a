"""Benchmark readers on tiny fabricated files, checked against learn2learn's and torchvision's."""

from __future__ import annotations

import io
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metaleep.data.benchmarks import BENCHMARKS, load_benchmark, load_image_folder

GEN = np.random.default_rng(7)


def _png(array: np.ndarray, path: Path | None = None, mode: str | None = None) -> bytes:
    image = (
        Image.fromarray(array, mode=None) if mode is None else Image.fromarray(array).convert(mode)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def l2l():
    learn2learn = pytest.importorskip("learn2learn")
    return learn2learn


# --- missing files: fast, clear errors ---------------------------------------------------------


def _expected_missing(name: str, root: Path, mode: str, files: str, problem: str) -> str:
    cls = {
        "mini-imagenet": "MiniImagenet",
        "tiered-imagenet": "TieredImagenet",
        "cifarfs": "CIFARFS",
        "fc100": "FC100",
    }
    if name == "omniglot":
        hint = (
            'Fetch them once (network needed) with torchvision: `python -c "import torchvision; '
            f"[torchvision.datasets.Omniglot({str(root)!r}, background=b, download=True) for b in "
            '(True, False)]"`, or unzip images_background.zip and images_evaluation.zip from '
            f"https://github.com/brendenlake/omniglot into {root / 'omniglot-py'}."
        )
    else:
        hint = (
            f'Fetch them once (network needed) with learn2learn: `python -c "import learn2learn '
            f"as l2l; l2l.vision.datasets.{cls[name]}({str(root)!r}, mode={mode!r}, "
            f'download=True)"`, or from https://zenodo.org/record/7978538.'
        )
    return (
        f"`root` must contain the {name} files for mode {mode!r} ({files}); "
        f"got {str(root)!r} ({problem}). {hint}"
    )


@pytest.mark.parametrize("name", BENCHMARKS)
def test_missing_root_fails_fast_with_the_files_to_get(name, tmp_path):
    root = tmp_path / "nowhere"
    files = {
        "omniglot": f"{root}/omniglot-py/images_evaluation",
        "mini-imagenet": f"{root}/mini-imagenet-cache-test.pkl",
        "tiered-imagenet": f"{root}/tiered-imagenet/test_images_png.pkl, "
        f"{root}/tiered-imagenet/test_labels.pkl",
        "cifarfs": f"{root}/cifarfs/processed/test or {root}/cifarfs/cifar100/data, "
        f"{root}/cifarfs/cifar100/splits/bertinetto/test.txt",
        "fc100": f"{root}/FC100_test.pickle",
    }[name]
    message = _expected_missing(name, root, "test", files, "the folder does not exist")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_benchmark(name, root, mode="test")
    assert time.perf_counter() - start < 1.0
    assert not root.exists()  # nothing created (learn2learn's classes mkdir the root)


def test_missing_file_in_an_existing_root(tmp_path):
    (tmp_path / "tiered-imagenet").mkdir()
    (tmp_path / "tiered-imagenet" / "val_labels.pkl").write_bytes(b"")
    base = tmp_path / "tiered-imagenet"
    files = f"{base}/val_images_png.pkl, {base}/val_labels.pkl"
    problem = f"missing: {base}/val_images_png.pkl"
    message = _expected_missing("tiered-imagenet", tmp_path, "validation", files, problem)
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_benchmark("tiered-imagenet", tmp_path, mode="validation")


def test_bad_name_and_mode(tmp_path):
    message = (
        "`name` must be one of omniglot, mini-imagenet, tiered-imagenet, cifarfs, fc100; "
        "got 'imagenet'."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_benchmark("imagenet", tmp_path)
    message = "`mode` must be one of train, test, all for omniglot; got 'validation'."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_benchmark("omniglot", tmp_path, mode="validation")
    with pytest.raises(
        ValueError, match=r"^`mode` must be one of train, validation, test for fc100"
    ):
        load_benchmark("fc100", tmp_path, mode="all")
    with pytest.raises(ValueError, match=r"^`image_size` must be an integer >= 1; got 0\.$"):
        load_benchmark("fc100", tmp_path, image_size=0)


# --- mini-ImageNet ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    images = GEN.integers(0, 256, (12, 84, 84, 3), dtype=np.uint8)
    order = GEN.permutation(12)  # classes' images interleaved in the file
    class_dict = {"n02": order[:4].tolist(), "n01": order[4:8].tolist(), "n03": order[8:].tolist()}
    with open(root / "mini-imagenet-cache-test.pkl", "wb") as fh:
        pickle.dump({"image_data": images, "class_dict": class_dict}, fh)
    return root


def test_mini_imagenet_matches_learn2learn(mini_root, l2l):
    ds = load_benchmark("mini-imagenet", mini_root, mode="test")
    ref = l2l.vision.datasets.MiniImagenet(str(mini_root), mode="test")
    assert len(ds) == len(ref) == 12
    for i in range(len(ref)):
        image, label = ref[i]
        assert label == ds.labels[i]
        assert np.array_equal(image.numpy().astype(np.uint8), ds.images[i].numpy())
    assert ds.classes["name"].tolist() == ["n02", "n01", "n03"]
    assert ds.image_shape == (3, 84, 84) and ds.dataset_id == "mini-imagenet"
    assert "alphabet" not in ds.classes.columns


def test_mini_imagenet_resize_and_version(mini_root):
    small = load_benchmark("mini-imagenet", mini_root, image_size=28)
    assert small.image_shape == (3, 28, 28)
    ref = Image.fromarray(
        load_benchmark("mini-imagenet", mini_root).images[5].permute(1, 2, 0).numpy()
    )
    expected = np.asarray(ref.resize((28, 28), Image.Resampling.LANCZOS))
    assert np.array_equal(small.images[5].permute(1, 2, 0).numpy(), expected)
    again = load_benchmark("mini-imagenet", mini_root, image_size=28)
    assert small.version == again.version and len(small.version) == 16
    assert small.version != load_benchmark("mini-imagenet", mini_root).version


# --- FC100 --------------------------------------------------------------------------------------


def test_fc100_matches_learn2learn(tmp_path, l2l):
    labels = [40, 3, 40, 97, 3, 97]
    data = GEN.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    with open(tmp_path / "FC100_test.pickle", "wb") as fh:
        pickle.dump({"data": data, "labels": labels}, fh, protocol=2)
    ds = load_benchmark("fc100", tmp_path)
    ref = l2l.vision.datasets.FC100(str(tmp_path), mode="test")
    ranks = {3: 0, 40: 1, 97: 2}
    assert ds.labels.tolist() == [ranks[v] for v in ref.labels]
    assert ds.classes["name"].tolist() == ["3", "40", "97"]
    for i in range(6):
        assert np.array_equal(np.asarray(ref[i][0]), ds.images[i].permute(1, 2, 0).numpy())


# --- tiered-ImageNet ----------------------------------------------------------------------------


def test_tiered_imagenet_matches_learn2learn(tmp_path, l2l):
    base = tmp_path / "tiered-imagenet"
    base.mkdir()
    arrays = GEN.integers(0, 256, (6, 84, 84, 3), dtype=np.uint8)
    encoded = [np.frombuffer(_png(a), dtype=np.uint8) for a in arrays]
    meta = {
        "label_specific": np.array([1, 0, 2, 1, 0, 2]),
        "label_general": np.array([1, 0, 0, 1, 0, 0]),
        "label_specific_str": ["n001", "n002", "n003"],
        "label_general_str": ["animal", "tool"],
    }
    for suffix, obj in (("images_png", encoded), ("labels", meta)):
        with open(base / f"train_{suffix}.pkl", "wb") as fh:
            pickle.dump(obj, fh)
    ds = load_benchmark("tiered-imagenet", tmp_path, mode="train")
    ref = l2l.vision.datasets.TieredImagenet(str(tmp_path), mode="train")
    for i in range(6):
        image, label = ref[i]
        assert label == ds.labels[i]
        assert np.array_equal(np.asarray(image), ds.images[i].permute(1, 2, 0).numpy())
    assert ds.classes["name"].tolist() == ["n001", "n002", "n003"]
    assert ds.classes["alphabet"].tolist() == ["animal", "tool", "animal"]


# --- CIFAR-FS -----------------------------------------------------------------------------------


def test_cifarfs_raw_and_processed_layouts_match_learn2learn(tmp_path, l2l):
    raw = tmp_path / "cifarfs" / "cifar100"
    splits = {"train": ["apple", "bee"], "val": ["cloud"], "test": ["whale", "otter", "maple"]}
    for split, names in splits.items():
        (raw / "splits" / "bertinetto").mkdir(parents=True, exist_ok=True)
        (raw / "splits" / "bertinetto" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            for j in range(3):
                _png(
                    GEN.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                    raw / "data" / name / f"{name}_{j}.png",
                )
    from_raw = load_benchmark("cifarfs", tmp_path, mode="test")
    ref = l2l.vision.datasets.CIFARFS(str(tmp_path), mode="test")  # builds processed/
    assert (tmp_path / "cifarfs" / "processed" / "test").is_dir()
    from_processed = load_benchmark("cifarfs", tmp_path, mode="test")
    assert from_processed.version == from_raw.version
    assert from_raw.classes["name"].tolist() == ["maple", "otter", "whale"] == ref.classes
    assert from_raw.labels.tolist() == ref.targets
    for i in range(len(ref)):
        assert np.array_equal(np.asarray(ref[i][0]), from_raw.images[i].permute(1, 2, 0).numpy())


# --- Omniglot -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def omniglot_root(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """omniglot-py with 2 background alphabets and 1 evaluation alphabet of 105x105 1-bit PNGs."""
    root = tmp_path_factory.mktemp("omni")
    layout = {
        "images_background": {"Greek": ["character02", "character01"], "Braille": ["character01"]},
        "images_evaluation": {"Tengwar": ["character01", "character03"]},
    }
    drawn = {}
    for folder, alphabets in layout.items():
        for alphabet, characters in alphabets.items():
            for character in characters:
                for j in range(2):
                    ink = GEN.random((105, 105)) < 0.1
                    path = root / "omniglot-py" / folder / alphabet / character / f"{j:02d}.png"
                    _png(np.where(ink, 0, 255).astype(np.uint8), path, mode="1")
                    drawn[f"{folder}/{alphabet}/{character}/{j}"] = ink
    return root, drawn


def test_omniglot_layout_labels_and_alphabets(omniglot_root):
    root, drawn = omniglot_root
    train = load_benchmark("omniglot", root, mode="train", image_size=105)
    assert train.classes["name"].tolist() == [
        "Braille/character01",
        "Greek/character01",
        "Greek/character02",
    ]
    assert train.classes["alphabet"].tolist() == ["Braille", "Greek", "Greek"]
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.image_shape == (1, 105, 105)
    # Ink is 255 on a 0 background (the PNGs are black on white).
    ink = drawn["images_background/Greek/character02/1"]
    assert np.array_equal(train.images[5, 0].numpy(), np.where(ink, 255, 0))
    full = load_benchmark("omniglot", root, mode="all")
    assert full.image_shape == (1, 28, 28) and full.num_classes == 5
    assert full.classes["alphabet"].tolist()[3:] == ["Tengwar", "Tengwar"]
    assert full.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    test = load_benchmark("omniglot", root)  # mode="test": images_evaluation
    assert test.classes["name"].tolist() == ["Tengwar/character01", "Tengwar/character03"]
    assert np.array_equal(test.images.numpy(), full.images[6:].numpy())


def test_omniglot_resize_is_lanczos_of_the_inverted_image(omniglot_root):
    root, drawn = omniglot_root
    ds = load_benchmark("omniglot", root, mode="test")
    ink = drawn["images_evaluation/Tengwar/character03/0"]
    image = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert("1").convert("L")
    expected = 255 - np.asarray(image.resize((28, 28), Image.Resampling.LANCZOS))
    assert np.array_equal(ds.images[2, 0].numpy(), expected)


# --- ImageFolder --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder") / "pets"
    for name, n in (("dog", 3), ("cat", 2), ("emu", 4)):
        for j in range(n):
            _png(GEN.integers(0, 256, (10, 10, 3), dtype=np.uint8), root / name / f"{j}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_matches_torchvision(folder_root):
    from torchvision.datasets import ImageFolder

    ds = load_image_folder(folder_root)
    ref = ImageFolder(str(folder_root))
    assert ds.classes["name"].tolist() == ref.classes == ["cat", "dog", "emu"]
    assert ds.labels.tolist() == ref.targets
    for i in range(len(ref)):
        assert np.array_equal(np.asarray(ref[i][0]), ds.images[i].permute(1, 2, 0).numpy())
    assert ds.dataset_id == "pets" and ds.image_shape == (3, 10, 10)
    gray = load_image_folder(folder_root, channels=1, image_size=6, dataset_id="pets-gray")
    assert gray.image_shape == (1, 6, 6) and gray.dataset_id == "pets-gray"


def test_image_folder_groups(tmp_path):
    for group, names in (("Latin", ["a", "b"]), ("Greek", ["alpha"])):
        for name in names:
            for j in range(2):
                _png(
                    np.full((5, 5), 10 * j, dtype=np.uint8),
                    tmp_path / "g" / group / name / f"{j}.png",
                )
    ds = load_image_folder(tmp_path / "g", groups=True)
    assert ds.classes["name"].tolist() == ["Greek/alpha", "Latin/a", "Latin/b"]
    assert ds.classes["alphabet"].tolist() == ["Greek", "Latin", "Latin"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2] and ds.image_shape == (1, 5, 5)


def test_image_folder_errors(tmp_path):
    message = f"`root` must be an existing folder of class folders; got {str(tmp_path / 'no')!r}."
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_image_folder(tmp_path / "no")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^`root` must contain one folder per class"):
        load_image_folder(tmp_path / "empty")
    _png(np.zeros((5, 5), dtype=np.uint8), tmp_path / "mixed" / "a" / "0.png")
    _png(np.zeros((6, 5), dtype=np.uint8), tmp_path / "mixed" / "b" / "0.png")
    # images of two sizes load at the median height x median width, recorded
    mixed = load_image_folder(tmp_path / "mixed")
    assert mixed.image_shape == (1, 5, 5) and mixed.loading is not None
    assert mixed.loading["resized"] == 1 and "median" in mixed.loading["size_rule"]
    assert load_image_folder(tmp_path / "mixed", image_size=4).image_shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"^`channels` must be 1 or 3; got 2\.$"):
        load_image_folder(tmp_path / "mixed", channels=2)


# --- no code from data files (#16) --------------------------------------------------------------


class _Runs:
    """Pickles as a call of ``function(*args)``: what a crafted data file does."""

    def __init__(self, function: object, *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.function, self.args


def _crafted(marker: Path) -> dict[str, object]:
    import builtins
    import importlib
    import os
    import subprocess

    return {
        "os.system": _Runs(os.system, f"touch {marker}"),
        "eval": _Runs(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "exec": _Runs(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": _Runs(subprocess.Popen, ["touch", str(marker)]),
        "getattr": _Runs(getattr, _Runs(importlib.import_module, "os"), "system"),
        "numpy.load": _Runs(np.load, str(marker)),
        "numpy.testing": _Runs(np.testing.assert_equal, 1, 1),
    }


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize(
    "gadget",
    ["os.system", "eval", "exec", "subprocess.Popen", "getattr", "numpy.load", "numpy.testing"],
)
def test_a_crafted_pickle_is_refused_before_it_runs(tmp_path, gadget, protocol):
    """The issue's file: valid image data, and beside it an object whose unpickling calls a
    function. Refused with the file's path and the reference, and nothing runs."""
    marker = tmp_path / "ran"
    path = tmp_path / "mini-imagenet-cache-test.pkl"
    images = GEN.integers(0, 256, (2, 84, 84, 3), dtype=np.uint8)
    payload = {"image_data": images, "class_dict": {"n01": [0, 1]}, "x": _crafted(marker)[gadget]}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(ValueError) as caught:
        load_benchmark("mini-imagenet", tmp_path, mode="test")
    text = str(caught.value)
    assert text.startswith(f"`{path}` must be a data pickle (numpy arrays, numbers, strings, ")
    assert re.search(r"got a reference to [\w.]+, refused without running it\.$", text), text
    assert not marker.exists()


def test_the_episodes_cli_refuses_a_crafted_pickle_cleanly(tmp_path):
    from typer.testing import CliRunner

    from metaleep.cli import app

    marker = tmp_path / "ran"
    path = tmp_path / "mini-imagenet-cache-test.pkl"
    path.write_bytes(pickle.dumps({"image_data": _crafted(marker)["os.system"]}))
    args = ["episodes", "sample", "--dataset", "mini-imagenet", "--root", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert "refused without running it" in result.output and str(path) in result.output
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_data_pickles_of_every_protocol_are_read(tmp_path, protocol):
    path = tmp_path / "mini-imagenet-cache-test.pkl"
    images = GEN.integers(0, 256, (4, 84, 84, 3), dtype=np.uint8)
    data = {"image_data": images, "class_dict": {"b": [1, 3], "a": np.array([0, 2])}}
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    ds = load_benchmark("mini-imagenet", tmp_path, mode="test")
    assert ds.labels.tolist() == [1, 0, 1, 0]
    assert np.array_equal(ds.images.permute(0, 2, 3, 1).numpy(), images)


@pytest.mark.parametrize("cut", [0, 10, 0.5, -1])
def test_a_truncated_pickle_is_refused_with_its_path(tmp_path, cut):
    path = tmp_path / "FC100_test.pickle"
    data = pickle.dumps(
        {"data": GEN.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), "labels": [0, 1]}, protocol=2
    )
    end = int(cut * len(data)) if isinstance(cut, float) else cut
    path.write_bytes(data[:end])
    message = f"`{path}` must be a data pickle (numpy arrays, numbers, strings, lists, dicts); "
    with pytest.raises(ValueError, match=f"^{re.escape(message)}got an unreadable file"):
        load_benchmark("fc100", tmp_path, mode="test")


@pytest.mark.parametrize("kind", ["mini-imagenet", "omniglot", "imagefolder", "digits"])
def test_every_data_spec_loads_what_its_loader_loads(kind, mini_root, omniglot_root, folder_root):
    """``--data NAME[:ROOT]`` (metaleep.data.spec) gives the loaders' own data sets."""
    from metaleep.data.benchmarks import load_benchmark, load_image_folder
    from metaleep.data.spec import load_data, parse_data

    if kind == "mini-imagenet":
        spec, expected = f"mini-imagenet:{mini_root}", load_benchmark("mini-imagenet", mini_root)
    elif kind == "omniglot":
        root = omniglot_root[0]
        spec, expected = f"omniglot:{root}", load_benchmark("omniglot", root, mode="train")
    elif kind == "imagefolder":
        spec, expected = f"imagefolder:{folder_root}", load_image_folder(folder_root)
    else:
        from metaleep.data.digits import load_digits

        spec, expected = "digits", load_digits()
    mode = "train" if kind == "omniglot" else "test"
    loaded = load_data(spec, mode=mode)
    assert loaded.fingerprint == expected.fingerprint
    assert parse_data(spec).text == spec
