"""一号通行 for other systems: the OpenID Connect provider (Authlib), consents and the login pages."""
