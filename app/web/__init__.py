"""Server-rendered pages: the verifier page and the sub-hall dashboard."""
