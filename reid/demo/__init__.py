"""The demo: rank a folder of gallery images for each query with a trained checkpoint and write an HTML page of
the rank lists (`reid-demo`), caching the gallery's features between runs.

Modules: run (the command: its checks, the gallery index, the search), roles (each gallery item's protocol role
for a query), report (each query's table, rank-list PNG and page entry), cache (the gallery feature cache), output
(the output folder and its thumbnails), page (the HTML page). Like reid.inference, it never imports reid.engine.
"""
from __future__ import annotations

from .cache import FeatureCache
from .output import DemoError, OutputFolder, check_output
from .page import PageEntry, PageRow, write_demo_page
from .run import GalleryIndex, build_parser, checkpoint_key, index_gallery, main, parse_ids, run_demo

__all__ = ["DemoError", "FeatureCache", "GalleryIndex", "OutputFolder", "PageEntry", "PageRow", "build_parser",
           "check_output", "checkpoint_key", "index_gallery", "main", "parse_ids", "run_demo", "write_demo_page"]
