"""Operations endpoints: health, readiness, metrics, JWKS."""
