"""就近办: halls and the township/village service points below them, with coordinates, and the nearest ones."""
