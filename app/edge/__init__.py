"""What both HTTP edges (the JSON API and the console) share: request guards, presenters,
problem+json, cookies, middleware. Nothing here writes; it calls services."""
