-- caseclerk schema, version 11: the particulars of a referral (issue 16).
--
-- What was read from the referral's form and body (the child's name or initials, date of birth,
-- incident date, death or serious harm, agencies named, borough, the referrer's agency), one row
-- per case and field: the value, where it came from (`source`: which attachment or the body;
-- `label`: the form's label), how sure (`confidence`: low, medium, high) and whether a person has
-- checked it (`state`: proposed, confirmed, corrected; `decided_by`, `decided_at`). Confirming and
-- correcting are also recorded as case events (field, who, why — never the value).
--
-- This is personal data: it is erased with the case's mail under the retention schedule (`value`,
-- `source` and `label` emptied, `erased_at` set; the row stays so the history's events still
-- name a field), and `caseclerk export-case` includes it.
CREATE TABLE IF NOT EXISTS particulars (
    id INTEGER PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases (id),
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    source TEXT NOT NULL,
    label TEXT NOT NULL,
    confidence TEXT NOT NULL,
    state TEXT NOT NULL,
    extracted_at TEXT NOT NULL,
    decided_by TEXT NULL,
    decided_at TEXT NULL,
    erased_at TEXT NULL,
    UNIQUE (case_id, field)
);
