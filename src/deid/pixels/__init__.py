"""The pixel pass: find burned-in text in every frame, overlay and icon, blank it, re-encode."""
