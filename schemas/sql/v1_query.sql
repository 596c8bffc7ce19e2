-- raystack query layer, schema version 1: views and table macros over a store.
--
-- raystack.query.connect() registers the raw sources first (_raw_scores, _raw_videos,
-- _raw_manifest: the store's Parquet files plus a column "run", the hive folder of each
-- file; _raw_thresholds: the calibrated thresholds of the store) and the function
-- rs_gaussian_smooth(scores DOUBLE[], frames BIGINT[], sigma DOUBLE), then runs this
-- file. Parameters are macro arguments with defaults:
--
--   SELECT * FROM events(threshold := 0.7, min_frames := 10);
--   SELECT * FROM events(fusion := 'weighted', alpha := 0.6, adaptive_k := 3, run := 'r1');
--   SELECT * FROM events(threshold_name := 'night-cams', merge_gap := 5);
--
-- The argument defaults written below are the only ones: `raystack events`, `raystack report`
-- and raystack.query.find_events read them from this file (raystack.query.defaults).
-- fusion := 'auto' takes, per run, its only learned stream, or weighted (alpha) of the one
-- known pair it has (fp,fr or m2s2l_app,m2s2l_mot). An unknown run, an unknown fusion or
-- stream, or a threshold outside [0, 1] raises an error naming the value and the choices.
--
-- Pipeline (each macro reads the one before it):
--   scores -> normalised(run, normalise)
--                                      per (run, video, model) min-max of PSNR, anomaly = 1 - norm;
--                                      normalise := 'global': per (run, model), over all videos
--          -> smoothed(sigma, run, normalise)
--                                      scipy gaussian_filter1d(anomaly, sigma, mode='mirror',
--                                      truncate=4) over each video's frames in order; sigma <= 0
--                                      or NULL: no smoothing
--          -> fused(fusion, alpha, streams, sigma, run, normalise)
--                                      fusion = a model name ('fp', 'fr', ...): that stream;
--                                      'weighted': alpha * streams[1] + (1 - alpha) * streams[2];
--                                      'max': the largest of the streams. Multi-stream fusion
--                                      keeps only frames every stream scored (an inner join).
--                                      The one definition of fusion: `raystack eval` runs
--                                      fused() too, over the frames it evaluates.
--          -> flags(threshold | adaptive_k | threshold_name, ...)
--                                      flagged = score > threshold; the threshold is fixed, or
--                                      per video mean + adaptive_k * stddev_pop of its scores,
--                                      or a calibrated threshold of the store by name
--          -> events(min_frames, merge_gap, ...)
--                                      islands of consecutive flagged frames; islands with at
--                                      most merge_gap frames between them (not flagged or not
--                                      scored) merge; events spanning fewer than min_frames
--                                      frames (end - start + 1) are then dropped.
--
-- Names inside a macro prefer its parameters over columns, so columns that share a name
-- with a parameter (fusion, threshold, sigma) are always qualified by their table alias.

-- raw tables ----------------------------------------------------------------------------

CREATE OR REPLACE VIEW scores AS SELECT * EXCLUDE (run) FROM _raw_scores;
-- One row per attempt: after a crash in the middle of a manifest compaction an attempt is
-- in the compacted file and in its own file until the next compaction; it shows once.
CREATE OR REPLACE VIEW manifest AS SELECT * EXCLUDE (run) FROM _raw_manifest
    QUALIFY row_number() OVER (PARTITION BY run, unit_id, attempt
                               ORDER BY finished_at DESC NULLS LAST) = 1;
-- videos rows carry their run_id since content_id was added; older files only have the
-- hive partition they live in.
CREATE OR REPLACE VIEW videos AS
    SELECT coalesce(v.run_id, v.run) AS run_id, v.* EXCLUDE (run, run_id) FROM _raw_videos AS v;
CREATE OR REPLACE VIEW thresholds AS SELECT * FROM _raw_thresholds;
-- One row per run of the store (from its folders): its videos, score files (units), manifest
-- files (attempts) and score streams ('fp,fr').
CREATE OR REPLACE VIEW runs AS
    SELECT r.run_id, coalesce(v.videos, 0) AS videos, r.score_files, r.manifest_files,
           coalesce(m.streams, '') AS streams
    FROM _raw_runs AS r
    LEFT JOIN (SELECT x.run_id, count(*) AS videos FROM videos AS x GROUP BY x.run_id) AS v
        ON v.run_id = r.run_id
    LEFT JOIN (SELECT y.run_id, string_agg(DISTINCT y.model, ',' ORDER BY y.model) AS streams
               FROM scores AS y GROUP BY y.run_id) AS m
        ON m.run_id = r.run_id
    ORDER BY r.run_id;

