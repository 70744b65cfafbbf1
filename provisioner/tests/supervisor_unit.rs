//! What the provisioner renders for the supervisor: the config carries the build's expected
//! measurements, and the systemd unit is one that `systemd-analyze verify` accepts without a
//! warning (notify, watchdog, KillMode=process, hardening that keeps the device and vsock).

mod common;

use common::*;

/// The unit as user_data writes it.
fn unit(user_data: &str) -> String {
    let start = user_data.find("<<'UNIT'\n").expect("unit heredoc") + "<<'UNIT'\n".len();
    let end = user_data[start..]
        .find("\nUNIT\n")
        .expect("unit heredoc end");
    user_data[start..start + end].to_string()
}

#[test]
fn the_supervisor_config_expects_the_built_measurements() {
    let r = release("v1", &[0, 1, 2, 8]);
    let rendered = render_config(config(BASE), built(r.clone()));
    let m = rendered
        .supervisor_config
        .expected_measurements
        .clone()
        .unwrap();
    assert_eq!(
        (m.pcr0, m.pcr1, m.pcr2, m.pcr8),
        (
            r.pcrs[&0].clone(),
            r.pcrs[&1].clone(),
            r.pcrs[&2].clone(),
            Some(r.pcrs[&8].clone())
        )
    );
    assert_eq!(
        rendered.supervisor_config.state_dir,
        std::path::Path::new(companion_config::SUPERVISOR_STATE_DIR)
    );
    assert_eq!(rendered.supervisor_config.watchdog.poll_interval_ms, 5000);
    let unsigned = render_config(config(BASE), built(release("v1", &[0, 1, 2])));
    assert_eq!(
        unsigned
            .supervisor_config
            .expected_measurements
            .unwrap()
            .pcr8,
        None
    );
    // Unbuilt: null, which the supervisor refuses (and user_data could not boot anyway).
    let unbuilt = render_config(config(BASE), Default::default());
    assert!(unbuilt.supervisor_config.expected_measurements.is_none());
}

#[test]
fn the_unit_is_notify_keeps_the_enclave_and_verifies() {
    let rendered = render_config(config(BASE), built(release("v1", &[0, 1, 2])));
    let text = unit(&rendered.user_data);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "KillMode=process",
        "Restart=always",
        "StateDirectory=enclave-supervisor",
        "StateDirectoryMode=0700",
        "DeviceAllow=/dev/nitro_enclaves rw",
        "DeviceAllow=/dev/vsock rw",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_VSOCK AF_NETLINK",
        "ReadWritePaths=/var/log/nitro_enclaves /run/nitro_enclaves",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("ExecStop"),
        "stopping the unit must not terminate the enclave"
    );

    // systemd's own checker, with the binary swapped for one that exists here and a stand-in
    // allocator unit next to it.
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("enclave-supervisor.service");
    std::fs::write(
        &unit_path,
        text.replace("/usr/local/bin/enclave-supervisor", "/bin/true"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nitro-enclaves-allocator.service"),
        "[Unit]\nDescription=stand-in\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_path)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian package systemd, scripts/test-tools/apt-packages.sh)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}
