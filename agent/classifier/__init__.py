"""Signed classifier bundles: format, verification, the on-disk store and the hot-reload service."""
