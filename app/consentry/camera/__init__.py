"""Frame sources behind one small interface."""

from .sources import FrameSource, open_source

__all__ = ["FrameSource", "open_source"]
