-- raystack query layer, schema version 3, part 3 of 3: the table macros, over a store of
-- schema version 1, 2 or 3 (older score files read with the columns added since NULL). The query
-- layer of the code that writes schema N is schemas/sql/vN_fusion.sql, vN_views.sql, then
-- vN_query.sql (raystack.store.schema.QUERY_SQL_FILES); it reads every version that code
-- reads.
--
-- raystack.query.connect() registers the raw sources first (_raw_scores, _raw_videos,
-- _raw_manifest: the store's Parquet files plus a column "run", the hive folder of each
-- file; _raw_thresholds: the calibrated thresholds of the store) and the function
-- rs_gaussian_smooth(scores DOUBLE[], frames BIGINT[], sigma DOUBLE), then runs
-- v3_fusion.sql (fusion rules), v3_views.sql (views, helpers) and this file. Parameters are macro arguments with defaults:
--
--   SELECT * FROM events(threshold := 0.7, min_frames := 10);
--   SELECT * FROM events(fusion := 'weighted', alpha := 0.6, adaptive_k := 3, run := 'r1');
--   SELECT * FROM events(threshold_name := 'night-cams', merge_gap := 5);
--
-- The argument defaults written below are the only ones: `raystack events`, `raystack report`
-- and raystack.query.find_events read them from this file (raystack.query.defaults).
-- fusion := 'auto' takes, per run, its only learned stream, or weighted (alpha) of the one
-- known pair it has (fp,fr or m2s2l_app,m2s2l_mot): auto_choice() of v3_fusion.sql. An unknown run, an unknown fusion or
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
--                                      raw_score: the same fusion before smoothing;
--                                      box_model: the stream whose box the frame carries.
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
--                                      frames (end - start + 1) are then dropped; each event
--                                      carries its peak frame's box and patch: of the stream
--                                      whose box most of its frames carry, the frame with the
--                                      highest raw_score (peak_score is the highest smoothed
--                                      score, what the threshold met).
--   fused() and what reads it take roi := [[x0, y0, x1, y1], ...] and exclude := [[...]];
--   top_boxes(video, k, bucket_s, ...) ranks a video's boxes per time bucket.
--
-- Names inside a macro prefer its parameters over columns, so columns that share a name
-- with a parameter (fusion, threshold, sigma) are always qualified by their table alias.

-- derived views -------------------------------------------------------------------------

-- Motion gating (schema v3): a gated row's psnr is not the model's but the score of the
-- stream's trivial answer on a still frame (raystack.gate.trivial_psnr), on the model's
-- scale. It takes part in the max (the still frames topped the scale of an ungated scan
-- too, so the video's min-max stays close to the ungated one) but not in the min (a gated
-- frame never sets the most anomalous level), and it scores norm_psnr 1, anomaly 0. Rows
-- of older files (gated NULL) are ungated.
CREATE OR REPLACE MACRO normalised(run := NULL, normalise := 'video') AS TABLE
    SELECT w.run_id, w.video_id, w.model, w.frame, w.timestamp_s, w.psnr,
           CASE WHEN w.gated IS TRUE THEN 1.0
                WHEN w.hi > w.lo THEN (w.psnr::DOUBLE - w.lo) / (w.hi - w.lo) ELSE 1.0 END
               AS norm_psnr,
           1.0 - (CASE WHEN w.gated IS TRUE THEN 1.0
                       WHEN w.hi > w.lo THEN (w.psnr::DOUBLE - w.lo) / (w.hi - w.lo) ELSE 1.0 END)
               AS anomaly,
           w.tiles, w.box_x0, w.box_y0, w.box_x1, w.box_y1, w.patch_x0, w.patch_y0, w.patch_x1,
           w.patch_y1
    -- A window, not a grouped self-join: DuckDB rewrites it into a join on its own
    -- Parquet scans, which was ~4x faster than the join on three string keys written out.
    -- One branch per normalise (a constant), so the plan holds only the one asked for.
    FROM (
        SELECT s.*, CAST(min(s.psnr) FILTER (WHERE s.gated IS NOT TRUE) OVER v AS DOUBLE) AS lo,
               CAST(max(s.psnr) OVER v AS DOUBLE) AS hi
        FROM scores AS s
        WHERE checked_normalise(normalise) = 'video' AND (run IS NULL OR s.run_id = checked_run(run))
        WINDOW v AS (PARTITION BY s.run_id, s.video_id, s.model)
        UNION ALL
        SELECT s.*, CAST(min(s.psnr) FILTER (WHERE s.gated IS NOT TRUE) OVER g AS DOUBLE) AS lo,
               CAST(max(s.psnr) OVER g AS DOUBLE) AS hi
        FROM scores AS s
        WHERE normalise = 'global' AND (run IS NULL OR s.run_id = checked_run(run))
        WINDOW g AS (PARTITION BY s.run_id, s.model)
    ) AS w;

