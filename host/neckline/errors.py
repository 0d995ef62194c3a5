"""Typed errors shared across Neckline. The CLI prints their message, never a traceback."""

from __future__ import annotations


class NecklineError(Exception):
    """An error with a message meant for the user."""

    exit_code = 1


class ConfigError(NecklineError):
    """The configuration file or an environment override is invalid."""

    exit_code = 78  # EX_CONFIG


class InfluxNotInstalled(NecklineError):
    """The `influxd` binary is missing."""

    exit_code = 69  # EX_UNAVAILABLE


class InfluxStartError(NecklineError):
    """A local influxd could not be started or did not become ready."""
