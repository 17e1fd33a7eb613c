//! The writing half of the HTTP API (API keys, uploads and their jobs, asset edits and deletes),
//! the asset list with facets, "find similar", metrics, private mode and CORS, and every JSON
//! answer checked against the server's own OpenAPI document.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::*;

/// Checks `body` against the schema the OpenAPI document gives for this answer.
fn conforms(doc: &Value, method: &str, pattern: &str, status: u16, body: &[u8]) -> Value {
    let value = json(body);
    let schema = &doc["paths"][pattern][method]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"];
    assert!(
        !schema.is_null(),
        "the OpenAPI document has no JSON schema for {method} {pattern} → {status}"
    );
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).expect("the document's schemas compile");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {pattern} → {status} does not match its schema: {errors:#?}\n{value:#}"
    );
    value
}

fn with_key<'a>(key: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = extra.to_vec();
    h.push(("Authorization", key));
    h
}

#[test]
fn keys_guard_writes_uploads_become_jobs_and_edits_and_deletes_reach_every_index() {
    let tmp = tempfile::tempdir().unwrap();
    let paris = tmp.path().join("paris");
    write(
        &paris.join("boxing.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 1),
            "Final",
            "Boxer lands an uppercut",
            "en",
            &["boxing"],
        ),
    );
    write(
        &paris.join("velo.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 2),
            "Vélo",
            "Le peloton dans la montée finale",
            "fr",
            &[],
        ),
    );
    let tokyo = tmp.path().join("tokyo");
    write(
        &tokyo.join("lake.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 5),
            "Lake",
            "A quiet lake at dawn",
            "en",
            &[],
        ),
    );
    let data = tmp.path().join("data");
    kairos_ok(
        &data,
        &[
            "ingest",
            "--collection",
            "Paris 2024",
            paris.to_str().unwrap(),
        ],
    );
    kairos_ok(
        &data,
        &["ingest", "--collection", "Tokyo", tokyo.to_str().unwrap()],
    );
    let server = serve_with(&data, &["--max-upload-mb", "1"]);
    let addr = server.addr.as_str();

    let (status, body) = http(addr, "GET", "/api/v1/openapi.json", None, b"");
    assert_eq!(status, 200);
    let doc = json(&body);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let (status, body) = http(addr, "GET", "/api/v1/health", None, b"");
    conforms(&doc, "get", "/api/v1/health", status, &body);

    // The asset list: filters, paging and facet counts over all matching assets.
    let (status, body) = http(addr, "GET", "/api/v1/assets?limit=1&sort=name", None, b"");
    let list = conforms(&doc, "get", "/api/v1/assets", status, &body);
    assert_eq!(list["total"], 3);
    assert_eq!(list["assets"].as_array().unwrap().len(), 1);
    assert_eq!(list["facets"]["collection"]["Paris 2024"], 2, "{list}");
    assert_eq!(list["facets"]["language"]["fr"], 1, "{list}");
    assert_eq!(list["facets"]["kind"]["image"], 3, "{list}");
    let (status, body) = http(addr, "GET", "/api/v1/assets?collection=Tokyo", None, b"");
    assert_eq!(
        conforms(&doc, "get", "/api/v1/assets", status, &body)["total"],
        1
    );
    let (status, body) = http(addr, "GET", "/api/v1/assets?sort=size", None, b"");
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sort")
    );

    // Search: the language filter, and facets of the results.
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"query": "finale OR uppercut", "language": "fr"}"#,
    );
    let r = conforms(&doc, "post", "/api/v1/search", status, &body);
    assert_eq!(r["total"], 1, "{r}");
    assert!(r["hits"][0]["path"].as_str().unwrap().ends_with("velo.jpg"));
    assert_eq!(r["facets"]["language"]["fr"], 1);

    // Writes need a key; a wrong key is told apart from none.
    let (ct, upload) = multipart(&[
        ("file", Some("copy of lake.jpg"), &jpeg(&scene(300, 225, 5))),
        (
            "file",
            Some("../broken.jpg"),
            b"\xff\xd8\xff not really a jpeg",
        ),
        ("collection", None, b"Uploads"),
    ]);
    let (status, _, body) = http_request(
        addr,
        "POST",
        "/api/v1/uploads",
        &[("Content-Type", &ct)],
        &upload,
    );
    assert_eq!(status, 401);
    assert_eq!(json(&body)["error"]["code"], "unauthorized");
    let (status, _, body) = http_request(
        addr,
        "POST",
        "/api/v1/uploads",
        &with_key("Bearer kairos_0000", &[("Content-Type", &ct)]),
        &upload,
    );
    assert_eq!(status, 401);
    assert_eq!(json(&body)["error"]["code"], "invalid_api_key");
    let secret = kairos_ok(&data, &["keys", "create", "--name", "e2e"])
        .trim()
        .to_string();
    assert!(secret.starts_with("kairos_"), "{secret}");
    let listed = kairos_ok(&data, &["keys", "list"]);
    assert!(
        listed.contains("e2e") && !listed.contains(&secret),
        "{listed}"
    );
    let bearer = format!("Bearer {secret}");
    let key = bearer.as_str();

    // An upload becomes a job; the broken file fails alone, named; the copy is searchable.
    let (status, head, body) = http_request(
        addr,
        "POST",
        "/api/v1/uploads",
        &with_key(key, &[("Content-Type", &ct)]),
        &upload,
    );
    let job = conforms(&doc, "post", "/api/v1/uploads", status, &body);
    assert_eq!(status, 202);
    let job_id = job["job"]["id"].as_str().unwrap().to_string();
    assert!(
        head.contains(&format!("location: /api/v1/jobs/{job_id}")),
        "{head}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let (status, body) = http(addr, "GET", &format!("/api/v1/jobs/{job_id}"), None, b"");
        let job = conforms(&doc, "get", "/api/v1/jobs/{id}", status, &body);
        let state = job["job"]["status"].as_str().unwrap().to_string();
        if state.starts_with("done") || state == "failed" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the upload job did not finish: {job}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["job"]["status"], "done_with_errors", "{job}");
    assert_eq!(
        (job["job"]["done"].as_i64(), job["job"]["failed"].as_i64()),
        (Some(1), Some(1))
    );
    let failure = &job["failures"][0];
    assert!(
        failure["path"].as_str().unwrap().ends_with("broken.jpg"),
        "{failure}"
    );
    assert!(!failure["error"].as_str().unwrap().is_empty());
    assert!(
        !failure["path"].as_str().unwrap().contains(".."),
        "the name was made safe"
    );
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/jobs/{job_id}/files?status=indexed"),
        None,
        b"",
    );
    let files = conforms(&doc, "get", "/api/v1/jobs/{id}/files", status, &body);
    let uploaded_id = files[0]["asset_id"].as_str().unwrap().to_string();

    // Cancel: a finished job is refused, an unknown one is not found, a key is needed; a job
    // cancelled while it starts ends `cancelled` before its last files.
    let cancel = |id: &str, key: Option<&str>| {
        let headers = key.map(|k| vec![("Authorization", k)]).unwrap_or_default();
        let (status, _, body) = http_request(
            addr,
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            &headers,
            b"",
        );
        (status, body)
    };
    let (status, body) = cancel(&job_id, Some(key));
    conforms(&doc, "post", "/api/v1/jobs/{id}/cancel", status, &body);
    assert_eq!(
        (status, json(&body)["error"]["code"].clone()),
        (409, json!("job_not_running"))
    );
    let (status, body) = cancel("no-such-job", Some(key));
    assert_eq!(
        (status, json(&body)["error"]["code"].clone()),
        (404, json!("job_not_found"))
    );
    assert_eq!(cancel(&job_id, None).0, 401);
    // Plain colours: unlike every other picture here, so later searches do not see them.
    let many: Vec<(String, Vec<u8>)> = (0..40u8)
        .map(|i| {
            let plain = image::RgbImage::from_pixel(64, 48, image::Rgb([i * 6, 200 - i * 5, 90]));
            (
                format!("plain {i}.jpg"),
                jpeg(&image::DynamicImage::ImageRgb8(plain)),
            )
        })
        .collect();
    let parts: Vec<(&str, Option<&str>, &[u8])> = many
        .iter()
        .map(|(name, bytes)| ("file", Some(name.as_str()), bytes.as_slice()))
        .collect();
    let (many_ct, many_body) = multipart(&parts);
    let (status, _, body) = http_request(
        addr,
        "POST",
        "/api/v1/uploads",
        &with_key(key, &[("Content-Type", &many_ct)]),
        &many_body,
    );
    assert_eq!(status, 202);
    let many_id = json(&body)["job"]["id"].as_str().unwrap().to_string();
    let (status, body) = cancel(&many_id, Some(key));
    let stopping = conforms(&doc, "post", "/api/v1/jobs/{id}/cancel", status, &body);
    assert_eq!(status, 202, "{stopping}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stopped = loop {
        let (_, body) = http(addr, "GET", &format!("/api/v1/jobs/{many_id}"), None, b"");
        let job = json(&body);
        if !["queued", "running"].contains(&job["job"]["status"].as_str().unwrap()) {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled job goes on: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(stopped["job"]["status"], "cancelled", "{stopped}");
    let kept = stopped["job"]["done"].as_i64().unwrap();
    assert!(kept < 40, "{stopped}");
    let (status, body) = http(addr, "GET", "/api/v1/jobs", None, b"");
    assert!(
        conforms(&doc, "get", "/api/v1/jobs", status, &body)
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/assets/{uploaded_id}"),
        None,
        b"",
    );
    let uploaded = conforms(&doc, "get", "/api/v1/assets/{id}", status, &body);
    assert_eq!(uploaded["asset"]["collection"], "Uploads");
    let uploaded_path = uploaded["asset"]["path"].as_str().unwrap().to_string();
    assert!(
        std::path::Path::new(&uploaded_path).starts_with(&data),
        "{uploaded_path}"
    );

    // Find similar: the lake finds its uploaded copy (by fingerprint: no CLIP here), not itself.
    let lake_id = list_ids(addr, "Tokyo")[0].clone();
    let body = format!(r#"{{"similar_to": "{lake_id}"}}"#);
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        body.as_bytes(),
    );
    let r = conforms(&doc, "post", "/api/v1/search", status, &body);
    let ids: Vec<&str> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["asset_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [uploaded_id.as_str()], "{r}");
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"similar_to": "nothing-here"}"#,
    );
    assert_eq!(status, 404);
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing-here")
    );

    // Oversize uploads are refused whole, leaving nothing behind.
    let big = vec![7u8; 1_500_000];
    let (ct_big, body_big) = multipart(&[("file", Some("big.mp4"), &big)]);
    let (status, _, body) = http_request(
        addr,
        "POST",
        "/api/v1/uploads",
        &with_key(key, &[("Content-Type", &ct_big)]),
        &body_big,
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["error"]["code"], "payload_too_large");
    let leftovers: Vec<_> = fs_err::read_dir(data.join("uploads"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".incoming"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (ct_none, body_none) = multipart(&[("collection", None, b"x")]);
    let (status, _, body) = http_request(
        addr,
        "POST",
        "/api/v1/uploads",
        &with_key(key, &[("Content-Type", &ct_none)]),
        &body_none,
    );
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (400, Some("invalid_upload"))
    );

    // Edits reach the text index and the filters.
    let boxing_id = list_ids(addr, "Paris 2024")
        .into_iter()
        .find(|id| {
            let (_, b) = http(addr, "GET", &format!("/api/v1/assets/{id}"), None, b"");
            json(&b)["asset"]["path"]
                .as_str()
                .unwrap()
                .ends_with("boxing.jpg")
        })
        .unwrap();
    let patch = br#"{"caption": "Southpaw wins the heavyweight title", "collection": "Archive", "keywords": ["title fight"]}"#;
    let path = format!("/api/v1/assets/{boxing_id}");
    let (status, _, body) = http_request(
        addr,
        "PATCH",
        &path,
        &[("Content-Type", "application/json")],
        patch,
    );
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, body) = http_request(
        addr,
        "PATCH",
        &path,
        &with_key(key, &[("Content-Type", "application/json")]),
        patch,
    );
    let changed = conforms(&doc, "patch", "/api/v1/assets/{id}", status, &body);
    assert_eq!(changed["asset"]["collection"], "Archive");
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"query": "southpaw", "collection": "Archive"}"#,
    );
    assert_eq!(
        conforms(&doc, "post", "/api/v1/search", status, &body)["total"],
        1
    );
    let (_, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"query": "uppercut"}"#,
    );
    assert_eq!(
        json(&body)["total"],
        0,
        "the old caption is gone from the index"
    );
    for (bad, code, names) in [
        (&br#"{"title": 5}"#[..], "invalid_metadata", "title"),
        (br#"{"rating": 5}"#, "invalid_metadata", "rating"),
        (br#"{"keywords": "a, b"}"#, "invalid_metadata", "keywords"),
        (br#"{"title": "#, "invalid_json", "body"),
        (br#"{}"#, "invalid_metadata", "title"),
    ] {
        let (status, _, body) = http_request(
            addr,
            "PATCH",
            &path,
            &with_key(key, &[("Content-Type", "application/json")]),
            bad,
        );
        let e = json(&body);
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains(names),
            "{e}"
        );
    }

    // Deleting removes the asset from the catalog, the indexes and, for an upload, the disk.
    let (status, _, body) = http_request(
        addr,
        "DELETE",
        &format!("/api/v1/assets/{uploaded_id}"),
        &with_key(key, &[]),
        b"",
    );
    let gone = conforms(&doc, "delete", "/api/v1/assets/{id}", status, &body);
    assert_eq!(gone["file_removed"], true);
    assert!(!std::path::Path::new(&uploaded_path).exists());
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/assets/{uploaded_id}"),
        None,
        b"",
    );
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (404, Some("asset_not_found"))
    );
    let body = format!(r#"{{"similar_to": "{lake_id}"}}"#);
    let (_, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        body.as_bytes(),
    );
    assert_eq!(
        json(&body)["total"],
        0,
        "the deleted copy is no longer found"
    );
    let (status, _, body) = http_request(
        addr,
        "DELETE",
        &format!("/api/v1/assets/{uploaded_id}"),
        &with_key(key, &[]),
        b"",
    );
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (404, Some("asset_not_found"))
    );

    // Unknown endpoints and methods answer in the same error shape.
    let (status, body) = http(addr, "GET", "/api/v1/nothing", None, b"");
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (404, Some("route_not_found"))
    );
    let (status, _, body) = http_request(addr, "PUT", &path, &with_key(key, &[]), b"");
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = http(addr, "GET", "/api/v1/jobs/none", None, b"");
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (404, Some("job_not_found"))
    );

    // Metrics count requests by route pattern, never by raw path.
    let (status, body) = http(addr, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(
            r#"kairos_http_requests_total{method="POST",route="/api/v1/search",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/api/v1/assets/{id}""#), "{text}");
    assert!(
        !text.contains(&boxing_id),
        "an asset id leaked into a label"
    );
    // The searches above read their pages' assets from the catalog.
    assert!(
        text.lines().any(|l| l
            .strip_prefix(r#"kairos_search_catalog_reads_total{kind="asset",from="catalog"} "#)
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)),
        "{text}"
    );
    assert!(
        text.contains(r#"kairos_search_catalog_memory_bytes{kind="asset"} "#),
        "{text}"
    );
    // Three assets, and what the cancelled job indexed before it stopped.
    assert!(
        text.contains(&format!("kairos_assets_ready {}", 3 + kept)),
        "{text}"
    );

    // A revoked key stops working (the server trusts a checked key for 30 s at most; this one
    // was never checked by the second server below).
    drop(server);
    kairos_ok(&data, &["keys", "revoke", "e2e"]);
    let private = serve_with(
        &data,
        &["--private", "--cors-origin", "http://newsroom.example"],
    );
    let addr = private.addr.as_str();
    let (status, _, body) = http_request(
        addr,
        "PATCH",
        &path,
        &with_key(key, &[("Content-Type", "application/json")]),
        br#"{"title": "x"}"#,
    );
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    // Private mode: reads need a key too (as a header, or `api_key` for media elements).
    let secret = kairos_ok(&data, &["keys", "create", "--name", "reader"])
        .trim()
        .to_string();
    let (status, body) = http(addr, "GET", "/api/v1/assets", None, b"");
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, _) = http_request(
        addr,
        "GET",
        "/api/v1/assets",
        &[("Authorization", &format!("Bearer {secret}"))],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _) = http(
        addr,
        "GET",
        &format!("/api/v1/assets/{boxing_id}/thumbnail?api_key={secret}"),
        None,
        b"",
    );
    assert_eq!(status, 200);
    let (status, body) = http(addr, "GET", "/api/v1/health", None, b"");
    assert_eq!(
        (status, json(&body)["private"].as_bool()),
        (200, Some(true))
    );
    let (status, _) = http(addr, "GET", "/", None, b"");
    assert_eq!(status, 200, "the UI's page is public; it asks for a key");

    // CORS: an allowed origin gets its preflight answered; another does not.
    let preflight = |origin: &str| {
        http_request(
            addr,
            "OPTIONS",
            "/api/v1/search",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type",
                ),
            ],
            b"",
        )
    };
    let (status, head, _) = preflight("http://newsroom.example");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://newsroom.example"),
        "{head}"
    );
    let (_, head, _) = preflight("http://elsewhere.example");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

