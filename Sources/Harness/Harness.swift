// Harness module: see specs/architecture.md for what it owns.
