"""Generated JSON Schemas of the wire format, one file per event type and version."""
