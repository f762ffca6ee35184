//! The thin ioctl layer of the V4L2 memory-to-memory H.264 encoder (the
//! crate's only `unsafe`): documented V4L2 ioctls on the kernel's UAPI
//! structures (through `v4l::v4l_sys`); buffers are mmapped and unmapped in
//! one place. Not exercised on real hardware.

use std::io;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;
use v4l::v4l_sys as sys;
use v4l::v4l2;
use v4l::v4l2::vidioc;

use super::{AnnexB, Control, DeviceInfo, H264Frame, Planes};

fn ioctl<T>(fd: c_int, req: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the structure this request is defined with, alive
    // and exclusively borrowed for the duration of the call.
    unsafe { v4l2::ioctl(fd, req, arg as *mut T as *mut c_void) }
}

fn zeroed<T>() -> T {
    // SAFETY: only used for the kernel's plain C structures (integers,
    // arrays and unions of them), for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

struct Fd(c_int);
impl Drop for Fd {
    fn drop(&mut self) {
        let _ = v4l2::close(self.0);
    }
}

fn formats(fd: c_int, buf_type: u32) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    for index in 0..64 {
        let mut d: sys::v4l2_fmtdesc = zeroed();
        d.index = index;
        d.type_ = buf_type;
        if ioctl(fd, vidioc::VIDIOC_ENUM_FMT, &mut d).is_err() {
            break;
        }
        out.push(d.pixelformat.to_le_bytes());
    }
    out
}

/// Capabilities and formats of one node; None when it is not memory-to-memory.
pub fn describe(path: &Path) -> io::Result<Option<DeviceInfo>> {
    let fd = Fd(v4l2::open(path, libc::O_RDWR | libc::O_NONBLOCK)?);
    let mut cap: sys::v4l2_capability = zeroed();
    ioctl(fd.0, vidioc::VIDIOC_QUERYCAP, &mut cap)?;
    let Some(planes) = super::m2m_planes(cap.capabilities, cap.device_caps) else {
        return Ok(None);
    };
    let (out_t, cap_t) = planes.buf_types();
    Ok(Some(DeviceInfo {
        path: path.to_path_buf(),
        driver: super::c_string(&cap.driver),
        card: super::c_string(&cap.card),
        planes: Some(planes),
        output_formats: formats(fd.0, out_t),
        capture_formats: formats(fd.0, cap_t),
    }))
}

