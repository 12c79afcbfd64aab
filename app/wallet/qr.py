"""Self-contained SVG QR codes for (offline) license presentations, via segno."""

from __future__ import annotations

import io

import segno
from segno.encoder import DataOverflowError

MAX_VERSION = 40
_ERROR_LEVELS = ("m", "l")


def make_qr(text: str) -> segno.QRCode:
    """Smallest regular QR code holding `text`: level M if it fits in version 40, else L."""
    for error in _ERROR_LEVELS:
        try:
            return segno.make(text, error=error, micro=False)
        except DataOverflowError:
            continue
    raise ValueError(f"text of {len(text)} characters does not fit in a version {MAX_VERSION} QR code")


def qr_svg(text: str, *, scale: int = 4, border: int = 4) -> tuple[str, int]:
    """(standalone SVG without XML declaration or external references, QR version)."""
    qr = make_qr(text)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", xmldecl=False, svgns=True, scale=scale, border=border, nl=False)
    return buffer.getvalue().decode("utf-8"), qr.version
