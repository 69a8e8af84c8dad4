"""Infrastructure every stage shares and none owns: atomic writes, the run-time device,
provenance of artifacts and the stage record (info.json). Standard library and torch only."""
