//! The `particulars` table: what was read from a referral, and what a person made of it.
//!
//! Owns the SQL of particulars (store, list, confirm, correct, erase). Must not: decide what a
//! particular says (that is [`crate::core::particulars`]), or log a value.

use super::{Store, StoreError, Tx, ts};
use crate::core::particulars::{Confidence, Field, Particular, State};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;

fn read(r: &sqlx::sqlite::SqliteRow) -> Result<(i64, Particular), StoreError> {
    let word = |col: &str| -> Result<String, StoreError> { Ok(r.try_get::<String, _>(col)?) };
    let bad = |what: &str, v: String| StoreError::Corrupt(format!("particulars: {what} `{v}`"));
    let field = word("field")?;
    let confidence = word("confidence")?;
    let state = word("state")?;
    Ok((
        r.try_get("case_id")?,
        Particular {
            field: Field::parse(&field).ok_or_else(|| bad("field", field.clone()))?,
            value: word("value")?,
            source: word("source")?,
            label: word("label")?,
            confidence: Confidence::parse(&confidence)
                .ok_or_else(|| bad("confidence", confidence.clone()))?,
            state: State::parse(&state).ok_or_else(|| bad("state", state.clone()))?,
            decided_by: r.try_get("decided_by")?,
        },
    ))
}

/// Rows of particulars by case, each case's in field order.
fn by_case(rows: &[sqlx::sqlite::SqliteRow]) -> Result<BTreeMap<i64, Vec<Particular>>, StoreError> {
    let mut out: BTreeMap<i64, Vec<Particular>> = BTreeMap::new();
    for r in rows {
        let (case, p) = read(r)?;
        out.entry(case).or_default().push(p);
    }
    for ps in out.values_mut() {
        ps.sort_by_key(|p| p.field);
    }
    Ok(out)
}

impl Store {
    /// Store what was read from a case's referral (a field already stored is left as it is).
    pub async fn add_particulars(
        tx: &mut Tx<'_>,
        case_id: i64,
        found: &[Particular],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for p in found {
            sqlx::query(
                "INSERT INTO particulars (case_id, field, value, source, label, confidence, state, \
                 extracted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, field) DO NOTHING",
            )
            .bind(case_id)
            .bind(p.field.as_str())
            .bind(&p.value)
            .bind(&p.source)
            .bind(&p.label)
            .bind(p.confidence.as_str())
            .bind(p.state.as_str())
            .bind(ts(now))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// A case's particulars not erased, in field order.
    pub async fn particulars(&self, case_id: i64) -> Result<Vec<Particular>, StoreError> {
        let rows = sqlx::query(
            "SELECT case_id, field, value, source, label, confidence, state, decided_by \
             FROM particulars WHERE case_id = ? AND erased_at IS NULL ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| read(r).map(|(_, p)| p))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|p| p.field);
        Ok(out)
    }

    /// Every case's particulars not erased, by case (the views read them once for all cases).
    pub async fn all_particulars(&self) -> Result<BTreeMap<i64, Vec<Particular>>, StoreError> {
        let rows = sqlx::query(
            "SELECT case_id, field, value, source, label, confidence, state, decided_by \
             FROM particulars WHERE erased_at IS NULL ORDER BY case_id, field",
        )
        .fetch_all(&self.pool)
        .await?;
        by_case(&rows)
    }

    /// The particulars not erased of the cases among `ids` (at most a few thousand), by case.
    pub async fn particulars_among(
        &self,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<Particular>>, StoreError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list = super::placeholders(ids.len());
        let sql = format!(
            "SELECT case_id, field, value, source, label, confidence, state, decided_by \
             FROM particulars WHERE erased_at IS NULL AND case_id IN ({list}) ORDER BY case_id, field"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        by_case(&query.fetch_all(&self.pool).await?)
    }

    /// A person checked a particular: confirmed it as it is (`value` None) or gave the right one
    /// (a field nothing was read for is added). Returns whether a row changed.
    pub async fn decide_particular(
        tx: &mut Tx<'_>,
        case_id: i64,
        field: Field,
        value: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = match value {
            None => sqlx::query(
                "UPDATE particulars SET state = 'confirmed', decided_by = ?, decided_at = ? \
                 WHERE case_id = ? AND field = ? AND erased_at IS NULL",
            )
            .bind(by)
            .bind(ts(now))
            .bind(case_id)
            .bind(field.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            Some(v) => sqlx::query(
                "INSERT INTO particulars (case_id, field, value, source, label, confidence, state, \
                 extracted_at, decided_by, decided_at) \
                 VALUES (?, ?, ?, 'given by a person', '', 'high', 'corrected', ?, ?, ?) \
                 ON CONFLICT (case_id, field) DO UPDATE SET value = excluded.value, \
                 state = 'corrected', decided_by = excluded.decided_by, \
                 decided_at = excluded.decided_at, erased_at = NULL",
            )
            .bind(case_id)
            .bind(field.as_str())
            .bind(v)
            .bind(ts(now))
            .bind(by)
            .bind(ts(now))
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        };
        Ok(done > 0)
    }

    /// The cases with particulars still holding values (retention's second look: a value typed
    /// in after the case's mail was erased).
    pub async fn cases_with_particulars(&self) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT case_id FROM particulars WHERE erased_at IS NULL ORDER BY case_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Erase a case's particulars (retention): values, sources and labels emptied. Returns how
    /// many rows held content and how many bytes.
    pub async fn erase_particulars(
        tx: &mut Tx<'_>,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(value) + LENGTH(source) + LENGTH(label)), 0) \
             AS bytes FROM particulars WHERE case_id = ? AND erased_at IS NULL",
        )
        .bind(case_id)
        .fetch_one(&mut **tx)
        .await?;
        let (n, bytes): (i64, i64) = (row.try_get("n")?, row.try_get("bytes")?);
        if n > 0 {
            sqlx::query(
                "UPDATE particulars SET value = '', source = '', label = '', erased_at = ? \
                 WHERE case_id = ? AND erased_at IS NULL",
            )
            .bind(ts(now))
            .bind(case_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok((n, bytes))
    }
}
