//! Typing a secret at a terminal without it appearing on screen (or in a screen recording):
//! echo is switched off for the read and restored on drop, also on errors.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Echo off on one terminal until dropped.
pub struct EchoOff<'a> {
    tty: &'a File,
    saved: libc::termios,
}

impl<'a> EchoOff<'a> {
    pub fn new(tty: &'a File) -> io::Result<Self> {
        // SAFETY: `termios` is plain old data; tcgetattr fills it or fails, and the fd is open
        // for as long as `tty` is borrowed.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
        quiet.c_lflag |= libc::ICANON;
        // SAFETY: as above; `quiet` is a valid termios derived from the current one.
        if unsafe { libc::tcsetattr(tty.as_raw_fd(), libc::TCSAFLUSH, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EchoOff { tty, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new` on the same, still open, fd.
        unsafe {
            libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSAFLUSH, &self.saved);
        }
    }
}
