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

/// `EXPLAIN` of a real query with its real parameters, planned as the read
/// pool plans (generic plans, no sequential scans): for tests that check a
/// page is read through its index.
#[cfg(test)]
pub(crate) mod explain {
    use diesel::connection::SimpleConnection;
    use diesel::pg::{Pg, PgConnection};
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::sql_types::Text;
    use diesel::{QueryResult, RunQueryDsl};

    struct Explain<Q>(Q);

    impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Explain<Q> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("EXPLAIN ");
            self.0.walk_ast(out.reborrow())
        }
    }

    impl<Q> QueryId for Explain<Q> {
        type QueryId = ();
        const HAS_STATIC_QUERY_ID: bool = false;
    }

    impl<Q> Query for Explain<Q> {
        type SqlType = Text;
    }

    impl<Q, C> RunQueryDsl<C> for Explain<Q> {}

    /// The plan of `query`, one line per row.
    pub(crate) fn plan<Q: QueryFragment<Pg>>(
        conn: &mut PgConnection,
        query: Q,
    ) -> QueryResult<String> {
        conn.batch_execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")?;
        let lines = Explain(query).load::<String>(conn);
        conn.batch_execute("RESET plan_cache_mode; RESET enable_seqscan")?;
        Ok(lines?.join("\n"))
    }
}
