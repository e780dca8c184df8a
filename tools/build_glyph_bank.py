#!/usr/bin/env python
"""Build metaleep's glyph bank (``metaleep/data/bank/glyphs.npz``) from open fonts.

A developer tool, run only when the bank changes; the bank it writes is committed and nothing at
run time needs fonts, fontTools or Pillow. Recipe (see ``metaleep.data.glyphs`` for the result):

1. Fonts: the Debian packages ``fonts-noto-core fonts-noto-ui-core fonts-noto-mono
   fonts-dejavu-core fonts-dejavu-extra fonts-liberation2`` (SIL OFL 1.1 and the Bitstream Vera
   licence). ``--install`` runs ``apt-get install`` for them. Left out: UI and Display variants
   (near copies of the base design), math/music/symbol fonts, DejaVu Math TeX Gyre (another
   licence), anything without outlines.
2. Letters: Unicode general category Ll or Lo (capitals of two-case scripts dropped, lowercase
   kept), unchanged by NFKC, without a decomposition (no precomposed letters), in a real script
   (``fontTools.unicodedata.script``, not Common/Inherited/Unknown). A class is a letter; its
   alphabet is its script.
3. Coverage per face: the cmap maps the letter to a glyph other than ``.notdef`` that has an
   outline (TrueType contours != 0, CFF non-empty bounds), the glyph is not a placeholder shared
   by many letters, and the render has ink.
4. Prototypes: each face's glyph rendered large (Pillow, basic layout), cropped to its ink,
   scaled (aspect kept) so the longest side is 48 px, centred in 64x64, thresholded to 1 bit.
   Renders of one letter in two faces that differ in < 1.5 % of the pixels count once.
5. Classes need >= 3 faces from >= 2 families. Look-alikes are judged by
   ``metaleep.data._lookalike.lookalike_similarity`` (each render of one letter against its best
   match among the other's renders, cosine at 32x32, averaged both ways). Each script ranks its
   letters (letters in most of its faces first, then code point order; syllabaries evenly
   spread). Cross-script copies (similarity >= 0.99: Latin ``o``, Cyrillic ``о``, Greek ``ο``)
   keep the earliest-encoded letter. Then letters are accepted by rank, round-robin over the
   scripts, unless a kept letter of another script is > 0.95 similar (> 0.97 within a script);
   at most 55 per alphabet; alphabets with < 14 classes are dropped. Kept classes of different
   scripts with similarity > 0.90 share a look-alike cluster id (connected components), which
   splits use to keep test classes from resembling training classes.
6. Output: one deterministic ``.npz`` (fixed zip dates, sorted entries) with 1-bit prototypes
   (``np.packbits``, one per class and face), per-class code point/name/alphabet/cluster, the
   faces, the build parameters and a content-hash version; plus ``ATTRIBUTION.txt`` and the
   licence texts beside it.

Usage::

    .venv/bin/pip install fonttools pillow        # the `bank` extra
    .venv/bin/python tools/build_glyph_bank.py --install
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaleep.data._lookalike import (  # noqa: E402
    MAX_RENDERS,
    face_key,
    lookalike_similarity,
)
from metaleep.data._npz import write_npz  # noqa: E402
from metaleep.data.glyphs import BANK_FORMAT, bank_version  # noqa: E402

log = logging.getLogger("build_glyph_bank")

PACKAGES = (
    "fonts-noto-core",
    "fonts-noto-ui-core",
    "fonts-noto-mono",
    "fonts-dejavu-core",
    "fonts-dejavu-extra",
    "fonts-liberation2",
)
FONT_DIRS = (
    "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation2",
)
#: File-name fragments of faces left out (see the module docstring).
EXCLUDE = (
    "UI-",
    "Display",
    "Math",
    "Music",
    "Symbols",
    "SignWriting",
    "MayanNumerals",
    "IndicSiyaq",
)
#: Style and width words stripped from a family name to get the design family.
STYLE_WORDS = {
    "Regular",
    "Bold",
    "Italic",
    "Oblique",
    "Book",
    "Light",
    "ExtraLight",
    "Condensed",
    "UI",
    "Display",
}

PROTO = 64  # prototype side, pixels
BOX = 48  # longest side of the glyph inside the prototype
RENDER_PX = 160  # font size of the high-resolution render
SAME_RENDER = 0.002  # two faces' renders differing in fewer pixels than this count once
MIN_FACES = 3
MIN_FAMILIES = 2
MIN_CLASSES = 14
MAX_CLASSES = 55
COPY = 0.99
LOOKALIKE_ACROSS = 0.95
LOOKALIKE_WITHIN = 0.97
CLUSTER_ACROSS = 0.90
TIER = 0.8  # letters in >= this share of a script's most faces are preferred
PLACEHOLDER_SHARE = 8  # a glyph mapped by more candidate letters than this is a placeholder
SKIP_SCRIPTS = {"Zyyy", "Zinh", "Zzzz"}


@dataclass
class Face:
    """One font file."""

    file: str
    path: Path
    family: str
    full_name: str
    version: str
    copyright: str
    licence: str
    package: str
    letters: dict[int, str] = field(default_factory=dict)  # code point -> glyph name


@dataclass
class Candidate:
    """One letter with its renders."""

    codepoint: int
    script: str
    renders: dict[int, np.ndarray] = field(default_factory=dict)  # face index -> bool (64, 64)


def install_fonts() -> None:
    """``apt-get install`` the font packages (needs root and the Debian archive)."""
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def package_versions() -> dict[str, str]:
    """Installed Debian version of each font package ('' when unknown)."""
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            res = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", name],
                capture_output=True,
                text=True,
                check=False,
            )
            out[name] = res.stdout.strip() if res.returncode == 0 else ""
        except FileNotFoundError:
            out[name] = ""
    return out


def design_family(name: str) -> str:
    words = name.split()
    while len(words) > 1 and words[-1] in STYLE_WORDS:
        words.pop()
    return " ".join(words)


def is_letter(cp: int) -> str | None:
    """The ISO 15924 script code of ``cp`` if it is a candidate letter, else None."""
    from fontTools import unicodedata as ftu

    ch = chr(cp)
    if unicodedata.category(ch) not in ("Ll", "Lo"):
        return None
    if unicodedata.normalize("NFKC", ch) != ch or unicodedata.decomposition(ch):
        return None
    try:
        unicodedata.name(ch)
    except ValueError:
        return None
    script = ftu.script(ch)
    return None if script in SKIP_SCRIPTS else script


def read_faces(font_dirs: list[str]) -> list[Face]:
    """Every usable font file under ``font_dirs`` with the letters it really covers."""
    from fontTools.ttLib import TTFont

    paths = sorted(
        p for d in font_dirs for p in Path(d).glob("*") if p.suffix.lower() in (".ttf", ".otf")
    )
    faces: list[Face] = []
    letter_script: dict[int, str | None] = {}
    for path in paths:
        if any(x in path.name for x in EXCLUDE):
            continue
        font = TTFont(path, lazy=True)
        if "glyf" not in font and "CFF " not in font:
            log.info("skip %s: no outlines", path.name)
            continue
        names = font["name"]
        family = names.getDebugName(16) or names.getDebugName(1) or path.stem
        licence = "Bitstream-Vera" if "DejaVu" in path.name else "OFL-1.1"
        package = {
            "noto": "fonts-noto-core/fonts-noto-mono",
            "dejavu": "fonts-dejavu-core/fonts-dejavu-extra",
            "liberation2": "fonts-liberation2",
        }.get(path.parent.name, "")
        face = Face(
            file=path.name,
            path=path,
            family=design_family(family),
            full_name=names.getDebugName(4) or path.stem,
            version=(names.getDebugName(5) or "").split(";")[0].strip(),
            copyright=" ".join((names.getDebugName(0) or "").split()),
            licence=licence,
            package=package,
        )
        cmap = font.getBestCmap() or {}
        glyph_set = font["glyf"] if "glyf" in font else None
        cff = font["CFF "].cff.topDictIndex[0].CharStrings if "CFF " in font else None
        mapped: dict[int, str] = {}
        for cp in sorted(cmap):
            if cp not in letter_script:
                letter_script[cp] = is_letter(cp)
            if letter_script[cp] is None:
                continue
            glyph = cmap[cp]
            if glyph == ".notdef":
                continue
            if glyph_set is not None:
                if glyph_set[glyph].numberOfContours == 0:
                    continue
            elif cff is not None:
                charstring = cff[glyph]
                if charstring.calcBounds(cff) is None:
                    continue
            mapped[cp] = glyph
        shared = Counter(mapped.values())
        face.letters = {cp: g for cp, g in mapped.items() if shared[g] <= PLACEHOLDER_SHARE}
        if face.letters:
            faces.append(face)
        font.close()
    return faces


def render(face: Face, codepoints: list[int]) -> dict[int, np.ndarray]:
    """Size-normalised 1-bit 64x64 renders of ``codepoints`` in ``face`` (empty ones left out)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(face.path), RENDER_PX, layout_engine=ImageFont.Layout.BASIC)
    side = 3 * RENDER_PX
    out: dict[int, np.ndarray] = {}
    for cp in codepoints:
        canvas = Image.new("L", (side, side), 0)
        ImageDraw.Draw(canvas).text((RENDER_PX, RENDER_PX), chr(cp), fill=255, font=font)
        ink = np.asarray(canvas) >= 128
        if not ink.any():
            continue
        rows = np.flatnonzero(ink.any(axis=1))
        cols = np.flatnonzero(ink.any(axis=0))
        crop = canvas.crop((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        scale = BOX / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = crop.resize((nw, nh), Image.Resampling.BOX)
        proto = Image.new("L", (PROTO, PROTO), 0)
        proto.paste(small, ((PROTO - nw) // 2, (PROTO - nh) // 2))
        bits = np.asarray(proto) >= 128
        if bits.sum() >= 8:
            out[cp] = bits
    return out


def collect(faces: list[Face]) -> dict[int, Candidate]:
    """Render every covered letter in every face; merge near-identical renders."""
    from fontTools import unicodedata as ftu

    candidates: dict[int, Candidate] = {}
    for index, face in enumerate(faces):
        t0 = time.perf_counter()
        renders = render(face, sorted(face.letters))
        for cp, bits in renders.items():
            cand = candidates.setdefault(cp, Candidate(cp, ftu.script(chr(cp))))
            duplicate = any(
                np.count_nonzero(bits != other) < SAME_RENDER * PROTO * PROTO
                for other in cand.renders.values()
            )
            if not duplicate:
                cand.renders[index] = bits
        log.info("%-45s %5d letters  %.1fs", face.file, len(renders), time.perf_counter() - t0)
    return candidates


def enough_faces(cand: Candidate, faces: list[Face]) -> bool:
    families = {faces[i].family for i in cand.renders}
    return len(cand.renders) >= MIN_FACES and len(families) >= MIN_FAMILIES


def spread_order(n: int) -> np.ndarray:
    """A permutation of 0..n-1 whose every prefix is spread evenly (bit-reversed order)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bits = max(1, int(np.ceil(np.log2(n))))
    keys = [int(f"{i:0{bits}b}"[::-1], 2) for i in range(n)]
    return np.argsort(np.asarray(keys), kind="stable")


def preference(members: list[Candidate]) -> dict[int, int]:
    """Rank of each letter within its script (0 = most wanted).

    Letters in (nearly) all of the script's faces come first (tier 0: >= 80 % of the script's
    largest face count). Within a tier, code point order (a script's basic letters are encoded
    before its extensions), except for syllabaries (most names contain "SYLLAB": Ethiopic,
    Canadian syllabics), whose syllables are taken evenly across the code points so that the
    kept ones span many consonants.
    """
    members = sorted(members, key=lambda c: c.codepoint)
    most = max(len(c.renders) for c in members)
    syllabary = 2 * sum("SYLLAB" in unicodedata.name(chr(c.codepoint)) for c in members) > len(
        members
    )
    ranked: list[Candidate] = []
    for tier in (0, 1):
        group = [c for c in members if (len(c.renders) < TIER * most) == bool(tier)]
        if syllabary:
            group = [group[i] for i in spread_order(len(group))]
        ranked += group
    return {c.codepoint: r for r, c in enumerate(ranked)}


def similarity(cands: list[Candidate], faces: list[Face]) -> np.ndarray:
    """Look-alike similarity of every two candidates (``metaleep.data._lookalike``)."""
    renders = [np.stack([c.renders[f] for f in sorted(c.renders)]) for c in cands]
    keys = [[face_key(faces[f].file) for f in sorted(c.renders)] for c in cands]
    return lookalike_similarity(renders, keys)


def select(
    cands: list[Candidate], faces: list[Face]
) -> tuple[list[Candidate], np.ndarray, dict[str, int]]:
    """Look-alike removal and per-alphabet cap; drop small alphabets until stable.

    Each script's letters are ranked (:func:`preference`); only the first ``2 * MAX_CLASSES``
    are considered. Copies first: of two letters of different scripts with similarity
    >= COPY (Latin ``o`` and Cyrillic ``о``), the later-encoded one is dropped when the other
    ranks among its script's first MAX_CLASSES. Then letters are visited by rank (round-robin
    over scripts, ties by code point) and kept unless a kept letter of another script is more
    similar than LOOKALIKE_ACROSS (LOOKALIKE_WITHIN within the script) or the script is full.
    Returns the kept candidates, their similarity matrix and counts.
    """
    stats = {"copies": 0, "removed_across": 0, "removed_within": 0, "capped": 0}
    by_script: dict[str, list[Candidate]] = defaultdict(list)
    for cand in cands:
        by_script[cand.script].append(cand)
    rank: dict[int, int] = {}
    for members in by_script.values():
        rank.update(preference(members))
    pool = sorted(
        (c for c in cands if rank[c.codepoint] < 2 * MAX_CLASSES),
        key=lambda c: (rank[c.codepoint], c.codepoint),
    )
    sims = similarity(pool, faces)
    scripts = np.array([c.script for c in pool])
    codes = np.array([c.codepoint for c in pool])
    core = np.array([rank[c.codepoint] < MAX_CLASSES for c in pool])
    cross = scripts[:, None] != scripts[None, :]
    # copy j of an earlier-encoded core letter i
    copy_of = (sims >= COPY) & cross & (codes[:, None] < codes[None, :]) & core[:, None]
    is_copy = copy_of.any(axis=0)
    stats["copies"] = int(is_copy.sum())
    alive = ~is_copy
    while True:
        kept: list[int] = []
        per_script: Counter[str] = Counter()
        counts = {"removed_across": 0, "removed_within": 0, "capped": 0}
        for i in np.flatnonzero(alive):
            if per_script[scripts[i]] >= MAX_CLASSES:
                counts["capped"] += 1
                continue
            if kept:
                k = np.asarray(kept)
                s = sims[i, k]
                if np.any(s[cross[i, k]] > LOOKALIKE_ACROSS):
                    counts["removed_across"] += 1
                    continue
                if np.any(s[~cross[i, k]] > LOOKALIKE_WITHIN):
                    counts["removed_within"] += 1
                    continue
            kept.append(int(i))
            per_script[scripts[i]] += 1
        small = {s for s, n in per_script.items() if n < MIN_CLASSES}
        if not small:
            stats.update(counts)
            stats["small_alphabets"] = len(set(scripts[~is_copy]) - set(per_script))
            k = np.asarray(kept)
            return [pool[i] for i in k], sims[np.ix_(k, k)], stats
        alive &= ~np.isin(scripts, sorted(small))


def clusters(scripts: list[str], sims: np.ndarray) -> np.ndarray:
    """Look-alike cluster ids: connected components of cross-script similarity > CLUSTER_ACROSS.

    Ids run 0.. in order of each cluster's first member.
    """
    script_arr = np.asarray(scripts)
    n = len(script_arr)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    linked = np.triu(sims > CLUSTER_ACROSS, k=1) & (script_arr[:, None] != script_arr[None, :])
    for a, b in zip(*np.nonzero(linked), strict=True):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    ids: dict[int, int] = {}
    return np.asarray([ids.setdefault(find(a), len(ids)) for a in range(n)], dtype=np.int32)


def build(font_dirs: list[str], out_dir: Path) -> dict[str, object]:
    """Build the bank into ``out_dir``; return a summary."""
    import fontTools
    import PIL
    from fontTools import unicodedata as ftu
    from PIL import features

    t0 = time.perf_counter()
    faces = read_faces(font_dirs)
    log.info("%d faces", len(faces))
    candidates = collect(faces)
    eligible = [c for _, c in sorted(candidates.items()) if enough_faces(c, faces)]
    log.info("%d letters rendered, %d with enough faces", len(candidates), len(eligible))
    chosen, sims, stats = select(eligible, faces)
    order = sorted(
        range(len(chosen)),
        key=lambda i: (ftu.script_name(chosen[i].script), chosen[i].codepoint),
    )
    chosen = [chosen[i] for i in order]
    sims = sims[np.ix_(order, order)]
    cluster = clusters([c.script for c in chosen], sims)

    used_faces = sorted({i for c in chosen for i in c.renders})
    face_index = {f: k for k, f in enumerate(used_faces)}
    alphabets = sorted({ftu.script_name(c.script) for c in chosen})
    protos, proto_class, proto_face = [], [], []
    for ci, cand in enumerate(chosen):
        for f in sorted(cand.renders, key=lambda f: face_index[f]):
            protos.append(np.packbits(cand.renders[f].ravel()))
            proto_class.append(ci)
            proto_face.append(face_index[f])
    meta = {
        "format": BANK_FORMAT,
        "proto_size": PROTO,
        "glyph_box": BOX,
        "render_px": RENDER_PX,
        "same_render": SAME_RENDER,
        "min_faces": MIN_FACES,
        "min_families": MIN_FAMILIES,
        "min_classes": MIN_CLASSES,
        "max_classes": MAX_CLASSES,
        "similarity": f"mean-of-best-match cosine, 2x2-pooled, <= {MAX_RENDERS} renders/class",
        "copy": COPY,
        "lookalike_across": LOOKALIKE_ACROSS,
        "lookalike_within": LOOKALIKE_WITHIN,
        "cluster_across": CLUSTER_ACROSS,
        "candidates": len(candidates),
        "eligible": len(eligible),
        **stats,
        "packages": package_versions(),
        "fonttools": fontTools.version,
        "pillow": PIL.__version__,
        "freetype": features.version("freetype2") or "",
        "unicode": unicodedata.unidata_version,
    }
    arrays: dict[str, np.ndarray] = {
        "prototypes": np.stack(protos).astype(np.uint8),
        "proto_class": np.asarray(proto_class, dtype=np.int32),
        "proto_face": np.asarray(proto_face, dtype=np.int32),
        "class_codepoint": np.asarray([c.codepoint for c in chosen], dtype=np.int32),
        "class_name": np.asarray([unicodedata.name(chr(c.codepoint)) for c in chosen]),
        "class_alphabet": np.asarray(
            [alphabets.index(ftu.script_name(c.script)) for c in chosen], dtype=np.int32
        ),
        "class_cluster": cluster,
        "alphabets": np.asarray(alphabets),
        "face_name": np.asarray([faces[f].full_name for f in used_faces]),
        "face_family": np.asarray([faces[f].family for f in used_faces]),
        "face_file": np.asarray([faces[f].file for f in used_faces]),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }
    version = bank_version(arrays)
    arrays["version"] = np.asarray(version)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_npz(out_dir / "glyphs.npz", arrays)
    write_attribution(out_dir, [faces[f] for f in used_faces], meta, version)
    write_licences(out_dir, [faces[f] for f in used_faces])
    n_faces = np.bincount(arrays["proto_class"])
    per_alphabet = np.bincount(arrays["class_alphabet"])
    return {
        "version": version,
        "classes": len(chosen),
        "alphabets": len(alphabets),
        "classes_per_alphabet": (int(per_alphabet.min()), int(per_alphabet.max())),
        "faces_per_class": (int(n_faces.min()), float(np.median(n_faces)), int(n_faces.max())),
        "prototypes": len(protos),
        "faces_used": len(used_faces),
        "bytes": (out_dir / "glyphs.npz").stat().st_size,
        "seconds": round(time.perf_counter() - t0, 1),
        **stats,
    }


def write_attribution(out_dir: Path, faces: list[Face], meta: dict, version: str) -> None:
    lines = [
        "metaleep glyph bank: fonts used",
        "================================",
        "",
        "glyphs.npz holds small 1-bit bitmaps (64x64) of letters rendered from the fonts below",
        "by tools/build_glyph_bank.py, and the fonts' names for attribution; no font file or",
        "outline is redistributed. The copyright notices and licences of the fonts are",
        "reproduced here (LICENSE-OFL-1.1.txt for the Noto and Liberation fonts,",
        "LICENSE-DejaVu.txt for the DejaVu fonts, which derive from Bitstream Vera).",
        "",
        f"Bank version: {version}",
        "Debian packages: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["packages"].items())),
        "",
    ]
    for face in faces:
        lines += [
            f"{face.full_name} ({face.file}, {face.version}; {face.package})",
            f"  Copyright: {face.copyright}",
            f"  License: {face.licence}",
            "",
        ]
    (out_dir / "ATTRIBUTION.txt").write_text("\n".join(lines), encoding="utf-8")


def write_licences(out_dir: Path, faces: list[Face]) -> None:
    from fontTools.ttLib import TTFont

    (out_dir / "LICENSE-OFL-1.1.txt").write_text(OFL_TEXT, encoding="utf-8")
    dejavu = [f for f in faces if f.licence == "Bitstream-Vera"]
    if dejavu:
        font = TTFont(dejavu[0].path, lazy=True)
        text = font["name"].getDebugName(13) or ""
        font.close()
        body = "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"
        header = "Licence of the DejaVu fonts (from the fonts' 'name' table, ID 13)\n\n"
        (out_dir / "LICENSE-DejaVu.txt").write_text(header + body, encoding="utf-8")


OFL_TEXT = """\
Copyright (c) 2010-2020 Google LLC (Noto fonts), with Reserved Font Name Noto.
Digitized data copyright (c) 2010 Google Corporation with Reserved Font Arimo, Tinos and Cousine.
Copyright (c) 2012 Red Hat, Inc. with Reserved Font Name Liberation.
(The copyright line of each font used is listed in ATTRIBUTION.txt.)

This Font Software is licensed under the SIL Open Font License, Version 1.1.
This license is copied below, and is also available with a FAQ at:
https://openfontlicense.org


-----------------------------------------------------------
SIL OPEN FONT LICENSE Version 1.1 - 26 February 2007
-----------------------------------------------------------

PREAMBLE
The goals of the Open Font License (OFL) are to stimulate worldwide
development of collaborative font projects, to support the font creation
efforts of academic and linguistic communities, and to provide a free and
open framework in which fonts may be shared and improved in partnership
with others.

The OFL allows the licensed fonts to be used, studied, modified and
redistributed freely as long as they are not sold by themselves. The
fonts, including any derivative works, can be bundled, embedded,
redistributed and/or sold with any software provided that any reserved
names are not used by derivative works. The fonts and derivatives,
however, cannot be released under any other type of license. The
requirement for fonts to remain under this license does not apply
to any document created using the fonts or their derivatives.

DEFINITIONS
"Font Software" refers to the set of files released by the Copyright
Holder(s) under this license and clearly marked as such. This may
include source files, build scripts and documentation.

"Reserved Font Name" refers to any names specified as such after the
copyright statement(s).

"Original Version" refers to the collection of Font Software components as
distributed by the Copyright Holder(s).

"Modified Version" refers to any derivative made by adding to, deleting,
or substituting -- in part or in whole -- any of the components of the
Original Version, by changing formats or by porting the Font Software to a
new environment.

"Author" refers to any designer, engineer, programmer, technical
writer or other person who contributed to the Font Software.

PERMISSION & CONDITIONS
Permission is hereby granted, free of charge, to any person obtaining
a copy of the Font Software, to use, study, copy, merge, embed, modify,
redistribute, and sell modified and unmodified copies of the Font
Software, subject to the following conditions:

1) Neither the Font Software nor any of its individual components,
in Original or Modified Versions, may be sold by itself.

2) Original or Modified Versions of the Font Software may be bundled,
redistributed and/or sold with any software, provided that each copy
contains the above copyright notice and this license. These can be
included either as stand-alone text files, human-readable headers or
in the appropriate machine-readable metadata fields within text or
binary files as long as those fields can be easily viewed by the user.

