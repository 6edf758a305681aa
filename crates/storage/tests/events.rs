//! The event log against a real PostgreSQL: events written with their
//! changes, in the order they became visible, none for a change rolled
//! back, one for a whole import.

use std::sync::Arc;

use diesel::Connection as _;
use futures_util::StreamExt;
use maveraa_domain::ports::EventLog;
use maveraa_domain::usecases::ContactService;
use maveraa_domain::{
    ContactName, ContactPatch, Event, EventQuery, ImportRow, Labels, NewContact, OnDuplicate,
    PhoneNumber, SystemClock, WorkspaceId,
};
use maveraa_storage::testing::{Fixture, fixture, workspace};
use serde_json::{Value, json};

fn new_contact(name: &str, phone: &str, labels: &str) -> NewContact {
    NewContact {
        name: ContactName::parse("name", name).expect("name"),
        phone: PhoneNumber::parse("phone", phone).expect("phone"),
        labels: Labels::parse_csv("labels", labels).expect("labels"),
    }
}

/// Places what is committed, then reads the workspace's events after
/// `after`.
async fn events_after(f: &Fixture, ws: WorkspaceId, after: u64) -> Vec<Event> {
    f.store.sequence(5000).await.expect("sequence");
    f.store
        .list(
            ws,
            &EventQuery {
                after,
                limit: 1000,
                types: Vec::new(),
            },
        )
        .await
        .expect("list")
}

fn data(e: &Event) -> Value {
    serde_json::from_str(&e.data).expect("json")
}

#[tokio::test]
async fn contact_changes_are_logged_in_order_in_the_apis_shape() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let svc = ContactService::new(f.store.clone(), Arc::new(SystemClock));
    let jane = svc
        .create(ws, new_contact("Jane", "6281234567890", "Lead, Website"))
        .await
        .expect("create");
    svc.create(other, new_contact("Elsewhere", "6281234567890", ""))
        .await
        .expect("create");
    svc.update(
        ws,
        jane.id,
        ContactPatch {
            name: Some(ContactName::parse("name", "Jane Smith").expect("name")),
            ..ContactPatch::default()
        },
    )
    .await
    .expect("update");
    svc.delete(ws, jane.id).await.expect("delete");

    let events = events_after(&f, ws, 0).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["contact.created", "contact.updated", "contact.deleted"]
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(
        data(&events[0]),
        json!({"_id": jane.id.to_string(), "name": "Jane", "phone": "6281234567890",
               "labels": ["Lead", "Website"],
               "createdAt": jane.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()})
    );
    assert_eq!(data(&events[1])["name"], "Jane Smith");
    assert_eq!(data(&events[2])["_id"], jane.id.to_string());
    // Only the workspace's own; after a position, only what follows.
    assert_eq!(events_after(&f, other, 0).await.len(), 1);
    let rest = events_after(&f, ws, events[0].position).await;
    assert_eq!(rest.len(), 2);
    let only = f
        .store
        .list(
            ws,
            &EventQuery {
                after: 0,
                limit: 1000,
                types: vec!["contact.deleted".into()],
            },
        )
        .await
        .expect("list");
    assert_eq!(only.len(), 1);
}

