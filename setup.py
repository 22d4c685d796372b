"""Maps the top-level ``resources/`` folder onto the ``hounsfield_resources`` package so wheels carry it.

pyproject.toml holds all metadata; this file only exists because that mapping cannot be combined with
package discovery in pyproject.toml alone.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["viewer*", "inference*"]) + ["hounsfield_resources"],
    package_dir={"hounsfield_resources": "resources"},
    package_data={"hounsfield_resources": ["**/*"]},
    include_package_data=False,
)
