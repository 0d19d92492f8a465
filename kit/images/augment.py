"""Random small affine distortions of digit images: shifts, rotations, scalings.

Drawn digits are never as neatly centred and sized as MNIST's; training on slightly moved,
turned and resized copies teaches the models not to care.
"""
import numpy as np

from nn.kernels.affine import affine_warp


def affine_maps(rotation_degrees, scale, shift_rows, shift_cols, height=28, width=28):
    """Inverse maps (N, 2, 3) for rotating by ``rotation_degrees`` and scaling by ``scale`` about
    the image centre, then shifting by (``shift_rows``, ``shift_cols``) pixels.

    forward:  p_out = S R (p_in - centre) + centre + shift
    inverse:  p_in  = R^T (p_out - centre - shift) / s + centre
    """
    theta = np.deg2rad(np.asarray(rotation_degrees, dtype=np.float64))
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), theta.shape)
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    centre_r, centre_c = (height - 1) / 2.0, (width - 1) / 2.0
    offset_r = centre_r + np.asarray(shift_rows, dtype=np.float64)
    offset_c = centre_c + np.asarray(shift_cols, dtype=np.float64)
    maps = np.empty(theta.shape + (2, 3))
    # (row, col) coordinates: rotating by +theta turns the digit counter-clockwise on screen.
    maps[..., 0, 0], maps[..., 0, 1] = cos, sin
    maps[..., 1, 0], maps[..., 1, 1] = -sin, cos
    maps[..., 0, 2] = centre_r - cos * offset_r - sin * offset_c
    maps[..., 1, 2] = centre_c + sin * offset_r - cos * offset_c
    return maps


def warp(images, maps):
    """Apply inverse ``maps`` (N, 2, 3) to ``images`` (N, H, W); dtype is kept."""
    images = np.ascontiguousarray(images)
    return affine_warp(images, np.ascontiguousarray(maps, dtype=images.dtype))


def random_affine(images, rng, max_shift=2.0, max_rotation=10.0, scale_range=(0.9, 1.1)):
    """Each image moved by up to ``max_shift`` px, turned up to ``max_rotation`` degrees and
    scaled within ``scale_range``, all drawn uniformly and independently."""
    n = len(images)
    maps = affine_maps(rng.uniform(-max_rotation, max_rotation, n),
                       rng.uniform(*scale_range, n),
                       rng.uniform(-max_shift, max_shift, n),
                       rng.uniform(-max_shift, max_shift, n),
                       *images.shape[1:])
    return warp(images, maps)


def warm_up(dtype):
    """Compile or load the warp kernel (pass to :func:`nn.warmup.warm_up` as ``extra``)."""
    affine_warp(np.zeros((1, 2, 2), dtype), np.zeros((1, 2, 3), dtype))
