//! Bulk imports against a real PostgreSQL: what each row does, one
//! transaction for all of them, and writers of the same workspace that do
//! not wait for it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use maveraa_domain::usecases::ContactService;
use maveraa_domain::{
    ContactName, ContactQuery, ImportAborted, ImportRow, ImportRows, ImportTally, Labels,
    NewContact, OnDuplicate, PhoneNumber, SystemClock, WorkspaceId,
};
use maveraa_storage::PoolSettings;
use maveraa_storage::testing::{Fixture, fixture, workspace};
use tokio::sync::mpsc;

fn contacts(f: &Fixture) -> ContactService {
    ContactService::new(f.store.clone(), Arc::new(SystemClock))
}

fn row(row: u64, name: &str, phone: &str, labels: &str) -> ImportRow {
    ImportRow {
        row,
        contact: NewContact {
            name: ContactName::parse("name", name).expect("name"),
            phone: PhoneNumber::parse("phone", phone).expect("phone"),
            labels: Labels::parse_csv("labels", labels).expect("labels"),
        },
    }
}

fn batches(batches: Vec<Vec<ImportRow>>) -> ImportRows {
    futures_util::stream::iter(batches.into_iter().map(Ok)).boxed()
}

/// The stored count and `count(*)` of the workspace's contacts.
fn counts(f: &Fixture, ws: WorkspaceId) -> (i64, i64) {
    f.contact_counts(ws)
}

async fn import(
    f: &Fixture,
    ws: WorkspaceId,
    on_duplicate: OnDuplicate,
    rows: Vec<Vec<ImportRow>>,
) -> ImportTally {
    contacts(f)
        .import(ws, on_duplicate, batches(rows))
        .await
        .expect("import")
        .expect("the rows ended well")
}

#[tokio::test]
async fn each_mode_meets_stored_phones_and_repeated_rows_as_it_says() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    let jane = svc
        .create(ws, row(0, "Jane", "6281000000001", "Lead").contact)
        .await
        .expect("create");

    // Skip: the stored phone and a repeat within one batch are skipped.
    let tally = import(
        &f,
        ws,
        OnDuplicate::Skip,
        vec![vec![
            row(2, "Jane again", "6281000000001", ""),
            row(3, "Ann", "6281000000002", "VIP, Lead"),
            row(4, "Ann twice", "6281000000002", ""),
        ]],
    )
    .await;
    assert_eq!(
        (
            tally.created,
            tally.updated,
            tally.skipped,
            tally.duplicates
        ),
        (1, 0, 2, 0)
    );
    let stored = svc.get(ws, jane.id).await.expect("jane");
    assert_eq!(
        stored.name.as_str(),
        "Jane",
        "skip leaves the stored contact"
    );

    // Update: changed rows update (keeping id and creation), an identical
    // one is skipped, a repeat updates what the earlier row wrote.
    let tally = import(
        &f,
        ws,
        OnDuplicate::Update,
        vec![
            vec![
                row(2, "Jane Smith", "6281000000001", "Customer"),
                row(3, "Ann", "6281000000002", "VIP, Lead"),
                row(4, "Bob", "6281000000003", ""),
            ],
            vec![row(5, "Bob Jones", "6281000000003", "")],
        ],
    )
    .await;
    assert_eq!(
        (tally.created, tally.updated, tally.skipped),
        (1, 2, 1),
        "{tally:?}"
    );
    let stored = svc.get(ws, jane.id).await.expect("jane");
    assert_eq!(stored.name.as_str(), "Jane Smith");
    assert_eq!(stored.labels.to_vec(), vec!["Customer".to_owned()]);
    assert_eq!(stored.created_at, jane.created_at);
    assert!(stored.updated_at > jane.updated_at);

    // Error: stored phones and repeats are refused by row number.
    let tally = import(
        &f,
        ws,
        OnDuplicate::Error,
        vec![vec![
            row(7, "Jane", "6281000000001", ""),
            row(8, "Cy", "6281000000004", ""),
            row(9, "Cy again", "6281000000004", ""),
        ]],
    )
    .await;
    assert_eq!((tally.created, tally.duplicates), (1, 2));
    assert_eq!(tally.duplicate_rows, vec![7, 9]);

    let page = svc.list(ws, &ContactQuery::default()).await.expect("list");
    assert_eq!(page.total, 4);
    assert_eq!(counts(&f, ws), (4, 4));
    let names: Vec<&str> = page.contacts.iter().map(|c| c.name.as_str()).collect();
    // Newest first: each import's contacts are newer than the earlier
    // ones'; an update keeps the contact's place.
    assert_eq!(names, vec!["Cy", "Bob Jones", "Ann", "Jane Smith"]);

    // Within one import the first row is the newest: the list shows its
    // rows in the source's order.
    let other = workspace(&f, "Other").await;
    import(
        &f,
        other,
        OnDuplicate::Skip,
        vec![
            vec![
                row(2, "First", "6281000000011", ""),
                row(3, "Second", "6281000000012", ""),
            ],
            vec![row(4, "Third", "6281000000013", "")],
        ],
    )
    .await;
    let page = svc
        .list(other, &ContactQuery::default())
        .await
        .expect("list");
    let names: Vec<&str> = page.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["First", "Second", "Third"]);
    assert!(
        page.contacts.iter().all(|c| c.updated_at == c.created_at),
        "a created contact was never changed"
    );
}

