"""Running locally: ``dl serve`` (the exact Lambda package behind a local HTTP server) and the sandbox emulator."""
