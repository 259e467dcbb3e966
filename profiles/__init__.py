"""Data package: the PS3.15 2026c tables (CSV, unchanged) and the named policies (TOML)."""
