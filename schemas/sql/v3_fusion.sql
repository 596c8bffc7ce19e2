-- raystack query layer, schema version 3, part 1 of 3: the fusion rules, as scalar macros
-- that read no table. Run first (v3_views.sql and v3_query.sql call them); Python's
-- raystack.query.fusion evaluates them on an empty DuckDB connection, so the rule of
-- fusion := 'auto' is written here once, and raystack sql needs no Python to apply it.

-- Canonical name of a fusion, as stored with calibrated thresholds and shown in results:
-- 'fp', 'weighted:0.5:fp,fr', 'max:fp,fr'. Raises on an invalid combination. A weighted
-- fusion of more than two streams weighs the mean of all but the last by alpha against
-- the last (weighted:0.75:fp,fr,presence = 0.75 x mean(fp, fr) + 0.25 x presence).
CREATE OR REPLACE MACRO fusion_name(fusion, alpha, streams) AS
    CASE
        WHEN fusion IS NULL THEN error('fusion must not be NULL')
        WHEN fusion = 'weighted' AND (len(streams) < 2 OR len(list_distinct(streams)) <> len(streams))
            THEN error('fusion weighted needs two or more different streams, got '
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

-- The label-free reference streams, there to be compared with: 'auto' never fuses them
-- ('presence' is the scene prior's: raystack/scene_prior.py).
CREATE OR REPLACE MACRO auto_baselines() AS ['diff', 'motion', 'presence'];

-- The levels of a run's low tail that a fused frame's box is ranked by (run_tail of
-- v3_query.sql). Coarse on purpose: every score in a run's lowest 5% is "rare" alike, and
-- among rare scores the deeper dip in units of its stream's spread (run_z) wins, so one
-- stream's lone noisy frame does not outrank another's long, deep dip.
CREATE OR REPLACE MACRO tail_levels() AS [0.05, 0.1, 0.2, 0.5]::DOUBLE[];

-- Streams whose box a fused frame takes only when the fusion has no other stream: FR's
-- error is a flow reconstruction's, worst where the flow is largest (the people nearest
-- the camera). On the street benchmark's runs its own box hit the anomaly in 0.27 to 0.44
-- of the event frames, FP's in 0.58 to 0.67 (bench/box_rules.py, docs/evaluation.md
-- "Which stream's box").
CREATE OR REPLACE MACRO box_last_streams() AS ['fr'];

-- The streams 'auto' chooses among: a run's streams less the baselines, or all of them
-- when the run has nothing else.
CREATE OR REPLACE MACRO auto_learned(streams) AS
    CASE WHEN len(list_filter(streams, lambda m: NOT list_contains(auto_baselines(), m))) > 0
         THEN list_sort(list_filter(streams, lambda m: NOT list_contains(auto_baselines(), m)))
         ELSE list_sort(streams)
    END;

-- What fusion := 'auto' means for a run scoring streams: {kind, s1, s2}. Its only learned
-- stream (kind 'stream', s1 = s2 = it), else kind 'weighted' over the one pair of
-- (fp, fr) and (m2s2l_app, m2s2l_mot) it has (the frame stream first: alpha weighs it);
-- kind NULL when there is no such pair or there are both (the caller raises, naming them).
CREATE OR REPLACE MACRO auto_choice(streams) AS
    CASE WHEN len(auto_learned(streams)) = 1
             THEN {'kind': 'stream', 's1': auto_learned(streams)[1], 's2': auto_learned(streams)[1]}
         WHEN list_has_all(auto_learned(streams), ['fp', 'fr'])
              AND NOT list_has_all(auto_learned(streams), ['m2s2l_app', 'm2s2l_mot'])
             THEN {'kind': 'weighted', 's1': 'fp', 's2': 'fr'}
         WHEN list_has_all(auto_learned(streams), ['m2s2l_app', 'm2s2l_mot'])
              AND NOT list_has_all(auto_learned(streams), ['fp', 'fr'])
             THEN {'kind': 'weighted', 's1': 'm2s2l_app', 's2': 'm2s2l_mot'}
         ELSE {'kind': NULL::VARCHAR, 's1': NULL::VARCHAR, 's2': NULL::VARCHAR}
    END;
