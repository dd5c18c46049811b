"""The admin console: server-rendered pages with htmx."""
