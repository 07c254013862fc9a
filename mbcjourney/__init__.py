"""mbcjourney: the patient-journey engine of a metastatic breast cancer cohort study.

Data flows source -> event (``mbcjourney.events``) -> log (``mbcjourney.processors``)
-> projection (``mbcjourney.projections``) -> store / export / alert.
The repository keeps ``events/``, ``projections/``, ``processors/`` and ``schemas/``
at its top level; they are installed as sub-packages of this root so that no
top-level import name can clash with another distribution.
"""

__version__ = "0.1.0"
