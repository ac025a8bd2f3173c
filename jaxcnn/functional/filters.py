"""Classic image-filtering kernels and 2-D correlation / convolution of single images.

Reproduces the image-filtering examples of the course: :func:`identity`, blur with
:func:`box` or :func:`gaussian`, edges with :func:`edge`, :func:`sobel_x` /
:func:`prewitt_y` ..., :func:`sharpen`, :func:`laplacian` (4 or 8 neighbours),
:func:`high_pass`, applied with :func:`correlate2d` or :func:`convolve2d`.

Kernels are (KH, KW) float32 arrays indexed ``[row, column]``: row 0 is the top,
column 0 the left, as in an image. Each kernel function returns a fresh array.

Correlation vs convolution (the slides' distinction):

    correlate2d:  out[i, j] = sum_{u, v} image[i + u, j + v] * kernel[u, v]
    convolve2d:   out[i, j] = sum_{u, v} image[i - u, j - v] * kernel[u, v]

i.e. convolution is correlation with the kernel flipped in both axes. Deep-learning
"convolution" layers (:func:`jaxcnn.functional.conv2d`) compute the correlation.
Sign conventions below are stated for correlation; under convolution an
antisymmetric kernel (Sobel, Prewitt) responds with the opposite sign.

Example::

    from jaxcnn.functional import filters
    edges = filters.correlate2d(gray_image, filters.sobel_x())   # (H, W) -> (H, W)
"""
from __future__ import annotations

from numbers import Real

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.functional.args import check_window_fits, positive_tuple
from jaxcnn.functional.conv import conv2d

__all__ = [
    "identity",
    "edge",
    "high_pass",
    "box",
    "gaussian",
    "sobel_x",
    "sobel_y",
    "prewitt_x",
    "prewitt_y",
    "sharpen",
    "laplacian",
    "correlate2d",
    "convolve2d",
]

_MODES = ("valid", "same", "full")


def _kernel(rows) -> jax.Array:
    return jnp.asarray(np.array(rows, dtype=np.float32))


def box(k) -> jax.Array:
    """Box (mean) blur: a (KH, KW) kernel of ``1 / (KH * KW)``, summing to 1.

    Args:
      k: an int (a k x k square) or 2 ints (KH, KW), each >= 1.
    """
    height, width = positive_tuple(k, 2, "box size k")
    return jnp.full((height, width), 1.0 / (height * width), jnp.float32)


def gaussian(size, sigma: float) -> jax.Array:
    """Normalised 2-D Gaussian blur kernel of shape (size, size) (or (KH, KW)).

    ``g[u, v] = exp(-((u - cu)^2 + (v - cv)^2) / (2 sigma^2)) / Z`` with the centre
    ``(cu, cv) = ((KH - 1) / 2, (KW - 1) / 2)`` (between two taps for an even size)
    and ``Z`` chosen so the kernel sums to 1, which preserves the brightness of
    flat regions.

    Args:
      size: an int or 2 ints (KH, KW), each >= 1; ``size ~ 6 * sigma`` keeps nearly
        all of the mass.
      sigma: standard deviation in pixels, a Python float > 0.
    """
    height, width = positive_tuple(size, 2, "gaussian size")
    if isinstance(sigma, bool) or not isinstance(sigma, Real) or not sigma > 0:
        raise ValueError(f"gaussian sigma must be a Python float > 0, got {sigma!r}")
    rows = np.arange(height, dtype=np.float64) - (height - 1) / 2
    cols = np.arange(width, dtype=np.float64) - (width - 1) / 2
    squared_distance = rows[:, None] ** 2 + cols[None, :] ** 2
    weights = np.exp(-squared_distance / (2.0 * float(sigma) ** 2))
    return jnp.asarray((weights / weights.sum()).astype(np.float32))


def sobel_x() -> jax.Array:
    """3x3 Sobel kernel for horizontal gradients (vertical edges)::

        [[-1, 0, 1],
         [-2, 0, 2],
         [-1, 0, 1]]

    Under correlation the response is positive where intensity increases from left
    to right (and is ``8 * slope`` on a linear ramp). Sums to 0.
    """
    return _kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])


def sobel_y() -> jax.Array:
    """3x3 Sobel kernel for vertical gradients (horizontal edges)::

        [[-1, -2, -1],
         [ 0,  0,  0],
         [ 1,  2,  1]]

    Under correlation the response is positive where intensity increases from top
    to bottom (increasing row index). The transpose of :func:`sobel_x`. Sums to 0.
    """
    return _kernel([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])


def prewitt_x() -> jax.Array:
    """3x3 Prewitt kernel for horizontal gradients: :func:`sobel_x` without the centre weighting::

        [[-1, 0, 1],
         [-1, 0, 1],
         [-1, 0, 1]]

    Positive under correlation where intensity increases left to right. Sums to 0.
    """
    return _kernel([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])


