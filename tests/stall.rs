//! Stalls one thread of a running server (found by its name) so that the
//! queue it drains fills up from outside: the thread is attached with
//! `PTRACE_SEIZE` and stopped with `PTRACE_INTERRUPT`; every other thread
//! of the process runs on. Dropping the [`Stall`] detaches, and the thread
//! resumes where it stopped. The tests run as root (`scripts/test.sh`
//! enters the network namespace with sudo), which may trace any process.
//!
//! ptrace requests must come from the thread that attached, so one plain
//! thread here attaches, waits for the stop, and detaches on request.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A stopped thread of another process; resumes on drop.
pub struct Stall {
    pub tid: i32,
    release: Option<mpsc::Sender<()>>,
    tracer: Option<JoinHandle<()>>,
}

/// The ids of `pid`'s threads whose name (`comm`) is `name` (as the kernel
/// keeps it: its first 15 bytes).
pub fn threads_named(pid: u32, name: &str) -> Vec<i32> {
    let name = &name[..name.len().min(15)];
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
        .collect()
}

/// Waits (up to `wait`) for `pid` to have exactly one thread named `name`.
pub fn thread_named(pid: u32, name: &str, wait: Duration) -> i32 {
    let deadline = Instant::now() + wait;
    loop {
        match threads_named(pid, name).as_slice() {
            [tid] => return *tid,
            found => assert!(
                Instant::now() < deadline,
                "process {pid} has {} threads named {name:?}",
                found.len()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The thread's scheduler state (`R`, `S`, `t` when traced and stopped, ...).
pub fn thread_state(pid: u32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(Path::new(&format!("/proc/{pid}/task/{tid}/stat"))).ok()?;
    // `pid (comm) S ...`: the state follows the last `)`.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

impl Stall {
    /// Stops thread `tid` of the process `pid`; returns once it is stopped.
    pub fn thread(pid: u32, tid: i32) -> Stall {
        let (stopped_tx, stopped_rx) = mpsc::channel::<Result<(), String>>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let tracer = std::thread::spawn(move || {
            // SAFETY: plain ptrace/waitpid system calls on a thread id; no
            // memory of the tracee is read or written.
            let attached = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    tid,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            if attached != 0 {
                let _ = stopped_tx.send(Err(format!(
                    "PTRACE_SEIZE {tid}: {}",
                    std::io::Error::last_os_error()
                )));
                return;
            }
            let mut status = 0;
            // SAFETY: as above.
            let stopped = unsafe {
                libc::ptrace(
                    libc::PTRACE_INTERRUPT,
                    tid,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                ) == 0
                    && libc::waitpid(tid, &mut status, libc::__WALL) == tid
            };
            let _ = stopped_tx.send(if stopped && libc::WIFSTOPPED(status) {
                Ok(())
            } else {
                Err(format!(
                    "thread {tid} did not stop (status {status:#x}): {}",
                    std::io::Error::last_os_error()
                ))
            });
            // Held until released (or the test ends and drops the sender).
            let _ = release_rx.recv();
            // SAFETY: as above; detaching resumes the thread.
            unsafe {
                libc::ptrace(
                    libc::PTRACE_DETACH,
                    tid,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                );
            }
        });
        match stopped_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("stalling thread {tid} of {pid}: {e}"),
            Err(e) => panic!("stalling thread {tid} of {pid}: {e}"),
        }
        Stall {
            tid,
            release: Some(release_tx),
            tracer: Some(tracer),
        }
    }

    /// Resumes the thread now.
    pub fn release(mut self) {
        self.resume();
    }

    fn resume(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.tracer.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.resume();
    }
}

/// A whole process stopped (SIGSTOP), as a paused VM or a starved host
/// stops it: its timers fall due while nothing of it runs. Resumes
/// (SIGCONT) on drop.
pub struct Stopped(libc::pid_t);

impl Stopped {
    /// Stops process `pid`.
    pub fn process(pid: u32) -> Stopped {
        let pid = libc::pid_t::try_from(pid).expect("a process id");
        // SAFETY: a signal to a process id; no memory is shared.
        let sent = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(
            sent,
            0,
            "SIGSTOP {pid}: {}",
            std::io::Error::last_os_error()
        );
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}
