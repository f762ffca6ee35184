//! Content libraries end to end: the real server over HTTP, real SQLite,
//! Debian's pdftoppm. Uploads (multipart and raw), sniffing, names, limits,
//! PDF to slides (a 3-page PDF written here), signed links with Range,
//! deletes (files leave the disk), and rooms deleted with `delete_library`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use convene_tests::{KEY, Options, Resp, Server};
use serde_json::{Value, json};

/// A conversion of a few small pages takes well under this on a busy machine.
pub(crate) const CONVERT_TIMEOUT: Duration = Duration::from_secs(60);

/// A 1x1 PNG.
pub(crate) const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A valid PDF of `pages` pages (a rectangle on each), with a correct xref.
pub(crate) fn pdf(pages: usize) -> Vec<u8> {
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 3 + 2 * i)).collect();
    let mut objs = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
    ];
    for i in 0..pages {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents {} 0 R >>",
            4 + 2 * i
        ));
        let content = format!("0 0 1 rg 10 10 {} 50 re f", 20 * (i + 1));
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A `multipart/form-data` body with the file part (and a `name` part).
fn multipart(filename: &str, bytes: &[u8], name: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "convene-test-boundary-7d1f";
    let mut body = Vec::new();
    if let Some(n) = name {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{n}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_multipart(s: &Server, library: &str, filename: &str, bytes: &[u8]) -> Resp {
    let (ct, body) = multipart(filename, bytes, None);
    let res = s
        .client
        .post(s.url(&format!("/api/v1/libraries/{library}/files")))
        .bearer_auth(KEY)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    Resp::read(res).await
}

/// A raw-body upload; `name` as the query parameter.
pub(crate) async fn upload_raw(
    s: &Server,
    library: &str,
    name: &str,
    bytes: &[u8],
    ct: &str,
) -> Resp {
    let res = s
        .client
        .post(s.url(&format!("/api/v1/libraries/{library}/files")))
        .query(&[("name", name)])
        .bearer_auth(KEY)
        .header("content-type", ct)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    Resp::read(res).await
}

pub(crate) async fn create_library(s: &Server, body: Value) -> String {
    let r = s.api().post("/api/v1/libraries", body).await.expect(201);
    r.body["id"].as_str().unwrap().to_string()
}

/// Polls a file until it leaves `processing` (deadline: CONVERT_TIMEOUT).
pub(crate) async fn wait_converted(s: &Server, library: &str, file: &str) -> Value {
    let deadline = Instant::now() + CONVERT_TIMEOUT;
    loop {
        let r = s
            .api()
            .get(&format!("/api/v1/libraries/{library}/files/{file}"))
            .await
            .expect(200);
        if r.body["status"] != "processing" {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "file {file} still processing after {CONVERT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn file_dir(s: &Server, id: &str) -> PathBuf {
    s.data_dir.join("libraries").join("files").join(id)
}

/// A signed link, pointed at the test server's real address.
async fn link(s: &Server, library: &str, file: &str, query: &str) -> String {
    let r = s
        .api()
        .get(&format!(
            "/api/v1/libraries/{library}/files/{file}/download{query}"
        ))
        .await
        .expect(200);
    let link = r.body["link"].as_str().unwrap();
    let prefix = "http://localhost:8080";
    assert!(link.starts_with(prefix), "{link}");
    assert!(r.body["valid_until"].is_string());
    s.url(&link[prefix.len()..])
}

async fn fetch(s: &Server, url: &str, range: Option<&str>) -> (u16, Vec<u8>, Option<String>) {
    let mut req = s.client.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let cr = res
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, res.bytes().await.unwrap().to_vec(), cr)
}

#[tokio::test]
async fn libraries_upload_convert_link_range_delete() {
    let s = Server::start();
    let api = s.api();
    let lib = create_library(&s, json!({"name": "Decks", "external_id": "ext-1"})).await;
    let sub = create_library(&s, json!({"name": "Q3", "parent_id": lib})).await;
    let r = api
        .get(&format!("/api/v1/libraries/{sub}"))
        .await
        .expect(200);
    assert_eq!(r.body["parent_id"], lib.as_str());
    assert_eq!(r.body["name"], "Q3");

    // A PNG by multipart: ready at once, one slide.
    let png = upload_multipart(&s, &lib, "logo.png", PNG)
        .await
        .expect(201);
    assert_eq!(png.body["status"], "ready");
    assert_eq!(png.body["type"], "image");
    assert_eq!(png.body["content_type"], "image/png");
    assert_eq!(png.body["pages"], 1);
    assert_eq!(png.body["size"], PNG.len());
    assert_eq!(png.body["name"], "logo.png");
    let png_id = png.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read(file_dir(&s, &png_id).join("original")).unwrap(),
        PNG
    );

    // A 3-page PDF as the raw body (its Content-Type says text: not trusted).
    let doc = pdf(3);
    let p = upload_raw(&s, &lib, "Präsentation.pdf", &doc, "text/plain")
        .await
        .expect(201);
    assert_eq!(p.body["content_type"], "application/pdf");
    assert_eq!(p.body["type"], "pdf");
    assert_eq!(p.body["name"], "Präsentation.pdf");
    let pdf_id = p.body["id"].as_str().unwrap().to_string();
    let done = wait_converted(&s, &lib, &pdf_id).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["pages"], 3);
    assert!(done["failure_reason"].is_null());
    for n in 1..=3 {
        assert!(
            file_dir(&s, &pdf_id)
                .join(format!("slides/{n}.png"))
                .is_file()
        );
    }

    // Lists, with the pagination every list has.
    let all = api
        .get(&format!("/api/v1/libraries/{lib}/files"))
        .await
        .expect(200);
    assert_eq!(all.body["total_count"], 2);
    assert_eq!(all.body["data"][0]["id"], pdf_id.as_str(), "newest first");
    let one = api
        .get(&format!("/api/v1/libraries/{lib}/files?limit=1&order=asc"))
        .await
        .expect(200);
    assert_eq!(one.body["total_count"], 2);
    assert_eq!(one.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(one.body["data"][0]["id"], png_id.as_str());
    let next = api
        .get(&format!(
            "/api/v1/libraries/{lib}/files?limit=1&order=asc&after={png_id}"
        ))
        .await
        .expect(200);
    assert_eq!(next.body["data"][0]["id"], pdf_id.as_str());
    api.get(&format!("/api/v1/libraries/{lib}/files?limit=0"))
        .await
        .expect_invalid("limit");
    let libs = api.get("/api/v1/libraries?limit=1").await.expect(200);
    assert_eq!(libs.body["total_count"], 2);
    assert_eq!(libs.body["data"].as_array().unwrap().len(), 1);
    let children = api
        .get(&format!("/api/v1/libraries?parent_id={lib}"))
        .await
        .expect(200);
    assert_eq!(children.body["total_count"], 1);
    assert_eq!(children.body["data"][0]["id"], sub.as_str());

    // The original by signed link, whole and by Range.
    let url = link(&s, &lib, &pdf_id, "").await;
    let (status, body, _) = fetch(&s, &url, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, doc);
    let (status, body, cr) = fetch(&s, &url, Some("bytes=0-4")).await;
    assert_eq!(status, 206);
    assert_eq!(body, b"%PDF-");
    assert_eq!(cr.unwrap(), format!("bytes 0-4/{}", doc.len()));
    let (status, body, _) = fetch(&s, &url, Some("bytes=9-12")).await;
    assert_eq!(status, 206);
    assert_eq!(body, &doc[9..=12]);
    let (status, _, cr) = fetch(&s, &url, Some(&format!("bytes={}-", doc.len() + 10))).await;
    assert_eq!(status, 416);
    assert_eq!(cr.unwrap(), format!("bytes */{}", doc.len()));
    let res = s.client.get(&url).send().await.unwrap();
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.contains("filename*=UTF-8''Pr%C3%A4sentation.pdf"),
        "{disposition}"
    );

    // A slide by signed link: a PNG.
    let slide = link(&s, &lib, &pdf_id, "?page=2").await;
    let (status, body, _) = fetch(&s, &slide, None).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"));
    api.get(&format!(
        "/api/v1/libraries/{lib}/files/{pdf_id}/download?page=4"
    ))
    .await
    .expect_invalid("page");
    api.get(&format!(
        "/api/v1/libraries/{lib}/files/{pdf_id}/download?valid_for_minutes=0"
    ))
    .await
    .expect_invalid("valid_for_minutes");

    // Forged, altered and expired links are refused.
    let forged = {
        let (head, sig) = url.split_once("signature=").unwrap();
        let flipped: String = sig
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    if c == 'a' { 'b' } else { 'a' }
                } else {
                    c
                }
            })
            .collect();
        format!("{head}signature={flipped}")
    };
    assert_eq!(fetch(&s, &forged, None).await.0, 403);
    assert_eq!(fetch(&s, &format!("{slide}1"), None).await.0, 403);
    assert_eq!(fetch(&s, &format!("{url}&page=1"), None).await.0, 403);
    let other_file = url.replace(&pdf_id, &png_id);
    assert_eq!(fetch(&s, &other_file, None).await.0, 403);
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let past = url.replace(&format!("expires={expires}"), "expires=1000");
    assert_eq!(fetch(&s, &past, None).await.0, 403);
    // A link signed for a time already past (signed right, but expired).
    let expired_sig = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("library-link\n{pdf_id}\n\n1000").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let expired = s.url(&format!(
        "/api/v1/libraries/{lib}/files/{pdf_id}/media?expires=1000&signature={expired_sig}"
    ));
    assert_eq!(fetch(&s, &expired, None).await.0, 403);
    // The same construction with a future expiry is accepted: the check above
    // failed on the expiry, not on the construction.
    let future = chrono::Utc::now().timestamp() + 600;
    let good_sig = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("library-link\n{pdf_id}\n\n{future}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let fresh = s.url(&format!(
        "/api/v1/libraries/{lib}/files/{pdf_id}/media?expires={future}&signature={good_sig}"
    ));
    assert_eq!(fetch(&s, &fresh, None).await.0, 200);

    // Delete: gone from the list, the disk, and its links.
    api.delete(&format!("/api/v1/libraries/{lib}/files/{pdf_id}"))
        .await
        .expect(204);
    assert!(!file_dir(&s, &pdf_id).exists());
    let all = api
        .get(&format!("/api/v1/libraries/{lib}/files"))
        .await
        .expect(200);
    assert_eq!(all.body["total_count"], 1);
    assert_eq!(fetch(&s, &url, None).await.0, 403);
    api.delete(&format!("/api/v1/libraries/{lib}/files/{pdf_id}"))
        .await
        .expect(404);
    api.get(&format!("/api/v1/libraries/{lib}/files/{pdf_id}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn libraries_refuse_bad_input() {
    let s = Server::start_with(Options {
        env: vec![
            ("CONVENE_LIBRARY_MAX_FILE_MB".into(), "1".into()),
            ("CONVENE_LIBRARY_MAX_TEAM_MB".into(), "2".into()),
        ],
        ..Default::default()
    });
    let api = s.api();
    let lib = create_library(&s, json!({"name": "Inbox"})).await;
    let files_dir = s.data_dir.join("libraries").join("files");
    let stored = || std::fs::read_dir(&files_dir).unwrap().count();

    // No auth: 401 before any lookup; unknown library: 404.
    let res = s
        .client
        .get(s.url(&format!("/api/v1/libraries/{lib}/files")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = s
        .client
        .post(s.url("/api/v1/libraries/no-such-library/files"))
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    api.get("/api/v1/libraries/no-such-library/files")
        .await
        .expect(404);
    let r = upload_raw(&s, "no-such-library", "a.png", PNG, "image/png")
        .await
        .expect(404);
    assert!(r.body["message"].as_str().unwrap().contains("not found"));
    api.delete(&format!("/api/v1/libraries/{lib}/files/no-such-file"))
        .await
        .expect(404);

    // Library bodies are validated.
    api.post("/api/v1/libraries", json!({}))
        .await
        .expect_invalid("name");
    api.post("/api/v1/libraries", json!({"name": 5}))
        .await
        .expect_invalid("name");
    api.post(
        "/api/v1/libraries",
        json!({"name": "x", "parent_id": "nope"}),
    )
    .await
    .expect_invalid("parent_id");
    api.post("/api/v1/libraries", json!({"name": "x", "room_id": "nope"}))
        .await
        .expect_invalid("room_id");

    // Oversized: 413 naming the limit, nothing stored (raw and multipart).
    let big = {
        let mut b = pdf(1);
        b.resize(1024 * 1024 + 1, b' ');
        b
    };
    let r = upload_raw(&s, &lib, "big.pdf", &big, "application/pdf")
        .await
        .expect(413);
    assert!(
        r.body["message"].as_str().unwrap().contains("1 MB"),
        "{}",
        r.body
    );
    let r = upload_multipart(&s, &lib, "big.pdf", &big)
        .await
        .expect(413);
    assert_eq!(r.body["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(stored(), 0);

    // An upload refused part way is read to its end before the answer:
    // the client gets the 413 (or the 415) whole, and the connection
    // serves its next request instead of being reset with the rest unread.
    let over = {
        let mut b = String::from_utf8(pdf(1)).unwrap();
        b.push_str(&" ".repeat(1024 * 1024 + 32 * 1024));
        b
    };
    let not_an_image = "just some text, not an image. ".repeat(8_000);
    let listing = format!("/api/v1/libraries/{lib}/files");
    for (query, content_type, body, status) in [
        ("name=big.pdf", "application/pdf", &over, 413),
        ("name=x.png", "image/png", &not_an_image, 415),
    ] {
        let answers = convene_tests::post_then_get_on_one_connection(
            &s.url(""),
            &[("Authorization", &format!("Bearer {KEY}"))],
            (&format!("{listing}?{query}"), content_type, body),
            &listing,
        )
        .await
        .unwrap();
        assert_eq!(answers[0].0, status, "{:?}", answers[0]);
        assert_eq!(answers[1].0, 200, "{:?}", answers[1]);
    }
    assert_eq!(stored(), 0);

    // A text file named .png: refused by what its bytes are.
    let r = upload_multipart(&s, &lib, "notes.png", b"just some text, not an image")
        .await
        .expect(415);
    assert!(r.body["message"].as_str().unwrap().contains("PDF, PNG"));
    upload_raw(&s, &lib, "x.png", b"tiny", "image/png")
        .await
        .expect(415);
    upload_raw(&s, &lib, "empty.png", b"", "image/png")
        .await
        .expect_invalid("file");
    assert_eq!(stored(), 0);

    // Malformed forms and requests: each refused with its reason.
    let boundary = "b0undary";
    let only_name = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx.png\r\n--{boundary}--\r\n"
    );
    let form = |ct: String, body: Vec<u8>| {
        s.client
            .post(s.url(&format!("/api/v1/libraries/{lib}/files")))
            .bearer_auth(KEY)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = Resp::read(
        form(
            format!("multipart/form-data; boundary={boundary}"),
            only_name.into_bytes(),
        )
        .await
        .unwrap(),
    )
    .await;
    r.expect_invalid("file");
    let r = Resp::read(
        form("multipart/form-data".into(), PNG.to_vec())
            .await
            .unwrap(),
    )
    .await
    .expect(400);
    assert!(r.body["message"].as_str().unwrap().contains("boundary"));
    let two = {
        let (_, mut a) = multipart("a.png", PNG, None);
        // Drop the closing delimiter and add a second file part.
        a.truncate(a.len() - "--convene-test-boundary-7d1f--\r\n".len());
        a.extend_from_slice(
            b"--convene-test-boundary-7d1f\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.png\"\r\n\r\n",
        );
        a.extend_from_slice(PNG);
        a.extend_from_slice(b"\r\n--convene-test-boundary-7d1f--\r\n");
        a
    };
    let r = Resp::read(
        form(
            "multipart/form-data; boundary=convene-test-boundary-7d1f".into(),
            two,
        )
        .await
        .unwrap(),
    )
    .await
    .expect(400);
    assert!(r.body["message"].as_str().unwrap().contains("one file"));
    assert_eq!(stored(), 0);
    api.post("/api/v1/libraries", json!({"name": "x".repeat(201)}))
        .await
        .expect_invalid("name");
    api.post("/api/v1/libraries", json!({"name": "x", "external_id": 7}))
        .await
        .expect_invalid("external_id");
    api.get("/api/v1/libraries?order=sideways")
        .await
        .expect_invalid("order");
    api.get(&format!(
        "/api/v1/libraries/{lib}/files/no-such-file/download"
    ))
    .await
    .expect(404);

    // A path as the name: only its last component is kept.
    let r = upload_multipart(&s, &lib, "../../etc/passwd", PNG)
        .await
        .expect(201);
    assert_eq!(r.body["name"], "passwd");
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(file_dir(&s, &id).join("original").is_file());
    let r = upload_raw(&s, &lib, "..\\..\\win.ini", PNG, "image/png")
        .await
        .expect(201);
    assert_eq!(r.body["name"], "win.ini");
    let (ct, body) = multipart("ignored.png", PNG, Some("/etc/shadow"));
    let res = s
        .client
        .post(s.url(&format!("/api/v1/libraries/{lib}/files")))
        .bearer_auth(KEY)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let r = Resp::read(res).await.expect(201);
    assert_eq!(r.body["name"], "shadow");

    // A corrupt PDF fails alone; a good one uploaded with it converts.
    let bad = upload_raw(
        &s,
        &lib,
        "broken.pdf",
        b"%PDF-1.4\nthis is not really a pdf at all\n",
        "application/pdf",
    )
    .await
    .expect(201);
    let good = upload_raw(&s, &lib, "good.pdf", &pdf(2), "application/pdf")
        .await
        .expect(201);
    let bad = wait_converted(&s, &lib, bad.body["id"].as_str().unwrap()).await;
    assert_eq!(bad["status"], "failed", "{bad}");
    assert!(
        bad["failure_reason"]
            .as_str()
            .unwrap()
            .contains("not a readable PDF"),
        "{bad}"
    );
    let bad_id = bad["id"].as_str().unwrap();
    api.get(&format!(
        "/api/v1/libraries/{lib}/files/{bad_id}/download?page=0"
    ))
    .await
    .expect_invalid("page");
    let r = api
        .get(&format!(
            "/api/v1/libraries/{lib}/files/{bad_id}/download?page=1"
        ))
        .await
        .expect(409);
    assert!(r.body["message"].as_str().unwrap().contains("failed"));
    let good = wait_converted(&s, &lib, good.body["id"].as_str().unwrap()).await;
    assert_eq!(good["status"], "ready", "{good}");
    assert_eq!(good["pages"], 2);

    // The team quota (2 MB): a file that fits the per-file limit but not the
    // rest of the quota is a 413 naming the limit, and is not kept.
    let near = {
        let mut b = pdf(1);
        b.resize(1_040_000, b' ');
        b
    };
    for name in ["a.pdf", "b.pdf"] {
        upload_raw(&s, &lib, name, &near, "application/pdf")
            .await
            .expect(201);
    }
    let before = stored();
    let r = upload_raw(&s, &lib, "c.pdf", &near, "application/pdf")
        .await
        .expect(413);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("2097152 bytes"),
        "{}",
        r.body
    );
    assert_eq!(stored(), before);
    let tmp = s.data_dir.join("libraries").join("tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[tokio::test]
async fn libraries_go_with_their_room_on_delete_library() {
    let mut s = Server::start();
    let api = s.api();
    for (name, tag) in [
        ("lib-room-a", "wipe"),
        ("lib-room-b", "keep"),
        ("lib-room-c", "x"),
    ] {
        api.post(
            "/api/v1/rooms",
            json!({"friendly_url": name, "tags": [tag]}),
        )
        .await
        .expect(200);
    }
    let a = create_library(&s, json!({"name": "A", "room_id": "lib-room-a"})).await;
    let a_child = create_library(&s, json!({"name": "A1", "parent_id": a})).await;
    let b = create_library(&s, json!({"name": "B", "room_id": "lib-room-b"})).await;
    let c = create_library(&s, json!({"name": "C", "room_id": "lib-room-c"})).await;
    let r = api
        .get("/api/v1/libraries?room_id=lib-room-a")
        .await
        .expect(200);
    assert_eq!(r.body["total_count"], 1);
    assert_eq!(r.body["data"][0]["id"], a.as_str());
    let r = api
        .get("/api/v1/libraries?room_id=no-such-room")
        .await
        .expect(200);
    assert_eq!(r.body["total_count"], 0);
    let file = upload_multipart(&s, &a_child, "x.png", PNG)
        .await
        .expect(201);
    let file_id = file.body["id"].as_str().unwrap().to_string();
    assert!(file_dir(&s, &file_id).exists());

    // Bulk delete by tag with delete_library: the library, its sub-folder
    // and their files go.
    let r = api
        .delete_with(
            "/api/v1/rooms/tags",
            json!({"tags": ["wipe"], "delete_library": true}),
        )
        .await
        .expect(202);
    assert_eq!(r.body["deleted"].as_array().unwrap().len(), 1);
    api.get(&format!("/api/v1/libraries/{a}")).await.expect(404);
    api.get(&format!("/api/v1/libraries/{a_child}"))
        .await
        .expect(404);
    assert!(!file_dir(&s, &file_id).exists());

    // Without it, the library stays, unlinked.
    api.delete("/api/v1/rooms/lib-room-b").await.expect(204);
    let r = api.get(&format!("/api/v1/libraries/{b}")).await.expect(200);
    assert!(r.body["room_id"].is_null());

    // The single-room delete honours it too (body form).
    api.delete_with("/api/v1/rooms/lib-room-c", json!({"delete_library": true}))
        .await
        .expect(204);
    api.get(&format!("/api/v1/libraries/{c}")).await.expect(404);
    api.delete_with("/api/v1/rooms/nope", json!({"delete_library": "yes"}))
        .await
        .expect_invalid("delete_library");

    // A restart keeps the rest and leaves no orphan on disk.
    let kept = upload_multipart(&s, &b, "kept.png", PNG).await.expect(201);
    let kept_id = kept.body["id"].as_str().unwrap().to_string();
    let orphan = s
        .data_dir
        .join("libraries/files")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("original"), PNG).unwrap();
    let tmp_part = s.data_dir.join("libraries/tmp/interrupted.part");
    std::fs::write(&tmp_part, b"half an upload").unwrap();
    s.restart();
    assert!(!orphan.exists(), "a file without a row is removed at start");
    assert!(
        !tmp_part.exists(),
        "an interrupted upload is removed at start"
    );
    assert!(file_dir(&s, &kept_id).join("original").is_file());
    let r = s
        .api()
        .get(&format!("/api/v1/libraries/{b}/files"))
        .await
        .expect(200);
    assert_eq!(r.body["total_count"], 1);
}

#[tokio::test]
async fn libraries_team_quota_holds_under_concurrent_uploads() {
    // 2 MiB per team; three uploads of ~1 MB at once: exactly two fit,
    // whatever the order (the quota is checked again in the insert's
    // write transaction), and the refused one leaves nothing on disk.
    let s = Server::start_with(Options {
        env: vec![
            ("CONVENE_LIBRARY_MAX_FILE_MB".into(), "1".into()),
            ("CONVENE_LIBRARY_MAX_TEAM_MB".into(), "2".into()),
        ],
        ..Default::default()
    });
    let lib = create_library(&s, json!({"name": "Race"})).await;
    let mut big = PNG.to_vec();
    big.resize(1_000_000, 0);
    let uploads = (0..3).map(|i| {
        let (s, lib, big) = (&s, &lib, &big);
        async move { upload_raw(s, lib, &format!("{i}.png"), big, "image/png").await }
    });
    let results = futures::future::join_all(uploads).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![201, 201, 413], "{results:?}");
    let listed = s
        .api()
        .get(&format!("/api/v1/libraries/{lib}/files"))
        .await
        .expect(200);
    assert_eq!(listed.body["total_count"], 2);
    let on_disk = std::fs::read_dir(s.data_dir.join("libraries/files"))
        .unwrap()
        .count();
    assert_eq!(on_disk, 2);
}
