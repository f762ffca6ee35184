//! Presenting a library file in the room (issue 19), in real Chromium: a
//! moderator opens a 3-page PDF from the room's content library, everyone
//! sees the same slide, page turns reach the others, a late joiner lands on
//! the current page; an attendee (no `screenshare`) cannot present, and
//! files of another room's library, pages out of range and files without
//! slides are refused with the reason.

use convene_tests::browser::{Browser, Page};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};
use crate::libraries::{create_library, pdf, upload_raw, wait_converted};

/// Waits until the page shows `page` of the presentation, loaded.
async fn wait_slide(p: &Page, page: i64) -> Value {
    p.wait_for(
        &format!(
            "(() => {{ const c = window.convene.presentation; \
               return c && c.shown && c.loaded && c.page === {page} \
                 && document.getElementById('slide-img').src.includes('page={page}') ? c : null; }})()"
        ),
        JOIN_TIMEOUT,
    )
    .await
}

async fn notices(p: &Page) -> String {
    p.eval("window.convene.notices.map(n => n.text).join(' | ')")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_presented_file_turns_pages_for_everyone_and_late_joiners() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    for room in ["deck", "other"] {
        s.api()
            .post(
                "/api/v1/rooms",
                json!({"friendly_url": room, "join_screen_enabled": false}),
            )
            .await
            .expect(200);
    }
    let lib = create_library(&s, json!({"name": "Deck room", "room_id": "deck"})).await;
    let elsewhere = create_library(&s, json!({"name": "Other room", "room_id": "other"})).await;
    let up = upload_raw(&s, &lib, "quarterly.pdf", &pdf(3), "application/pdf")
        .await
        .expect(201)
        .body;
    let file = up["id"].as_str().unwrap().to_string();
    assert_eq!(wait_converted(&s, &lib, &file).await["pages"], 3);
    let other = upload_raw(&s, &elsewhere, "secret.pdf", &pdf(1), "application/pdf")
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_converted(&s, &elsewhere, &other).await;

    let t_mo = token(&s, "deck", "Mo", "moderator").await;
    let t_ada = token(&s, "deck", "Ada", "attendee").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let mo = b1.open(&s.url(&format!("/deck?token={t_mo}"))).await;
    let ada = b2.open(&s.url(&format!("/deck?token={t_ada}"))).await;
    wait_state(&mo, "joined").await;
    wait_state(&ada, "joined").await;

    // Only a role that may share the screen sees "Present a file".
    assert_eq!(
        mo.eval("document.getElementById('ctl-present').hidden")
            .await,
        false
    );
    assert_eq!(
        ada.eval("document.getElementById('ctl-present').hidden")
            .await,
        true
    );

    // The moderator picks the file from the list the server sends: only
    // this room's library is offered.
    mo.eval("document.getElementById('ctl-present').click()")
        .await;
    let listed = mo
        .wait_for(
            "(() => { const b = [...document.querySelectorAll('#present-list button')]; \
               return document.getElementById('present-dialog').open && b.length \
                 ? b.map(x => x.dataset.fileId) : null; })()",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(listed, json!([file]), "only this room's files are offered");
    mo.eval(&format!(
        "document.querySelector('#present-list button[data-file-id=\"{file}\"]').click()"
    ))
    .await;
    for p in [&mo, &ada] {
        let c = wait_slide(p, 1).await;
        assert_eq!(c["name"], "quarterly.pdf");
        assert_eq!(c["pages"], 3);
    }
    // The attendee sees the slide without the presenter's controls.
    assert_eq!(
        ada.eval("document.getElementById('slide-next').hidden")
            .await,
        true
    );
    assert_eq!(
        mo.eval("document.getElementById('slide-prev').disabled")
            .await,
        true
    );

    // A page turn reaches the other page.
    mo.eval("document.getElementById('slide-next').click()")
        .await;
    wait_slide(&ada, 2).await;
    let label = ada
        .eval("document.getElementById('slide-label').textContent")
        .await;
    assert_eq!(label, "quarterly.pdf — slide 2 of 3");

    // A late joiner lands on the current slide.
    let t_bo = token(&s, "deck", "Bo", "speaker").await;
    let bo = b2.open(&s.url(&format!("/deck?token={t_bo}"))).await;
    wait_state(&bo, "joined").await;
    wait_slide(&bo, 2).await;

    // Refusals, each with its reason, and the slide stays where it was.
    ada.eval("window.convene.send({type: 'present_page', page: 3})")
        .await;
    ada.wait_for(
        "window.convene.notices.some(n => n.text.includes('screenshare'))",
        JOIN_TIMEOUT,
    )
    .await;
    mo.eval("window.convene.send({type: 'present_page', page: 4})")
        .await;
    mo.wait_for(
        "window.convene.notices.some(n => n.text.includes('between 1 and 3'))",
        JOIN_TIMEOUT,
    )
    .await;
    mo.eval(&format!(
        "window.convene.send({{type: 'present_start', file_id: '{other}'}})"
    ))
    .await;
    mo.wait_for(
        "window.convene.notices.some(n => n.text.includes('no such library file'))",
        JOIN_TIMEOUT,
    )
    .await;
    for p in [&mo, &ada, &bo] {
        assert_eq!(
            p.eval("window.convene.presentation.page").await,
            2,
            "{}",
            notices(p).await
        );
    }

    // The slide is a signed link: altered, it is refused.
    let url = ada.eval("window.convene.presentation.url").await;
    let url = url.as_str().unwrap();
    let good = s.client.get(s.url(url)).send().await.unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(
        good.headers()["content-type"].to_str().unwrap(),
        "image/png"
    );
    let forged = url.replace("page=2", "page=3");
    assert_eq!(
        s.client.get(s.url(&forged)).send().await.unwrap().status(),
        403
    );

    // Stop: the slide goes away for everyone.
    mo.eval("document.getElementById('slide-stop').click()")
        .await;
    for p in [&mo, &ada, &bo] {
        p.wait_for(
            "window.convene.presentation === null && document.getElementById('slides').hidden",
            JOIN_TIMEOUT,
        )
        .await;
    }
}

/// Pixels of the composite's large tile (a presented slide sits there,
/// scaled into 960x480 at y 120) that are the test PDF's blue, at `t` s.
fn blue_in_big_tile(mp4: &std::path::Path, t: f64) -> usize {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(mp4)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "crop=960:480:0:120,scale=240:120",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success() && out.stdout.len() == 240 * 120 * 3,
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(3)
        .filter(|p| p[2] > 150 && p[0] < 100 && p[1] < 100)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_recording_shows_the_presented_slides_as_the_screen_share() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "deck-rec", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true,
                   "recordings_enabled": true}),
        )
        .await
        .expect(200);
    let lib = create_library(&s, json!({"name": "Deck", "room_id": "deck-rec"})).await;
    let file = upload_raw(&s, &lib, "two.pdf", &pdf(2), "application/pdf")
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_converted(&s, &lib, &file).await["pages"], 2);

    let t_mo = token(&s, "deck-rec", "Mo", "moderator").await;
    let b = Browser::launch().await;
    let mo = b.open(&s.url(&format!("/deck-rec?token={t_mo}"))).await;
    wait_state(&mo, "joined").await;
    mo.wait_for(
        "window.convene.pc && window.convene.pc.getSenders().filter(x => x.track).length >= 2",
        JOIN_TIMEOUT,
    )
    .await;
    let id = s
        .api()
        .post("/api/v1/rooms/deck-rec/recordings/start", json!({}))
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    // The room's layout changes during the recording: the composite follows it.
    s.api()
        .patch("/api/v1/rooms/deck-rec", json!({"layout_mode": "speaker"}))
        .await
        .expect(200);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    mo.eval(&format!(
        "window.convene.send({{type: 'present_start', file_id: '{file}'}})"
    ))
    .await;
    wait_slide(&mo, 1).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    mo.eval("document.getElementById('slide-next').click()")
        .await;
    wait_slide(&mo, 2).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    s.api()
        .post("/api/v1/rooms/deck-rec/recordings/stop", json!({}))
        .await
        .expect(200);

    // The composite is made (the slides are a still screen-share input).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let rec = loop {
        let r = s
            .api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body;
        if r["status"] == "READY" || r["status"] == "FAILED" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "not processed: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(rec["status"], "READY", "{rec:#}");
    let dir = s.data_dir.join("recordings").join(&id);
    let lines: Vec<Value> = std::fs::read_to_string(dir.join("slides.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["file"], "slides/0.png");
    let at1 = lines[0]["at_ms"].as_f64().unwrap() / 1000.0;
    let at2 = lines[1]["at_ms"].as_f64().unwrap() / 1000.0;
    assert!(at2 > at1 + 2.0, "{lines:?}");

    let layouts: Vec<Value> = std::fs::read_to_string(dir.join("layout.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        layouts
            .iter()
            .map(|l| l["mode"].clone())
            .collect::<Vec<_>>(),
        [json!("grid"), json!("speaker")],
        "{layouts:?}"
    );
    assert!(layouts[1]["at_ms"].as_i64().unwrap() > layouts[0]["at_ms"].as_i64().unwrap());

    // In the composite, slide 1 then slide 2 fill the large tile: the test
    // PDF's blue bar is twice as wide on page 2.
    let mp4 = dir.join("composite.mp4");
    let one = blue_in_big_tile(&mp4, (at1 + at2) / 2.0);
    let two = blue_in_big_tile(&mp4, at2 + 1.5);
    eprintln!("blue pixels: slide 1 {one}, slide 2 {two}");
    assert!(
        one > 200,
        "slide 1 is not in the large tile ({one} blue pixels)"
    );
    assert!(
        two as f64 > one as f64 * 1.6,
        "slide 2 ({two}) is not slide 1 ({one}) turned"
    );
}