-- helpers -------------------------------------------------------------------------------

-- Canonical name of a fusion, as stored with calibrated thresholds and shown in results:
-- 'fp', 'weighted:0.5:fp,fr', 'max:fp,fr'. Raises on an invalid combination.
CREATE OR REPLACE MACRO fusion_name(fusion, alpha, streams) AS
    CASE
        WHEN fusion IS NULL THEN error('fusion must not be NULL')
        WHEN fusion = 'weighted' AND (len(streams) <> 2 OR len(list_distinct(streams)) <> 2)
            THEN error('fusion weighted needs exactly two different streams, got '
                       || CAST(streams AS VARCHAR))
        WHEN fusion = 'weighted' AND (alpha IS NULL OR alpha < 0 OR alpha > 1)
            THEN error('fusion alpha must be in [0, 1], got ' || coalesce(CAST(alpha AS VARCHAR), 'NULL'))
        WHEN fusion = 'max' AND (len(streams) < 1 OR len(list_distinct(streams)) <> len(streams))
            THEN error('fusion max needs one or more different streams, got '
                       || CAST(streams AS VARCHAR))
        WHEN fusion = 'weighted' THEN 'weighted:' || printf('%g', alpha) || ':' || array_to_string(streams, ',')
        WHEN fusion = 'max' THEN 'max:' || array_to_string(streams, ',')
        ELSE fusion
    END;

