//! Hardware-dependent boot checks behind one trait: the enclave kernel's real interfaces, or the
//! values a test config gives (refused with `production: true`).

use std::io;
use std::time::Duration;

use companion_config::Platform as PlatformConfig;

/// The clock as the boot check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReading {
    pub clocksource: String,
    /// System clock minus the reference clock (`/dev/ptp0`), in ms; none without one.
    pub offset_ms: Option<i64>,
}

/// What the boot sequence asks of the machine.
pub trait Platform: Send + Sync {
    /// Brings `lo` up (nobody else does inside an enclave); returns what was done.
    fn loopback_up(&self) -> io::Result<&'static str>;
    /// The kernel's current hardware RNG (`nsm-hwrng` in an enclave).
    fn hwrng(&self) -> io::Result<String>;
    fn clock(&self) -> io::Result<ClockReading>;
}

/// The platform `config` selects.
pub fn from_config(config: &PlatformConfig) -> Box<dyn Platform> {
    match config {
        PlatformConfig::Nitro => Box::new(Nitro),
        PlatformConfig::Simulated {
            hwrng,
            clocksource,
            clock_offset_ms,
        } => Box::new(Simulated {
            hwrng: hwrng.clone(),
            clock: ClockReading {
                clocksource: clocksource.clone(),
                offset_ms: Some(*clock_offset_ms),
            },
        }),
    }
}

/// The enclave's kernel.
pub struct Nitro;

const HWRNG: &str = "/sys/class/misc/hw_random/rng_current";
const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
const PTP: &str = "/dev/ptp0";

impl Platform for Nitro {
    fn loopback_up(&self) -> io::Result<&'static str> {
        set_interface_up(c"lo")?;
        Ok("lo up")
    }

    fn hwrng(&self) -> io::Result<String> {
        Ok(std::fs::read_to_string(HWRNG)?.trim().to_string())
    }

    fn clock(&self) -> io::Result<ClockReading> {
        let clocksource = std::fs::read_to_string(CLOCKSOURCE)?.trim().to_string();
        let offset_ms = match std::fs::File::open(PTP) {
            Ok(f) => Some(ptp_offset_ms(&f)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(ClockReading {
            clocksource,
            offset_ms,
        })
    }
}

/// SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP (the kernel adds 127.0.0.1/8 itself).
fn set_interface_up(name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.to_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming the interface; the flags member is what these
    // requests read and write.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    result
}

/// CLOCK_REALTIME minus the PTP clock (a dynamic POSIX clock: `FD_TO_CLOCKID`).
fn ptp_offset_ms(f: &std::fs::File) -> io::Result<i64> {
    use std::os::fd::AsRawFd;
    let clock = ((!f.as_raw_fd()) << 3) | 3;
    let read = |id: libc::clockid_t| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer.
        if unsafe { libc::clock_gettime(id, &mut ts) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000)
    };
    let ptp = read(clock)?;
    Ok(read(libc::CLOCK_REALTIME)? - ptp)
}

/// Test stand-in: fixed readings, `lo` untouched (the test's host already has it).
pub struct Simulated {
    hwrng: String,
    clock: ClockReading,
}

impl Platform for Simulated {
    fn loopback_up(&self) -> io::Result<&'static str> {
        Ok("simulated: lo left as it is")
    }

    fn hwrng(&self) -> io::Result<String> {
        Ok(self.hwrng.clone())
    }

    fn clock(&self) -> io::Result<ClockReading> {
        Ok(self.clock.clone())
    }
}

/// SigV4 refuses requests more than five minutes off; beyond that nothing AWS-bound can work.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_readings_come_from_the_config() {
        let p = from_config(&PlatformConfig::Simulated {
            hwrng: "nsm-hwrng".into(),
            clocksource: "kvm-clock".into(),
            clock_offset_ms: -12,
        });
        assert_eq!(p.hwrng().unwrap(), "nsm-hwrng");
        assert_eq!(p.clock().unwrap().offset_ms, Some(-12));
    }
}
