"""Learned field extraction: per-field rankers trained from labelled documents.

The rule-based extractor (`extraction/extractor.py`) proposes what it knows; these models
decide among *every* place a field's value could be. For each schema field, every span of
the document the field's kind can parse (a date, an amount, an identifier...) or every line
(for names, addresses, free text) becomes a candidate, described by its layout (position on
the page, size, neighbours), its shape, the words around it and what the rules thought of it.
A gradient-boosted classifier (LightGBM) per field scores the candidates; the best one wins
when the model is sure enough, else the rules' answer stands. Names and addresses that span
several lines are the run of adjacent lines the model accepts around its best one.

- `candidates.py`: candidate spans and their features;
- `matching.py`: which candidate a labelled value is, and when two values are the same;
- `model.py`: the model file (one gzip'd JSON: vocabularies, boosters, thresholds), loading
  with clear errors, and applying it inside `extract`;
- `training.py`: fitting from (document, expected data) pairs, with k-fold quality per field.
"""