#[tokio::test]
async fn a_source_that_breaks_off_writes_nothing() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let rows: ImportRows = futures_util::stream::iter(vec![
        Ok(vec![row(2, "Ann", "6281000000002", "")]),
        Ok(vec![row(3, "Bob", "6281000000003", "")]),
        Err(ImportAborted),
    ])
    .boxed();
    let outcome = contacts(&f)
        .import(ws, OnDuplicate::Skip, rows)
        .await
        .expect("no storage failure");
    assert_eq!(outcome, None);
    assert_eq!(counts(&f, ws), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_the_workspace_do_not_wait_for_an_open_import_and_counts_stay_exact() {
    let f = Fixture::with_pool(&PoolSettings {
        max_size: 4,
        ..PoolSettings::default()
    });
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    for keep_it in [true, false] {
        let before = counts(&f, ws).1;
        let base = if keep_it {
            6281210000000u64
        } else {
            6281220000000
        };
        // An import whose first batch is written, then held open.
        let (tx, rx) = mpsc::channel(1);
        let rows: ImportRows =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
            )
            .boxed();
        let importing = {
            let svc = svc.clone();
            tokio::spawn(async move { svc.import(ws, OnDuplicate::Skip, rows).await })
        };
        let first: Vec<ImportRow> = (0..1000)
            .map(|i| row(i + 2, "Imported", &(base + i).to_string(), "Lead, Bulk"))
            .collect();
        tx.send(Ok(first)).await.expect("send");
        // Once the first batch is in, the import holds the workspace's row.
        let held = tokio::time::timeout(Duration::from_secs(10), async {
            while f.count(
                "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 'contacts' AND l.mode = 'RowExclusiveLock' AND l.granted \
                 AND l.pid <> pg_backend_pid()",
            ) == 0
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(held.is_ok(), "the import never started writing");
        // Creates and deletes of the same workspace finish meanwhile.
        let writes = tokio::time::timeout(Duration::from_secs(10), async {
            let mut ids = Vec::new();
            for i in 0..20u64 {
                let phone = format!("62813{:08}", i + if keep_it { 0 } else { 100 });
                let c = svc
                    .create(ws, row(0, "Meanwhile", &phone, "lead").contact)
                    .await
                    .expect("create");
                ids.push(c.id);
            }
            for id in ids.iter().take(5) {
                svc.delete(ws, *id).await.expect("delete");
            }
        })
        .await;
        assert!(writes.is_ok(), "writers waited for the open import");
        // The open import is not seen; the writes are.
        let listed = svc
            .list(ws, &ContactQuery::default())
            .await
            .expect("list")
            .total;
        assert_eq!(listed, u64::try_from(before).expect("count") + 15);
        if keep_it {
            drop(tx);
        } else {
            tx.send(Err(ImportAborted)).await.expect("abort");
        }
        let outcome = importing.await.expect("task").expect("import");
        assert_eq!(outcome.is_some(), keep_it);
        let expected = before + 15 + if keep_it { 1000 } else { 0 };
        assert_eq!(counts(&f, ws), (expected, expected));
        assert_label_counts(&f, ws).await;
        let listed = svc
            .list(ws, &ContactQuery::default())
            .await
            .expect("list")
            .total;
        assert_eq!(listed, u64::try_from(expected).expect("count"));
    }
    // The next write that takes the workspace's row folds what was kept
    // beside it.
    svc.create(ws, row(0, "Later", "6281399999999", "").contact)
        .await
        .expect("create");
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM contact_count_deltas WHERE workspace_id = '{ws}'"
        )),
        0
    );
    let (stored, real) = counts(&f, ws);
    assert_eq!(stored, real);
}

