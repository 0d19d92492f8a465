"""Affine image warping with bilinear sampling, used for data augmentation and robustness tests."""
import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def affine_warp(images, inverse_maps):
    """Resample each image through its own affine map.

    images: (N, H, W); inverse_maps: (N, 2, 3) taking an output pixel (row, col, 1) to the input
    position it samples, so out[n, r, c] = bilinear(images[n], A_n @ (r, c, 1)).  Samples that
    fall outside the image read 0 (black background, as MNIST).
    """
    n_images, height, width = images.shape
    out = np.zeros_like(images)
    for n in prange(n_images):
        a = inverse_maps[n]
        for r in range(height):
            for c in range(width):
                y = a[0, 0] * r + a[0, 1] * c + a[0, 2]
                x = a[1, 0] * r + a[1, 1] * c + a[1, 2]
                y0 = math.floor(y)
                x0 = math.floor(x)
                dy = y - y0
                dx = x - x0
                value = 0.0
                for oy in range(2):
                    yy = y0 + oy
                    if yy < 0 or yy >= height:
                        continue
                    wy = dy if oy == 1 else 1.0 - dy
                    for ox in range(2):
                        xx = x0 + ox
                        if xx < 0 or xx >= width:
                            continue
                        wx = dx if ox == 1 else 1.0 - dx
                        value += wy * wx * images[n, yy, xx]
                out[n, r, c] = value
    return out
