"""What a file is, judged from its bytes: magic numbers (filetype), then a parser that opens it
(pikepdf for PDF, Pillow for images); active content, attachments and bombs are refused."""
from __future__ import annotations

import filetype

from ..errors import UnsupportedMediaType, ValidationFailed

PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
ACCEPTED = (PDF, JPEG, PNG)
MAX_IMAGE_PIXELS = 50_000_000  # a 300 dpi A2 scan; Pillow refuses twice this outright
MAX_PDF_PAGES = 1000
MAX_PAGE_POINTS = 14400  # the largest page PDF allows (200 inches)
HEAD_BYTES = 8192
TAIL_BYTES = 1024 + 16
FIELD = "file"

ONLY_THESE = "仅支持 PDF、JPEG 和 PNG 文件（按文件内容判断，与文件名和声明的类型无关）"
MARKUP = "不接收 SVG、HTML、XML 或脚本文件，请上传 PDF、JPEG 或 PNG"
MARKUP_STARTS = (b"<?xml", b"<svg", b"<!doctype", b"<html", b"<script", b"<head", b"<body", b"#!", b"<!--")
PDF_SCRIPT_KEYS = frozenset({"/JS", "/JavaScript", "/AA", "/XFA", "/RichMedia"})
PDF_SCRIPT_ACTIONS = frozenset({"/JavaScript", "/Launch", "/ImportData", "/RichMediaExecute"})
PDF_ATTACHMENT_KEYS = frozenset({"/EmbeddedFiles", "/EmbeddedFile", "/EF"})


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed.field(FIELD, message)


def _unsupported(message: str = ONLY_THESE) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"{FIELD}: {message}", errors={FIELD: [message]})


def judge(path: str) -> str:
    """The content type of the file at `path` (one of ACCEPTED), or a 415/422 problem naming `file`."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    kind = filetype.guess(head)
    mime = kind.mime if kind is not None else None
    if mime == PDF:
        _check_pdf(path)
    elif mime in (JPEG, PNG):
        _check_image(path, mime)
    elif _looks_like_markup(head):
        raise _unsupported(MARKUP)
    else:
        raise _unsupported()
    return mime


def _looks_like_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n").lower()
    return text.startswith(MARKUP_STARTS) or any(tag in text[:1024] for tag in (b"<svg", b"<html", b"<script"))


def _check_image(path: str, mime: str) -> None:
    from PIL import Image, UnidentifiedImageError  # only uploads need Pillow
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    expected = "PNG" if mime == PNG else "JPEG"
    try:
        with Image.open(path) as image:
            if image.format != expected:
                raise _unsupported()
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _refuse(f"图片尺寸过大（{width}×{height}），超过 {MAX_IMAGE_PIXELS // 1_000_000} 百万像素的上限")
            image.verify()
        with Image.open(path) as image:
            if expected == "JPEG":  # decode every scan at 1/8 scale: the whole file is read, memory stays small
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Image.DecompressionBombError:
        raise _refuse("图片解压后过大，疑似压缩炸弹") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise _refuse("图片文件已损坏或不完整，无法打开") from None


def _ends_with_eof_marker(path: str) -> bool:
    """A PDF's last line is %%EOF (readers allow up to 1 KiB after it): a cut-off upload has none."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - TAIL_BYTES))
        return b"%%EOF" in handle.read()


def _check_pdf(path: str) -> None:
    if not _ends_with_eof_marker(path):
        raise _refuse("PDF 文件已损坏或不完整（缺少文件结尾），请重新上传")
    import pikepdf  # only uploads need it
    try:
        with pikepdf.open(path) as pdf:
            if pdf.is_encrypted:
                raise _refuse("PDF 已加密，无法审核，请上传未加密的文件")
            if len(pdf.pages) > MAX_PDF_PAGES:
                raise _refuse(f"PDF 页数超过 {MAX_PDF_PAGES} 页")
            for page in pdf.pages:
                box = [float(value) for value in page.mediabox]
                if abs(box[2] - box[0]) > MAX_PAGE_POINTS or abs(box[3] - box[1]) > MAX_PAGE_POINTS:
                    raise _refuse("PDF 页面尺寸超出规范允许的范围")
            for obj in pdf.objects:
                _check_pdf_object(obj)
    except pikepdf.PasswordError:
        raise _refuse("PDF 已加密，无法审核，请上传未加密的文件") from None
    except (pikepdf.PdfError, ValueError, TypeError, RecursionError):
        raise _refuse("PDF 文件已损坏或不完整，无法打开") from None


def _check_pdf_object(top) -> None:
    """Every dictionary in one indirect object, nested direct ones included (indirect references
    are not followed: each indirect object is checked on its own)."""
    import pikepdf
    pending = [top]
    while pending:
        obj = pending.pop()
        if isinstance(obj, pikepdf.Array):
            pending.extend(_direct_containers(obj))
            continue
        if not isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream)):
            continue
        keys = set(obj.keys())
        if keys & PDF_SCRIPT_KEYS or str(obj.get("/S", "")) in PDF_SCRIPT_ACTIONS:
            raise _refuse("PDF 含有脚本或自动动作（JavaScript、打开时执行的动作），不予接收")
        if keys & PDF_ATTACHMENT_KEYS or str(obj.get("/Subtype", "")) == "/FileAttachment" \
                or str(obj.get("/Type", "")) == "/EmbeddedFile":
            raise _refuse("PDF 含有附件（嵌入文件），不予接收")
        pending.extend(_direct_containers(obj[key] for key in keys))


def _direct_containers(values):
    import pikepdf
    return [value for value in values
            if isinstance(value, (pikepdf.Array, pikepdf.Dictionary)) and not value.is_indirect]
