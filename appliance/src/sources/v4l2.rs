//! The `v4l2:/dev/videoN` video source: enumerates the camera's formats, picks
//! the best match for the configured format/size/rate, captures with mmap
//! buffers on its own thread and converts to I420. Also maps the camera API's
//! percent controls onto V4L2 controls.

use std::sync::mpsc;
use std::time::Instant;

use v4l::FourCC;
use v4l::buffer::Type;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

use super::{SourceError, SourceInfo, VideoFrame, VideoSource};
use crate::config::VideoConfig;

/// One pixel format a camera offers, with its frame sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub fourcc: [u8; 4],
    pub sizes: Vec<(u32, u32)>,
}

/// The chosen capture format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
}

/// Formats this agent can convert to I420.
pub const CONVERTIBLE: [&[u8; 4]; 2] = [b"MJPG", b"YUYV"];

/// Maps `mjpeg` / `yuyv` / `h264` to a fourcc.
pub fn fourcc_of(name: &str) -> [u8; 4] {
    match name.to_ascii_lowercase().as_str() {
        "yuyv" => *b"YUYV",
        "h264" => *b"H264",
        _ => *b"MJPG",
    }
}

/// Picks a format and size: among the formats we can convert, the size closest
/// to the wanted one (at least as large when there is one), and on a tie the
/// preferred format. H.264 capture is not decoded here, so it is never chosen.
pub fn choose_format(
    offers: &[Offer],
    preferred: [u8; 4],
    width: u32,
    height: u32,
) -> Option<Choice> {
    let want = i64::from(width) * i64::from(height);
    let mut best: Option<(i64, bool, Choice)> = None;
    for o in offers {
        if !CONVERTIBLE.iter().any(|c| **c == o.fourcc) {
            continue;
        }
        for &(w, h) in &o.sizes {
            let area = i64::from(w) * i64::from(h);
            // Smaller than wanted costs more than larger.
            let cost = if area >= want {
                area - want
            } else {
                (want - area) * 4
            };
            let not_pref = o.fourcc != preferred;
            let better = match &best {
                None => true,
                Some((c, np, _)) => cost < *c || (cost == *c && !not_pref && *np),
            };
            if better {
                best = Some((
                    cost,
                    not_pref,
                    Choice {
                        fourcc: o.fourcc,
                        width: w,
                        height: h,
                    },
                ));
            }
        }
    }
    best.map(|b| b.2)
}

/// The V4L2 control id of a camera-API control name.
pub fn control_id(name: &str) -> Option<u32> {
    Some(match name {
        "brightness" => 0x0098_0900,
        "contrast" => 0x0098_0901,
        "saturation" => 0x0098_0902,
        "auto_exposure" => 0x009a_0901,
        "exposure" => 0x009a_0902,
        "pan" => 0x009a_0908,
        "tilt" => 0x009a_0909,
        "focus" => 0x009a_090a,
        "zoom" => 0x009a_090d,
        _ => return None,
    })
}

/// Maps 0..=100 percent onto a control's range, snapped to its step.
pub fn percent_to_value(min: i64, max: i64, step: u64, percent: i64) -> i64 {
    let p = percent.clamp(0, 100);
    let raw = min + (max - min) * p / 100;
    let step = step.max(1) as i64;
    let snapped = min + ((raw - min) + step / 2) / step * step;
    snapped.clamp(min, max)
}

/// Maps a control value back to percent.
pub fn value_to_percent(min: i64, max: i64, value: i64) -> i64 {
    if max <= min {
        return 0;
    }
    ((value - min) * 100 + (max - min) / 2) / (max - min)
}

/// The V4L2 `auto_exposure` menu: 1 = manual, 3 = aperture priority (auto).
pub fn auto_exposure_value(on: bool) -> i64 {
    if on { 3 } else { 1 }
}

enum Msg {
    Frame(VideoFrame),
    Failed(String),
}

pub struct V4l2Source {
    path: String,
    info: SourceInfo,
    rx: mpsc::Receiver<Msg>,
    device: v4l::Device,
}

