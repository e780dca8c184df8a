"""Distorted glyph instances from 1-bit prototypes: numpy only, deterministic per instance.

Instance ``j`` of class ``c`` under ``seed`` is drawn by its own generator,
``np.random.SeedSequence(seed, spawn_key=(TAG, c, j))``, so it does not depend on how many
instances are drawn, in which order, or in which process. Recipe (all arithmetic in float64,
elementwise, so results are bit-identical from run to run):

1. **Face**: instance ``j`` uses face ``perm[j % F]`` of the class's ``F`` faces, ``perm`` a
   per-class permutation: the faces are used evenly.
2. **Stroke**: one-pixel erosion, nothing or dilation (4-neighbourhood), one third each, but an
   erosion that would remove more than half of the ink is skipped (thin faces would vanish),
   and so is a dilation of a prototype whose ink fraction is above :data:`MAX_INK_TO_DILATE`.
3. **Affine** about the centre: rotation U(-12, 12) degrees, horizontal shear U(-0.25, 0.25),
   scale U(0.80, 1.05), shift U(-6 %, 6 %) of the side on each axis.
4. **Elastic warp**: displacements drawn N(0, 2.5 px) on a 5x5 lattice, upsampled smoothly
   (smoothstep interpolation) to the 64x64 grid.
5. Bilinear sampling of the prototype, then area downsampling 64 -> 28 and rounding to uint8
   (ink 255 on background 0, the orientation of learn2learn's Omniglot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Bumped whenever the recipe below changes the pixels (part of the cache key).
GENERATOR_VERSION = 1
#: Spawn-key domain tag of the glyph generator ("gly").
TAG = 0x676C79
PROTO = 64
SIZE = 28
ROTATION_DEG = 12.0
SHEAR = 0.25
SCALE = (0.80, 1.05)
SHIFT = 0.06
ELASTIC_PX = 2.5
LATTICE = 5
#: Prototypes with more ink than this fraction are never dilated.
MAX_INK_TO_DILATE = 0.20
#: Erosion is skipped when it would keep less than this fraction of the ink.
MIN_INK_KEPT_BY_EROSION = 0.5


def _area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights (n_out, taps) of area (box) resampling from n_in to n_out pixels."""
    step = n_in / n_out
    taps = int(np.ceil(step)) + 1
    index = np.zeros((n_out, taps), dtype=np.int64)
    weight = np.zeros((n_out, taps))
    for i in range(n_out):
        lo, hi = i * step, (i + 1) * step
        first = int(np.floor(lo))
        for t in range(taps):
            j = first + t
            if j >= n_in:
                break
            overlap = min(hi, j + 1) - max(lo, j)
            if overlap > 0:
                index[i, t] = j
                weight[i, t] = overlap / step
    return index, weight


_ROWS, _ROW_W = _area_taps(PROTO, SIZE)


def _lattice_taps(n_nodes: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index (n_out,) and smoothstep weight of the upper node for each pixel."""
    pos = np.arange(n_out) * (n_nodes - 1) / (n_out - 1)
    low = np.minimum(np.floor(pos).astype(np.int64), n_nodes - 2)
    frac = pos - low
    return low, frac * frac * (3.0 - 2.0 * frac)


_NODE, _NODE_W = _lattice_taps(LATTICE, PROTO)


def _padded(p: np.ndarray) -> np.ndarray:
    q = np.zeros((p.shape[0] + 2, p.shape[1] + 2), dtype=bool)
    q[1:-1, 1:-1] = p
    return q


def _erode(p: np.ndarray) -> np.ndarray:
    q = _padded(p)
    return q[1:-1, 1:-1] & q[:-2, 1:-1] & q[2:, 1:-1] & q[1:-1, :-2] & q[1:-1, 2:]


def _dilate(p: np.ndarray) -> np.ndarray:
    q = _padded(p)
    return q[1:-1, 1:-1] | q[:-2, 1:-1] | q[2:, 1:-1] | q[1:-1, :-2] | q[1:-1, 2:]


def stroke_variants(prototypes: np.ndarray) -> np.ndarray:
    """Eroded, unchanged and dilated version of each prototype, with the ink-fraction rules.

    Parameters
    ----------
    prototypes:
        (F, 64, 64) 0/1 array, one prototype per face.

    Returns
    -------
    ndarray
        (F, 3, 64, 64) bool: index 0 eroded (or unchanged when erosion would keep less than
        half the ink), 1 unchanged, 2 dilated (or unchanged when the ink fraction exceeds
        :data:`MAX_INK_TO_DILATE`).

    Examples
    --------
    >>> thin = np.zeros((1, 64, 64), dtype=np.uint8); thin[0, 10:50, 30] = 1
    >>> v = stroke_variants(thin)
    >>> [int(v[0, k].sum()) for k in range(3)]  # a 1-px stroke is never eroded
    [40, 40, 122]
    """
    protos = np.asarray(prototypes).astype(bool)
    out = np.empty((len(protos), 3, *protos.shape[1:]), dtype=bool)
    for f, p in enumerate(protos):
        ink = p.sum()
        eroded = _erode(p)
        out[f, 0] = eroded if eroded.sum() >= MIN_INK_KEPT_BY_EROSION * ink else p
        out[f, 1] = p
        out[f, 2] = _dilate(p) if ink <= MAX_INK_TO_DILATE * p.size else p
    return out


def instance_rng(seed: int, class_id: int, instance: int) -> np.random.Generator:
    """The generator of instance ``instance`` of class ``class_id`` under ``seed``."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(TAG, class_id, instance)))
    )


