-- The outbox and the inbox analyzed when they have doubled, not each time a tenth of them is new. Every
-- statement reads them by key (the relay by position, the inbox's insert by its primary key), which no
-- statistics change, yet autovacuum analyzed them again and again as they grew: under load on a fresh
-- platform at every visit, ten seconds apart, for each service's outbox and inbox. Their share of
-- autovacuum's CPU in a full `make bench` is in README, Performance.
ALTER TABLE outbox SET (autovacuum_analyze_scale_factor = 1.0);
ALTER TABLE inbox SET (autovacuum_analyze_scale_factor = 1.0);
