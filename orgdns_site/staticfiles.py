"""How static files are named and served: hashed, compressed names once `orgdns collectstatic` has run."""

import os

from whitenoise.middleware import WhiteNoiseMiddleware as BaseWhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """The names `collectstatic` wrote in STATIC_ROOT's manifest (content-hashed: cached for a year, gzip and brotli
    beside each). Before any collectstatic — a checkout's tests, benches and runserver — the plain names, which
    whitenoise serves from the source directories (settings.WHITENOISE_USE_FINDERS). `orgdns web` collects first."""

    def stored_name(self, name):
        if not self.hashed_files:
            return name
        return super().stored_name(name)


class WhiteNoiseMiddleware(BaseWhiteNoiseMiddleware):
    """whitenoise's, quiet about a STATIC_ROOT not collected yet when the sources are served instead."""

    def add_files(self, root, prefix=None):
        if self.use_finders and not os.path.isdir(root):
            return
        super().add_files(root, prefix)