struct Mapped {
    ptr: *mut u8,
    len: usize,
}
// SAFETY: the mapping is owned by one encoder, used by one thread at a time.
unsafe impl Send for Mapped {}
impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap of this length.
        let _ = unsafe { v4l2::munmap(self.ptr as *mut c_void, self.len) };
    }
}
impl Mapped {
    fn slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, and
        // only reached through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// One queue's buffers.
struct Queue {
    buf_type: u32,
    bufs: Vec<Mapped>,
}

pub struct HwEncoder {
    fd: Fd,
    planes: Planes,
    output: Queue,
    capture: Queue,
    free_output: Vec<u32>,
    width: u32,
    height: u32,
    stride: usize,
    plane_rows: usize,
    annexb: AnnexB,
    pub device: String,
}

fn new_buffer(
    planes: Planes,
    buf_type: u32,
    index: u32,
    plane: &mut sys::v4l2_plane,
) -> sys::v4l2_buffer {
    let mut b: sys::v4l2_buffer = zeroed();
    b.index = index;
    b.type_ = buf_type;
    b.memory = sys::v4l2_memory_V4L2_MEMORY_MMAP;
    if planes == Planes::Multi {
        b.m.planes = plane as *mut sys::v4l2_plane;
        b.length = 1;
    }
    b
}

impl HwEncoder {
    /// Opens and configures `d`, with `controls`; starts both queues.
    pub fn open(
        d: &DeviceInfo,
        width: u32,
        height: u32,
        fps: u32,
        controls: &[Control],
    ) -> io::Result<HwEncoder> {
        let planes = d
            .planes
            .ok_or_else(|| io::Error::other("not an m2m device"))?;
        let fd = Fd(v4l2::open(&d.path, libc::O_RDWR | libc::O_NONBLOCK)?);
        let (out_t, cap_t) = planes.buf_types();
        // Capture (bitstream) format first, then the picture format.
        set_format(fd.0, planes, cap_t, width, height, super::FOURCC_H264)?;
        let (stride, plane_rows) =
            set_format(fd.0, planes, out_t, width, height, super::FOURCC_YU12)?;
        let mut parm: sys::v4l2_streamparm = zeroed();
        parm.type_ = out_t;
        // The `output` member of the parm union, for an output queue.
        parm.parm.output.timeperframe.numerator = 1;
        parm.parm.output.timeperframe.denominator = fps.max(1);
        let _ = ioctl(fd.0, vidioc::VIDIOC_S_PARM, &mut parm);
        for c in controls {
            let mut ctl = sys::v4l2_control {
                id: c.id,
                value: c.value,
            };
            if let Err(e) = ioctl(fd.0, vidioc::VIDIOC_S_CTRL, &mut ctl) {
                if c.id == super::CID_H264_PROFILE {
                    let mut ctl = sys::v4l2_control {
                        id: c.id,
                        value: super::PROFILE_BASELINE,
                    };
                    if ioctl(fd.0, vidioc::VIDIOC_S_CTRL, &mut ctl).is_ok() {
                        continue;
                    }
                }
                if c.required {
                    return Err(io::Error::other(format!("setting {}: {e}", c.name)));
                }
                tracing::warn!(control = c.name, error = %e, "encoder control not applied");
            }
        }
        let output = map_queue(fd.0, planes, out_t, 4)?;
        let capture = map_queue(fd.0, planes, cap_t, 4)?;
        let mut enc = HwEncoder {
            free_output: (0..output.bufs.len() as u32).collect(),
            fd,
            planes,
            output,
            capture,
            width,
            height,
            stride,
            plane_rows,
            annexb: AnnexB::default(),
            device: d.path.display().to_string(),
        };
        for i in 0..enc.capture.bufs.len() as u32 {
            enc.queue_capture(i)?;
        }
        for t in [out_t, cap_t] {
            let mut t = t as c_int;
            ioctl(enc.fd.0, vidioc::VIDIOC_STREAMON, &mut t)?;
        }
        Ok(enc)
    }

    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        let len = self.capture.bufs[index as usize].len as u32;
        let mut plane: sys::v4l2_plane = zeroed();
        plane.length = len;
        let mut b = new_buffer(self.planes, self.capture.buf_type, index, &mut plane);
        if self.planes == Planes::Single {
            b.length = len;
        }
        ioctl(self.fd.0, vidioc::VIDIOC_QBUF, &mut b)
    }

