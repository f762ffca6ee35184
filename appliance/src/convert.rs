//! Pixel conversions between camera formats, I420 (what the encoder takes)
//! and RGB (what the JPEG encoder takes). BT.601 limited range.

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// Packed YUYV 4:2:2 (`stride` bytes per row) to I420; chroma of two rows averaged.
pub fn yuyv_to_i420(src: &[u8], width: u32, height: u32, stride: usize, out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    out.clear();
    out.resize(w * h + 2 * cw * ch, 0);
    let (yp, uv) = out.split_at_mut(w * h);
    let (up, vp) = uv.split_at_mut(cw * ch);
    for y in 0..h {
        let row = &src[y * stride..];
        for x in 0..w {
            yp[y * w + x] = row[x * 2];
        }
    }
    for cy in 0..ch {
        let r0 = &src[(cy * 2) * stride..];
        let r1 = &src[((cy * 2 + 1).min(h - 1)) * stride..];
        for cx in 0..cw {
            let i = cx * 4;
            up[cy * cw + cx] = (u16::from(r0[i + 1]) + u16::from(r1[i + 1])).div_ceil(2) as u8;
            vp[cy * cw + cx] = (u16::from(r0[i + 3]) + u16::from(r1[i + 3])).div_ceil(2) as u8;
        }
    }
}

/// Packed RGB24 to I420 (chroma from the top-left pixel of each 2x2 block's average).
pub fn rgb_to_i420(src: &[u8], width: u32, height: u32, out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    out.clear();
    out.resize(w * h + 2 * cw * ch, 0);
    let (yp, uv) = out.split_at_mut(w * h);
    let (up, vp) = uv.split_at_mut(cw * ch);
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        (
            i32::from(src[i]),
            i32::from(src[i + 1]),
            i32::from(src[i + 2]),
        )
    };
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            yp[y * w + x] = clamp(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16);
        }
    }
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            let mut n = 0;
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = (cx * 2 + dx, cy * 2 + dy);
                if x < w && y < h {
                    let p = px(x, y);
                    r += p.0;
                    g += p.1;
                    b += p.2;
                    n += 1;
                }
            }
            let (r, g, b) = (r / n, g / n, b / n);
            up[cy * cw + cx] = clamp(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
            vp[cy * cw + cx] = clamp(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
        }
    }
}

/// I420 to packed RGB24.
pub fn i420_to_rgb(src: &[u8], width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let cw = w.div_ceil(2);
    let ch = h.div_ceil(2);
    let mut out = vec![0u8; w * h * 3];
    let (yp, uv) = src.split_at(w * h);
    let (up, vp) = uv.split_at(cw * ch);
    for y in 0..h {
        for x in 0..w {
            let c = i32::from(yp[y * w + x]) - 16;
            let d = i32::from(up[(y / 2) * cw + x / 2]) - 128;
            let e = i32::from(vp[(y / 2) * cw + x / 2]) - 128;
            let i = (y * w + x) * 3;
            out[i] = clamp((298 * c + 409 * e + 128) >> 8);
            out[i + 1] = clamp((298 * c - 100 * d - 208 * e + 128) >> 8);
            out[i + 2] = clamp((298 * c + 516 * d + 128) >> 8);
        }
    }
    out
}

/// Encodes an I420 picture as a baseline JPEG at `quality` (1..=100).
pub fn i420_to_jpeg(src: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, String> {
    let rgb = i420_to_rgb(src, width, height);
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    let (w, h) = (
        u16::try_from(width).map_err(|_| "picture too wide for JPEG")?,
        u16::try_from(height).map_err(|_| "picture too tall for JPEG")?,
    );
    enc.encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes an MJPEG frame to I420; returns its size.
pub fn mjpeg_to_i420(jpeg: &[u8], out: &mut Vec<u8>) -> Result<(u32, u32), String> {
    let mut dec = jpeg_decoder::Decoder::new(jpeg);
    let pixels = dec.decode().map_err(|e| e.to_string())?;
    let info = dec.info().ok_or("no image info")?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|l| [*l, *l, *l]).collect(),
        other => return Err(format!("unsupported JPEG pixel format {other:?}")),
    };
    rgb_to_i420(&rgb, w, h, out);
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn yuyv_fixture_to_i420() {
        // 4x2 YUYV: Y0 U Y1 V per pixel pair.
        let src = [
            10, 100, 20, 200, 30, 110, 40, 210, //
            50, 102, 60, 202, 70, 112, 80, 212,
        ];
        let mut out = Vec::new();
        yuyv_to_i420(&src, 4, 2, 8, &mut out);
        assert_eq!(&out[..8], &[10, 20, 30, 40, 50, 60, 70, 80]);
        assert_eq!(&out[8..10], &[101, 111], "U averaged over two rows");
        assert_eq!(&out[10..12], &[201, 211], "V averaged over two rows");
    }

    #[test]
    fn rgb_round_trip_is_close() {
        let (w, h) = (8u32, 8u32);
        let mut rgb = Vec::new();
        for _ in 0..(w * h) {
            rgb.extend_from_slice(&[200, 40, 90]);
        }
        let mut i420 = Vec::new();
        rgb_to_i420(&rgb, w, h, &mut i420);
        let back = i420_to_rgb(&i420, w, h);
        for (a, b) in rgb.iter().zip(&back) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 4, "{a} vs {b}");
        }
    }

    #[test]
    fn jpeg_round_trip_through_mjpeg_path() {
        let pic = crate::sources::pattern::TestPattern::render(64, 48, 3);
        let jpeg = i420_to_jpeg(&pic, 64, 48, 90).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        let mut back = Vec::new();
        assert_eq!(mjpeg_to_i420(&jpeg, &mut back).unwrap(), (64, 48));
        // Luma of the first bar (white) survives.
        assert!(back[0] > 200, "{}", back[0]);
        let small = i420_to_jpeg(&pic, 64, 48, 5).unwrap();
        assert!(small.len() < jpeg.len(), "quality changes the size");
    }
}
