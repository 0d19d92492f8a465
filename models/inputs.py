"""How images become a network's input: the two conventions the kit's models use.

Images arrive as float32 (N, H, W) in [0, 1]; a model file names one of these (or its own).
"""
import numpy as np


def image_channels(images):
    """(N, H, W) -> (N, 1, H, W): one grey channel, for convolutions."""
    return images[:, None, :, :]


def image_rows(images):
    """(N, H, W) -> (N, T=H, D=W): row t is timestep t, for recurrent layers."""
    return images


def image_pixels(images):
    """(N, H, W) -> (N, H*W): the pixels in reading order, for dense layers."""
    return images.reshape(len(images), -1)
