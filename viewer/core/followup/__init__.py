"""Follow-up of a study against its prior: registration, nodule matching and growth (Qt-free)."""
