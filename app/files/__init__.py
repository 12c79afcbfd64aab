"""Uploads: type detection from the bytes, encrypted content-addressed storage (disk or S3), metadata rows."""