#[test]
fn server_side_ingest_is_off_by_default_and_confined_to_its_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    write(
        &media.join("lake.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 5),
            "Lake",
            "A quiet lake at dawn",
            "en",
            &[],
        ),
    );
    let secret_file = write(
        &tmp.path().join("outside").join("secret.jpg"),
        &jpeg(&scene(64, 48, 7)),
    );
    let data = tmp.path().join("data");
    let key = format!(
        "Bearer {}",
        kairos_ok(&data, &["keys", "create", "--name", "ingest"]).trim()
    );
    let post = |addr: &str, body: &str, key: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(k) = key {
            headers.push(("Authorization", k));
        }
        let (status, _, body) =
            http_request(addr, "POST", "/api/v1/ingest", &headers, body.as_bytes());
        (status, json(&body))
    };
    let media_path = media.to_str().unwrap().to_string();
    let one = |path: &str| json!({ "paths": [path], "collection": "Server" }).to_string();

    // Off unless the server names the folders it may read.
    {
        let server = serve(&data);
        let (status, body) = post(&server.addr, &one(&media_path), Some(&key));
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (403, json!("ingest_disabled")),
            "{body}"
        );
    }

    let server = serve_with(&data, &["--ingest-root", &media_path]);
    let addr = server.addr.as_str();
    let (status, body) = http(addr, "GET", "/api/v1/openapi.json", None, b"");
    assert_eq!(status, 200);
    let doc = json(&body);
    assert_eq!(post(addr, &one(&media_path), None).0, 401);
    let (status, body) = post(addr, &one(secret_file.to_str().unwrap()), Some(&key));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("path_not_allowed")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("paths[0]: "),
        "{body}"
    );
    // `..` cannot step out of a root.
    let sneaky = format!("{media_path}/../outside/secret.jpg");
    let (status, body) = post(addr, &one(&sneaky), Some(&key));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("path_not_allowed")),
        "{body}"
    );
    let missing = format!("{media_path}/nope.jpg");
    let (status, body) = post(addr, &one(&missing), Some(&key));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_ingest")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope.jpg"),
        "{body}"
    );
    let (status, body) = post(addr, r#"{"paths": []}"#, Some(&key));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_ingest")),
        "{body}"
    );

    // Inside a root: a job like an upload's, and the file is searchable in its collection.
    let (status, _, raw) = http_request(
        addr,
        "POST",
        "/api/v1/ingest",
        &with_key(&key, &[("Content-Type", "application/json")]),
        one(&media_path).as_bytes(),
    );
    let job = conforms(&doc, "post", "/api/v1/ingest", status, &raw);
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["job"]["kind"], "server_ingest");
    let id = job["job"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (_, body) = http(addr, "GET", &format!("/api/v1/jobs/{id}"), None, b"");
        let job = json(&body);
        if !["queued", "running"].contains(&job["job"]["status"].as_str().unwrap()) {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the ingest job does not finish: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["job"]["status"], "done", "{done}");
    assert_eq!(done["job"]["done"], 1, "{done}");
    let r = search_json(&data, &["quiet lake", "--collection", "Server"]);
    assert_eq!(hit_names(&r), ["lake.jpg"], "{r}");
}

/// Ids of the ready assets of a collection.
fn list_ids(addr: &str, collection: &str) -> Vec<String> {
    let path = format!(
        "/api/v1/assets?collection={}",
        collection.replace(' ', "%20")
    );
    let (status, body) = http(addr, "GET", &path, None, b"");
    assert_eq!(status, 200);
    json(&body)["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}
