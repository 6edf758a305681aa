use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{error_of, json_of, keys, spawn_app};

#[tokio::test]
async fn the_reference_create_example_answers_the_reference_shape() {
    let app = spawn_app().await;
    // The reference's request example, verbatim.
    let res = app
        .create_contact(json!({
            "name": "Jane Smith",
            "phone": "6289876543210",
            "labels": "Lead, Website"
        }))
        .await;
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let created = json_of(res, 201).await;
    assert_eq!(
        keys(&created),
        vec!["_id", "createdAt", "labels", "name", "phone"]
    );
    assert_eq!(created["name"], "Jane Smith");
    assert_eq!(created["phone"], "6289876543210");
    assert_eq!(created["labels"], json!(["Lead", "Website"]));
    let id = created["_id"].as_str().expect("_id is a string");
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/public/contacts/{id}").as_str())
    );
    let created_at = created["createdAt"].as_str().expect("createdAt");
    assert!(created_at.ends_with('Z'), "UTC with Z: {created_at}");
    chrono::DateTime::parse_from_rfc3339(created_at).expect("RFC 3339");

    // The reference's list response: {"total", "contacts": [{_id, name, phone, labels, createdAt}]}.
    let list = app.list("").await;
    assert_eq!(keys(&list), vec!["contacts", "total"]);
    assert_eq!(list["total"], 1);
    assert_eq!(list["contacts"], json!([created]));
}

#[tokio::test]
async fn labels_may_be_an_array_and_are_normalised() {
    let app = spawn_app().await;
    let created = json_of(
        app.create_contact(json!({"name": "John Doe", "phone": "+62 812-3456-7890", "labels": ["VIP", " Customer ", "vip", ""]}))
            .await,
        201,
    )
    .await;
    assert_eq!(created["phone"], "6281234567890");
    assert_eq!(created["labels"], json!(["VIP", "Customer"]));
    let none = json_of(
        app.create_contact(json!({"name": "No Labels", "phone": "6281234567891"}))
            .await,
        201,
    )
    .await;
    assert_eq!(none["labels"], json!([]));
}

#[tokio::test]
async fn the_unpaged_list_returns_every_contact_newest_first() {
    let app = spawn_app().await;
    // More than the largest page: "all" must not mean "the first 1000".
    for i in 0..1030u64 {
        let new = maveraa_domain::NewContact {
            name: maveraa_domain::ContactName::parse("name", &format!("Contact {i}"))
                .expect("name"),
            phone: maveraa_domain::PhoneNumber::parse("phone", &format!("62812{:08}", i))
                .expect("phone"),
            labels: maveraa_domain::Labels::default(),
        };
        app.services
            .contacts
            .create(app.workspace, new)
            .await
            .expect("create");
    }
    let list = app.list("").await;
    assert_eq!(list["total"], 1030);
    let contacts = list["contacts"].as_array().expect("array");
    assert_eq!(contacts.len(), 1030);
    assert_eq!(contacts[0]["name"], "Contact 1029");
    assert_eq!(contacts[1029]["name"], "Contact 0");

    let page = app.list("?limit=50&offset=1000").await;
    assert_eq!(page["total"], 1030, "total counts the match, not the page");
    assert_eq!(page["contacts"].as_array().expect("array").len(), 30);
    assert_eq!(page["contacts"][0]["name"], "Contact 29");
}

#[tokio::test]
async fn search_and_label_filter_and_count_the_match() {
    let app = spawn_app().await;
    for (name, phone, labels) in [
        ("Alice Smith", "6281234567801", "VIP, Lead"),
        ("Bob", "6281234567802", "Lead"),
        ("alice cooper", "6289876543210", ""),
    ] {
        json_of(
            app.create_contact(json!({"name": name, "phone": phone, "labels": labels}))
                .await,
            201,
        )
        .await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["contacts"]
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let alice = app.list("?search=ALICE").await;
    assert_eq!(alice["total"], 2);
    assert_eq!(names(&alice), vec!["alice cooper", "Alice Smith"]);
    let by_phone = app.list("?search=%2B62%20898").await;
    assert_eq!(names(&by_phone), vec!["alice cooper"]);
    let lead = app.list("?label=lead").await;
    assert_eq!(lead["total"], 2);
    let lead_page = app.list("?label=Lead&limit=1").await;
    assert_eq!(lead_page["total"], 2);
    assert_eq!(names(&lead_page), vec!["Bob"]);
    let both = app.list("?label=vip&search=smith").await;
    assert_eq!(names(&both), vec!["Alice Smith"]);
    let nothing = app.list("?search=zzz").await;
    assert_eq!(nothing, json!({"total": 0, "contacts": []}));
}

#[tokio::test]
async fn bad_list_parameters_name_the_parameter() {
    let app = spawn_app().await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=-5", "limit"),
        ("?offset=-1", "offset"),
        ("?offset=x", "offset"),
        // A NUL cannot even reach PostgreSQL's text: a 400, not a 500.
        ("?search=a%00b", "search"),
        ("?label=%00", "label"),
        ("?search=tab%09here", "search"),
    ] {
        let res = app
            .request(Method::GET, &format!("/api/public/contacts{query}"))
            .send()
            .await
            .expect("req");
        let (code, f) = error_of(res, 400).await;
        assert_eq!(
            (code.as_str(), f.as_deref()),
            ("validation_failed", Some(field)),
            "{query}"
        );
    }
    assert_eq!(app.list("?limit=1000").await["total"], 0);
}

