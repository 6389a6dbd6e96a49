"""Widgets shared by pages: the page header, charts with their data, bin choices (``page``), a file by
path or upload (``files``), the spec's prefix section and the Preview's prefix reuse (``prefix``)."""
