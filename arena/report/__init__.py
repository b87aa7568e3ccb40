"""The static report site: build_site() turns the store into pages, charts and downloads."""

from arena.report.site import BuildResult, build_site

__all__ = ["BuildResult", "build_site"]
