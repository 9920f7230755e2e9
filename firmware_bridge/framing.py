"""Host-side framing for the inkstream protocol: CRC-16, COBS and :class:`CobsFramer`.

Written independently of the firmware encoder on purpose: the shared test vectors then check
two implementations against each other instead of one against itself.
"""
from __future__ import annotations

__all__ = ["crc16_ccitt", "cobs_encode", "cobs_decode", "CobsError", "CobsFramer"]


class CobsError(ValueError):
    """Bytes that are not a valid COBS encoding."""


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, MSB first, no final xor.
    ``crc16_ccitt(b"123456789") == 0x29B1``."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result has no 0x00 and is at most
    ``len(data) + len(data) // 254 + 1`` bytes long."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises :class:`CobsError` on a zero byte or a code
    pointing past the end."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError("zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise CobsError("COBS code points past the end of the frame")
        block = data[i + 1:end]
        if 0 in block:
            raise CobsError("zero byte inside a COBS frame")
        out += block
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


class CobsFramer:
    """Splits a byte stream at 0x00 delimiters, fed in chunks of any size.

    :meth:`feed` returns the complete frames (still COBS-encoded, delimiter removed). A frame
    longer than ``max_frame`` bytes is discarded up to its delimiter and counted in
    ``oversize``, so a stream without delimiters never grows the buffer past ``max_frame``.
    Empty frames (two delimiters in a row) are padding and ignored. Knows nothing of payloads.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.oversize = 0
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        data = bytes(data)
        frames = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._discarding:
                self._buffer += piece
                if len(self._buffer) > self.max_frame:
                    self._discarding = True
                    self._buffer.clear()
            if end < 0:
                return frames
            if self._discarding:
                self.oversize += 1
                self._discarding = False
            elif self._buffer:
                frames.append(bytes(self._buffer))
            self._buffer.clear()
            start = end + 1

    def reset(self) -> None:
        """Forget a partial frame (e.g. after reconnecting)."""
        self._buffer.clear()
        self._discarding = False
