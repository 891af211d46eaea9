"""Configuration files: reading, validating, and turning them into core objects."""
