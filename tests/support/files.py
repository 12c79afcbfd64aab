"""Real upload content made in the test (PDFs, images, bombs, markup) and the disk storage fixture."""
from __future__ import annotations

import io
import os
import struct
import zlib

import pikepdf
import pytest
from fpdf import FPDF
from PIL import Image


# ---------------------------------------------------------------- real content made here

def pdf_bytes(text: str = "Resident ID copy") -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(0, 10, text)
    return bytes(pdf.output())


def _saved(pdf: pikepdf.Pdf) -> bytes:
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def pdf_with_javascript() -> bytes:
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    pdf.Root.OpenAction = pikepdf.Dictionary(Type=pikepdf.Name.Action, S=pikepdf.Name.JavaScript,
                                             JS=pikepdf.String("app.alert('hi')"))
    return _saved(pdf)


def pdf_with_embedded_file() -> bytes:
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    pdf.attachments["payload.exe"] = pikepdf.AttachedFileSpec(pdf, b"MZ\x90\x00 not a real program")
    return _saved(pdf)


def pdf_with_attachment_annotation() -> bytes:
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    pdf.pages[0].Annots = pdf.make_indirect(pikepdf.Array([pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment, Rect=[0, 0, 10, 10])]))
    return _saved(pdf)


def pdf_with_a_huge_page() -> bytes:
    pdf = pikepdf.open(io.BytesIO(pdf_bytes()))
    pdf.pages[0].MediaBox = pikepdf.Array([0, 0, 200000, 200000])
    return _saved(pdf)


def pdf_of_size(size: int) -> bytes:
    """A valid PDF of exactly `size` bytes (an uncompressed content stream pads it)."""
    filler = 1000
    for _ in range(4):
        pdf = pikepdf.new()
        pdf.add_blank_page()
        pdf.pages[0].Contents = pdf.make_stream(b"%" + b"x" * filler + b"\n")
        out = io.BytesIO()
        pdf.save(out, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
        data = out.getvalue()
        if len(data) == size:
            return data
        filler += size - len(data)
    raise AssertionError("could not hit the size")


def image_bytes(fmt: str, size=(640, 480), mode="RGB") -> bytes:
    image = Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose IHDR (with a correct CRC) claims huge dimensions."""
    data = bytearray(image_bytes("PNG", (4, 4)))
    ihdr = bytearray(data[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def png_bomb() -> bytes:
    """A real 1-bit PNG of 12000x12000 pixels (144 megapixels) that compresses to a few KiB."""
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, "PNG", optimize=True)
    return out.getvalue()


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(document.cookie)</script></svg>')
HTML = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/me')</script></body></html>"


@pytest.fixture
def store_dirs(app, tmp_path, monkeypatch):
    """Disk storage and upload temp files under this test's directory."""
    root, temp = tmp_path / "files", tmp_path / "incoming"
    temp.mkdir()
    monkeypatch.setitem(app.config, "FILE_STORAGE", "disk")
    monkeypatch.setitem(app.config, "FILE_STORAGE_DIR", str(root))
    monkeypatch.setitem(app.config, "FILE_TEMP_DIR", str(temp))
    app.extensions.pop("file_storage", None)
    yield root, temp
    app.extensions.pop("file_storage", None)
