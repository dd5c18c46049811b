"""Authentication mechanisms: passwords, console sessions, CSRF, rate limits."""
