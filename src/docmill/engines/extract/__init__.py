"""The extraction family: `extract.fields`, `extract.train` (`fields.py`) and `identify.type`
(`identify.py`), engines over the offline extractors of docmill/extraction, reading their
input with the OCR family's pipeline.
"""