#[tokio::test]
async fn get_patch_delete_one_contact() {
    let app = spawn_app().await;
    let jane = json_of(
        app.create_contact(json!({"name": "Jane", "phone": "6289876543210", "labels": "Lead"}))
            .await,
        201,
    )
    .await;
    let john = json_of(
        app.create_contact(json!({"name": "John", "phone": "6281234567890"}))
            .await,
        201,
    )
    .await;
    let path = format!("/api/public/contacts/{}", jane["_id"].as_str().expect("id"));

    let got = json_of(
        app.request(Method::GET, &path).send().await.expect("get"),
        200,
    )
    .await;
    assert_eq!(got, jane);

    // An empty patch changes nothing.
    let same = json_of(
        app.request(Method::PATCH, &path)
            .json(&json!({}))
            .send()
            .await
            .expect("patch"),
        200,
    )
    .await;
    assert_eq!(same, jane);

    let patched = json_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"name": "  Jane Smith ", "labels": "Customer, VIP"}))
            .send()
            .await
            .expect("patch"),
        200,
    )
    .await;
    assert_eq!(patched["name"], "Jane Smith");
    assert_eq!(patched["labels"], json!(["Customer", "VIP"]));
    assert_eq!(patched["phone"], "6289876543210");
    assert_eq!(patched["createdAt"], jane["createdAt"]);

    let cleared = json_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"labels": null}))
            .send()
            .await
            .expect("p"),
        200,
    )
    .await;
    assert_eq!(cleared["labels"], json!([]));

    // null for a required field, a bad phone, and another contact's phone.
    let (code, field) = error_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"name": null}))
            .send()
            .await
            .expect("p"),
        400,
    )
    .await;
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("validation_failed", Some("name"))
    );
    let (_, field) = error_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"phone": "12ab"}))
            .send()
            .await
            .expect("p"),
        400,
    )
    .await;
    assert_eq!(field.as_deref(), Some("phone"));
    let res = app
        .request(Method::PATCH, &path)
        .json(&json!({"phone": "+62 812 3456 7890"}))
        .send()
        .await
        .expect("p");
    let body = json_of(res, 409).await;
    assert_eq!(body["error"]["code"], "duplicate_contact");
    assert_eq!(body["error"]["existingId"], john["_id"]);
    // Nothing was half-written by the refused patches.
    assert_eq!(
        json_of(
            app.request(Method::GET, &path).send().await.expect("get"),
            200
        )
        .await,
        cleared
    );

    let res = app
        .request(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    let (code, _) = error_of(
        app.request(Method::GET, &path).send().await.expect("get"),
        404,
    )
    .await;
    assert_eq!(code, "not_found");
    error_of(
        app.request(Method::DELETE, &path)
            .send()
            .await
            .expect("delete"),
        404,
    )
    .await;
    error_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .expect("p"),
        404,
    )
    .await;
    assert_eq!(app.list("").await["total"], 1);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found() {
    let app = spawn_app().await;
    for id in [
        "01a2136a-879a-7673-9ca2-fdf8c8293b20",
        "60d5ec",
        "not-an-id",
    ] {
        let (code, _) = error_of(
            app.request(Method::GET, &format!("/api/public/contacts/{id}"))
                .send()
                .await
                .expect("get"),
            404,
        )
        .await;
        assert_eq!(code, "not_found");
    }
}

#[tokio::test]
async fn a_phone_already_in_the_workspace_is_a_conflict_naming_the_contact() {
    let app = spawn_app().await;
    let first = json_of(
        app.create_contact(json!({"name": "Jane", "phone": "6289876543210"}))
            .await,
        201,
    )
    .await;
    let res = app
        .create_contact(json!({"name": "Jane again", "phone": "+62 898-7654-3210"}))
        .await;
    let body = json_of(res, 409).await;
    assert_eq!(body["error"]["code"], "duplicate_contact");
    assert_eq!(body["error"]["field"], "phone");
    assert_eq!(body["error"]["existingId"], first["_id"]);
    assert_eq!(app.list("").await["total"], 1);
}

#[tokio::test]
async fn twenty_concurrent_creations_of_one_phone_give_one_201() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = app.client.clone();
        let url = app.url("/api/public/contacts");
        let key = app.key.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .header("X-API-Key", key)
                .json(&json!({"name": format!("Racer {i}"), "phone": "6281234567890"}))
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("json"))
        }));
    }
    let mut created = Vec::new();
    let mut conflicts = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (201, body) => created.push(body),
            (409, body) => conflicts.push(body),
            (s, body) => panic!("unexpected {s}: {body}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(conflicts.len(), 19);
    for c in &conflicts {
        assert_eq!(c["error"]["existingId"], created[0]["_id"]);
    }
    assert_eq!(app.list("").await["total"], 1);
}
