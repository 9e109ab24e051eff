"""Prometheus exporter for the Cryptomus exchange."""

__version__ = "0.1.0"
