//! Accessibility of the meeting client in real Chromium (issue 25): an
//! in-page check (axe-core is not available offline) of every rendered
//! control on the join screen and in the call, a phone-sized viewport
//! without horizontal scrolling, and screenshots of each layout for
//! docs/browser-client.md (written to docs/img/ when
//! `CONVENE_DOC_SCREENSHOTS=1`, else to a temporary directory).

use std::path::PathBuf;

use convene_tests::browser::{Browser, Page};
use serde_json::{Value, json};

use crate::browser::{JOIN_TIMEOUT, MEDIA_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Remote video is decoded (the room turns microphones off on join).
const VIDEO_FLOWS: &str = "window.convene.stats().then(s => s.framesDecoded > 0)";

/// Finds, among the elements the page renders: controls without an
/// accessible name, form fields without a label, images without alt text,
/// controls taken out of the tab order, focusable elements inside
/// `aria-hidden`, and duplicate ids. Returns `[{rule, what}]`.
pub(crate) const A11Y_CHECK: &str = r#"(() => {
  const found = [];
  const rendered = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const describe = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '');
  const text = (e) => (e.textContent || '').replace(/\s+/g, ' ').trim();
  const byIds = (ids) => ids.split(/\s+/).map((id) => document.getElementById(id)).filter(Boolean).map(text).join(' ').trim();
  const name = (e) => {
    if (e.getAttribute('aria-labelledby')) { const n = byIds(e.getAttribute('aria-labelledby')); if (n) return n; }
    if ((e.getAttribute('aria-label') || '').trim()) return e.getAttribute('aria-label').trim();
    if (e.labels && e.labels.length) { const n = [...e.labels].map(text).join(' ').trim(); if (n) return n; }
    if (e.tagName === 'BUTTON' || e.getAttribute('role') === 'button' || e.tagName === 'A') {
      const n = text(e) || [...e.querySelectorAll('img[alt]')].map((i) => i.alt).join(' ').trim();
      if (n) return n;
    }
    if (e.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(e.type) && e.value) return e.value;
    return (e.getAttribute('title') || '').trim();
  };
  const controls = 'button, input:not([type=hidden]), select, textarea, a[href], [role=button], [role=tab], [tabindex]';
  for (const e of document.querySelectorAll(controls)) {
    if (!rendered(e)) continue;
    if (!name(e)) found.push({ rule: 'control-name', what: describe(e) });
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName) && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
      found.push({ rule: 'label', what: describe(e) });
    if (e.tabIndex < 0 && !e.disabled) found.push({ rule: 'not-keyboard-reachable', what: describe(e) });
    if (e.closest('[aria-hidden=true]')) found.push({ rule: 'focusable-in-aria-hidden', what: describe(e) });
  }
  for (const i of document.querySelectorAll('img')) {
    if (rendered(i) && !i.hasAttribute('alt')) found.push({ rule: 'img-alt', what: describe(i) });
  }
  const seen = new Map();
  for (const e of document.querySelectorAll('[id]')) seen.set(e.id, (seen.get(e.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) found.push({ rule: 'duplicate-id', what: id });
  if (!document.documentElement.lang) found.push({ rule: 'html-lang', what: 'html' });
  return found;
})()"#;

/// Layout facts of a narrow page: no horizontal scroll, every rendered
/// control inside the viewport and at least 24 px in each direction.
const PHONE_CHECK: &str = r#"(() => {
  const w = window.innerWidth;
  const out = { width: w, scrollWidth: document.documentElement.scrollWidth, outside: [], small: [] };
  for (const e of document.querySelectorAll('#controls button, #controls select, #join-form button, #join-form input')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < 0 || r.right > w + 0.5) out.outside.push(e.id || e.className);
    if (r.width < 24 || r.height < 24) out.small.push(e.id || e.className);
  }
  return out;
})()"#;

async fn assert_accessible(page: &Page, where_: &str) {
    let found = page.eval(A11Y_CHECK).await;
    assert_eq!(found, json!([]), "accessibility findings {where_}");
}