/// Every label's kept count (what a label-filtered list answers as its
/// `total`) equals the contacts that carry it, compared case-insensitively.
async fn assert_label_counts(f: &Fixture, ws: WorkspaceId) {
    let svc = contacts(f);
    let labels: Vec<String> = {
        let url = f.url().to_owned();
        let sql = format!(
            "SELECT DISTINCT lower(l) FROM contacts, unnest(labels) l WHERE workspace_id = '{ws}' \
             UNION SELECT label FROM contact_label_counts WHERE workspace_id = '{ws}'"
        );
        tokio::task::spawn_blocking(move || {
            use diesel::{Connection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct L {
                #[diesel(sql_type = diesel::sql_types::Text)]
                lower: String,
            }
            let mut conn = diesel::PgConnection::establish(&url).expect("connect");
            diesel::sql_query(sql)
                .load::<L>(&mut conn)
                .expect("labels")
                .into_iter()
                .map(|l| l.lower)
                .collect()
        })
        .await
        .expect("labels")
    };
    for label in labels {
        let real = f.count(&format!(
            "SELECT count(*) AS n FROM contacts WHERE workspace_id = '{ws}' \
             AND contact_labels_lower(labels) @> ARRAY['{label}']"
        ));
        let listed = svc
            .list(
                ws,
                &ContactQuery {
                    label: Some(label.to_uppercase()),
                    limit: Some(1),
                    ..ContactQuery::default()
                },
            )
            .await
            .expect("list")
            .total;
        assert_eq!(listed, u64::try_from(real).expect("count"), "label {label}");
        let streamed = svc
            .stream(
                ws,
                &ContactQuery {
                    label: Some(label.clone()),
                    ..ContactQuery::default()
                },
            )
            .await
            .expect("stream")
            .total;
        assert_eq!(streamed, listed, "label {label}, streamed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_counts_follow_creates_relabels_deletes_and_imports_at_once() {
    let f = Fixture::with_pool(&PoolSettings {
        max_size: 8,
        ..PoolSettings::default()
    });
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let svc = contacts(&f);
    // Eight writers at once: each creates contacts with overlapping labels
    // in two workspaces, relabels some and deletes others.
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for i in 0..15u64 {
                    let phone = format!("62812{:08}", w * 1_000 + i);
                    let labels = ["VIP, Lead", "lead", "Customer, vip", ""][(i % 4) as usize];
                    let ws = if i % 5 == 0 { other } else { ws };
                    let c = svc
                        .create(ws, row(0, "Racer", &phone, labels).contact)
                        .await
                        .expect("create");
                    match i % 3 {
                        0 => svc.delete(ws, c.id).await.expect("delete"),
                        1 => {
                            let patch = maveraa_domain::ContactPatch {
                                labels: Some(
                                    Labels::parse_csv("labels", "Lead, New").expect("labels"),
                                ),
                                ..Default::default()
                            };
                            svc.update(ws, c.id, patch)
                                .await
                                .map(|_| ())
                                .expect("update");
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    // An import of the same labels meanwhile.
    let rows: Vec<ImportRow> = (0..3000)
        .map(|i| {
            row(
                i + 2,
                "Imported",
                &(6281300000000 + i).to_string(),
                "VIP, Imported",
            )
        })
        .collect();
    let tally = import(
        &f,
        ws,
        OnDuplicate::Skip,
        rows.chunks(700).map(<[_]>::to_vec).collect(),
    )
    .await;
    assert_eq!(tally.created, 3000);
    for w in writers {
        w.await.expect("writer");
    }
    assert_label_counts(&f, ws).await;
    assert_label_counts(&f, other).await;
    // An update import relabels: the counts move with it.
    let relabel: Vec<ImportRow> = (0..500)
        .map(|i| row(i + 2, "Imported", &(6281300000000 + i).to_string(), "Moved"))
        .collect();
    let tally = import(&f, ws, OnDuplicate::Update, vec![relabel]).await;
    assert_eq!(tally.updated, 500);
    assert_label_counts(&f, ws).await;
    // Deleting a workspace takes its counts along.
    f.sql(&format!("DELETE FROM workspaces WHERE id = '{other}'"));
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM contact_label_counts WHERE workspace_id = '{other}'"
        )),
        0
    );
}
