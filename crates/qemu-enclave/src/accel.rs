//! TCG or KVM. KVM only where it can boot a stock kernel: some cloud VMs expose a `/dev/kvm`
//! backed by PVM (no VMX/SVM), which fails on the first instruction it must emulate.

use std::fs::OpenOptions;
use std::path::Path;

/// The QEMU accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: works everywhere, about 2 s per boot of a small EIF.
    Tcg,
    /// Hardware virtualisation with the host CPU model.
    Kvm,
}

impl Accel {
    /// KVM when `/dev/kvm` opens read-write, the CPU advertises VMX or SVM and the module is
    /// not PVM's; TCG otherwise.
    pub fn detect() -> Self {
        let kvm_opens = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let hw_virt = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
            info.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
        });
        let pvm = Path::new("/sys/module/kvm_pvm").exists();
        if kvm_opens && hw_virt && !pvm {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// QEMU arguments selecting this accelerator.
    pub(crate) fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Tcg => &["-accel", "tcg"],
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
        }
    }
}
