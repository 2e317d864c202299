"""headfit's own errors. Each carries the exit code the CLI should use and reads as one paragraph."""

from __future__ import annotations


class HeadfitError(Exception):
    """An error the user can act on: bad input, bad spec, unsafe checkpoint. Exit code 2 by default."""

    exit_code = 2


class UsageError(HeadfitError):
    """Wrong arguments or an input headfit cannot read."""


class ModelSpecError(HeadfitError):
    """A MODEL spec that cannot be turned into an nn.Module."""


class UnsafeCheckpointError(HeadfitError):
    """A checkpoint that would need arbitrary unpickling to load."""


class VerificationError(HeadfitError):
    """An adapted model failed its verification (check or smoke step)."""

    exit_code = 1


class CheckpointError(HeadfitError):
    """A checkpoint that cannot be read, or whose tensors fit nothing in the model."""


class UntrustedCodeError(ModelSpecError):
    """A saved model whose sidecar would import and call code outside torchvision and timm."""
