"""Hospital interoperability: FHIR R4B / mCODE STU4 in and out, OMOP CDM v5.4 out.

See docs/interop.md for the mapping table.  Imports go through the one admission
path (:mod:`mbcjourney.processors.ingest`); exports read the effective history.
"""
