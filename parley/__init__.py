"""Parley: a framework for conversational agents on chat platforms."""

from parley.core.hookspecs import hookimpl

__all__ = ["hookimpl"]
