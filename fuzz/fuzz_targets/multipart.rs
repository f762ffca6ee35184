//! Content-library uploads (`api::libraries::storage::receive`): a
//! `multipart/form-data` body (multer's parser behind our per-field,
//! per-form and per-file bounds and type sniffing) or a raw body, arriving
//! in chunks the fuzzer chooses, with a boundary that is usually one the
//! body can contain and sometimes the fuzzer's own. Every input must end in
//! an upload within the limit or a 4xx (never a 500: the temp directory
//! works), and leave no temp file behind.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use convene_api::libraries::LibraryConfig;
use convene_api::libraries::storage::receive;
use libfuzzer_sys::fuzz_target;

const MAX_FILE: u64 = 4096;

fn config() -> &'static LibraryConfig {
    static CONFIG: OnceLock<LibraryConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        LibraryConfig {
            dir: base.join(format!("convene-fuzz-multipart-{}", std::process::id())),
            max_file_bytes: MAX_FILE,
            ..LibraryConfig::default()
        }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Some((&cut, mut body)) = rest.split_first() else {
        return;
    };
    let content_type = match sel % 4 {
        // The body's own first line is the boundary (a quoted, empty,
        // overlong or hostile one included).
        0 => {
            let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
            let boundary = String::from_utf8_lossy(&body[..end]).into_owned();
            body = &body[(end + 1).min(body.len())..];
            format!("multipart/form-data; boundary={boundary}")
        }
        1 => "text/plain".to_string(),
        _ => "multipart/form-data; boundary=fz".to_string(),
    };
    // The body in chunks of `cut` bytes (1..=256), as a network would split it.
    let size = usize::from(cut) + 1;
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut req = Request::new(Body::from_stream(futures::stream::iter(chunks)));
    if let Ok(v) = content_type.parse() {
        req.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, v);
    }
    let name = (sel & 4 != 0).then(|| "query.pdf".to_string());
    let config = config();
    let outcome = runtime().block_on(receive(req, config, name));
    match outcome {
        Ok(upload) => assert!(upload.size > 0 && upload.size <= MAX_FILE, "{upload:?}"),
        Err(e) => assert!(e.status().is_client_error(), "{e:?} for {content_type}"),
    }
    let left = std::fs::read_dir(config.tmp_dir()).map_or(0, |d| d.count());
    assert_eq!(left, 0, "a temp file was left behind");
});
