"""The catalogue's in-memory search engine: build the index, query it, keep it in step with changes."""
from .fields import DEFAULT_FACETS, FIELDS, canonical_field
from .query import SearchResult
from .sync import SearchIndex

__all__ = ["DEFAULT_FACETS", "FIELDS", "SearchIndex", "SearchResult", "canonical_field"]