def face_order(seed: int, class_id: int, n_faces: int) -> np.ndarray:
    """Per-class permutation of the faces: instance j uses face ``face_order(...)[j % F]``."""
    rng = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(TAG, class_id)))
    )
    return rng.permutation(n_faces)


def render_instances(
    prototypes: np.ndarray,
    *,
    seed: int,
    class_id: int,
    instances: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """Distorted, downsampled instances of one glyph class.

    Parameters
    ----------
    prototypes:
        (F, 64, 64) 0/1 array: the class's prototype in each of its F faces.
    seed:
        Non-negative data set seed.
    class_id:
        The class id (part of each instance's seed).
    instances:
        Instance indices j to draw, shape (K,); instance j does not depend on the others.

    Returns
    -------
    ndarray
        (K, 28, 28) uint8, ink 255 on 0.

    Examples
    --------
    >>> o = np.zeros((2, 64, 64), dtype=np.uint8)
    >>> o[:, 12:52, 12:52] = 1; o[0, 20:44, 20:44] = 0; o[1, 16:48, 16:48] = 0
    >>> a = render_instances(o, seed=0, class_id=7, instances=[0, 1, 2])
    >>> a.shape, a.dtype
    ((3, 28, 28), dtype('uint8'))
    >>> b = render_instances(o, seed=0, class_id=7, instances=[2])
    >>> bool((a[2] == b[0]).all())
    True
    """
    ids = np.asarray(instances, dtype=np.int64).reshape(-1)
    variants = stroke_variants(prototypes)
    n_faces = len(variants)
    order = face_order(seed, class_id, n_faces)
    k = len(ids)
    images = np.empty((k, PROTO, PROTO), dtype=np.float64)
    params = np.empty((k, 6))
    lattice = np.empty((k, 2, LATTICE, LATTICE))
    for row, j in enumerate(ids.tolist()):
        rng = instance_rng(seed, class_id, j)
        stroke = int(rng.integers(0, 3))
        images[row] = variants[order[j % n_faces], stroke]
        params[row, 0] = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
        params[row, 1] = rng.uniform(-SHEAR, SHEAR)
        params[row, 2] = rng.uniform(*SCALE)
        params[row, 3:5] = rng.uniform(-SHIFT, SHIFT, size=2) * PROTO
        lattice[row] = rng.normal(0.0, ELASTIC_PX, size=(2, LATTICE, LATTICE))
    return _warp_and_shrink(images, params, lattice)


def _warp_and_shrink(images: np.ndarray, params: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    k = len(images)
    theta, shear, scale = params[:, 0], params[:, 1], params[:, 2]
    cos, sin = np.cos(theta), np.sin(theta)
    # forward map A = scale * R(theta) @ [[1, shear], [0, 1]] acting on (x, y); invert it
    a00, a01 = scale * cos, scale * (cos * shear - sin)
    a10, a11 = scale * sin, scale * (sin * shear + cos)
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    centre = (PROTO - 1) / 2.0
    grid = np.arange(PROTO, dtype=np.float64)
    gy = grid[None, :, None] - centre - params[:, 4, None, None]
    gx = grid[None, None, :] - centre - params[:, 3, None, None]
    # elastic field on the output grid: separable smoothstep interpolation of the lattice
    w = _NODE_W
    ly = (
        lattice[:, :, _NODE, :] * (1.0 - w)[None, None, :, None]
        + lattice[:, :, _NODE + 1, :] * w[None, None, :, None]
    )
    field = ly[:, :, :, _NODE] * (1.0 - w) + ly[:, :, :, _NODE + 1] * w
    sx = centre + i00[:, None, None] * gx + i01[:, None, None] * gy + field[:, 0]
    sy = centre + i10[:, None, None] * gx + i11[:, None, None] * gy + field[:, 1]
    warped = _bilinear(images, sy, sx)
    # area downsampling, rows then columns, fixed summation order
    rows = sum(_ROW_W[None, :, t, None] * warped[:, _ROWS[:, t], :] for t in range(_ROWS.shape[1]))
    out = sum(_ROW_W[None, None, :, t] * rows[:, :, _ROWS[:, t]] for t in range(_ROWS.shape[1]))
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(k, SIZE, SIZE)


def _bilinear(images: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Sample (K, S, S) ``images`` at (K, S, S) coordinates (row ``sy``, column ``sx``).

    Zero outside the image; ``v00 + fx (v01 - v00)`` interpolation, in place to save memory
    traffic.
    """
    k, side, _ = images.shape
    width = side + 3  # one zero row/column before, two after
    padded = np.zeros((k, width, width), dtype=np.float64)
    padded[:, 1 : side + 1, 1 : side + 1] = images
    flat = padded.reshape(-1)
    # clipping to [-1, side] keeps every tap inside the zero border and changes no value
    sy = np.clip(sy, -1.0, float(side))
    sx = np.clip(sx, -1.0, float(side))
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = sy - y0, sx - x0
    index = y0.astype(np.int64)
    index += 1
    index *= width
    index += x0.astype(np.int64)
    index += 1
    index += (np.arange(k) * width * width)[:, None, None]
    top, top_right = np.take(flat, index), np.take(flat, index + 1)
    index += width
    bottom, bottom_right = np.take(flat, index), np.take(flat, index + 1)
    top_right -= top
    top_right *= fx
    top += top_right
    bottom_right -= bottom
    bottom_right *= fx
    bottom += bottom_right
    bottom -= top
    bottom *= fy
    top += bottom
    return top
