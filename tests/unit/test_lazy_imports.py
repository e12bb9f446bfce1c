"""The API process reads the operation catalog without loading the engines' libraries.

The API validates parameters and lists operations from `registry.operations()`, but never
runs an engine; Pillow, pypdf, PDFium, pikepdf, img2pdf (and fontTools, cryptography...
behind them) cost it some 34 MB of resident memory for nothing if an engine module imports
them at module level. The check runs in a fresh interpreter, because this test process has
long since imported all of them through other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("PIL", "pypdf", "pypdfium2", "pypdfium2_raw", "pikepdf", "img2pdf", "fontTools",
         "cryptography", "numpy", "rapidfuzz", "regex", "weasyprint", "onnxruntime", "rapidocr",
         "cv2", "lxml", "openpyxl", "playwright", "tesserocr", "jinja2")

# Runs in the child: records, for each heavy package, the docmill frame that first imported
# it (so a failure names the culprit), then does what the API process does with the catalog.
PROBE = """
import json, sys, traceback

HEAVY = set(json.loads(sys.argv[1]))
culprits = {}


class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in culprits:
            frames = [f for f in traceback.extract_stack()
                      if "/docmill/" in f.filename.replace("\\\\", "/")]
            culprits[top] = (f"{frames[-1].filename}:{frames[-1].lineno}" if frames
                             else "outside docmill")
        return None


sys.meta_path.insert(0, Watch())

from docmill.engines.registry import get_operation, operations

catalog = [op.describe() for op in operations().values()]  # what /v1/operations returns
get_operation("pdf.to-image").params.model_validate({"dpi": 100, "pages": "1"})

from docmill.app import create_app

create_app()
loaded = sorted({m.partition(".")[0] for m in sys.modules} & HEAVY)
print(json.dumps({"operations": len(catalog), "loaded": loaded,
                  "culprits": {name: culprits.get(name) for name in loaded}}))
"""


def test_operation_catalog_and_app_do_not_load_engine_libraries(tmp_path: Path) -> None:
    env = dict(os.environ, DOCMILL_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["operations"] > 20  # the catalog was really built
    assert not report["loaded"], (
        "the API process loaded engine libraries: "
        + ", ".join(f"{name} (first imported at {where})"
                    for name, where in report["culprits"].items()))
