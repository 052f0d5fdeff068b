"""The web dashboard: a single page served at `/` that talks to the public JSON API."""
