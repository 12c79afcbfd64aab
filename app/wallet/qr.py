"""Self-contained SVG QR codes for (offline) license presentations, via segno."""

from __future__ import annotations

import io

import segno
from segno.encoder import DataOverflowError

MAX_VERSION = 40


def make_qr(text: str) -> segno.QRCode:
    """The smallest regular QR code holding `text` verbatim, so that a camera gets the largest
    modules: the lowest version at which error correction level L fits, raised to the highest level
    that still fits that version (segno's `boost_error`). base64url text (SD-JWT, codes) has lower
    case letters, so byte mode is the densest mode that holds it."""
    try:
        return segno.make(text, error="l", boost_error=True, micro=False)
    except DataOverflowError:
        raise ValueError(f"text of {len(text)} characters does not fit in a version {MAX_VERSION} QR code") from None


def qr_svg(text: str, *, scale: int = 4, border: int = 4) -> tuple[str, int]:
    """(standalone SVG without XML declaration or external references, QR version)."""
    qr = make_qr(text)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", xmldecl=False, svgns=True, scale=scale, border=border, nl=False)
    return buffer.getvalue().decode("utf-8"), qr.version
