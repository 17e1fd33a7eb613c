//! The HTTP API of `kairos serve`, exercised over loopback.

use super::support::*;

#[test]
fn api_searches_serves_assets_and_thumbnails_and_names_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    write(
        &media.join("boxing.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 1),
            "Final",
            "Boxer lands an uppercut in the final round",
            "en",
            &["boxing"],
        ),
    );
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
    let data = tmp.path().join("data");
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    let server = serve(&data);
    let addr = server.addr.as_str();

    let (status, body) = http(addr, "GET", "/api/v1/health", None, b"");
    assert_eq!(status, 200);
    let health = json(&body);
    assert_eq!(health["assets"]["ready"], 2, "{health}");
    assert_eq!(health["models"]["clip"], false);

    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"query": "uppercut"}"#,
    );
    assert_eq!(status, 200);
    let r = json(&body);
    assert_eq!(r["total"], 1, "{r}");
    let hit = &r["hits"][0];
    assert!(hit["path"].as_str().unwrap().ends_with("boxing.jpg"));
    for key in ["asset_id", "kind", "score", "signals", "moments"] {
        assert!(hit.get(key).is_some(), "hit lacks {key}: {hit}");
    }
    let moment = &hit["moments"][0];
    for key in ["start_ms", "end_ms", "kind", "snippet"] {
        assert!(moment.get(key).is_some(), "moment lacks {key}: {moment}");
    }

    // Asking each signal for one candidate still finds it.
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"query": "uppercut", "limit": 1, "candidates": 1}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["hits"][0]["asset_id"], hit["asset_id"]);

    let id = hit["asset_id"].as_str().unwrap();
    let (status, body) = http(addr, "GET", &format!("/api/v1/assets/{id}"), None, b"");
    assert_eq!(status, 200);
    let asset = json(&body);
    assert_eq!(
        asset["asset"]["caption"],
        "Boxer lands an uppercut in the final round"
    );
    assert_eq!(asset["asset"]["keywords"][0], "boxing");
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/assets/{id}/thumbnail"),
        None,
        b"",
    );
    assert_eq!(status, 200);
    let thumb = image::load_from_memory(&body).unwrap();
    assert_eq!(thumb.width().max(thumb.height()), 320);
    let seg = moment["segment_id"].as_str().unwrap();
    assert_eq!(
        http(
            addr,
            "GET",
            &format!("/api/v1/segments/{seg}/thumbnail"),
            None,
            b""
        )
        .0,
        200
    );

    // Example image upload: a re-encoded copy of the lake finds the lake.
    let (ct, body) = multipart(&[
        ("image", Some("q.jpg"), &jpeg(&scene(300, 225, 5))),
        ("limit", None, b"5"),
        ("candidates", None, b"5"),
    ]);
    let (status, resp) = http(addr, "POST", "/api/v1/search/image", Some(&ct), &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let r = json(&resp);
    assert!(
        r["hits"][0]["path"].as_str().unwrap().ends_with("lake.jpg"),
        "{r}"
    );

    // Errors carry a stable code and name what is wrong.
    // (method, path, content type, body, status, code, word the message must name)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a [u8],
        u16,
        &'a str,
        &'a str,
    );
    let cases: [Case; 8] = [
        (
            "GET",
            "/api/v1/assets/nope",
            None,
            b"",
            404,
            "asset_not_found",
            "nope",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            b"{not json",
            400,
            "invalid_json",
            "body",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            br#"{"query": "x", "kind": "sculpture"}"#,
            400,
            "invalid_query",
            "kind",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            br#"{"query": "x", "from": "yesterday"}"#,
            400,
            "invalid_query",
            "from",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            br#"{}"#,
            400,
            "invalid_query",
            "words",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            br#"{"query": "x", "limit": 0}"#,
            400,
            "invalid_query",
            "limit",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            br#"{"query": "x", "limit": 20, "offset": 5, "candidates": 24}"#,
            400,
            "invalid_query",
            "candidates",
        ),
        (
            "POST",
            "/api/v1/search",
            Some("application/json"),
            br#"{"query": "x", "candidates": 10001}"#,
            400,
            "invalid_query",
            "candidates",
        ),
    ];
    for (method, path, ct, body, want_status, want_code, named) in cases {
        let (status, resp) = http(addr, method, path, ct, body);
        let e = json(&resp);
        assert_eq!(status, want_status, "{method} {path}: {e}");
        assert_eq!(e["error"]["code"], want_code, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(named),
            "{e}"
        );
    }
    let (ct, body) = multipart(&[("image", Some("q.jpg"), b"not an image")]);
    let (status, resp) = http(addr, "POST", "/api/v1/search/image", Some(&ct), &body);
    assert_eq!(
        (status, json(&resp)["error"]["code"].as_str()),
        (400, Some("invalid_image"))
    );
    let (ct, body) = multipart(&[("query", None, b"lake")]);
    let (status, resp) = http(addr, "POST", "/api/v1/search/image", Some(&ct), &body);
    assert_eq!(
        (status, json(&resp)["error"]["code"].as_str()),
        (400, Some("invalid_multipart"))
    );

    let (status, page) = http(addr, "GET", "/", None, b"");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("Kairos"));
}
