"""Treatment-response prediction: point-in-time feature tables, survival models, evaluation.

* :mod:`.spec` -- the feature spec (TOML) and its errors, which name the line and key;
* :mod:`.dataset` -- ``journey features``: one row per (patient, line) from the event log;
* :mod:`.models`, :mod:`.metrics`, :mod:`.evaluate` -- ``journey predict evaluate``
  (scikit-survival, the optional ``predict`` extra);
* :mod:`.artefact` -- ``journey predict train`` / ``score``.

See docs/prediction.md.
"""