    /// Dequeues one buffer of `buf_type`, waiting up to `timeout`:
    /// (index, bytes used, flags).
    fn dequeue(&mut self, buf_type: u32, timeout: Duration) -> io::Result<(u32, usize, u32)> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut plane: sys::v4l2_plane = zeroed();
            let mut b = new_buffer(self.planes, buf_type, 0, &mut plane);
            match ioctl(self.fd.0, vidioc::VIDIOC_DQBUF, &mut b) {
                Ok(()) => {
                    let used = if self.planes == Planes::Multi {
                        plane.bytesused as usize
                    } else {
                        b.bytesused as usize
                    };
                    return Ok((b.index, used, b.flags));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn force_keyframe(&mut self) {
        let mut ctl = sys::v4l2_control {
            id: super::CID_FORCE_KEY_FRAME,
            value: 1,
        };
        if let Err(e) = ioctl(self.fd.0, vidioc::VIDIOC_S_CTRL, &mut ctl) {
            tracing::warn!(error = %e, "cannot force an IDR");
        }
    }

    /// Encodes one packed I420 picture of the configured size.
    pub fn encode(&mut self, i420: &[u8]) -> io::Result<Option<H264Frame>> {
        let index = match self.free_output.pop() {
            Some(i) => i,
            None => {
                self.dequeue(self.output.buf_type, Duration::from_secs(1))?
                    .0
            }
        };
        let (w, h, stride, rows) = (
            self.width as usize,
            self.height as usize,
            self.stride,
            self.plane_rows,
        );
        let used = super::pack_i420(
            i420,
            w,
            h,
            stride,
            rows,
            self.output.bufs[index as usize].slice(),
        )
        .ok_or_else(|| io::Error::other("picture does not fit the encoder's buffer"))?;
        let len = self.output.bufs[index as usize].len as u32;
        let mut plane: sys::v4l2_plane = zeroed();
        plane.bytesused = used as u32;
        plane.length = len;
        let mut b = new_buffer(self.planes, self.output.buf_type, index, &mut plane);
        if self.planes == Planes::Single {
            b.bytesused = used as u32;
            b.length = len;
        }
        ioctl(self.fd.0, vidioc::VIDIOC_QBUF, &mut b)?;
        // One picture in, one bitstream buffer out (header-only buffers are merged).
        for _ in 0..3 {
            let (ci, n, _flags) = self.dequeue(self.capture.buf_type, Duration::from_secs(1))?;
            let data = self.capture.bufs[ci as usize].slice()[..n].to_vec();
            self.queue_capture(ci)?;
            if let Some(f) = self.annexb.push(&data) {
                // Reclaim the output buffer if the driver is done with it.
                if let Ok((oi, _, _)) = self.dequeue(self.output.buf_type, Duration::ZERO) {
                    self.free_output.push(oi);
                }
                return Ok(Some(f));
            }
        }
        Ok(None)
    }
}

impl Drop for HwEncoder {
    fn drop(&mut self) {
        for t in [self.output.buf_type, self.capture.buf_type] {
            let mut t = t as c_int;
            let _ = ioctl(self.fd.0, vidioc::VIDIOC_STREAMOFF, &mut t);
        }
    }
}

/// S_FMT; returns (bytes per line, rows per plane) of the first plane.
fn set_format(
    fd: c_int,
    planes: Planes,
    buf_type: u32,
    width: u32,
    height: u32,
    fourcc: [u8; 4],
) -> io::Result<(usize, usize)> {
    let mut f: sys::v4l2_format = zeroed();
    f.type_ = buf_type;
    let pf = u32::from_le_bytes(fourcc);
    // The union member written (and read back below) matches `planes`.
    match planes {
        Planes::Single => {
            f.fmt.pix.width = width;
            f.fmt.pix.height = height;
            f.fmt.pix.pixelformat = pf;
        }
        Planes::Multi => {
            f.fmt.pix_mp.width = width;
            f.fmt.pix_mp.height = height;
            f.fmt.pix_mp.pixelformat = pf;
            f.fmt.pix_mp.num_planes = 1;
        }
    }
    ioctl(fd, vidioc::VIDIOC_S_FMT, &mut f)?;
    // SAFETY: as above.
    let (w, h, got, bpl, size) = unsafe {
        match planes {
            Planes::Single => (
                f.fmt.pix.width,
                f.fmt.pix.height,
                f.fmt.pix.pixelformat,
                f.fmt.pix.bytesperline,
                f.fmt.pix.sizeimage,
            ),
            Planes::Multi => (
                f.fmt.pix_mp.width,
                f.fmt.pix_mp.height,
                f.fmt.pix_mp.pixelformat,
                f.fmt.pix_mp.plane_fmt[0].bytesperline,
                f.fmt.pix_mp.plane_fmt[0].sizeimage,
            ),
        }
    };
    if got != pf || w != width || h != height {
        return Err(io::Error::other(format!(
            "the device chose {}x{} {:?} instead of {width}x{height} {:?}",
            w,
            h,
            String::from_utf8_lossy(&got.to_le_bytes()),
            String::from_utf8_lossy(&fourcc),
        )));
    }
    let stride = if bpl == 0 {
        width as usize
    } else {
        bpl as usize
    };
    // Rows per luma plane: what the image size implies (drivers pad the height).
    let rows = if bpl == 0 || size == 0 {
        height as usize
    } else {
        ((size as usize * 2) / 3 / stride).max(height as usize)
    };
    Ok((stride, rows))
}

fn map_queue(fd: c_int, planes: Planes, buf_type: u32, count: u32) -> io::Result<Queue> {
    let mut req: sys::v4l2_requestbuffers = zeroed();
    req.count = count;
    req.type_ = buf_type;
    req.memory = sys::v4l2_memory_V4L2_MEMORY_MMAP;
    ioctl(fd, vidioc::VIDIOC_REQBUFS, &mut req)?;
    let mut bufs = Vec::new();
    for index in 0..req.count {
        let mut plane: sys::v4l2_plane = zeroed();
        let mut b = new_buffer(planes, buf_type, index, &mut plane);
        ioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut b)?;
        // SAFETY: reading the union members QUERYBUF filled for this API.
        let (len, offset) = unsafe {
            match planes {
                Planes::Single => (b.length as usize, b.m.offset),
                Planes::Multi => (plane.length as usize, plane.m.mem_offset),
            }
        };
        // SAFETY: mapping a driver buffer at the offset the driver gave.
        let ptr = unsafe {
            v4l2::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )?
        };
        bufs.push(Mapped {
            ptr: ptr as *mut u8,
            len,
        });
    }
    Ok(Queue { buf_type, bufs })
}