fn dev_err(path: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Device {
        device: path.to_string(),
        message: e.to_string(),
    }
}

impl V4l2Source {
    pub fn open(path: &str, cfg: &VideoConfig) -> Result<Self, SourceError> {
        let dev = v4l::Device::with_path(path).map_err(|e| dev_err(path, e))?;
        let caps = dev.query_caps().map_err(|e| dev_err(path, e))?;
        let mut offers = Vec::new();
        for f in dev.enum_formats().map_err(|e| dev_err(path, e))? {
            let sizes = dev
                .enum_framesizes(f.fourcc)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|s| s.size.to_discrete())
                .map(|d| (d.width, d.height))
                .collect();
            offers.push(Offer {
                fourcc: f.fourcc.repr,
                sizes,
            });
        }
        let choice = choose_format(&offers, fourcc_of(&cfg.format), cfg.width, cfg.height)
            .ok_or_else(|| dev_err(path, "offers neither MJPEG nor YUYV"))?;
        let mut fmt = dev.format().map_err(|e| dev_err(path, e))?;
        fmt.width = choice.width;
        fmt.height = choice.height;
        fmt.fourcc = FourCC::new(&choice.fourcc);
        let fmt = dev.set_format(&fmt).map_err(|e| dev_err(path, e))?;
        let _ = dev.set_params(&v4l::video::capture::Parameters::with_fps(cfg.fps));
        let info = SourceInfo {
            device: path.to_string(),
            name: caps.card.clone(),
            format: String::from_utf8_lossy(&fmt.fourcc.repr).into_owned(),
            width: fmt.width,
            height: fmt.height,
            fps: cfg.fps,
        };
        let (tx, rx) = mpsc::sync_channel(2);
        let thread_path = path.to_string();
        std::thread::Builder::new()
            .name("v4l2-capture".into())
            .spawn(move || capture_loop(&thread_path, fmt, tx))
            .map_err(|e| dev_err(path, e))?;
        let control_dev = v4l::Device::with_path(path).map_err(|e| dev_err(path, e))?;
        Ok(V4l2Source {
            path: path.to_string(),
            info,
            rx,
            device: control_dev,
        })
    }
}

fn capture_loop(path: &str, fmt: v4l::Format, tx: mpsc::SyncSender<Msg>) {
    let run = || -> Result<(), String> {
        let dev = v4l::Device::with_path(path).map_err(|e| e.to_string())?;
        let mut stream = v4l::io::mmap::Stream::with_buffers(&dev, Type::VideoCapture, 4)
            .map_err(|e| e.to_string())?;
        let mut seq = 0u64;
        let mut i420 = Vec::new();
        loop {
            let (buf, meta) = stream.next().map_err(|e| e.to_string())?;
            let data = &buf[..(meta.bytesused as usize).min(buf.len())];
            let (w, h) = if &fmt.fourcc.repr == b"YUYV" {
                yuyv(data, &fmt, &mut i420)?;
                (fmt.width, fmt.height)
            } else {
                match crate::convert::mjpeg_to_i420(data, &mut i420) {
                    Ok(s) => s,
                    // A damaged MJPEG frame is skipped.
                    Err(_) => continue,
                }
            };
            let frame = VideoFrame {
                width: w,
                height: h,
                data: std::mem::take(&mut i420),
                seq,
                captured: Instant::now(),
            };
            seq += 1;
            match tx.try_send(Msg::Frame(frame)) {
                Ok(()) | Err(mpsc::TrySendError::Full(_)) => {}
                Err(mpsc::TrySendError::Disconnected(_)) => return Ok(()),
            }
        }
    };
    if let Err(e) = run() {
        let _ = tx.send(Msg::Failed(e));
    }
}

