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
-- Pipeline (each macro reads the one before it):
--   scores -> normalised(run)          per (run, video, model) min-max of PSNR, anomaly = 1 - norm
--          -> smoothed(sigma, run)     scipy gaussian_filter1d(anomaly, sigma, mode='mirror',
--                                      truncate=4) over each video's frames in order; sigma <= 0
--                                      or NULL: no smoothing
--          -> fused(fusion, alpha, streams, sigma, run)
--                                      fusion = a model name ('fp', 'fr', ...): that stream;
--                                      'weighted': alpha * streams[1] + (1 - alpha) * streams[2];
--                                      'max': the largest of the streams. Multi-stream fusion
--                                      keeps only frames every stream scored (an inner join).
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
-- videos rows carry no run_id column; their run is the hive partition they live in.
CREATE OR REPLACE VIEW videos AS SELECT run AS run_id, * EXCLUDE (run) FROM _raw_videos;
CREATE OR REPLACE VIEW thresholds AS SELECT * FROM _raw_thresholds;

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

-- The value of the calibrated threshold tname, checked against the fusion and smoothing
-- it is applied to (a threshold only means something on the scores it was computed on).
CREATE OR REPLACE MACRO calibrated_threshold(tname, fname, sig) AS (
    SELECT CASE
        WHEN count(*) = 0 THEN error('no calibrated threshold named ''' || tname
            || ''' in this store; see SELECT * FROM thresholds, or run raystack calibrate')
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

CREATE OR REPLACE MACRO normalised(run := NULL) AS TABLE
    SELECT w.run_id, w.video_id, w.model, w.frame, w.timestamp_s, w.psnr,
           CASE WHEN w.hi > w.lo THEN (w.psnr::DOUBLE - w.lo) / (w.hi - w.lo) ELSE 1.0 END
               AS norm_psnr,
           1.0 - (CASE WHEN w.hi > w.lo THEN (w.psnr::DOUBLE - w.lo) / (w.hi - w.lo) ELSE 1.0 END)
               AS anomaly
    -- A window, not a grouped self-join: DuckDB rewrites it into a join on its own
    -- Parquet scans, which was ~4x faster than the join on three string keys written out.
    FROM (
        SELECT s.*, CAST(min(s.psnr) OVER v AS DOUBLE) AS lo, CAST(max(s.psnr) OVER v AS DOUBLE) AS hi
        FROM scores AS s
        WHERE run IS NULL OR s.run_id = run
        WINDOW v AS (PARTITION BY s.run_id, s.video_id, s.model)
    ) AS w;

CREATE OR REPLACE MACRO smoothed(sigma := 10, run := NULL) AS TABLE
    SELECT n.run_id, n.video_id, n.model, n.frame, n.timestamp_s, n.psnr, n.anomaly,
           n.anomaly AS score
    FROM normalised(run := run) AS n
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
        FROM normalised(run := run) AS n
        WHERE sigma > 0
        GROUP BY n.run_id, n.video_id, n.model
    ) AS l;

CREATE OR REPLACE MACRO fused(fusion := 'fp', alpha := 0.5, streams := ['fp', 'fr'],
                              sigma := 10, run := NULL) AS TABLE
    SELECT s.run_id, s.video_id, fusion_name(fusion, alpha, streams) AS fusion, s.frame,
           s.timestamp_s, s.score
    FROM smoothed(sigma := sigma, run := run) AS s
    WHERE fusion NOT IN ('weighted', 'max') AND s.model = fusion
    UNION ALL
    SELECT s.run_id, s.video_id, fusion_name(fusion, alpha, streams) AS fusion, s.frame,
           any_value(s.timestamp_s) AS timestamp_s,
           CASE WHEN fusion = 'weighted'
                THEN alpha * max(s.score) FILTER (WHERE s.model = streams[1])
                     + (1 - alpha) * max(s.score) FILTER (WHERE s.model = streams[2])
                ELSE max(s.score)
           END AS score
    FROM smoothed(sigma := sigma, run := run) AS s
    WHERE fusion IN ('weighted', 'max') AND list_contains(streams, s.model)
    GROUP BY s.run_id, s.video_id, s.frame
    HAVING count(DISTINCT s.model) = len(streams);

CREATE OR REPLACE MACRO flags(threshold := 0.5, adaptive_k := NULL, threshold_name := NULL,
                              fusion := 'fp', alpha := 0.5, streams := ['fp', 'fr'],
                              sigma := 10, run := NULL) AS TABLE
    SELECT x.run_id, x.video_id, x.fusion, x.frame, x.timestamp_s, x.score,
           x.thr AS threshold, x.score > x.thr AS flagged
    FROM (
        SELECT f.*,
               CASE WHEN threshold_name IS NOT NULL
                    THEN calibrated_threshold(threshold_name, fusion_name(fusion, alpha, streams), sigma)
                    WHEN threshold IS NULL THEN error('flags/events need a threshold, adaptive_k or threshold_name')
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
CREATE OR REPLACE MACRO events(threshold := 0.5, min_frames := 1, merge_gap := 0,
                               adaptive_k := NULL, threshold_name := NULL,
                               fusion := 'fp', alpha := 0.5, streams := ['fp', 'fr'],
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
