"""The settings mypy's Django plugin (django-stubs) loads to learn the models and settings: the real ones, with the
development defaults, so that `make lint` needs no environment."""

import os

os.environ.setdefault("DEBUG", "1")

from orgdns_site.settings import *  # noqa: E402,F403
