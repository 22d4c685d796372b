"""Scripts and data generators that reproduce the built-in models (never imported by the app at run time).

``phantom`` is the exception the app does use: it generates the built-in sample study.
"""