fn yuyv(data: &[u8], fmt: &v4l::Format, out: &mut Vec<u8>) -> Result<(), String> {
    let stride = (fmt.stride as usize).max(fmt.width as usize * 2);
    if data.len() < stride * fmt.height as usize {
        return Err("short YUYV frame".into());
    }
    crate::convert::yuyv_to_i420(data, fmt.width, fmt.height, stride, out);
    Ok(())
}

impl VideoSource for V4l2Source {
    fn next_frame(&mut self) -> Result<VideoFrame, SourceError> {
        match self.rx.recv() {
            Ok(Msg::Frame(f)) => Ok(f),
            Ok(Msg::Failed(m)) => Err(dev_err(&self.path, m)),
            Err(_) => Err(SourceError::Ended),
        }
    }

    fn describe(&self) -> SourceInfo {
        self.info.clone()
    }

    fn set_control(&mut self, name: &str, percent: i64) -> Result<(), SourceError> {
        let id = control_id(name)
            .ok_or_else(|| SourceError::Format(format!("unknown control `{name}`")))?;
        let controls = self
            .device
            .query_controls()
            .map_err(|e| dev_err(&self.path, e))?;
        let desc = controls
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| dev_err(&self.path, format!("the camera has no `{name}` control")))?;
        let value = if name == "auto_exposure" {
            auto_exposure_value(percent != 0)
        } else {
            percent_to_value(desc.minimum, desc.maximum, desc.step, percent)
        };
        self.device
            .set_control(v4l::control::Control {
                id,
                value: v4l::control::Value::Integer(value),
            })
            .map_err(|e| dev_err(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers() -> Vec<Offer> {
        vec![
            Offer {
                fourcc: *b"YUYV",
                sizes: vec![(640, 480), (1280, 720), (1920, 1080)],
            },
            Offer {
                fourcc: *b"MJPG",
                sizes: vec![(640, 480), (1280, 720), (1920, 1080)],
            },
            Offer {
                fourcc: *b"H264",
                sizes: vec![(1280, 720)],
            },
        ]
    }

    #[test]
    fn exact_size_in_the_preferred_format() {
        let c = choose_format(&offers(), *b"MJPG", 1280, 720);
        assert_eq!(
            c,
            Some(Choice {
                fourcc: *b"MJPG",
                width: 1280,
                height: 720
            })
        );
        let c = choose_format(&offers(), *b"YUYV", 1280, 720);
        assert_eq!(c.map(|c| c.fourcc), Some(*b"YUYV"));
    }

    #[test]
    fn nearest_larger_size_and_never_h264() {
        let only = vec![
            Offer {
                fourcc: *b"YUYV",
                sizes: vec![(320, 240), (800, 600)],
            },
            Offer {
                fourcc: *b"H264",
                sizes: vec![(640, 480)],
            },
        ];
        let c = choose_format(&only, *b"H264", 640, 480).map(|c| (c.fourcc, c.width));
        assert_eq!(c, Some((*b"YUYV", 800)));
        assert_eq!(
            choose_format(
                &[Offer {
                    fourcc: *b"H264",
                    sizes: vec![(1, 1)]
                }],
                *b"H264",
                1,
                1
            ),
            None
        );
    }

    #[test]
    fn control_mapping() {
        assert_eq!(control_id("brightness"), Some(0x0098_0900));
        assert_eq!(control_id("zoom"), Some(0x009a_090d));
        assert_eq!(control_id("volume"), None);
        // Brightness -64..64 step 1: 50 % is 0.
        assert_eq!(percent_to_value(-64, 64, 1, 50), 0);
        assert_eq!(percent_to_value(-64, 64, 1, 100), 64);
        assert_eq!(percent_to_value(-64, 64, 1, 150), 64);
        // Zoom 100..500 step 10: 33 % -> 232 -> snapped to 230.
        assert_eq!(percent_to_value(100, 500, 10, 33), 230);
        assert_eq!(value_to_percent(-64, 64, 0), 50);
        assert_eq!(value_to_percent(100, 500, 500), 100);
        assert_eq!(auto_exposure_value(true), 3);
        assert_eq!(auto_exposure_value(false), 1);
    }
}