-- true, or an error naming an unknown run and the runs of the store.
-- run itself, or an error naming an unknown run and the runs of the store. store_runs() is
-- a constant list written when the connection opens, so DuckDB folds this when it plans
-- the query: the error cannot be skipped, and a known run still filters the Parquet scan.
CREATE OR REPLACE MACRO checked_run(run) AS
    CASE WHEN run IS NULL OR list_contains(store_runs(), run) THEN run
         ELSE error('unknown run ''' || run || '''; runs in this store: '
                    || coalesce(nullif(array_to_string(store_runs(), ', '), ''), 'none'))
    END;

-- normalise itself, or an error naming the choices: 'video' (min-max per video, the
-- protocol) or 'global' (min-max over all videos of the run, per stream).
CREATE OR REPLACE MACRO checked_normalise(normalise) AS
    CASE WHEN normalise IN ('video', 'global') THEN normalise
         ELSE error('normalise must be ''video'' or ''global'', got '
                    || coalesce('''' || normalise || '''', 'NULL'))
    END;

-- true, or an error naming a fusion or stream the selected runs do not score (a typo would
-- otherwise select no rows and look like "no anomalies"). fused() evaluates it in a UNION
-- ALL branch of its own, which DuckDB runs whatever the other branches return.
CREATE OR REPLACE MACRO check_fusion(fusion, streams, run) AS (
    SELECT CASE
        WHEN fusion IS NULL THEN error('fusion must not be NULL')
        WHEN fusion = 'auto' OR len(h.have) = 0 THEN true
        WHEN fusion IN ('weighted', 'max') AND NOT list_has_all(h.have, streams)
            THEN error('fusion ' || fusion || ' needs streams ' || CAST(streams AS VARCHAR)
                       || ', but the run(s) score only ' || CAST(h.have AS VARCHAR))
        WHEN fusion IN ('weighted', 'max') OR list_contains(h.have, fusion) THEN true
        ELSE error('unknown fusion ''' || fusion || '''; choose auto, weighted, max or a stream '
                   || 'of the run(s): ' || array_to_string(h.have, ', '))
    END
    FROM (SELECT coalesce(list(DISTINCT s.model ORDER BY s.model), []) AS have
          FROM scores AS s WHERE run IS NULL OR s.run_id = run) AS h
);

-- What fusion := 'auto' means for each run (the rule of raystack.query.fusion.resolve_fusion):
-- its only learned stream (the baselines diff and motion are never fused by default), else
-- weighted alpha of the one pair of (fp, fr), (m2s2l_app, m2s2l_mot) it has.
CREATE OR REPLACE MACRO auto_fusion(alpha := 0.5, run := NULL) AS TABLE
    SELECT c.run_id, c.kind, c.s1, c.s2,
           CASE WHEN c.kind = 'weighted' THEN fusion_name('weighted', alpha, [c.s1, c.s2])
                ELSE c.s1 END AS name
    FROM (
        SELECT l.run_id,
               CASE WHEN len(l.learned) = 1 THEN 'stream'
                    WHEN list_has_all(l.learned, ['fp', 'fr'])
                         <> list_has_all(l.learned, ['m2s2l_app', 'm2s2l_mot']) THEN 'weighted'
                    ELSE error('run ' || l.run_id || ' has streams ' || CAST(l.learned AS VARCHAR)
                               || '; fusion auto cannot choose: name a stream, weighted or max')
               END AS kind,
               CASE WHEN len(l.learned) = 1 THEN l.learned[1]
                    WHEN list_has_all(l.learned, ['fp', 'fr']) THEN 'fp' ELSE 'm2s2l_app' END AS s1,
               CASE WHEN len(l.learned) = 1 THEN l.learned[1]
                    WHEN list_has_all(l.learned, ['fp', 'fr']) THEN 'fr' ELSE 'm2s2l_mot' END AS s2
        FROM (
            SELECT s.run_id,
                   coalesce(list(DISTINCT s.model ORDER BY s.model)
                                FILTER (WHERE s.model NOT IN ('diff', 'motion')),
                            list(DISTINCT s.model ORDER BY s.model)) AS learned
            FROM scores AS s WHERE run IS NULL OR s.run_id = run
            GROUP BY s.run_id
        ) AS l
    ) AS c;

-- The value of the calibrated threshold tname, checked against the fusion and smoothing
-- it is applied to (a threshold only means something on the scores it was computed on).
CREATE OR REPLACE MACRO calibrated_threshold(tname, fname, sig) AS (
    SELECT CASE
        WHEN count(*) = 0 THEN error('no calibrated threshold named ''' || tname
            || ''' in this store; see SELECT * FROM thresholds, or run raystack calibrate')
        WHEN fname = 'auto'
            THEN error('threshold ''' || tname || ''' was calibrated on fusion '
                || any_value(t.fusion) || ' with sigma ' || any_value(t.sigma)
                || '; fusion auto is not checked against a calibration: pass that fusion '
                || '(e.g. fusion := ''weighted'', alpha := 0.5 for weighted:0.5:fp,fr) and sigma')
        WHEN any_value(t.fusion) <> fname
             OR any_value(t.sigma) IS DISTINCT FROM greatest(coalesce(sig, 0), 0)::DOUBLE
            THEN error('threshold ''' || tname || ''' was calibrated on fusion '
                || any_value(t.fusion) || ' with sigma ' || any_value(t.sigma)
                || ', but is applied to fusion ' || fname || ' with sigma ' || greatest(coalesce(sig, 0), 0)
                || '; pass the same fusion and sigma')
        ELSE any_value(t.value)
    END
    FROM thresholds AS t WHERE t.name = tname
);

-- derived views -------------------------------------------------------------------------

CREATE OR REPLACE MACRO normalised(run := NULL, normalise := 'video') AS TABLE
    SELECT w.run_id, w.video_id, w.model, w.frame, w.timestamp_s, w.psnr,
           CASE WHEN w.hi > w.lo THEN (w.psnr::DOUBLE - w.lo) / (w.hi - w.lo) ELSE 1.0 END
               AS norm_psnr,
           1.0 - (CASE WHEN w.hi > w.lo THEN (w.psnr::DOUBLE - w.lo) / (w.hi - w.lo) ELSE 1.0 END)
               AS anomaly
    -- A window, not a grouped self-join: DuckDB rewrites it into a join on its own
    -- Parquet scans, which was ~4x faster than the join on three string keys written out.
    -- One branch per normalise (a constant), so the plan holds only the one asked for.
    FROM (
        SELECT s.*, CAST(min(s.psnr) OVER v AS DOUBLE) AS lo, CAST(max(s.psnr) OVER v AS DOUBLE) AS hi
        FROM scores AS s
        WHERE checked_normalise(normalise) = 'video' AND (run IS NULL OR s.run_id = checked_run(run))
        WINDOW v AS (PARTITION BY s.run_id, s.video_id, s.model)
        UNION ALL
        SELECT s.*, CAST(min(s.psnr) OVER g AS DOUBLE) AS lo, CAST(max(s.psnr) OVER g AS DOUBLE) AS hi
        FROM scores AS s
        WHERE normalise = 'global' AND (run IS NULL OR s.run_id = checked_run(run))
        WINDOW g AS (PARTITION BY s.run_id, s.model)
    ) AS w;

CREATE OR REPLACE MACRO smoothed(sigma := 10, run := NULL, normalise := 'video') AS TABLE
    SELECT n.run_id, n.video_id, n.model, n.frame, n.timestamp_s, n.psnr, n.anomaly,
           n.anomaly AS score
    FROM normalised(run := run, normalise := normalise) AS n
    WHERE sigma IS NULL OR sigma <= 0
    UNION ALL
    -- The lists of one group are built in the same (arbitrary) row order; the function
    -- smooths in frame order and answers in list order, so the unnests stay aligned.
    SELECT l.run_id, l.video_id, l.model, unnest(l.f) AS frame, unnest(l.t) AS timestamp_s,
           unnest(l.p) AS psnr, unnest(l.a) AS anomaly,
           unnest(rs_gaussian_smooth(l.a, l.f, sigma)) AS score
    FROM (
        SELECT n.run_id, n.video_id, n.model, list(n.frame) AS f, list(n.timestamp_s) AS t,
               list(n.psnr) AS p, list(n.anomaly) AS a
        FROM normalised(run := run, normalise := normalise) AS n
        WHERE sigma > 0
        GROUP BY n.run_id, n.video_id, n.model
    ) AS l;

CREATE OR REPLACE MACRO fused(fusion := 'auto', alpha := 0.5, streams := ['fp', 'fr'],
                              sigma := 10, run := NULL, normalise := 'video') AS TABLE
    SELECT s.run_id, s.video_id, fusion_name(fusion, alpha, streams) AS fusion, s.frame,
           s.timestamp_s, s.score
    FROM smoothed(sigma := sigma, run := run, normalise := normalise) AS s
    WHERE fusion NOT IN ('weighted', 'max', 'auto') AND s.model = fusion
    UNION ALL
    SELECT s.run_id, s.video_id, fusion_name(fusion, alpha, streams) AS fusion, s.frame,
           any_value(s.timestamp_s) AS timestamp_s,
           CASE WHEN fusion = 'weighted'
                THEN alpha * max(s.score) FILTER (WHERE s.model = streams[1])
                     + (1 - alpha) * max(s.score) FILTER (WHERE s.model = streams[2])
                ELSE max(s.score)
           END AS score
    FROM smoothed(sigma := sigma, run := run, normalise := normalise) AS s
    -- fusion_name() here too (a constant, folded when planned): a query that projects only
    -- the score must still refuse an alpha outside [0, 1] or a bad list of streams.
    WHERE fusion IN ('weighted', 'max') AND fusion_name(fusion, alpha, streams) IS NOT NULL
          AND list_contains(streams, s.model)
    GROUP BY s.run_id, s.video_id, s.frame
    HAVING count(DISTINCT s.model) = len(streams)
    UNION ALL
    -- 'auto': each run's own choice (a stream, or a weighted pair), as a join on the run.
    SELECT s.run_id, s.video_id, a.name AS fusion, s.frame, any_value(s.timestamp_s) AS timestamp_s,
           CASE WHEN a.kind = 'weighted'
                THEN alpha * max(s.score) FILTER (WHERE s.model = a.s1)
                     + (1 - alpha) * max(s.score) FILTER (WHERE s.model = a.s2)
                ELSE max(s.score)
           END AS score
    FROM smoothed(sigma := sigma, run := run, normalise := normalise) AS s
    JOIN auto_fusion(alpha := alpha, run := run) AS a
        ON a.run_id = s.run_id AND (s.model = a.s1 OR s.model = a.s2)
    WHERE fusion = 'auto'
    GROUP BY s.run_id, s.video_id, s.frame, a.name, a.kind
    HAVING count(DISTINCT s.model) = CASE WHEN a.kind = 'weighted' THEN 2 ELSE 1 END
    UNION ALL
    -- No row: raises for an unknown fusion or stream (see check_fusion). Every column
    -- depends on g.ok, so no filter pushed down from flags() or events() can be folded to
    -- false at planning time and drop the check.
    SELECT CASE WHEN g.ok THEN NULL ELSE '' END, CASE WHEN g.ok THEN NULL ELSE '' END,
           CASE WHEN g.ok THEN NULL ELSE '' END, CASE WHEN g.ok THEN NULL ELSE 0 END::BIGINT,
           CASE WHEN g.ok THEN NULL ELSE 0 END::DOUBLE, CASE WHEN g.ok THEN NULL ELSE 0 END::DOUBLE
    FROM (SELECT check_fusion(fusion, streams, run) AS ok) AS g
    WHERE NOT g.ok;

CREATE OR REPLACE MACRO flags(threshold := 0.7, adaptive_k := NULL, threshold_name := NULL,
                              fusion := 'auto', alpha := 0.5, streams := ['fp', 'fr'],
                              sigma := 10, run := NULL) AS TABLE
    SELECT x.run_id, x.video_id, x.fusion, x.frame, x.timestamp_s, x.score,
           x.thr AS threshold, x.score > x.thr AS flagged
    FROM (
        SELECT f.*,
               CASE WHEN threshold_name IS NOT NULL
                    -- Checked against the fusion asked for, a constant: a per-row f.fusion or a
                    -- subquery resolving 'auto' here made every flags() query 1.6-2x slower.
                    THEN calibrated_threshold(threshold_name, fusion_name(fusion, alpha, streams), sigma)
                    WHEN threshold IS NULL THEN error('flags/events need a threshold, adaptive_k or threshold_name')
                    WHEN threshold < 0 OR threshold > 1
                        THEN error('threshold ' || threshold || ' is outside [0, 1]: scores are '
                                   || '1 - min-max normalised PSNR per video, in [0, 1]')
                    ELSE threshold::DOUBLE
               END AS thr
        FROM fused(fusion := fusion, alpha := alpha, streams := streams, sigma := sigma, run := run) AS f
        WHERE adaptive_k IS NULL
        UNION ALL
        -- Per video: mean + k * population standard deviation of its fused scores.
        SELECT f.*,
               avg(f.score) OVER v + adaptive_k * coalesce(stddev_pop(f.score) OVER v, 0) AS thr
        FROM fused(fusion := fusion, alpha := alpha, streams := streams, sigma := sigma, run := run) AS f
        WHERE adaptive_k IS NOT NULL
        WINDOW v AS (PARTITION BY f.run_id, f.video_id, f.fusion)
    ) AS x;

-- Gaps and islands: consecutive flagged frames share frame - row_number(); the islands
-- (few) are then merged with a running sum over "starts a new event" marks.
CREATE OR REPLACE MACRO events(threshold := 0.7, min_frames := 5, merge_gap := 3,
                               adaptive_k := NULL, threshold_name := NULL,
                               fusion := 'auto', alpha := 0.5, streams := ['fp', 'fr'],
                               sigma := 10, run := NULL) AS TABLE
    WITH islands AS (
        SELECT i.run_id, i.video_id, i.fusion, min(i.frame) AS s, max(i.frame) AS e,
               min(i.timestamp_s) AS s_s, max(i.timestamp_s) AS e_s, count(*) AS n,
               max(i.score) AS peak, sum(i.score) AS total, any_value(i.thr) AS thr
        FROM (
            SELECT g.run_id, g.video_id, g.fusion, g.frame, g.timestamp_s, g.score,
                   g.threshold AS thr,
                   g.frame - row_number() OVER (PARTITION BY g.run_id, g.video_id, g.fusion
                                                ORDER BY g.frame) AS island
            FROM flags(threshold := threshold, adaptive_k := adaptive_k,
                       threshold_name := threshold_name, fusion := fusion, alpha := alpha,
                       streams := streams, sigma := sigma, run := run) AS g
            WHERE g.flagged
        ) AS i
        GROUP BY i.run_id, i.video_id, i.fusion, i.island
    ),
    marked AS (
        SELECT m.*, sum(m.new_event) OVER (PARTITION BY m.run_id, m.video_id, m.fusion
                                           ORDER BY m.s ROWS UNBOUNDED PRECEDING) AS ev
        FROM (
            SELECT isl.*,
                   CASE WHEN isl.s - lag(isl.e) OVER (PARTITION BY isl.run_id, isl.video_id, isl.fusion
                                                      ORDER BY isl.s) - 1 <= merge_gap
                        THEN 0 ELSE 1 END AS new_event
            FROM islands AS isl
        ) AS m
    ),
    merged AS (
        SELECT k.run_id, k.video_id, k.fusion, min(k.s) AS start_frame, max(k.e) AS end_frame,
               min(k.s_s) AS start_s, max(k.e_s) AS end_s, sum(k.n)::BIGINT AS flagged_frames,
               max(k.peak) AS peak_score, sum(k.total) / sum(k.n) AS mean_score,
               any_value(k.thr) AS thr
        FROM marked AS k
        GROUP BY k.run_id, k.video_id, k.fusion, k.ev
        HAVING max(k.e) - min(k.s) + 1 >= min_frames
    )
    SELECT d.run_id, d.video_id, d.fusion,
           row_number() OVER (PARTITION BY d.run_id, d.video_id, d.fusion
                              ORDER BY d.start_frame) AS event_id,
           d.start_frame, d.end_frame, d.start_s, d.end_s,
           d.end_frame - d.start_frame + 1 AS frames, d.flagged_frames,
           d.peak_score, d.mean_score, d.thr AS threshold
    FROM merged AS d
    ORDER BY d.run_id, d.video_id, d.fusion, d.start_frame;
