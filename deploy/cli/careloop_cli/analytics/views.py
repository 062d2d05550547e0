"""The measures programs report, as DuckDB views over ``events``. Definitions: README, Events and analytics.

Typed views per event type first (one column per field the measures use), then one row per referral,
follow-up due point, screening and network gap, then one view per measure grouped by agency and month.
Times are the events' own (``changed_at``, ``due_at``, ...); a referral was made at its event's ce_time.
"""

from __future__ import annotations

import duckdb

T = "careloop"
MADE, MOVED, GAP, APPOINTED = (
    f"{T}.referral.{n}.v1"
    for n in (
        "referral_made",
        "referral_status_changed",
        "network_gap_detected",
        "appointment_status_changed",
    )
)
DUE, DONE, LATE, OFF = (
    f"{T}.followup.{n}.v1"
    for n in ("follow_up_due", "follow_up_completed", "follow_up_overdue", "follow_up_cancelled")
)
ASSESSED, REGISTERED, UPDATED = (
    f"{T}.intake.{n}.v1" for n in ("patient_assessed", "patient_registered", "patient_updated")
)

# Statuses that end a referral with the coded reason they require (Gravity SDOH task lifecycle).
CLOSED_WITH_REASON = ("rejected", "cancelled", "failed")


def _ts(field: str, of: str = "") -> str:
    return f"CAST({of}data->>'{field}' AS TIMESTAMPTZ)"


