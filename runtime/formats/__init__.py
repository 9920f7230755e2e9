"""Ink file formats: IAM-OnDB, InkML, and one reader for every ink file (``ink_io``)."""
