"""The parameters of the pdf.* operations `tools.py` offers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from docmill.engines.base import Params


class _Password(Params):
    password: str | None = Field(None, description="User or owner password of an encrypted "
                                 "input.")


class RotateParams(_Password):
    angle: Literal[90, 180, 270, -90] = Field(90, description="Degrees clockwise.")
    pages: str | None = Field(None, description="Page ranges, e.g. '1-3,5'; all when empty.")
    relative: bool = Field(True, description="Add to each page's current rotation; false "
                           "sets the rotation to `angle`.")


class CompressParams(_Password):
    dpi: int = Field(150, ge=36, le=1200, description="Images shown at a higher resolution "
                     "than this are downsampled to it.")
    quality: int = Field(75, ge=10, le=100, description="JPEG quality of recompressed images.")
    lossless: bool = Field(False, description="Only recompress streams losslessly; leave "
                           "images as they are.")


class ProtectParams(_Password):
    user_password: str | None = Field(None, max_length=127, description="Needed to open the "
                                      "document; empty: anyone may open it.")
    owner_password: str | None = Field(None, max_length=127, description="Lifts the "
                                       "permissions; a random one when empty.")
    encryption: Literal["aes-256", "aes-128"] = "aes-256"
    allow_print: bool = True
    allow_print_high_res: bool = True
    allow_copy: bool = Field(True, description="Copying or extracting text and images.")
    allow_modify: bool = True
    allow_annotate: bool = True
    allow_fill_forms: bool = True
    allow_assemble: bool = Field(True, description="Inserting, rotating, deleting pages.")
    allow_accessibility: bool = Field(True, description="Text extraction for accessibility.")

    @model_validator(mode="after")
    def _some_password(self) -> ProtectParams:
        if not self.user_password and not self.owner_password:
            raise ValueError("give user_password, owner_password or both")
        return self


class UnprotectParams(_Password):
    pass


Position = Literal["center", "top-left", "top", "top-right", "left", "right",
                   "bottom-left", "bottom", "bottom-right"]
_COLOR_RE = re.compile(r"^#?([0-9a-fA-F]{6})$")


class WatermarkParams(_Password):
    text: str = Field(..., min_length=1, max_length=200)
    font_size: float | None = Field(None, ge=4, le=500, description="Points; empty fits the "
                                    "text to the page.")
    opacity: float = Field(0.3, gt=0, le=1)
    angle: float = Field(45, ge=-360, le=360, description="Degrees counter-clockwise.")
    position: Position = "center"
    color: str = Field("#808080", description="Hex RGB, e.g. #ff0000.")
    margin: float = Field(36, ge=0, le=1000, description="Points kept free at the page edges "
                          "for positions other than center.")
    pages: str | None = Field(None, description="Page ranges to stamp; all when empty.")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 for ch in value):
            raise ValueError("text must be printable characters")
        return value

    @field_validator("color")
    @classmethod
    def _color(cls, value: str) -> str:
        match = _COLOR_RE.match(value.strip())
        if not match:
            raise ValueError("color must be a hex RGB value such as #808080")
        return "#" + match.group(1).lower()


class ToPdfaParams(_Password):
    pdf_format: Literal["pdfa-1b", "pdfa-2b", "pdfa-3b"] = "pdfa-2b"
    engine: Literal["auto", "ghostscript", "libreoffice"] = Field(
        "auto", description="auto: Ghostscript when installed, else LibreOffice.")


class ExtractParams(_Password):
    pages: str = Field(..., min_length=1, description="Pages to keep, in this order, e.g. "
                       "'1-3,5'.")


class DeletePagesParams(_Password):
    pages: str = Field(..., min_length=1, description="Pages to remove, e.g. '2,4-6'.")


class MetadataParams(_Password):
    title: str | None = Field(None, max_length=2000)
    author: str | None = Field(None, max_length=2000)
    subject: str | None = Field(None, max_length=2000)
    keywords: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> MetadataParams:
        if all(v is None for v in (self.title, self.author, self.subject, self.keywords)):
            raise ValueError("give at least one of title, author, subject, keywords "
                             "(an empty string removes the field)")
        return self
