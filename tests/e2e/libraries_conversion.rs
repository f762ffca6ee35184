//! Content libraries under stress: a pdftoppm that hangs is killed at the
//! timeout, the page cap, the memory limit, a conversion cut by a restart
//! running again (with a pdftoppm stand-in that hangs on demand), and an
//! upload that stalls.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use convene_tests::{Options, Server};
use serde_json::json;

use crate::libraries::{
    CONVERT_TIMEOUT, create_library, file_dir, pdf, upload_raw, wait_converted,
};

/// A pdftoppm stand-in: records its pid, hangs while `hang` exists in its
/// directory, otherwise runs the real pdftoppm.
fn fake_pdftoppm(dir: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("pdftoppm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > {d}/pid\nif [ -e {d}/hang ]; then exec sleep 120; fi\nexec pdftoppm \"$@\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// The pid the stand-in wrote since `pid` was last removed (deadline).
async fn wait_pid(dir: &std::path::Path) -> u32 {
    let deadline = Instant::now() + CONVERT_TIMEOUT;
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("pid"))
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the converter never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gone, or a zombie not yet reaped: either way no longer running.
fn not_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

#[tokio::test]
async fn libraries_conversion_is_bounded_and_resumes_after_restart() {
    let tools = tempfile::tempdir().unwrap();
    let script = fake_pdftoppm(tools.path());
    let hang = tools.path().join("hang");

    // A conversion that hangs is killed at the timeout and fails alone.
    let s = Server::start_with(Options {
        env: vec![
            ("CONVENE_PDFTOPPM".into(), script.display().to_string()),
            ("CONVENE_LIBRARY_CONVERT_TIMEOUT_SECS".into(), "1".into()),
        ],
        ..Default::default()
    });
    let lib = create_library(&s, json!({"name": "Bounded"})).await;
    std::fs::write(&hang, b"").unwrap();
    let stuck = upload_raw(&s, &lib, "stuck.pdf", &pdf(1), "application/pdf")
        .await
        .expect(201);
    let pid = wait_pid(tools.path()).await;
    let stuck = wait_converted(&s, &lib, stuck.body["id"].as_str().unwrap()).await;
    assert_eq!(stuck["status"], "failed", "{stuck}");
    assert!(
        stuck["failure_reason"]
            .as_str()
            .unwrap()
            .contains("longer than 1 s"),
        "{stuck}"
    );
    let deadline = Instant::now() + CONVERT_TIMEOUT;
    while !not_running(pid) {
        assert!(
            Instant::now() < deadline,
            "the hung converter was not killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(&hang).unwrap();
    drop(s);

    // The page cap: more pages fail, as many pass. With the default
    // timeout: a real conversion on a loaded machine can take more than
    // the 1 s above (CI once saw the 3-page file stopped by it).
    let s = Server::start_with(Options {
        env: vec![
            ("CONVENE_PDFTOPPM".into(), script.display().to_string()),
            ("CONVENE_LIBRARY_MAX_PAGES".into(), "2".into()),
        ],
        ..Default::default()
    });
    let lib = create_library(&s, json!({"name": "Capped"})).await;
    let long = upload_raw(&s, &lib, "long.pdf", &pdf(3), "application/pdf")
        .await
        .expect(201);
    let long = wait_converted(&s, &lib, long.body["id"].as_str().unwrap()).await;
    assert_eq!(long["status"], "failed", "{long}");
    assert!(
        long["failure_reason"]
            .as_str()
            .unwrap()
            .contains("more than 2 pages"),
        "{long}"
    );
    let short = upload_raw(&s, &lib, "short.pdf", &pdf(2), "application/pdf")
        .await
        .expect(201);
    let short = wait_converted(&s, &lib, short.body["id"].as_str().unwrap()).await;
    assert_eq!(short["status"], "ready", "{short}");
    assert_eq!(short["pages"], 2);
    drop(s);

    // A conversion cut by a restart runs again after it.
    let mut s = Server::start_with(Options {
        env: vec![("CONVENE_PDFTOPPM".into(), script.display().to_string())],
        ..Default::default()
    });
    let lib = create_library(&s, json!({"name": "Resumed"})).await;
    std::fs::write(&hang, b"").unwrap();
    let _ = std::fs::remove_file(tools.path().join("pid"));
    let cut = upload_raw(&s, &lib, "cut.pdf", &pdf(3), "application/pdf")
        .await
        .expect(201);
    let cut_id = cut.body["id"].as_str().unwrap().to_string();
    let pid = wait_pid(tools.path()).await;
    let r = s
        .api()
        .get(&format!("/api/v1/libraries/{lib}/files/{cut_id}"))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "processing");
    std::fs::remove_file(&hang).unwrap();
    s.restart();
    // The stand-in the first run left hanging is ours to end.
    if !not_running(pid) {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status();
    }
    let done = wait_converted(&s, &lib, &cut_id).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["pages"], 3);
    assert!(file_dir(&s, &cut_id).join("slides/3.png").is_file());
}

#[tokio::test]
async fn libraries_conversion_memory_limit_fails_the_file_only() {
    // 8 MiB of address space is too little for pdftoppm to even load.
    let s = Server::start_with(Options {
        env: vec![("CONVENE_LIBRARY_CONVERT_MEMORY_MB".into(), "8".into())],
        ..Default::default()
    });
    let lib = create_library(&s, json!({"name": "Tight"})).await;
    let r = upload_raw(&s, &lib, "deck.pdf", &pdf(2), "application/pdf")
        .await
        .expect(201);
    let done = wait_converted(&s, &lib, r.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["failure_reason"]
            .as_str()
            .unwrap()
            .contains("8 MB memory limit"),
        "{done}"
    );
    // The server and other files are unaffected.
    let png = upload_raw(&s, &lib, "a.png", crate::libraries::PNG, "image/png")
        .await
        .expect(201);
    assert_eq!(png.body["status"], "ready");
    s.api().get("/health").await.expect(200);
}

#[tokio::test]
async fn libraries_stalled_upload_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with(Options {
        env: vec![("CONVENE_LIBRARY_UPLOAD_IDLE_SECS".into(), "1".into())],
        ..Default::default()
    });
    let lib = create_library(&s, json!({"name": "Stall"})).await;
    // Promise 100000 bytes, send 20, then go quiet.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/libraries/{lib}/files?name=slow.png HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n",
        convene_tests::KEY
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&crate::libraries::PNG[..20]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(CONVERT_TIMEOUT, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&answer).contains("stalled") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled upload");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("the upload stalled"), "{text}");
    let tmp = s.data_dir.join("libraries/tmp");
    let parts = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(parts, 0, "the stalled upload's temp file is removed");
    let r = s
        .api()
        .get(&format!("/api/v1/libraries/{lib}/files"))
        .await
        .expect(200);
    assert_eq!(r.body["total_count"], 0);
}