def prewitt_y() -> jax.Array:
    """3x3 Prewitt kernel for vertical gradients, the transpose of :func:`prewitt_x`::

        [[-1, -1, -1],
         [ 0,  0,  0],
         [ 1,  1,  1]]

    Positive under correlation where intensity increases top to bottom. Sums to 0.
    """
    return _kernel([[-1, -1, -1], [0, 0, 0], [1, 1, 1]])


def sharpen() -> jax.Array:
    """3x3 sharpening kernel, identity minus :func:`laplacian`::

        [[ 0, -1,  0],
         [-1,  5, -1],
         [ 0, -1,  0]]

    Sums to 1, so flat regions keep their value while edges are amplified.
    Symmetric: correlation and convolution agree.
    """
    return _kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])


def laplacian(neighbours: int = 4) -> jax.Array:
    """3x3 Laplacian kernels of the slides' kernel table, with the slides' signs.

    ``neighbours=4`` (default): the discrete ``d2/dx2 + d2/dy2``, negative centre::

        [[0,  1, 0],
         [1, -4, 1],
         [0,  1, 0]]

    a bright isolated pixel gives a negative response, a dark one a positive one.

    ``neighbours=8``: the 8-neighbour kernel AS PRINTED on the slides, positive centre::

        [[-1, -1, -1],
         [-1,  8, -1],
         [-1, -1, -1]]

    i.e. MINUS the 8-neighbour discrete Laplacian (the opposite sign convention of
    the 4-neighbour kernel: a bright isolated pixel gives a positive response), and
    ``9 * high_pass(3)``. Both sum to 0 (0 on flat regions and linear ramps) and are
    symmetric, so correlation and convolution agree.
    """
    if neighbours == 4 and not isinstance(neighbours, bool):
        return _kernel([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    if neighbours == 8 and not isinstance(neighbours, bool):
        return _kernel([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    raise ValueError(f"laplacian: neighbours must be 4 or 8, got {neighbours!r}")


def identity(size=3) -> jax.Array:
    """The identity kernel: 1 at the anchor ``((KH - 1) // 2, (KW - 1) // 2)``, 0 elsewhere::

        [[0, 0, 0],
         [0, 1, 0],
         [0, 0, 0]]      (size 3)

    ``correlate2d(image, identity(k), mode="same")`` is ``image`` for any ``k``
    (the anchor is the one "same" mode puts on each output pixel).

    Args:
      size: an int or 2 ints (KH, KW), each >= 1.
    """
    height, width = positive_tuple(size, 2, "identity size")
    kernel = np.zeros((height, width), np.float32)
    kernel[(height - 1) // 2, (width - 1) // 2] = 1.0
    return jnp.asarray(kernel)


def edge() -> jax.Array:
    """The slides' diagonal edge kernel::

        [[ 1, 0, -1],
         [ 0, 0,  0],
         [-1, 0,  1]]

    the product of two centred differences, ``[1, 0, -1]^T [1, 0, -1]`` (the
    discrete mixed derivative ``d2/dxdy`` up to sign and a factor 4): 0 on flat
    regions and on ramps along rows or columns, responds to corners and diagonal
    structure. Sums to 0; point-symmetric, so correlation and convolution agree.
    """
    return _kernel([[1, 0, -1], [0, 0, 0], [-1, 0, 1]])


def high_pass(size=3) -> jax.Array:
    """High-pass kernel: the image minus its box blur, ``identity(size) - box(size)``::

        (1/9) [[-1, -1, -1],
               [-1,  8, -1],
               [-1, -1, -1]]      (size 3: 1/9 of the slides' 8-neighbour kernel, laplacian(8))

    Keeps what the low-pass :func:`box` removes: 0 on flat regions, and
    ``image - box-blurred image`` in general (``correlate2d`` is linear). Sums to 0.

    Args:
      size: an int or 2 ints (KH, KW), each >= 1.
    """
    return identity(size) - box(size)


def _prepare(image, kernel, mode: str, what: str):
    if mode not in _MODES:
        raise ValueError(f'{what}: mode must be one of "valid", "same", "full", got {mode!r}')
    image = jnp.asarray(image)
    kernel = jnp.asarray(kernel)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"{what}: expected an image of shape (H, W) or (H, W, C), got shape {image.shape}"
        )
    if kernel.ndim != 2:
        raise ValueError(
            f"{what}: expected a 2-D kernel (KH, KW), applied to every channel, got shape {kernel.shape}"
        )
    if 0 in image.shape or 0 in kernel.shape:
        raise ValueError(f"{what}: image {image.shape} and kernel {kernel.shape} must not be empty")
    dtype = image.dtype if jnp.issubdtype(image.dtype, jnp.floating) else jnp.float32
    return image.astype(dtype), kernel.astype(dtype)


def _filter(image, kernel, pads, mode: str, what: str) -> jax.Array:
    """Depthwise correlation of (H, W[, C]) with one (KH, KW) kernel and explicit pads."""
    height, width = image.shape[:2]
    check_window_fits((height, width), kernel.shape, pads, what=f'{what} in mode "{mode}": kernel')
    channels_last = image if image.ndim == 3 else image[:, :, None]
    channels = channels_last.shape[-1]
    # One copy of the kernel per channel, groups=C: every channel filtered on its own.
    depthwise = jnp.broadcast_to(kernel[:, :, None, None], (*kernel.shape, 1, channels))
    out = conv2d(channels_last[None], depthwise, padding=pads, groups=channels)[0]
    return out if image.ndim == 3 else out[:, :, 0]


def correlate2d(image: jax.Array, kernel: jax.Array, mode: str = "same") -> jax.Array:
    """2-D cross-correlation with zero fill, per channel; matches ``scipy.signal.correlate2d``.

    ``out[i, j] = sum_{u, v} image[i + u - P_top, j + v - P_left] * kernel[u, v]``, with
    ``image`` read as 0 outside its bounds; ``P_top`` is 0 ("valid"),
    ``(KH - 1) // 2`` ("same") or ``KH - 1`` ("full"), and likewise ``P_left`` with KW.

    Args:
      image: (H, W) or (H, W, C); each channel is filtered separately with the same
        kernel. Integer images are converted to float32.
      kernel: (KH, KW).
      mode: output size, as in SciPy; the default is ``"same"`` (an image filter
        keeps the image size), where SciPy's is ``"full"``:
        - ``"valid"``: (H - KH + 1, W - KW + 1), only fully overlapping positions
          (the kernel must fit inside the image);
        - ``"same"``: (H, W); kernel element ``((KH - 1) // 2, (KW - 1) // 2)`` sits on
          each output pixel, i.e. ``P_top = (KH - 1) // 2``, ``P_left = (KW - 1) // 2``;
        - ``"full"``: (H + KH - 1, W + KW - 1), every position with any overlap.

    Returns:
      The filtered image, with the channel axis only if the input had one.
    """
    image, kernel = _prepare(image, kernel, mode, "correlate2d")
    kh, kw = kernel.shape
    pads = {
        "valid": ((0, 0), (0, 0)),
        "same": (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)),
        "full": ((kh - 1, kh - 1), (kw - 1, kw - 1)),
    }[mode]
    return _filter(image, kernel, pads, mode, "correlate2d")


def convolve2d(image: jax.Array, kernel: jax.Array, mode: str = "same") -> jax.Array:
    """2-D convolution with zero fill, per channel; matches ``scipy.signal.convolve2d``.

    ``out[i, j] = sum_{u, v} image[i - u + Q_top, j - v + Q_left] * kernel[u, v]`` with
    zero fill; ``Q_top`` is ``KH - 1`` ("valid"), ``(KH - 1) // 2`` ("same") or 0 ("full"),
    and likewise ``Q_left`` with KW. This is the correlation with the kernel flipped
    in both axes, so an impulse image reproduces the kernel itself (correlation
    reproduces it flipped), and the operation is commutative in ``"full"`` mode.

    Args:
      image: (H, W) or (H, W, C), as in :func:`correlate2d`.
      kernel: (KH, KW).
      mode: ``"valid"`` (H - KH + 1, W - KW + 1), ``"same"`` (H, W; the default,
        where SciPy's is ``"full"``) or ``"full"`` (H + KH - 1, W + KW - 1). In ``"same"`` mode kernel element
        ``((KH - 1) // 2, (KW - 1) // 2)`` -- the same anchor as :func:`correlate2d` --
        sits on each output pixel. For odd kernel sizes this is exactly
        ``correlate2d(image, flip(kernel), "same")``; for an even size the flipped
        kernel's anchor moves by one pixel, as in SciPy.

    Returns:
      The filtered image, with the channel axis only if the input had one.
    """
    image, kernel = _prepare(image, kernel, mode, "convolve2d")
    kh, kw = kernel.shape
    pads = {
        "valid": ((0, 0), (0, 0)),
        # The flipped kernel's anchor is at (kh // 2, kw // 2) of the flipped array.
        "same": ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)),
        "full": ((kh - 1, kh - 1), (kw - 1, kw - 1)),
    }[mode]
    return _filter(image, jnp.flip(kernel, axis=(0, 1)), pads, mode, "convolve2d")
