"""Results: decision documents sealed by the issuing department (PAdES), the seal CA, the e-archive."""
