"""Dataset acquisition, parsing, ingestion and validation."""