#[tokio::test]
async fn a_rolled_back_change_leaves_no_event_and_a_late_commit_is_not_skipped() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let insert = |phone: &str| {
        format!(
            "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
             VALUES (gen_random_uuid(), '{ws}', 'X', '{phone}', '{{}}', now(), now())"
        )
    };
    // Rolled back: nothing.
    let url = f.url().to_owned();
    let mut early = diesel::PgConnection::establish(&url).expect("connect");
    use diesel::RunQueryDsl;
    early
        .transaction::<(), diesel::result::Error, _>(|conn| {
            diesel::sql_query(insert("6281000000001")).execute(conn)?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .ok();
    assert!(events_after(&f, ws, 0).await.is_empty());

    // An event written first but committed last gets the later position,
    // so a reader who read the other's is not past it.
    diesel::sql_query("BEGIN")
        .execute(&mut early)
        .expect("begin");
    diesel::sql_query(insert("6281000000002"))
        .execute(&mut early)
        .expect("insert");
    f.sql(&insert("6281000000003"));
    let first = events_after(&f, ws, 0).await;
    assert_eq!(first.len(), 1, "only what is committed is placed");
    // Rounds while the early one is open, and events after it: the
    // sequencer's floor must not pass the open transaction's number.
    for i in 4..8 {
        f.sql(&insert(&format!("628100000000{i}")));
        for _ in 0..3 {
            f.store.sequence(5000).await.expect("sequence");
        }
    }
    let before_commit = events_after(&f, ws, 0).await;
    assert_eq!(before_commit.len(), 5);
    let first = &before_commit[..1];
    assert_eq!(data(&first[0])["phone"], "6281000000003");
    diesel::sql_query("COMMIT")
        .execute(&mut early)
        .expect("commit");
    let later = events_after(&f, ws, before_commit[4].position).await;
    assert_eq!(later.len(), 1, "the late commit follows the cursor");
    assert_eq!(data(&later[0])["phone"], "6281000000002");
    assert!(later[0].position > first[0].position);
}

#[tokio::test]
async fn an_import_is_one_event() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = ContactService::new(f.store.clone(), Arc::new(SystemClock));
    let rows: Vec<ImportRow> = (0..300)
        .map(|i| ImportRow {
            row: i + 2,
            contact: new_contact("Imported", &(6281300000000 + i).to_string(), ""),
        })
        .collect();
    svc.import(
        ws,
        OnDuplicate::Skip,
        futures_util::stream::iter([Ok(rows)]).boxed(),
    )
    .await
    .expect("import")
    .expect("ended well");
    let events = events_after(&f, ws, 0).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "contacts.imported");
    assert_eq!(
        data(&events[0]),
        json!({"created": 300, "updated": 0, "skipped": 0, "duplicates": 0})
    );
    // The flag was the import's transaction's only: later writes log again.
    svc.create(ws, new_contact("After", "6281299999999", ""))
        .await
        .expect("create");
    assert_eq!(
        events_after(&f, ws, events[0].position).await[0].kind,
        "contact.created"
    );
}

#[tokio::test]
async fn old_events_are_pruned_and_positions_keep_growing() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = ContactService::new(f.store.clone(), Arc::new(SystemClock));
    for i in 0..3 {
        svc.create(ws, new_contact("C", &format!("62812345678{i:02}"), ""))
            .await
            .expect("create");
    }
    let before = events_after(&f, ws, 0).await;
    assert_eq!(before.len(), 3);
    f.sql("UPDATE events SET created_at = now() - interval '40 days'");
    let pruned = f
        .store
        .prune(chrono::Utc::now() - chrono::TimeDelta::days(30))
        .await
        .expect("prune");
    assert_eq!(pruned, 3);
    assert!(events_after(&f, ws, 0).await.is_empty());
    svc.create(ws, new_contact("D", "6281234567899", ""))
        .await
        .expect("create");
    let after = events_after(&f, ws, 0).await;
    assert_eq!(after.len(), 1);
    assert!(
        after[0].position > before[2].position,
        "a position is never given twice, even once the log is empty"
    );
}

#[tokio::test]
async fn a_deleted_workspace_takes_its_events_placed_or_not() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let svc = ContactService::new(f.store.clone(), Arc::new(SystemClock));
    svc.create(ws, new_contact("Placed", "6281234567801", ""))
        .await
        .expect("create");
    svc.create(other, new_contact("Kept", "6281234567802", ""))
        .await
        .expect("create");
    assert_eq!(events_after(&f, ws, 0).await.len(), 1);
    svc.create(ws, new_contact("Not placed", "6281234567803", ""))
        .await
        .expect("create");
    let of = |w: WorkspaceId| {
        format!(
            "SELECT count(*) AS n FROM events WHERE workspace_id = '{}'",
            w.as_uuid()
        )
    };
    assert_eq!(f.count(&of(ws)), 2);
    f.sql(&format!(
        "DELETE FROM workspaces WHERE id = '{}'",
        ws.as_uuid()
    ));
    assert_eq!(f.count(&of(ws)), 0);
    assert_eq!(events_after(&f, other, 0).await.len(), 1);
}
