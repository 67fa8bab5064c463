"""Access-control panel outputs: what a grant drives when a panel owns the door (OSDP reader,
Wiegand output), behind the relay door's small interface (``unlock``, ``close``)."""
