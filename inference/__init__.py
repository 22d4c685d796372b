"""Models and how they run. No Qt and no ``viewer`` imports; importing this package loads no torch."""
