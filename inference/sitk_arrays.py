"""SimpleITK results as numpy arrays without a copy.

``sitk.GetArrayFromImage`` copies the pixels into a new array; on the volumes of a chest CT those copies (tens
of MB each, fresh pages) cost a noticeable share of the post-processing with one thread. ``GetArrayViewFromImage``
does not copy but needs the image kept alive while the view is used: :func:`array_view` ties the two together.
"""
from __future__ import annotations

import numpy as np


class ImageArray(np.ndarray):
    """A numpy view of a SimpleITK image's pixels that holds the image (``image``), so the view stays valid as long
    as it (or an array derived from it by slicing) is referenced."""

    image: object = None


def array_view(image) -> np.ndarray:
    """The pixels of the SimpleITK ``image`` as a ``(z, y, x)`` array sharing its buffer (no copy)."""
    import SimpleITK as sitk

    view = sitk.GetArrayViewFromImage(image).view(ImageArray)
    view.image = image
    return view
