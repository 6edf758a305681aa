//! Row comparisons for keyset paging: `(a, b) < ($1, $2)`.
//!
//! PostgreSQL reads a row comparison as one bound on a multi-column index
//! (the scan starts at the position and goes on from there), where
//! `a < $1 OR (a = $1 AND b < $2)` is a filter over the whole range. diesel
//! has no row comparison, and a `sql()` literal would make the statement
//! uncacheable, so this is a small typed expression.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::expression::{
    AppearsOnTable, Expression, MixedAggregates, SelectableExpression, ValidGrouping,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Bool;

/// A comparison operator of [`RowCmp`].
pub(crate) trait Operator: 'static {
    /// Its SQL.
    const SQL: &'static str;
}

/// `<`
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lt;
impl Operator for Lt {
    const SQL: &'static str = " < ";
}

/// `>`
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gt;
impl Operator for Gt {
    const SQL: &'static str = " > ";
}

/// `(left) op (right)`, each side a tuple of expressions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowCmp<L, R, Op> {
    left: L,
    right: R,
    _op: PhantomData<Op>,
}

/// `(left) < (right)`.
pub(crate) fn row_lt<L, R>(left: L, right: R) -> RowCmp<L, R, Lt> {
    RowCmp {
        left,
        right,
        _op: PhantomData,
    }
}

/// `(left) > (right)`.
pub(crate) fn row_gt<L, R>(left: L, right: R) -> RowCmp<L, R, Gt> {
    RowCmp {
        left,
        right,
        _op: PhantomData,
    }
}

impl<L, R, Op> Expression for RowCmp<L, R, Op> {
    type SqlType = Bool;
}

impl<L, R, Op: Operator> QueryFragment<Pg> for RowCmp<L, R, Op>
where
    L: QueryFragment<Pg>,
    R: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(");
        self.left.walk_ast(out.reborrow())?;
        out.push_sql(")");
        out.push_sql(Op::SQL);
        out.push_sql("(");
        self.right.walk_ast(out.reborrow())?;
        out.push_sql(")");
        Ok(())
    }
}

impl<L: QueryId, R: QueryId, Op: Operator> QueryId for RowCmp<L, R, Op> {
    type QueryId = RowCmp<L::QueryId, R::QueryId, Op>;
    const HAS_STATIC_QUERY_ID: bool = L::HAS_STATIC_QUERY_ID && R::HAS_STATIC_QUERY_ID;
}

impl<L, R, Op, QS> AppearsOnTable<QS> for RowCmp<L, R, Op>
where
    L: AppearsOnTable<QS>,
    R: AppearsOnTable<QS>,
{
}

impl<L, R, Op, QS> SelectableExpression<QS> for RowCmp<L, R, Op>
where
    L: SelectableExpression<QS>,
    R: SelectableExpression<QS>,
{
}

impl<L, R, Op, GB> ValidGrouping<GB> for RowCmp<L, R, Op>
where
    L: ValidGrouping<GB>,
    R: ValidGrouping<GB>,
    L::IsAggregate: MixedAggregates<R::IsAggregate>,
{
    type IsAggregate = <L::IsAggregate as MixedAggregates<R::IsAggregate>>::Output;
}

/// The generic plan of a real query, as the read pool plans it
/// (`force_generic_plan`, no sequential scans): for tests that check a page
/// is read through its index whatever the position.
#[cfg(test)]
pub(crate) mod explain {
    use diesel::connection::SimpleConnection;
    use diesel::pg::{Pg, PgConnection};
    use diesel::query_builder::QueryFragment;
    use diesel::sql_types::Text;
    use diesel::{QueryResult, QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }

    /// The plan of `query` prepared (its parameters stay parameters) and
    /// executed with `args`, one line per row.
    pub(crate) fn generic_plan<Q: QueryFragment<Pg>>(
        conn: &mut PgConnection,
        query: &Q,
        args: &str,
    ) -> QueryResult<String> {
        let sql = diesel::debug_query::<Pg, _>(query).to_string();
        let sql = sql.split(" -- binds: ").next().unwrap_or_default();
        conn.batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
             PREPARE keyset_plan AS {sql}"
        ))?;
        let lines =
            diesel::sql_query(format!("EXPLAIN EXECUTE keyset_plan({args})")).load::<Line>(conn);
        conn.batch_execute("DEALLOCATE keyset_plan; RESET plan_cache_mode; RESET enable_seqscan")?;
        Ok(lines?
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n"))
    }
}
