"""Image files for the vision apps: which files a path names, reading them as RGB, writing results atomically.

Every app reads its images here so that one path means the same files everywhere: a file is itself, a folder is
every image under it (recursively, sorted by path), and a folder with none is an error before any model runs.
Pixels are ``H×W×3`` ``uint8`` in RGB order (OpenCV decodes, the BGR order stays inside this module). Outputs go
through :func:`modelport.model_io.atomic_path`: a reader never sees half a file, and an output path whose folder
does not exist is refused by :func:`check_output_path` before the work starts (``atomic_path`` itself would create
the folder).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from modelport.errors import AppError
from modelport.model_io import atomic_path

log = logging.getLogger(__name__)

#: the suffixes read as images (lower case), as the data readers accept them.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
#: the suffixes :func:`write_image` writes.
WRITE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_SUFFIX_HINT = "PNG, JPEG, BMP, TIFF, WebP or PGM/PPM"


def is_image(path: Path) -> bool:
    """Whether ``path`` is a file with an image suffix (by name: the content is checked when it is read)."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(path: Path) -> list[Path]:
    """The images a path names: a file → ``[file]``; a folder → its images, recursively, sorted by path.

    Hidden files and folders (a leading dot) are skipped.

    Raises:
        AppError: the path does not exist, or the folder holds no image ("empty folder").
    """
    path = Path(path)
    if not path.exists():
        raise AppError(f"{path} does not exist", hint="give an image file or a folder of images", path=path)
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*") if is_image(p) and not _hidden(p.relative_to(path)))
    if not found:
        raise AppError(
            f"empty folder {path}: no image files in it or below it",
            hint=f"put {_SUFFIX_HINT} files in it",
            path=path,
        )
    return found


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def read_image(path: Path, *, gray: bool = False) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``H×W×3`` (grayscale files are expanded to three channels).

    Args:
        path: the image file.
        gray: read it as one ``H×W`` gray channel instead, as OpenCV's decoders convert it (the way the data
            readers read images for one-channel models, so both give the same pixels).

    Raises:
        AppError: the file is missing or is not an image OpenCV decodes (the message names the file).
    """
    import cv2

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise AppError(f"cannot read image {path}: {exc.strerror or exc}", path=path) from exc
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise AppError(f"cannot decode image {path}", hint=f"give {_SUFFIX_HINT} files", path=path)
    return img if gray else np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def check_output_path(path: Path) -> Path:
    """Check that ``path`` can be written as an output file, before any work is done.

    Raises:
        AppError: the parent folder does not exist, or ``path`` is an existing folder.
    """
    path = Path(path)
    if path.is_dir():
        raise AppError(f"output {path} is a folder", hint="give a file name, e.g. out.png or out.mp4", path=path)
    if not path.parent.is_dir():
        raise AppError(
            f"cannot write {path}: the folder {path.parent} does not exist",
            hint="create the folder first, or choose another output path",
            path=path,
        )
    return path


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB (or single-channel) ``uint8`` image atomically; the format follows the suffix.

    Raises:
        AppError: a missing output folder, an unknown suffix, or pixels that are not ``H×W``/``H×W×3`` uint8.
    """
    import cv2

    path = check_output_path(Path(path))
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise AppError(
            f"cannot write an image as {suffix or 'a file without suffix'}: {path}",
            hint="use .png or .jpg",
            path=path,
        )
    pixels = np.asarray(rgb)
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (1, 3))):
        raise AppError(f"an image to write must be H×W×3 uint8, got {pixels.dtype} {list(pixels.shape)}", path=path)
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 and pixels.shape[2] == 3 else pixels
    ok, encoded = cv2.imencode(suffix, bgr)
    if not ok:
        raise AppError(f"OpenCV could not encode {path}", path=path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    log.debug("wrote %s (%d×%d)", path, pixels.shape[1], pixels.shape[0])
    return path
