"""inkstream's pen bridge: serial protocols, framing, pen sources, an emulated tablet.

Imports numpy and pyserial only (never runtime or training). Start with
:func:`firmware_bridge.sources.open_source` (``serial:PATH``, ``isdv4:PATH``, ``file:PATH``),
which returns a :class:`~firmware_bridge.sources.PenSource` yielding
:class:`~firmware_bridge.samples.PenSample` objects; :class:`~firmware_bridge.samples.StrokeRowAssembler`
turns those into ``x, y, t, pen_up_after`` rows. The wire format is in ``PROTOCOL.md``.
"""