CREATE OR REPLACE MACRO smoothed(sigma := 10, run := NULL, normalise := 'video') AS TABLE
    SELECT n.run_id, n.video_id, n.model, n.frame, n.timestamp_s, n.psnr, n.anomaly,
           n.anomaly AS score, n.tiles, n.box_x0, n.box_y0, n.box_x1, n.box_y1,
           n.patch_x0, n.patch_y0, n.patch_x1, n.patch_y1
    FROM normalised(run := run, normalise := normalise) AS n
    WHERE sigma IS NULL OR sigma <= 0
    UNION ALL
    -- The lists of one group are built in the same (arbitrary) row order; the function
    -- smooths in frame order and answers in list order, so the unnests stay aligned.
    SELECT l.run_id, l.video_id, l.model, unnest(l.f) AS frame, unnest(l.t) AS timestamp_s,
           unnest(l.p) AS psnr, unnest(l.a) AS anomaly,
           unnest(rs_gaussian_smooth(l.a, l.f, sigma)) AS score, unnest(l.r, recursive := true)
    FROM (
        SELECT n.run_id, n.video_id, n.model, list(n.frame) AS f, list(n.timestamp_s) AS t,
               list(n.psnr) AS p, list(n.anomaly) AS a,
               -- Where in the frame rides along as one list of structs, unnested back
               -- into its columns (rs_gaussian_smooth answers in list order too).
               list(region_of(n.tiles, n.box_x0, n.box_y0, n.box_x1, n.box_y1, n.patch_x0,
                              n.patch_y0, n.patch_x1, n.patch_y1)) AS r
        FROM normalised(run := run, normalise := normalise) AS n
        WHERE sigma > 0
        GROUP BY n.run_id, n.video_id, n.model
    ) AS l;

