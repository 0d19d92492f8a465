"""The perturbations of the robustness section: (N, H, W) float32 in [0, 1] -> the same shape.

Each leaves its input untouched and returns the input itself at its identity level (no shift,
sigma 0...), so a sweep can reuse the clean answers there.
"""
import math

import numpy as np

from kit.images.augment import affine_maps, warp


def shift(images, rows=0.0, cols=0.0):
    """Move the digits ``rows`` px down and ``cols`` px right (negative: up / left)."""
    if rows == 0 and cols == 0:
        return images
    n = len(images)
    return warp(images, affine_maps(np.zeros(n), np.ones(n), np.full(n, float(rows)),
                                    np.full(n, float(cols))).astype(np.float32))


def rotate(images, degrees):
    """Turn the digits ``degrees`` counter-clockwise about the image centre (bilinear)."""
    if degrees == 0:
        return images
    n = len(images)
    return warp(images, affine_maps(np.full(n, float(degrees)), np.ones(n), np.zeros(n),
                                    np.zeros(n)).astype(np.float32))


def rescale(images, factor):
    """Scale the digits by ``factor`` about the image centre (bilinear; > 1 may crop)."""
    if factor == 1:
        return images
    n = len(images)
    return warp(images, affine_maps(np.zeros(n), np.full(n, float(factor)), np.zeros(n),
                                    np.zeros(n)).astype(np.float32))


def gaussian_kernel(sigma):
    """Normalised 1-D Gaussian weights over [-ceil(3 sigma), ceil(3 sigma)], shape (2r + 1,)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-t ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def gaussian_blur(images, sigma):
    """Separable Gaussian blur with standard deviation ``sigma`` px; outside the image is black.

    A 2-D Gaussian factorises, G(r, c) = g(r) g(c), so blurring is a 1-D convolution along the
    columns followed by one along the rows: 2(2R + 1) instead of (2R + 1)^2 products per pixel.
        out[n, r, c] = sum_i sum_j g[i] g[j] x[n, r + i - R, c + j - R]   (x = 0 off the image)
    """
    if sigma <= 0:
        return images
    images = np.asarray(images)
    weights = gaussian_kernel(sigma)
    radius = len(weights) // 2
    n, height, width = images.shape
    x = np.pad(images.astype(np.float64), ((0, 0), (radius, radius), (radius, radius)))
    across = sum(w * x[:, :, j:j + width] for j, w in enumerate(weights))      # (N, H + 2R, W)
    out = sum(w * across[:, i:i + height, :] for i, w in enumerate(weights))   # (N, H, W)
    return out.astype(images.dtype)


def add_noise(images, std, rng):
    """Add Gaussian noise of standard deviation ``std`` to every pixel, clipped to [0, 1]."""
    if std <= 0:
        return images
    noisy = images + rng.normal(0.0, std, images.shape).astype(images.dtype)
    return np.clip(noisy, 0.0, 1.0)


def blank_rows(images, count, side):
    """Set the ``count`` top (``side='top'``) or bottom rows of every image to black."""
    if count <= 0:
        return images
    out = images.copy()
    if side == "top":
        out[:, :count, :] = 0
    else:
        out[:, out.shape[1] - count:, :] = 0
    return out