VIEWS: dict[str, str] = {
    "referral_made": f"""
        SELECT event_id, patient_id, agency_id, occurred_at AS made_at,
               CAST(data->>'referral_id' AS UUID) AS referral_id,
               CAST(data->>'intervention_id' AS UUID) AS intervention_id,
               data->>'need' AS need, data->>'program_id' AS program_id,
               data->>'program_category' AS program_category,
               data->>'receiving_agency_id' AS receiving_agency_id, data->>'status' AS status,
               CAST(data->>'replaces_referral_id' AS UUID) AS replaces_referral_id
        FROM events WHERE event_type = '{MADE}'""",
    "referral_status_changed": f"""
        SELECT event_id, patient_id, agency_id, CAST(data->>'referral_id' AS UUID) AS referral_id,
               data->>'from_status' AS from_status, data->>'to_status' AS to_status,
               data->>'reason' AS reason, data->>'by_agency_id' AS by_agency_id,
               {_ts("changed_at")} AS changed_at
        FROM events WHERE event_type = '{MOVED}'""",
    # One row per referral: when it was made, sent, accepted, completed or closed with a reason.
    "referrals": f"""
        WITH made AS (
            SELECT referral_id, min(made_at) AS made_at, arg_min(agency_id, made_at) AS agency_id,
                   arg_min(program_id, made_at) AS program_id, arg_min(need, made_at) AS need,
                   arg_min(receiving_agency_id, made_at) AS receiving_agency_id,
                   arg_min(status, made_at) AS made_status
            FROM referral_made GROUP BY referral_id),
        moves AS (
            SELECT referral_id,
                   min(changed_at) FILTER (WHERE to_status = 'requested') AS requested_at,
                   min(changed_at) FILTER (WHERE to_status = 'accepted') AS accepted_at,
                   min(changed_at) FILTER (WHERE to_status = 'completed') AS completed_at,
                   min(changed_at) FILTER (WHERE to_status IN {CLOSED_WITH_REASON} AND reason IS NOT NULL)
                       AS closed_with_reason_at,
                   bool_or(to_status = 'entered-in-error') AS entered_in_error
            FROM referral_status_changed GROUP BY referral_id)
        SELECT m.referral_id, m.agency_id, m.program_id, m.need, m.receiving_agency_id, m.made_at,
               strftime(m.made_at, '%Y-%m') AS month,
               CASE WHEN m.made_status = 'requested' THEN m.made_at ELSE v.requested_at END AS sent_at,
               v.accepted_at, v.completed_at, v.closed_with_reason_at,
               coalesce(v.entered_in_error, false) AS entered_in_error,
               (v.accepted_at IS NOT NULL AND v.completed_at IS NOT NULL)
                   OR v.closed_with_reason_at IS NOT NULL AS loop_closed
        FROM made m LEFT JOIN moves v USING (referral_id)""",
    "measure_closed_loop": """
        SELECT agency_id, program_id, month, count(*) AS referrals,
               count(*) FILTER (WHERE loop_closed) AS closed,
               round(100.0 * count(*) FILTER (WHERE loop_closed) / count(*), 1) AS closed_pct,
               round(median(epoch(accepted_at - sent_at) / 3600.0), 2) AS median_hours_to_accept,
               round(median(epoch(completed_at - sent_at) / 3600.0), 2) AS median_hours_to_complete
        FROM referrals WHERE NOT entered_in_error
        GROUP BY agency_id, program_id, month""",
    # One row per appointment (a referral's booking for one time), with how it ended: attended (fulfilled),
    # missed (noshow), cancelled, moved (booked again for another time while still booked), or still booked.
    "appointments": f"""
        WITH ev AS (
            SELECT CAST(data->>'referral_id' AS UUID) AS referral_id, agency_id,
                   {_ts("starts_at")} AS starts_at, data->>'status' AS status,
                   {_ts("changed_at")} AS changed_at
            FROM events WHERE event_type = '{APPOINTED}'),
        ends AS (
            SELECT referral_id, starts_at, min(agency_id) AS agency_id, arg_max(status, changed_at) AS status,
                   max(changed_at) AS last_at
            FROM ev GROUP BY referral_id, starts_at),
        latest AS (SELECT referral_id, max(changed_at) AS at FROM ev GROUP BY referral_id)
        SELECT e.referral_id, e.agency_id, r.receiving_agency_id, r.program_id, e.starts_at,
               strftime(e.starts_at, '%Y-%m') AS month,
               CASE WHEN e.status = 'booked' AND e.last_at < l.at THEN 'moved' ELSE e.status END AS result
        FROM ends e JOIN latest l USING (referral_id) LEFT JOIN referrals r USING (referral_id)""",
    "measure_appointments": """
        SELECT agency_id, receiving_agency_id, program_id, month, count(*) AS appointments,
               count(*) FILTER (WHERE result = 'fulfilled') AS attended,
               count(*) FILTER (WHERE result = 'noshow') AS missed,
               count(*) FILTER (WHERE result = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE result = 'booked') AS pending,
               round(100.0 * count(*) FILTER (WHERE result = 'noshow')
                     / nullif(count(*) FILTER (WHERE result IN ('fulfilled', 'noshow')), 0), 1) AS missed_pct
        FROM appointments WHERE result <> 'moved'
        GROUP BY agency_id, receiving_agency_id, program_id, month""",
    "measure_rejection_reasons": """
        SELECT r.agency_id, r.program_id, strftime(s.changed_at, '%Y-%m') AS month, s.reason,
               count(DISTINCT s.referral_id) AS rejections
        FROM referral_status_changed s JOIN referrals r USING (referral_id)
        WHERE s.to_status = 'rejected'
        GROUP BY ALL""",
    # One row per due point (FollowUpDue is announced once per due point), with the first outcome recorded
    # between it and the follow-up's next due point, and when it became overdue.
    "follow_up_due_points": f"""
        WITH due AS (
            SELECT CAST(data->>'follow_up_id' AS UUID) AS follow_up_id, {_ts("due_at")} AS due_at,
                   min(agency_id) AS agency_id, min(data->>'reason') AS reason,
                   min(data->>'priority') AS priority
            FROM events WHERE event_type = '{DUE}' GROUP BY ALL),
        windows AS (
            SELECT *, lead(due_at) OVER (PARTITION BY follow_up_id ORDER BY due_at) AS next_due_at FROM due),
        done AS (
            SELECT CAST(data->>'follow_up_id' AS UUID) AS follow_up_id, {_ts("completed_at")} AS completed_at
            FROM events WHERE event_type = '{DONE}'),
        late AS (
            SELECT CAST(data->>'follow_up_id' AS UUID) AS follow_up_id, {_ts("due_at")} AS due_at,
                   min({_ts("overdue_since")}) AS overdue_since
            FROM events WHERE event_type = '{LATE}' GROUP BY ALL),
        called_off AS (
            SELECT CAST(data->>'follow_up_id' AS UUID) AS follow_up_id,
                   min({_ts("cancelled_at")}) AS cancelled_at
            FROM events WHERE event_type = '{OFF}' GROUP BY ALL),
        points AS (
            SELECT w.follow_up_id, w.due_at, w.agency_id, w.reason, w.priority, w.next_due_at,
                   min(d.completed_at) AS completed_at
            FROM windows w LEFT JOIN done d ON d.follow_up_id = w.follow_up_id AND d.completed_at >= w.due_at
                 AND (w.next_due_at IS NULL OR d.completed_at < w.next_due_at)
            GROUP BY ALL)
        SELECT p.* EXCLUDE (next_due_at), l.overdue_since, strftime(p.due_at, '%Y-%m') AS month,
               CASE WHEN p.completed_at IS NOT NULL
                             AND (l.overdue_since IS NULL OR p.completed_at <= l.overdue_since) THEN 'on-time'
                    WHEN p.completed_at IS NOT NULL THEN 'late'
                    WHEN l.overdue_since IS NOT NULL
                         AND (c.cancelled_at IS NULL OR c.cancelled_at > l.overdue_since) THEN 'missed'
                    WHEN c.cancelled_at IS NOT NULL THEN 'cancelled'
                    ELSE 'pending' END AS result
        FROM points p LEFT JOIN late l USING (follow_up_id, due_at)
             LEFT JOIN called_off c ON c.follow_up_id = p.follow_up_id AND p.next_due_at IS NULL
                  AND c.cancelled_at >= p.due_at""",
    "measure_follow_ups": """
        SELECT agency_id, month, count(*) AS due_points,
               count(*) FILTER (WHERE result = 'on-time') AS on_time,
               count(*) FILTER (WHERE result = 'late') AS late,
               count(*) FILTER (WHERE result = 'missed') AS missed,
               count(*) FILTER (WHERE result = 'pending') AS pending,
               count(*) FILTER (WHERE result = 'cancelled') AS cancelled,
               round(100.0 * count(*) FILTER (WHERE result = 'on-time')
                     / nullif(count(*) FILTER (WHERE result NOT IN ('pending', 'cancelled')), 0), 1)
                   AS on_time_pct
        FROM follow_up_due_points GROUP BY agency_id, month""",
    # The patient's postal area (first three characters) as last registered or updated before a time.
    "patient_areas": f"""
        SELECT patient_id, coalesce({_ts("registered_at")}, {_ts("updated_at")}) AS since,
               data->>'postal_area' AS postal_area
        FROM events WHERE event_type IN ('{REGISTERED}', '{UPDATED}')""",
    "screenings": f"""
        SELECT a.event_id, a.patient_id, a.agency_id, {_ts("assessed_at", "a.")} AS assessed_at,
               strftime({_ts("assessed_at", "a.")}, '%Y-%m') AS month,
               coalesce(p.postal_area, 'unknown') AS area,
               a.data->>'instrument' AS instrument,
               CAST(json_extract_string(a.data, '$.needs[*].code') AS VARCHAR[]) AS needs
        FROM (SELECT * FROM events WHERE event_type = '{ASSESSED}') a
        ASOF LEFT JOIN patient_areas p
            ON a.patient_id = p.patient_id AND {_ts("assessed_at", "a.")} >= p.since""",
    "measure_needs": """
        WITH screened AS (
            SELECT agency_id, area, month, count(DISTINCT patient_id) AS screened
            FROM screenings GROUP BY ALL),
        found AS (
            SELECT agency_id, area, month, need, count(DISTINCT patient_id) AS patients_with_need
            FROM (SELECT agency_id, area, month, patient_id, unnest(needs) AS need FROM screenings)
            GROUP BY ALL)
        SELECT f.agency_id, f.area, f.month, f.need, f.patients_with_need, s.screened,
               round(100.0 * f.patients_with_need / s.screened, 1) AS per_100_screened
        FROM found f JOIN screened s USING (agency_id, area, month)""",
    # A gap resolves when a referral is made for its intervention (referral's gaps store does the same).
    "network_gaps": f"""
        SELECT CAST(g.data->>'intervention_id' AS UUID) AS intervention_id, g.agency_id,
               g.data->>'need' AS need,
               g.data->>'program_category' AS program_category,
               coalesce(g.data->>'postal_area', 'unknown') AS area, g.data->>'language' AS language,
               {_ts("detected_at", "g.")} AS detected_at,
               strftime({_ts("detected_at", "g.")}, '%Y-%m') AS month,
               (SELECT min(m.made_at) FROM referral_made m
                WHERE m.intervention_id = CAST(g.data->>'intervention_id' AS UUID)
                  AND m.made_at >= {_ts("detected_at", "g.")}) AS resolved_at
        FROM events g WHERE g.event_type = '{GAP}'""",
    "measure_network_gaps": """
        SELECT agency_id, month, need, program_category, area, count(*) AS detected,
               count(*) FILTER (WHERE resolved_at IS NULL) AS still_open
        FROM network_gaps GROUP BY ALL""",
}


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, query in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")
