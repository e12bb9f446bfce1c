"""Docmill: self-hosted asynchronous document processing."""

__version__ = "0.1.0"
