-- raystack query layer, schema version 3, part 2 of 3: the views over the raw tables and
-- the scalar helpers of the table macros (schemas/sql/v3_query.sql, run after this file:
-- DuckDB binds a macro's body when it is created, so helpers come first; the fusion rules
-- of v3_fusion.sql come before it). The versioning, the raw sources and the macros are
-- described at the top of v3_query.sql.
--
-- Names inside a macro prefer its parameters over columns, so columns that share a name
-- with a parameter are always qualified by their table alias.

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

-- What fusion := 'auto' means for each run: auto_choice() (v3_fusion.sql) over the run's
-- streams, or an error naming the run and its streams when the rule cannot choose.
CREATE OR REPLACE MACRO auto_fusion(alpha := 0.5, run := NULL) AS TABLE
    SELECT c.run_id,
           CASE WHEN c.pick.kind IS NOT NULL THEN c.pick.kind
                ELSE error('run ' || c.run_id || ' has streams ' || CAST(c.learned AS VARCHAR)
                           || '; fusion auto cannot choose: name a stream, weighted or max')
           END AS kind,
           c.pick.s1 AS s1, c.pick.s2 AS s2,
           CASE WHEN c.pick.kind = 'weighted'
                THEN fusion_name('weighted', alpha, [c.pick.s1, c.pick.s2])
                ELSE c.pick.s1 END AS name
    FROM (
        SELECT l.run_id, auto_choice(l.have) AS pick, auto_learned(l.have) AS learned
        FROM (
            SELECT s.run_id, list(DISTINCT s.model ORDER BY s.model) AS have
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

-- where in the frame --------------------------------------------------------------------

-- Whether b is a non-empty list of boxes [x0, y0, x1, y1] with 0 <= x0 < x1, 0 <= y0 < y1.
CREATE OR REPLACE MACRO valid_boxes(b) AS
    coalesce(len(b) > 0 AND list_bool_and(list_transform(b, lambda x:
        coalesce(len(x) = 4 AND list_count(x) = 4 AND x[1] >= 0 AND x[2] >= 0
                 AND x[1] < x[3] AND x[2] < x[4], false))), false);

-- boxes as DOUBLE[][] (one box [x0, y0, x1, y1] is a list of one), NULL for NULL, or an
-- error naming the argument and what it got: a malformed region of interest must not
-- silently watch the whole frame, or nothing. A constant, folded when the query is planned.
CREATE OR REPLACE MACRO checked_boxes(boxes, what) AS
    CASE WHEN boxes IS NULL THEN NULL
         WHEN valid_boxes(try_cast(CAST(boxes AS VARCHAR) AS DOUBLE[][]))
             THEN try_cast(CAST(boxes AS VARCHAR) AS DOUBLE[][])
         WHEN valid_boxes([try_cast(CAST(boxes AS VARCHAR) AS DOUBLE[])])
             THEN [try_cast(CAST(boxes AS VARCHAR) AS DOUBLE[])]
         ELSE error(what || ' must be a box [x0, y0, x1, y1] or a list of boxes [[x0, y0, x1, y1], '
                    || '...] in source-frame pixels with 0 <= x0 < x1 and 0 <= y0 < y1, got '
                    || CAST(boxes AS VARCHAR))
    END;

-- The region columns of a score row as one struct (they travel together through lists and
-- arg_max).
CREATE OR REPLACE MACRO region_of(tiles, box_x0, box_y0, box_x1, box_y1,
                                  patch_x0, patch_y0, patch_x1, patch_y1) AS
    {'tiles': tiles, 'box_x0': box_x0, 'box_y0': box_y0, 'box_x1': box_x1, 'box_y1': box_y1,
     'patch_x0': patch_x0, 'patch_y0': patch_y0, 'patch_x1': patch_x1, 'patch_y1': patch_y1};

-- Whether the point (x, y) lies in any of boxes (x1, y1 exclusive, as the store's boxes).
CREATE OR REPLACE MACRO in_boxes(x, y, boxes) AS
    coalesce(list_bool_or(list_transform(boxes, lambda b:
        x >= b[1] AND x < b[3] AND y >= b[2] AND y < b[4])), false);

-- One coordinate of where a score row points in the frame: the centre of its worst patch,
-- else of its worst tile when the frame was tiled; NULL when the row has no location
-- (v1 rows, whole-frame scoring without an error-map location). Call it with x or y columns.
CREATE OR REPLACE MACRO region_centre(tiles, box0, box1, patch0, patch1) AS
    CASE WHEN patch0 IS NOT NULL THEN (patch0 + patch1) / 2.0
         WHEN tiles IS NOT NULL THEN (box0 + box1) / 2.0
    END;

-- Whether a score row's location (region_centre) lies in any of boxes; NULL when the row
-- has no location.
CREATE OR REPLACE MACRO points_into(tiles, box_x0, box_y0, box_x1, box_y1,
                                    patch_x0, patch_y0, patch_x1, patch_y1, boxes) AS
    CASE WHEN region_centre(tiles, box_x0, box_x1, patch_x0, patch_x1) IS NOT NULL
         THEN in_boxes(region_centre(tiles, box_x0, box_x1, patch_x0, patch_x1),
                       region_centre(tiles, box_y0, box_y1, patch_y0, patch_y1), boxes)
    END;

-- k itself if it is a whole number >= 1, else an error naming it.
CREATE OR REPLACE MACRO checked_k(k) AS
    CASE WHEN k >= 1 AND k = floor(k) THEN k
         ELSE error('k must be a whole number >= 1, got ' || coalesce(CAST(k AS VARCHAR), 'NULL'))
    END;

-- bucket_s itself if it is > 0, else an error naming it.
CREATE OR REPLACE MACRO checked_bucket(bucket_s) AS
    CASE WHEN bucket_s > 0 THEN bucket_s
         ELSE error('bucket_s must be > 0 seconds, got '
                    || coalesce(CAST(bucket_s AS VARCHAR), 'NULL'))
    END;


-- video itself, or an error naming an unknown video and some videos of the selected run(s).
CREATE OR REPLACE MACRO check_video(video, run) AS (
    SELECT CASE
        WHEN video IS NULL THEN error('top_boxes needs a video_id, got NULL')
        WHEN coalesce(bool_or(s.video_id = video), false) THEN true
        ELSE error('unknown video ''' || video || '''; videos of the run(s) include: '
                   || coalesce(nullif(array_to_string(
                          list(DISTINCT s.video_id ORDER BY s.video_id)[1:5], ', '), ''), 'none'))
    END
    FROM scores AS s WHERE run IS NULL OR s.run_id = run
);
