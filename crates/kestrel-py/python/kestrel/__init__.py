"""kestrel: small, fast vision models from Python.

- :mod:`kestrel.metrics`: scikit-learn's metrics (same names, keywords and results), faster, and
  streaming accumulators that merge across shards.
- :class:`Engine`: kestrel-runtime inference on a plan file or a run folder, numpy in and out.
- :func:`preprocess_imagenet`: torchvision's ImageNet evaluation preprocessing of an image file.
- :func:`info`, :func:`train`, :func:`load_run`: describe, train and use models.

Long calls release the GIL; errors are ``ValueError`` (bad input) or ``OSError`` (a file that is
missing or unreadable), with kestrel's message.
"""

import json as _json

from . import _kestrel, metrics
from ._kestrel import Engine, Run, preprocess_imagenet

__version__ = _kestrel.__version__

__all__ = ["Engine", "Run", "info", "load_run", "metrics", "preprocess_imagenet", "train"]


def info(model, *, width=None, resolution=224, classes=None, upsampler="bilinear", output_stride=32):
    """A model's layers, parameters and multiply-adds at one input size, as ``kestrel info --json``.

    Parameters
    ----------
    model : str
        ``mobilenet-v1``, ``mobilenet-v2``, ``resnet18``, ``resnet34``, ``resnet50``, or
        ``fcn32s-``/``fcn16s-``/``fcn8s-`` followed by a backbone name.
    width : float, optional
        Width multiplier (MobileNets).
    resolution : int, default=224
    classes : int, optional
        1000 for classifiers, 21 for FCNs when not given.
    upsampler : str, default="bilinear"
    output_stride : int, default=32

    Returns
    -------
    dict
        ``{"model", "resolution", "layers": [...], "params", "macs", ...}``.
    """
    return _kestrel.info(model, width, resolution, classes, upsampler, output_stride)


def train(*, out=None, resume=False, progress=True, **settings):
    """Trains a model and returns its run folder.

    ``settings`` are the keys of a run's ``config.toml`` (``data``, ``task``, ``model``,
    ``width``, ``resolution``, ``epochs``, ``batch_size``, ``lr``, ``seed``, ...), over the
    defaults of the task. Progress goes to stderr (``progress=False`` silences it).

    Returns
    -------
    str
        The run folder (``out``, or ``runs/<model>-<task>-<n>``).
    """
    return _kestrel.train(_json.dumps(settings), out, resume, progress)


def load_run(path):
    """A trained run folder, with ``predict(images, top_k=3)`` and ``evaluate(split="val")``."""
    return Run(str(path))
