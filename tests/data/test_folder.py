"""Image folders as people have them (issue 21) and image decoding bounded (issue 20).

Every case is generated with Pillow in ``tmp_path``; each rule is checked against a naive
reference written from its definition.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metaleep.data.folder import check_image_size, load_image_folder, scan_image_folder
from metaleep.data.images import BadImage, decode, read_header

GEN = np.random.default_rng(21)


def _save(image: Image.Image, path: Path, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def _rgb(h: int, w: int) -> Image.Image:
    return Image.fromarray(GEN.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _grey(h: int, w: int) -> Image.Image:
    return Image.fromarray(GEN.integers(0, 256, (h, w), dtype=np.uint8))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG of about 100 bytes whose header declares ``width`` x ``height`` grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * (width + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image's pixels are decoded."""
    from PIL import ImageFile

    def refuse(self: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --- one file -----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [30000, 12000])
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, side, no_decoding):
    path = bomb_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 200
    with pytest.raises(BadImage, match=r"pixels|decompression-bomb"):
        read_header(path)
    with pytest.raises(BadImage, match=r"pixels|decompression-bomb"):
        decode(path, mode="L")


def test_our_pixel_limit_is_checked_before_decoding(tmp_path, no_decoding):
    path = _save(_grey(30, 40), tmp_path / "a.png")
    message = (
        "declares 40 x 30 = 1,200 pixels, over the limit of 1,000 (refused before decoding: a "
        "decompression bomb, or a photo too large for few-shot episodes)"
    )
    with pytest.raises(BadImage, match=f"^{re.escape(message)}$"):
        read_header(path, max_pixels=1000)
    with pytest.raises(BadImage, match=f"^{re.escape(message)}$"):
        decode(path, mode="L", max_pixels=1000)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "empty file (0 bytes)"),
        ("text", "not an image Pillow can read"),
        ("truncated-png", "truncated"),
        ("truncated-jpeg", "truncated"),
    ],
)
def test_unusable_files_say_why(tmp_path, kind, reason):
    path = tmp_path / "x.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("a note, not an image")
    else:
        fmt = "PNG" if kind == "truncated-png" else "JPEG"
        _save(_rgb(40, 40), path, format=fmt)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match=f"^{re.escape(reason)}"):
        decode(path, mode="RGB")


def test_transparency_is_composited_over_white(tmp_path):
    rgba = GEN.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0  # fully transparent
    rgba[0, 1, 3] = 255  # opaque
    path = _save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "a.png")
    got = decode(path, mode="RGB").astype(np.float64)
    alpha = rgba[..., 3:].astype(np.float64) / 255
    expected = alpha * rgba[..., :3] + (1 - alpha) * 255  # over white, from the definition
    assert np.abs(got - expected).max() <= 1
    assert got[0, 0].tolist() == [255, 255, 255] and got[0, 1].tolist() == rgba[0, 1, :3].tolist()
    grey = decode(path, mode="L")[..., 0].astype(np.float64)
    luma = expected @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey - luma).max() <= 1.5


def test_grey_is_copied_and_colour_becomes_luma(tmp_path):
    grey = np.asarray(_grey(5, 4))
    path = _save(Image.fromarray(grey), tmp_path / "g.png")
    assert np.array_equal(decode(path, mode="RGB"), np.repeat(grey[..., None], 3, axis=2))
    rgb = GEN.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = _save(Image.fromarray(rgb), tmp_path / "c.png")
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(decode(path, mode="L")[..., 0] - luma).max() <= 1


def test_sixteen_bit_grey_is_scaled_to_eight_bits(tmp_path):
    values = GEN.integers(0, 65536, (6, 6)).astype(np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "w.png")
    assert read_header(path).mode.startswith("I")
    got = decode(path, mode="L")[..., 0]
    assert np.array_equal(got, np.rint(values / 257).astype(np.uint8))


