"""The office family: `office.*` operations, LibreOffice driven over UNO.

`engine.py` is the engine and its supervised `soffice.bin`.
"""