-- Each stream's usual level in each run, over its ungated rows: the median PSNR and the
-- spread around it (the median absolute deviation; 0.6745 x the standard deviation, a
-- normal's MAD, for a stream that holds one value on most rows, as presence does at its
-- floor or at 0 dB, so that a small step off that value does not outweigh every other
-- stream's real deviation), and its low tail: the PSNR at each of tail_levels().
CREATE OR REPLACE MACRO stream_spread(run := NULL) AS TABLE
    SELECT s.run_id, s.model, median(s.psnr)::DOUBLE AS mid,
           CASE WHEN mad(s.psnr) > 0 THEN mad(s.psnr)::DOUBLE
                ELSE 0.6745 * stddev_pop(s.psnr) END AS spread,
           quantile_disc(s.psnr, tail_levels())::DOUBLE[] AS tail
    FROM scores AS s
    WHERE s.gated IS NOT TRUE AND (run IS NULL OR s.run_id = checked_run(run))
    GROUP BY s.run_id, s.model;

-- stream_spread() as one value, a map from run_id || chr(0) || model (a scalar subquery
-- is computed once; a join on the two keys made DuckDB hash the score rows, not the spreads).
CREATE OR REPLACE MACRO spreads(run) AS (
    SELECT map(list(d.run_id || chr(0) || d.model),
               list({'mid': d.mid, 'spread': d.spread, 'tail': d.tail}))
    FROM stream_spread(run := run) AS d);

-- run_z: how unusual a score is for its stream in its run, (mid - psnr) / spread
-- (stream_spread; high = worse than the stream usually is).
CREATE OR REPLACE MACRO run_z(psnr, usual) AS (usual.mid - psnr) / greatest(usual.spread, 1e-9);

-- run_tail: the share of its run's rows that score as low as psnr, rounded up to a level
-- of tail_levels() (1.0 above the last): the smallest level whose PSNR lies strictly above
-- psnr. Strictly, so a value that many rows share (presence at its floor) sits in the tail
-- of all of them, not in the rarest level.
CREATE OR REPLACE MACRO run_tail(psnr, usual) AS
    coalesce(tail_levels()[list_position(list_transform(usual.tail, lambda q: psnr < q), true)],
             CASE WHEN usual.tail IS NOT NULL THEN 1.0::DOUBLE END);

-- The arg_max key that picks a fused frame's box among its streams' rows (fused_unfiltered,
-- below), given the row's stream_spread() as usual: a stream of box_last_streams() only
-- when no other stream of the fusion is there, then the rarest run_tail, then the highest
-- run_z, then the stream whose name sorts last. A stream with no ungated row in its run has
-- no spread; it counts as the least unusual (a NULL in arg_max's key would rank first).
-- usual must be a column, not the spreads() lookup itself: a macro repeats its argument
-- wherever it is used, and every repeat would look the map up again for every row.
CREATE OR REPLACE MACRO box_key(row_psnr, row_model, usual) AS
    {'boxes': NOT list_contains(box_last_streams(), row_model),
     'tail': -coalesce(run_tail(row_psnr, usual), 2.0),
     'z': coalesce(run_z(row_psnr, usual), '-infinity'::DOUBLE),
     'm': row_model};

-- smoothed() rows of a run with their stream's stream_spread(), looked up once per row.
CREATE OR REPLACE MACRO smoothed_usual(sigma, run, normalise) AS TABLE
    SELECT s.*, spreads(run)[s.run_id || chr(0) || s.model] AS usual
    FROM smoothed(sigma := sigma, run := run, normalise := normalise) AS s;

-- fused() before its roi/exclude filter, with the tiles column that filter reads. A fused
-- frame of several streams carries the region of the stream most unusual there for its run
-- (box_key: the rarest tail level of its run, then the highest run_z, before smoothing),
-- FR's only when the fusion has no other stream. Not the highest normalised anomaly: a
-- per-video min-max stretches every stream's noise to reach 1 in every video, so a stream
-- that sees nothing of an anomaly still tops some of its frames and would take their box;
-- not run_z first: a stream that often sits at one value (presence at its floor) has a
-- narrow spread and a high z there on normal frames (docs/evaluation.md, "Which stream's
-- box"). A gated row's psnr is its stream's trivial score of a still frame, above the
-- stream's usual level, so it is in no tail (box_key).
CREATE OR REPLACE MACRO fused_unfiltered(fusion, alpha, streams, sigma, run, normalise) AS TABLE
    SELECT s.run_id, s.video_id, fusion_name(fusion, alpha, streams) AS fusion, s.frame,
           s.timestamp_s, s.score, s.anomaly AS raw_score, s.model AS box_model,
           s.tiles, s.box_x0, s.box_y0, s.box_x1, s.box_y1,
           s.patch_x0, s.patch_y0, s.patch_x1, s.patch_y1
    FROM smoothed(sigma := sigma, run := run, normalise := normalise) AS s
    WHERE fusion NOT IN ('weighted', 'max', 'auto') AND s.model = fusion
    UNION ALL
    SELECT m.run_id, m.video_id, m.fusion, m.frame, m.timestamp_s, m.score, m.raw_score,
           m.r.model AS box_model, m.r.tiles,
           m.r.box_x0, m.r.box_y0, m.r.box_x1, m.r.box_y1,
           m.r.patch_x0, m.r.patch_y0, m.r.patch_x1, m.r.patch_y1
    FROM (
        SELECT s.run_id, s.video_id, fusion_name(fusion, alpha, streams) AS fusion, s.frame,
               any_value(s.timestamp_s) AS timestamp_s,
               -- One row per stream and frame: avg over the first two streams of three is
               -- their mean, over the first of two the stream itself.
               CASE WHEN fusion = 'weighted'
                    THEN alpha * avg(s.score) FILTER (WHERE s.model <> streams[len(streams)])
                         + (1 - alpha) * max(s.score) FILTER (WHERE s.model = streams[len(streams)])
                    ELSE max(s.score)
               END AS score,
               CASE WHEN fusion = 'weighted'
                    THEN alpha * avg(s.anomaly) FILTER (WHERE s.model <> streams[len(streams)])
                         + (1 - alpha) * max(s.anomaly) FILTER (WHERE s.model = streams[len(streams)])
                    ELSE max(s.anomaly)
               END AS raw_score,
               -- the region and the stream it comes from, in one arg_max
               arg_max(struct_insert(region_of(s.tiles, s.box_x0, s.box_y0, s.box_x1, s.box_y1,
                                               s.patch_x0, s.patch_y0, s.patch_x1, s.patch_y1),
                                     model := s.model),
                       box_key(s.psnr, s.model, s.usual)) AS r
        FROM smoothed_usual(sigma, run, normalise) AS s
        -- fusion_name() here too (a constant, folded when planned): a query that projects
        -- only the score must still refuse an alpha outside [0, 1] or a bad list of streams.
        WHERE fusion IN ('weighted', 'max') AND fusion_name(fusion, alpha, streams) IS NOT NULL
              AND list_contains(streams, s.model)
        GROUP BY s.run_id, s.video_id, s.frame
        HAVING count(DISTINCT s.model) = len(streams)
    ) AS m
    UNION ALL
    -- 'auto': each run's own choice (a stream, or a weighted pair), as a join on the run.
    SELECT m.run_id, m.video_id, m.fusion, m.frame, m.timestamp_s, m.score, m.raw_score,
           m.r.model AS box_model, m.r.tiles,
           m.r.box_x0, m.r.box_y0, m.r.box_x1, m.r.box_y1,
           m.r.patch_x0, m.r.patch_y0, m.r.patch_x1, m.r.patch_y1
    FROM (
        SELECT s.run_id, s.video_id, a.name AS fusion, s.frame,
               any_value(s.timestamp_s) AS timestamp_s,
               CASE WHEN a.kind = 'weighted'
                    THEN alpha * max(s.score) FILTER (WHERE s.model = a.s1)
                         + (1 - alpha) * max(s.score) FILTER (WHERE s.model = a.s2)
                    ELSE max(s.score)
               END AS score,
               CASE WHEN a.kind = 'weighted'
                    THEN alpha * max(s.anomaly) FILTER (WHERE s.model = a.s1)
                         + (1 - alpha) * max(s.anomaly) FILTER (WHERE s.model = a.s2)
                    ELSE max(s.anomaly)
               END AS raw_score,
               -- the region and the stream it comes from, in one arg_max
               arg_max(struct_insert(region_of(s.tiles, s.box_x0, s.box_y0, s.box_x1, s.box_y1,
                                               s.patch_x0, s.patch_y0, s.patch_x1, s.patch_y1),
                                     model := s.model),
                       box_key(s.psnr, s.model, s.usual)) AS r
        FROM smoothed_usual(sigma, run, normalise) AS s
        JOIN auto_fusion(alpha := alpha, run := run) AS a
            ON a.run_id = s.run_id AND (s.model = a.s1 OR s.model = a.s2)
        WHERE fusion = 'auto'
        GROUP BY s.run_id, s.video_id, s.frame, a.name, a.kind
        HAVING count(DISTINCT s.model) = CASE WHEN a.kind = 'weighted' THEN 2 ELSE 1 END
    ) AS m
    UNION ALL
    -- No row: raises for an unknown fusion or stream (see check_fusion). Every column
    -- depends on g.ok, so no filter pushed down from flags() or events() can be folded to
    -- false at planning time and drop the check.
    SELECT CASE WHEN g.ok THEN NULL ELSE '' END, CASE WHEN g.ok THEN NULL ELSE '' END,
           CASE WHEN g.ok THEN NULL ELSE '' END, CASE WHEN g.ok THEN NULL ELSE 0 END::BIGINT,
           CASE WHEN g.ok THEN NULL ELSE 0 END::DOUBLE, CASE WHEN g.ok THEN NULL ELSE 0 END::DOUBLE,
           NULL::DOUBLE, NULL::VARCHAR, NULL::SMALLINT, NULL::INTEGER, NULL::INTEGER, NULL::INTEGER, NULL::INTEGER,
           NULL::INTEGER, NULL::INTEGER, NULL::INTEGER, NULL::INTEGER
    FROM (SELECT check_fusion(fusion, streams, run) AS ok) AS g
    WHERE NOT g.ok;

-- roi keeps the frames that point inside any of its boxes, exclude drops those that point
-- inside any of its boxes (region_centre: the worst patch's centre, else the worst tile's).
-- Frames with no location in the frame (v1 rows, whole-frame scoring without an error-map
-- location) pass both unchanged. A malformed roi or exclude raises as soon as a row meets
-- the filter (checked_boxes, outside the CASE of points_into, so also for rows without a
-- location); without roi and exclude the filter folds to true. (One branch per case, as
-- normalised() does, made events() 1.4x slower: two copies of the fusion in one plan.)
CREATE OR REPLACE MACRO fused(fusion := 'auto', alpha := 0.5, streams := ['fp', 'fr'],
                              sigma := 10, run := NULL, normalise := 'video',
                              roi := NULL, exclude := NULL) AS TABLE
    SELECT f.* EXCLUDE (tiles)
    FROM fused_unfiltered(fusion, alpha, streams, sigma, run, normalise) AS f
    WHERE (roi IS NULL
           OR (checked_boxes(roi, 'roi') IS NOT NULL
               AND coalesce(points_into(f.tiles, f.box_x0, f.box_y0, f.box_x1, f.box_y1,
                                        f.patch_x0, f.patch_y0, f.patch_x1, f.patch_y1,
                                        checked_boxes(roi, 'roi')), true)))
      AND (exclude IS NULL
           OR (checked_boxes(exclude, 'exclude') IS NOT NULL
               AND NOT coalesce(points_into(f.tiles, f.box_x0, f.box_y0, f.box_x1, f.box_y1,
                                            f.patch_x0, f.patch_y0, f.patch_x1, f.patch_y1,
                                            checked_boxes(exclude, 'exclude')), false)));

CREATE OR REPLACE MACRO flags(threshold := 0.7, adaptive_k := NULL, threshold_name := NULL,
                              fusion := 'auto', alpha := 0.5, streams := ['fp', 'fr'],
                              sigma := 10, run := NULL, roi := NULL, exclude := NULL) AS TABLE
    SELECT x.run_id, x.video_id, x.fusion, x.frame, x.timestamp_s, x.score, x.raw_score,
           x.box_model, x.thr AS threshold, x.score > x.thr AS flagged,
           x.box_x0, x.box_y0, x.box_x1, x.box_y1, x.patch_x0, x.patch_y0, x.patch_x1, x.patch_y1
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
        FROM fused(fusion := fusion, alpha := alpha, streams := streams, sigma := sigma, run := run,
                   roi := roi, exclude := exclude) AS f
        WHERE adaptive_k IS NULL
        UNION ALL
        -- Per video: mean + k * population standard deviation of its fused scores.
        SELECT f.*,
               avg(f.score) OVER v + adaptive_k * coalesce(stddev_pop(f.score) OVER v, 0) AS thr
        FROM fused(fusion := fusion, alpha := alpha, streams := streams, sigma := sigma, run := run,
                   roi := roi, exclude := exclude) AS f
        WHERE adaptive_k IS NOT NULL
        WINDOW v AS (PARTITION BY f.run_id, f.video_id, f.fusion)
    ) AS x;

-- Gaps and islands: consecutive flagged frames share frame - row_number(); the islands
-- (few) are then merged with a running sum over "starts a new event" marks. A strided scan
-- (every N-th frame) makes each flagged frame its own island, and merge_gap >= N - 1 joins
-- them (the default 3 covers strides up to 4); start and end stay source frames.
CREATE OR REPLACE MACRO events(threshold := 0.7, min_frames := 5, merge_gap := 3,
                               adaptive_k := NULL, threshold_name := NULL,
                               fusion := 'auto', alpha := 0.5, streams := ['fp', 'fr'],
                               sigma := 10, run := NULL, roi := NULL, exclude := NULL) AS TABLE
    WITH flagged AS (
        SELECT g.run_id, g.video_id, g.fusion, g.frame, g.timestamp_s, g.score, g.raw_score,
               g.box_model, g.threshold AS thr, g.box_x0, g.box_y0, g.box_x1, g.box_y1,
               g.patch_x0, g.patch_y0, g.patch_x1, g.patch_y1,
               g.frame - row_number() OVER (PARTITION BY g.run_id, g.video_id, g.fusion
                                            ORDER BY g.frame) AS island
        FROM flags(threshold := threshold, adaptive_k := adaptive_k,
                   threshold_name := threshold_name, fusion := fusion, alpha := alpha,
                   streams := streams, sigma := sigma, run := run, roi := roi,
                   exclude := exclude) AS g
        WHERE g.flagged
    ),
    islands AS (
        SELECT i.run_id, i.video_id, i.fusion, i.island, min(i.frame) AS s, max(i.frame) AS e,
               min(i.timestamp_s) AS s_s, max(i.timestamp_s) AS e_s, count(*) AS n,
               max(i.score) AS peak, sum(i.score) AS total, any_value(i.thr) AS thr
        FROM flagged AS i
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
    -- Per event and box stream: how many of its flagged frames carry that stream's box
    -- (box_model), and of those the frame with the highest score before smoothing (the
    -- first, on a tie) and where it points.
    witnesses AS (
        SELECT k.run_id, k.video_id, k.fusion, k.ev, f.box_model, count(*) AS carried,
               arg_max({'frame': f.frame, 'raw': f.raw_score, 'box_x0': f.box_x0,
                        'box_y0': f.box_y0, 'box_x1': f.box_x1, 'box_y1': f.box_y1,
                        'patch_x0': f.patch_x0, 'patch_y0': f.patch_y0,
                        'patch_x1': f.patch_x1, 'patch_y1': f.patch_y1},
                       {'s': f.raw_score, 'f': -f.frame}) AS pk
        FROM flagged AS f
        JOIN marked AS k ON k.run_id = f.run_id AND k.video_id = f.video_id
                        AND k.fusion = f.fusion AND k.island = f.island
        GROUP BY k.run_id, k.video_id, k.fusion, k.ev, f.box_model
    ),
    -- The event's peak frame: that frame of the stream whose box most of its frames carry
    -- (ties: the higher such frame, then the later name). Smoothing says when; the smoothed
    -- maximum is the middle of the densest stretch, whose own box is often on whatever else
    -- moves then; the single highest frame is often a passer-by's spike in a loiterer's
    -- event, while presence boxes the loiterer in most of its frames
    -- (docs/evaluation.md, "Peak frame").
    peaks AS (
        SELECT w.run_id, w.video_id, w.fusion, w.ev,
               arg_max(w.pk, {'n': w.carried, 's': w.pk.raw, 'm': w.box_model}) AS pk
        FROM witnesses AS w
        GROUP BY w.run_id, w.video_id, w.fusion, w.ev
    ),
    merged AS (
        SELECT k.run_id, k.video_id, k.fusion, k.ev, min(k.s) AS start_frame,
               max(k.e) AS end_frame, min(k.s_s) AS start_s, max(k.e_s) AS end_s,
               sum(k.n)::BIGINT AS flagged_frames, max(k.peak) AS peak_score,
               sum(k.total) / sum(k.n) AS mean_score, any_value(k.thr) AS thr
        FROM marked AS k
        GROUP BY k.run_id, k.video_id, k.fusion, k.ev
        HAVING max(k.e) - min(k.s) + 1 >= min_frames
    )
    SELECT d.run_id, d.video_id, d.fusion,
           row_number() OVER (PARTITION BY d.run_id, d.video_id, d.fusion
                              ORDER BY d.start_frame) AS event_id,
           d.start_frame, d.end_frame, d.start_s, d.end_s,
           d.end_frame - d.start_frame + 1 AS frames, d.flagged_frames,
           d.peak_score, d.mean_score, d.thr AS threshold, p.pk.frame AS peak_frame,
           p.pk.box_x0 AS box_x0, p.pk.box_y0 AS box_y0, p.pk.box_x1 AS box_x1,
           p.pk.box_y1 AS box_y1, p.pk.patch_x0 AS patch_x0, p.pk.patch_y0 AS patch_y0,
           p.pk.patch_x1 AS patch_x1, p.pk.patch_y1 AS patch_y1
    FROM merged AS d
    JOIN peaks AS p ON p.run_id = d.run_id AND p.video_id = d.video_id
                   AND p.fusion = d.fusion AND p.ev = d.ev
    ORDER BY d.run_id, d.video_id, d.fusion, d.start_frame;

-- where in the frame, over time -------------------------------------------------------------

-- Per time bucket of bucket_s seconds, the k boxes of the video (the worst tile's box, so
-- whole-frame rows give the whole frame; rows without a box, as in v1 stores, none) with the
-- highest fused score in that bucket, best first: rank, the box, its peak score, the frame
-- and time of that peak and its worst patch, and how many frames of the bucket point at it.
--   SELECT * FROM top_boxes('cam01-3fa2c1d0', k := 3, bucket_s := 60, sigma := 0);
CREATE OR REPLACE MACRO top_boxes(video, k := 5, bucket_s := 10, fusion := 'auto', alpha := 0.5,
                                  streams := ['fp', 'fr'], sigma := 10, run := NULL,
                                  normalise := 'video', roi := NULL, exclude := NULL) AS TABLE
    SELECT b.run_id, b.video_id, b.fusion, b.bucket, b.bucket * bucket_s AS start_s,
           (b.bucket + 1) * bucket_s AS end_s, b.rank, b.box_x0, b.box_y0, b.box_x1, b.box_y1,
           b.peak_score, b.pk.frame AS peak_frame, b.pk.timestamp_s AS peak_s, b.frames,
           b.pk.patch_x0 AS patch_x0, b.pk.patch_y0 AS patch_y0, b.pk.patch_x1 AS patch_x1,
           b.pk.patch_y1 AS patch_y1
    FROM (
        SELECT g.*, row_number() OVER (PARTITION BY g.run_id, g.fusion, g.bucket
                                       ORDER BY g.peak_score DESC, g.box_y0, g.box_x0,
                                                g.box_y1, g.box_x1) AS rank
        FROM (
            SELECT f.run_id, f.video_id, f.fusion,
                   CASE WHEN isfinite(f.timestamp_s)
                        THEN floor(f.timestamp_s / checked_bucket(bucket_s))::BIGINT END AS bucket,
                   f.box_x0, f.box_y0, f.box_x1, f.box_y1, max(f.score) AS peak_score,
                   count(*) AS frames,
                   arg_max({'frame': f.frame, 'timestamp_s': f.timestamp_s,
                            'patch_x0': f.patch_x0, 'patch_y0': f.patch_y0,
                            'patch_x1': f.patch_x1, 'patch_y1': f.patch_y1},
                           {'s': f.score, 'f': -f.frame}) AS pk
            FROM fused(fusion := fusion, alpha := alpha, streams := streams, sigma := sigma,
                       run := run, normalise := normalise, roi := roi, exclude := exclude) AS f
            WHERE f.video_id = video AND f.box_x0 IS NOT NULL
            GROUP BY f.run_id, f.video_id, f.fusion, bucket, f.box_x0, f.box_y0, f.box_x1, f.box_y1
        ) AS g
    ) AS b
    WHERE b.rank <= checked_k(k)
    UNION ALL
    -- No row: raises for an unknown video (see check_video).
    SELECT CASE WHEN g.ok THEN NULL ELSE '' END, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM (SELECT check_video(video, run) AS ok) AS g
    WHERE NOT g.ok
    ORDER BY 1, 2, 3, 4, 7;
