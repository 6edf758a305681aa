//! Hand-written SQL that diesel keeps prepared on each connection.
//!
//! `diesel::sql_query` is never cached: PostgreSQL parses and plans it on
//! every call, which for the multi-CTE statements of the hot paths
//! (enqueue, claim, record, webhooks) costs about as much as running them.
//! [`Sql`] is the same text, parsed once here, that diesel's statement
//! cache may keep (keyed by the SQL text and bind types).

use std::fmt;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// A piece of a statement: text, or a parameter (0-based).
#[derive(Debug)]
enum Piece {
    Text(String),
    Param(usize),
}

/// A statement with `$n` parameters, parsed for [`Sql::query`].
#[derive(Debug)]
pub(crate) struct Sql {
    pieces: Vec<Piece>,
    params: usize,
}

impl Sql {
    /// Parses `text`. A parameter used twice is sent twice.
    pub(crate) fn new(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut params = 0;
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let number = rest[at + 1..at + 1 + digits].parse::<usize>().ok();
            match number.filter(|n| *n > 0) {
                Some(n) => {
                    pieces.push(Piece::Text(rest[..at].to_owned()));
                    pieces.push(Piece::Param(n - 1));
                    params = params.max(n);
                    rest = &rest[at + 1 + digits..];
                }
                // `$` not followed by a number: plain text (a `$$` quote).
                None => {
                    pieces.push(Piece::Text(rest[..=at].to_owned()));
                    rest = &rest[at + 1..];
                }
            }
        }
        pieces.push(Piece::Text(rest.to_owned()));
        Self { pieces, params }
    }

    /// A query of this statement; bind every parameter, in order.
    pub(crate) fn query(&self) -> SqlQuery<'_> {
        SqlQuery {
            sql: self,
            binds: Vec::with_capacity(self.params),
        }
    }
}

/// One bound value.
struct Bind<ST, T> {
    value: T,
    _type: std::marker::PhantomData<ST>,
}

impl<ST, T> QueryFragment<Pg> for Bind<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.value)
    }
}

/// A [`Sql`] statement with its parameters.
#[must_use = "queries run only when loaded or executed"]
pub(crate) struct SqlQuery<'a> {
    sql: &'a Sql,
    binds: Vec<Box<dyn QueryFragment<Pg> + 'a>>,
}

impl fmt::Debug for SqlQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets or message text: never printed.
        f.debug_struct("SqlQuery")
            .field("binds", &self.binds.len())
            .finish_non_exhaustive()
    }
}

impl<'a> SqlQuery<'a> {
    /// Binds the next parameter.
    pub(crate) fn bind<ST, T>(mut self, value: T) -> Self
    where
        ST: 'a,
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + 'a,
    {
        self.binds.push(Box::new(Bind::<ST, T> {
            value,
            _type: std::marker::PhantomData,
        }));
        self
    }
}

impl QueryFragment<Pg> for SqlQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.binds.len() != self.sql.params {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "statement has {} parameters, {} bound",
                    self.sql.params,
                    self.binds.len()
                )
                .into(),
            ));
        }
        for piece in &self.sql.pieces {
            match piece {
                Piece::Text(text) => out.push_sql(text),
                Piece::Param(i) => match self.binds.get(*i) {
                    Some(bind) => bind.walk_ast(out.reborrow())?,
                    None => {
                        return Err(diesel::result::Error::QueryBuilderError(
                            format!("parameter ${} not bound", i + 1).into(),
                        ));
                    }
                },
            }
        }
        Ok(())
    }
}

impl QueryId for SqlQuery<'_> {
    type QueryId = ();
    // No static id: diesel caches it by its SQL text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for SqlQuery<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for SqlQuery<'_> {}

/// Runs `f` in a transaction whose prepared statements use their generic
/// plans. PostgreSQL's generic plan for a statement over `unnest($n)`
/// expects ten rows where a custom plan sees the array's length, so it
/// judges the generic plan dearer and plans the statement anew at every
/// run: for the outbox's record that planning cost as much as running it
/// (0.3-1.1 ms). Only for statements whose plan looks rows up by key
/// whatever the values, so that the generic plan is the same plan (not one
/// with `LIMIT $n`: see the claim). The setting goes with the `BEGIN` in
/// one round trip and ends with the transaction.
pub(crate) fn with_generic_plans<T, E, F>(conn: &mut diesel::pg::PgConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut diesel::pg::PgConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    AnsiTransactionManager::begin_transaction_sql(
        conn,
        "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan",
    )?;
    match f(conn) {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => match AnsiTransactionManager::rollback_transaction(conn) {
            // The first error tells more than a failed rollback (the
            // connection is then marked broken and not reused).
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_found_and_may_repeat() {
        let sql = Sql::new("SELECT $1, $2 WHERE x = $1 AND y = '$$' AND z = $10");
        assert_eq!(sql.params, 10);
        let params: Vec<usize> = sql
            .pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Param(i) => Some(*i),
                Piece::Text(_) => None,
            })
            .collect();
        assert_eq!(params, vec![0, 1, 0, 9]);
        let text: String = sql
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Param(i) => format!("${}", i + 1),
            })
            .collect();
        assert_eq!(text, "SELECT $1, $2 WHERE x = $1 AND y = '$$' AND z = $10");
    }
}
