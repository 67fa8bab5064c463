"""The kiosk and admin web page, served by `consentry run` (stdlib HTTP server, no CDN)."""