3) No Modified Version of the Font Software may use the Reserved Font
Name(s) unless explicit written permission is granted by the corresponding
Copyright Holder. This restriction only applies to the primary font name as
presented to the users.

4) The name(s) of the Copyright Holder(s) and the Author(s) of the Font
Software shall not be used to promote, endorse or advertise any
Modified Version, except to acknowledge the contribution(s) of the
Copyright Holder(s) and the Author(s) or with their explicit written
permission.

5) The Font Software, modified or unmodified, in part or in whole,
must be distributed entirely under this license, and must not be
distributed under any other license. The requirement for fonts to
remain under this license does not apply to any document created
using the Font Software.

TERMINATION
This license becomes null and void if any of the above conditions are
not met.

DISCLAIMER
THE FONT SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO ANY WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT
OF COPYRIGHT, PATENT, TRADEMARK, OR OTHER RIGHT. IN NO EVENT SHALL THE
COPYRIGHT HOLDER BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
INCLUDING ANY GENERAL, SPECIAL, INDIRECT, INCIDENTAL, OR CONSEQUENTIAL
DAMAGES, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
FROM, OUT OF THE USE OR INABILITY TO USE THE FONT SOFTWARE OR FROM
OTHER DEALINGS IN THE FONT SOFTWARE.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="apt-get install the fonts first")
    parser.add_argument("--font-dir", action="append", help="font folder (repeatable)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "metaleep" / "data" / "bank", help="output folder"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.install:
        install_fonts()
    summary = build(args.font_dir or list(FONT_DIRS), args.out)
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
