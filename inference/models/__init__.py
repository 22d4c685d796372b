"""Model-specific building blocks (feature extractors, detector wrappers). Importing this package loads no torch."""