fn shots_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var("CONVENE_DOC_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
        std::fs::create_dir_all(&dir).unwrap();
        (dir, None)
    } else {
        let tmp = tempfile::tempdir().unwrap();
        (tmp.path().to_path_buf(), Some(tmp))
    }
}

/// A screenshot as a PNG under 150 KB (JPEG-like noise from the fake
/// camera would make it larger, so tiles are shot at a small window).
async fn shot(page: &Page, dir: &std::path::Path, name: &str) {
    let path = dir.join(name);
    page.screenshot(&path).await;
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 1000 && len < 150 * 1024, "{name}: {len} bytes");
}

/// Opens the client at `url`; loads it again if the first load failed
/// (Chromium reports `ERR_NETWORK_CHANGED` for loads in its first moments
/// when the test namespace's veth pair has only just come up).
async fn open_client(b: &Browser, url: &str) -> Page {
    let page = b.open(url).await;
    if page
        .try_wait_for("Boolean(window.convene)", std::time::Duration::from_secs(5))
        .await
        .is_err()
    {
        page.navigate(url).await;
    }
    page
}

async fn viewport(page: &Page, width: u32, height: u32, mobile: bool) {
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_client_is_accessible_on_the_join_screen_in_the_call_and_on_a_phone() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "access", "qa_enabled": true}),
        )
        .await
        .expect(200);
    let (dir, _tmp) = shots_dir();
    let b = Browser::launch().await;

    // The join screen.
    let mo = open_client(
        &b,
        &s.url(&format!(
            "/access?token={}",
            token(&s, "access", "Mo", "moderator").await
        )),
    )
    .await;
    mo.wait_for(
        "window.convene && window.convene.state === 'idle' && !document.getElementById('screen-join').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    assert_accessible(&mo, "on the join screen").await;
    // The check itself finds what it looks for.
    let planted = mo
        .eval(&(
            "(() => { const b = document.createElement('button'); b.id = 'join-button'; \
             document.getElementById('join-form').append(b); \
             const i = document.createElement('input'); document.getElementById('join-form').append(i); \
             const f = (" .to_string()
                + A11Y_CHECK
                + ").map(x => x.rule); b.remove(); i.remove(); return f; })()"))
        .await;
    for rule in ["control-name", "label", "duplicate-id"] {
        assert!(
            planted.as_array().unwrap().iter().any(|r| r == rule),
            "{rule} not found in {planted}"
        );
    }
    assert_accessible(&mo, "on the join screen, planted elements removed").await;

    // In the call, with a second participant so tiles carry their actions.
    mo.eval("document.getElementById('join-button').click(); true")
        .await;
    wait_state(&mo, "joined").await;
    let ann = b
        .open(&s.url(&format!(
            "/access?token={}",
            token(&s, "access", "Ann", "speaker").await
        )))
        .await;
    ann.eval("window.convene.join('Ann')").await;
    wait_state(&ann, "joined").await;
    mo.wait_for(VIDEO_FLOWS, MEDIA_TIMEOUT).await;
    assert_accessible(&mo, "in the call (moderator)").await;
    for tab in ["tab-qa", "tab-polls", "tab-people", "tab-chat"] {
        mo.eval(&format!("document.getElementById('{tab}').click(); true"))
            .await;
        assert_accessible(&mo, &format!("in the call, {tab}")).await;
    }
    assert_accessible(&ann, "in the call (speaker)").await;

    // Screenshots of each layout (desktop, small window to keep them small).
    viewport(&mo, 800, 450, false).await;
    mo.eval("window.convene.setRoomLayout('grid')").await;
    mo.wait_for("window.convene.layout.room === 'grid'", JOIN_TIMEOUT)
        .await;
    shot(&mo, &dir, "layout-grid.png").await;
    mo.eval("window.convene.setRoomLayout('speaker')").await;
    mo.wait_for(
        "window.convene.layout.room === 'speaker' && window.convene.layout.focus !== null",
        JOIN_TIMEOUT,
    )
    .await;
    shot(&mo, &dir, "layout-speaker.png").await;
    ann.eval("window.convene.toggleScreen().then(() => true)")
        .await;
    mo.eval("window.convene.setRoomLayout('presentation')")
        .await;
    let ann_screen: Value = ann.eval("window.convene.participantId + ':screen'").await;
    mo.wait_for(
        &format!("window.convene.layout.room === 'presentation' && window.convene.layout.focus === {ann_screen}"),
        MEDIA_TIMEOUT,
    )
    .await;
    shot(&mo, &dir, "layout-presentation.png").await;
    // Speaker view while the screen is shared: Ann's camera is large.
    let ann_id: Value = ann.eval("window.convene.participantId").await;
    mo.eval("window.convene.setRoomLayout('speaker')").await;
    mo.wait_for(
        &format!(
            "window.convene.layout.room === 'speaker' && window.convene.layout.focus === {ann_id}"
        ),
        JOIN_TIMEOUT,
    )
    .await;
    shot(&mo, &dir, "layout-speaker-share.png").await;
    // A tile full screen (the tile's own control, a trusted click).
    let key = ann_id.as_str().unwrap();
    crate::client_tiles::click_trusted(
        &mo,
        &format!("#grid .tile[data-key=\"{key}\"] button.fullscreen"),
    )
    .await;
    mo.wait_for(
        &format!("window.convene.fullscreen === {ann_id}"),
        JOIN_TIMEOUT,
    )
    .await;
    assert_accessible(&mo, "with a tile full screen").await;
    shot(&mo, &dir, "layout-fullscreen.png").await;
    // Ann's blurred camera, as Mo receives it, full screen (the corners and
    // the time stamp blurred, the middle sharp).
    ann.eval("window.convene.setBlur(true).then(() => true)")
        .await;
    let decoded = mo.eval("window.convene.stats()").await["framesDecoded"]
        .as_u64()
        .unwrap();
    mo.wait_for(
        &format!("window.convene.stats().then(s => s.framesDecoded > {decoded} + 60)"),
        MEDIA_TIMEOUT,
    )
    .await;
    shot(&mo, &dir, "effect-blur.png").await;
    ann.eval("window.convene.setBlur(false).then(() => true)")
        .await;
    mo.eval("document.exitFullscreen().then(() => true)").await;
    mo.wait_for("window.convene.fullscreen === null", JOIN_TIMEOUT)
        .await;
    mo.eval("window.convene.setRoomLayout('presentation')")
        .await;

    // A phone: 390 x 844, no horizontal scroll, every control on screen.
    let phone = b.open("about:blank").await;
    viewport(&phone, 390, 844, true).await;
    phone
        .navigate(&s.url(&format!(
            "/access?token={}",
            token(&s, "access", "Pia", "speaker").await
        )))
        .await;
    phone
        .wait_for(
            "window.convene && window.convene.state === 'idle' && !document.getElementById('screen-join').hidden",
            JOIN_TIMEOUT,
        )
        .await;
    let join = phone.eval(PHONE_CHECK).await;
    assert_eq!(join["width"], 390, "{join}");
    assert!(join["scrollWidth"].as_u64().unwrap() <= 390, "{join}");
    assert_eq!(join["outside"], json!([]), "{join}");
    assert_eq!(join["small"], json!([]), "{join}");
    phone
        .eval("document.getElementById('join-button').click(); true")
        .await;
    wait_state(&phone, "joined").await;
    phone.wait_for(VIDEO_FLOWS, MEDIA_TIMEOUT).await;
    let call = phone.eval(PHONE_CHECK).await;
    assert!(call["scrollWidth"].as_u64().unwrap() <= 390, "{call}");
    assert_eq!(call["outside"], json!([]), "{call}");
    assert_eq!(call["small"], json!([]), "{call}");
    assert_accessible(&phone, "on a phone").await;
    // The room layout is presentation: the shared screen is large.
    phone
        .wait_for(
            &format!("window.convene.layout.focus === {ann_screen}"),
            MEDIA_TIMEOUT,
        )
        .await;
    shot(&phone, &dir, "layout-phone.png").await;
}