def test_exif_orientation_turns_the_image_as_viewers_do(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = _save(image, tmp_path / "photo.jpg", exif=exif)
    header = read_header(path)
    assert (header.height, header.width, header.orientation) == (40, 20, 6)
    assert decode(path, mode="RGB").shape == (40, 20, 3)


def test_a_grey_palette_is_grey_and_a_colour_palette_colour(tmp_path):
    grey = _save(_grey(8, 8).convert("P"), tmp_path / "g.png")
    colour = _save(_rgb(8, 8).quantize(4), tmp_path / "c.png")
    assert not read_header(grey).colour and read_header(colour).colour


@pytest.mark.parametrize(
    ("value", "expected"), [(28, (28, 28)), ("84x96", (84, 96)), ("32", (32, 32)), ((5, 6), (5, 6))]
)
def test_image_sizes(value, expected):
    assert check_image_size(value) == expected


@pytest.mark.parametrize("value", [0, "0x5", "big", (1, 2, 3), True, -3])
def test_bad_image_sizes(value):
    with pytest.raises((ValueError, TypeError), match=r"^`image_size` must be a positive integer"):
        check_image_size(value)


# --- a messy tree -------------------------------------------------------------------------------


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Five classes of mixed sizes and modes, with the usual debris."""
    root = tmp_path / "pets"
    for c, name in enumerate(["cat", "dog", "emu", "fox", "gnu"]):
        for i in range(6):
            h, w = 20 + 4 * ((c + i) % 3), 24 + 2 * (i % 2)
            image = _grey(h, w) if i == 0 else _rgb(h, w)  # the first file of each class: grey
            _save(image, root / name / f"{i}.png")
    rgba = GEN.integers(0, 256, (22, 24, 4), dtype=np.uint8)
    _save(Image.fromarray(rgba, mode="RGBA"), root / "cat" / "9-alpha.png")
    (root / "dog" / "broken.jpg").write_bytes(b"")  # a zero-byte image
    (root / "dog" / "notes.txt").write_text("taken in the garden")  # a stray text file
    _save(_rgb(20, 24), root / ".ipynb_checkpoints" / "0-checkpoint.png")  # a hidden folder
    _save(_rgb(20, 24), root / "emu" / ".hidden.png")
    _save(_rgb(22, 26), root / "fox" / "zoo" / "extra.png")  # a nested folder
    (root / "README.txt").write_text("my pets")
    return root


def test_a_messy_tree_loads_and_says_what_it_did(messy):
    ds = load_image_folder(messy)
    record = ds.loading
    assert record is not None
    assert ds.classes["name"].tolist() == ["cat", "dog", "emu", "fox", "gnu"]
    assert len(ds) == 5 * 6 + 2 and ds.image_shape[0] == 3  # + RGBA file + nested file
    # mixed sizes: median height x median width of the files, each a file's own value
    heights = [20 + 4 * ((c + i) % 3) for c in range(5) for i in range(6)] + [22, 22]
    widths = [24 + 2 * (i % 2) for c in range(5) for i in range(6)] + [24, 26]
    assert record["size"] == [sorted(heights)[15], sorted(widths)[15]]
    assert ds.image_shape[1:] == tuple(record["size"])
    expected_resized = sum(
        (h, w) != tuple(record["size"]) for h, w in zip(heights, widths, strict=True)
    )
    assert record["resized"] == expected_resized
    # channels: the majority (27 colour files, 5 grey), every conversion counted
    assert record["channels"] == 3 and "27 colour, 5 grey" in record["channel_rule"]
    assert record["converted"] == {"L -> RGB": 5, "RGBA -> RGB": 1}
    assert record["transparency"] == "composited over white"
    assert record["skipped"] == {"count": 1, "first": ["dog/broken.jpg: empty file (0 bytes)"]}
    assert record["ignored"]["count"] == 2
    assert set(record["ignored"]["first"]) == {
        "README.txt: a file directly in the root, in no class folder",
        "dog/notes.txt: not an image file (by its extension)",
    }
    assert record["hidden"]["count"] == 2
    assert set(record["hidden"]["first"]) == {
        ".ipynb_checkpoints: hidden",
        "emu/.hidden.png: hidden",
    }
    assert record["nested"] == {"images": 1, "classes": {"fox": 1}}
    assert ds.labels.tolist().count(3) == 7  # fox: six files and the nested one


def test_the_channel_rule_does_not_depend_on_file_order(tmp_path):
    """One grey file first in sorted order no longer turns an RGB tree grey."""
    for order in ("grey-first", "grey-last"):
        root = tmp_path / order
        for name in ("a", "b"):
            for i in range(3):
                grey = i == (0 if order == "grey-first" else 2)
                image = _grey(8, 8) if grey and name == "a" else _rgb(8, 8)
                _save(image, root / name / f"{i}.png")
        ds = load_image_folder(root)
        assert ds.image_shape == (3, 8, 8)
        assert ds.loading is not None and ds.loading["converted"] == {"L -> RGB": 1}
    majority_grey = tmp_path / "grey"
    for i in range(3):
        _save(_grey(8, 8) if i else _rgb(8, 8), majority_grey / "a" / f"{i}.png")
    ds = load_image_folder(majority_grey)
    assert ds.image_shape == (1, 8, 8) and ds.loading["converted"] == {"RGB -> L": 1}


def test_bad_files_can_be_refused_with_every_problem_listed(messy):
    with pytest.raises(ValueError) as caught:
        load_image_folder(messy, bad_files="refuse")
    message = str(caught.value)
    assert message.startswith(f"`bad_files` is refuse, so every file of {messy} must be a usable")
    assert "got 2 that are not: dog/broken.jpg (empty file (0 bytes)); dog/notes.txt" in message
    assert "README" not in message  # loose files in the root never count


def test_a_truncated_file_found_only_while_decoding_is_skipped(tmp_path):
    for name in ("a", "b"):
        for i in range(2):
            _save(_rgb(30, 30), tmp_path / "t" / name / f"{i}.png")
    path = tmp_path / "t" / "b" / "1.png"
    path.write_bytes(path.read_bytes()[:-200])
    assert read_header(path).width == 30  # the header is whole
    ds = load_image_folder(tmp_path / "t")
    assert len(ds) == 3 and ds.loading["skipped"]["first"][0].startswith("b/1.png: truncated")
    with pytest.raises(ValueError, match=r"that cannot be decoded: b/1\.png"):
        load_image_folder(tmp_path / "t", bad_files="refuse")


def test_a_bomb_in_a_tree_is_skipped_without_decoding(tmp_path, no_decoding):
    _save(_rgb(8, 8), tmp_path / "b" / "a" / "0.png")
    bomb_png(tmp_path / "b" / "a" / "1.png", 30000, 30000)
    scan = scan_image_folder(tmp_path / "b")
    assert len(scan.files) == 1 and scan.bad[0][0] == "a/1.png"


def test_a_class_of_only_bad_files_is_no_class(tmp_path):
    _save(_rgb(8, 8), tmp_path / "c" / "a" / "0.png")
    (tmp_path / "c" / "b").mkdir()
    (tmp_path / "c" / "b" / "0.png").write_bytes(b"")
    ds = load_image_folder(tmp_path / "c")
    assert ds.classes["name"].tolist() == ["a"]
    assert "b: class folder without a usable image" in ds.loading["ignored"]["first"]


def test_control_characters_in_file_names_are_escaped(tmp_path):
    _save(_rgb(8, 8), tmp_path / "e" / "a" / "0.png")
    (tmp_path / "e" / "a" / "bad\x1b[2J.png").write_bytes(b"")
    ds = load_image_folder(tmp_path / "e")
    assert ds.loading["skipped"]["first"] == ["a/bad\\x1b[2J.png: empty file (0 bytes)"]


def test_a_symbolic_link_loop_ends(tmp_path):
    _save(_rgb(8, 8), tmp_path / "l" / "a" / "0.png")
    (tmp_path / "l" / "a" / "loop").symlink_to(tmp_path / "l" / "a")
    assert len(load_image_folder(tmp_path / "l")) == 1


def test_a_clean_tree_still_equals_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder

    for name, n in (("b", 3), ("a", 2)):
        for j in range(n):
            _save(_rgb(9, 7), tmp_path / "p" / name / f"{j}.jpg")
        _save(_rgb(9, 7), tmp_path / "p" / name / "sub" / "x.png")
    ds = load_image_folder(tmp_path / "p")
    ref = ImageFolder(str(tmp_path / "p"))
    assert ds.labels.tolist() == ref.targets
    for i in range(len(ref)):
        assert np.array_equal(np.asarray(ref[i][0]), ds.images[i].permute(1, 2, 0).numpy())
