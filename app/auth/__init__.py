"""Security primitives, pure or nearly so: hashing, PKCE, passwords, JWT, client IP, CSRF
tokens, rate limits. Nothing here reads a request or writes a row."""
