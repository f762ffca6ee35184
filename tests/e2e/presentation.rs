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
