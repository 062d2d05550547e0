"""Analytics: every careloop event in an embedded DuckDB file, read from the topics exactly once, and
the measures programs report (views in ``views``, tables and charts in ``report``)."""
