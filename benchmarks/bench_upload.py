"""Benchmark: time and memory of one 10 MiB upload (and its download) inside the WSGI app.

    python -m benchmarks.bench_upload --kind pdf --size-mib 10

The request body is streamed from a file on disk into the app, as a server hands it over, so the
figures are the worker's own: wall time, peak Python allocations during the request (tracemalloc)
and how far the process's resident memory rose above where it stood (the kernel's peak, VmHWM,
reset just before through /proc/self/clear_refs; it also sees what pikepdf, Pillow and OpenSSL
allocate in C). The file is made by the parent; each kind is measured in a fresh process.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1024 * 1024
BOUNDARY = "ias-bench-boundary"


def make_pdf(size: int) -> bytes:
    import pikepdf
    filler = 1000
    for _ in range(5):
        pdf = pikepdf.new()
        pdf.add_blank_page()
        pdf.pages[0].Contents = pdf.make_stream(b"%" + os.urandom(filler // 2).hex().encode()[:filler] + b"\n")
        out = io.BytesIO()
        pdf.save(out, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
        if len(out.getvalue()) == size:
            return out.getvalue()
        filler += size - len(out.getvalue())
    raise RuntimeError("could not build a PDF of that size")


def make_image(kind: str, size: int) -> bytes:
    """Noise (incompressible) scaled so that the encoded file is close to `size` bytes."""
    from PIL import Image
    side = int((size / (3 if kind == "png" else 1.2)) ** 0.5)
    for _ in range(6):
        image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        out = io.BytesIO()
        image.save(out, "PNG" if kind == "png" else "JPEG", quality=95)
        data = out.getvalue()
        if 0.97 * size <= len(data) <= size:
            return data
        side = int(side * (size / len(data)) ** 0.5 * 0.995)
    return data


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _reset_peak() -> int:
    """Reset the kernel's peak-RSS mark to the current RSS; returns the current RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kib("VmRSS")


def _rss_rise_mib(baseline_kib: int) -> float:
    return round((_status_kib("VmHWM") - baseline_kib) / 1024, 1)


def _app(workdir: str):
    from app import create_app
    config = {"APP_ENV": "test", "TESTING": True, "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
              "REDIS_URL": None, "FILE_STORAGE_DIR": f"{workdir}/files", "FILE_TEMP_DIR": workdir,
              "FILE_UPLOAD_RATE_LIMIT": "1000/minute", "JSON_LOGS": False, "LOG_LEVEL": "WARNING"}
    config.update({name: base64.b64encode(secrets.token_bytes(32)).decode()
                   for name in ("SECRET_KEY", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "KEY_ENCRYPTION_KEY",
                                "IDEMPOTENCY_HMAC_KEY")})
    return create_app(config)


def _multipart_file(path: str, payload: str | bytes, name: str) -> int:
    """Write the multipart body to `path` (a payload path is copied in chunks, never read whole)."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    with open(path, "wb") as out:
        out.write(head)
        if isinstance(payload, bytes):
            out.write(payload)
        else:
            with open(payload, "rb") as source:
                shutil.copyfileobj(source, out, 64 * 1024)
        out.write(tail)
        return out.tell()


def _call(app, environ, *, keep: bool) -> tuple[int, bytes]:
    """Run one request through the WSGI app; the body is kept, or consumed and dropped as a server
    writes it out."""
    status, kept = {}, []

    def start_response(line, headers, exc_info=None):
        status["code"] = int(line[:3])

    body = app(environ, start_response)
    try:
        for chunk in body:
            if keep:
                kept.append(chunk)
    finally:
        getattr(body, "close", lambda: None)()
    return status["code"], b"".join(kept)


def _measured(app, environ, *, keep: bool) -> tuple[int, bytes, dict]:
    """One request with its wall time, peak Python allocations and rise of resident memory."""
    rss_before = _reset_peak()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        status, body = _call(app, environ, keep=keep)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return status, body, {"s": round(seconds, 3), "py_peak_mib": round(peak / MIB, 2),
                          "rss_rise_mib": _rss_rise_mib(rss_before)}


def measure(kind: str, payload_path: str) -> dict:
    """One warm-up upload, then one measured upload and one measured download (this process)."""
    from app.schema_migrations import upgrade_schema
    from werkzeug.test import EnvironBuilder
    from app.security.tokens import issue_access_token

    workdir = tempfile.mkdtemp(prefix="ias-bench-upload-")
    app = _app(workdir)
    with app.app_context():
        upgrade_schema()
        token, _ = issue_access_token("p_bench00000000000000", roles=["citizen"])
    size = os.path.getsize(payload_path)
    small = make_pdf(4096) if kind == "pdf" else make_image(kind, 20000)
    headers = {"Authorization": f"Bearer {token}"}

    def upload_environ(data):
        body_path = os.path.join(workdir, "body")
        length = _multipart_file(body_path, data, f"bench.{kind}")
        stream = open(body_path, "rb")
        builder = EnvironBuilder(path="/api/v1/files", method="POST", headers=headers, input_stream=stream,
                                 content_length=length, content_type=f"multipart/form-data; boundary={BOUNDARY}")
        return builder.get_environ(), stream

    environ, stream = upload_environ(small)
    warm = _call(app, environ, keep=True)
    assert warm[0] == 201, warm
    stream.close()

    environ, stream = upload_environ(payload_path)
    status, body, upload = _measured(app, environ, keep=True)
    stream.close()
    assert status == 201, body
    file_id = json.loads(body)["file_id"]

    environ = EnvironBuilder(path=f"/api/v1/files/{file_id}", method="GET", headers=headers).get_environ()
    status, _, download = _measured(app, environ, keep=False)
    assert status == 200
    return {"kind": kind, "bytes": size, **{f"upload_{key}": value for key, value in upload.items()},
            **{f"download_{key}": value for key, value in download.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("pdf", "jpeg", "png", "all"), default="all")
    parser.add_argument("--size-mib", type=float, default=10.0)
    parser.add_argument("--one", metavar="PAYLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.kind, args.one)))
        return
    kinds = ("pdf", "jpeg", "png") if args.kind == "all" else (args.kind,)
    print("| kind | size | upload s | upload Python peak MiB | upload RSS rise MiB | "
          "download s | download Python peak MiB | download RSS rise MiB |")
    print("|---|---|---|---|---|---|---|---|")
    size = int(args.size_mib * MIB)
    for kind in kinds:
        with tempfile.NamedTemporaryFile(prefix="ias-bench-payload-", suffix="." + kind) as payload:
            payload.write(make_pdf(size) if kind == "pdf" else make_image(kind, size))
            payload.flush()
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_upload", "--one", payload.name,
                                  "--kind", kind], capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parent.parent)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        figures = " | ".join(str(row[f"{step}_{key}"]) for step in ("upload", "download")
                             for key in ("s", "py_peak_mib", "rss_rise_mib"))
        print(f"| {kind} | {row['bytes'] / MIB:.2f} MiB | {figures} |")


if __name__ == "__main__":
    main()
