"""The torch device rule shared by the model, the calculator and the command line.

``None`` means CUDA when this torch has it and a device is present, else the CPU, for
fitting, loading and calculating alike. An explicit CUDA device on a machine without one
is a clear error, not torch's ``AssertionError: Torch not compiled with CUDA enabled``.
"""

from __future__ import annotations

import torch

from ..errors import DeviceError

__all__ = ["DeviceError", "resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for ``device``: ``None`` picks CUDA when available, else CPU.

    Raises
    ------
    DeviceError
        ``device`` is not a valid torch device string, or names a CUDA device that this
        torch build or machine does not have.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(
            f"{device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1'): {e}"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = torch.__version__
            why = (
                "this torch build has no CUDA support" if torch.version.cuda is None
                else "no CUDA device is visible"
            )  # fmt: skip
            raise DeviceError(
                f"device {str(device)!r} was asked for, but {why} (torch {build}); "
                "use device='cpu', or install a CUDA build of torch on a machine with a GPU"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(device)!r} was asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type != "cpu":
        raise DeviceError(f"device {str(device)!r}: only 'cpu' and 'cuda' devices are supported")
    return resolved
