"""Compatibility alias: the error mapping lives in :mod:`cando.errors`."""

from __future__ import annotations

from .errors import TransportUnavailableError, error_from_errno

__all__ = ["TransportUnavailableError", "error_from_errno"]
