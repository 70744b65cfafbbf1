//! Benchmark driver for `benches/run.sh` (not a timed test): `gen DIR MIB FILES plain|gzip`
//! writes a synthetic OCI image (and each layer as `DIR/layerN.tar`) and stand-in kernel blobs;
//! `gen DIR MIB FILES umoci` writes compressible files (text-like, ~3x with gzip, like an OS
//! image) under `DIR/rootfs` for `umoci` to pack into one gzip layer; `build DIR OUT` builds an
//! EIF from `DIR/image` and prints the wall time. Peak RSS is measured from outside.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

const LAYERS: usize = 4;

/// The next xorshift64 value: cheap, deterministic pseudo-random numbers.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Incompressible-ish bytes, cheap to make.
fn fill(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        let b = next(seed).to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Text-like bytes from a fixed 1,024-word vocabulary, with a run of random bytes now and then:
/// deflate shrinks it about as much as the files of an OS image.
fn fill_text(buf: &mut [u8], seed: &mut u64, vocabulary: &[Vec<u8>]) {
    let mut i = 0;
    while i < buf.len() {
        let r = next(seed);
        if r.is_multiple_of(1024) {
            let n = (buf.len() - i).min(256);
            fill(&mut buf[i..i + n], seed);
            i += n;
            continue;
        }
        let word = &vocabulary[(r >> 8) as usize % vocabulary.len()];
        for &b in word
            .iter()
            .chain([if r.is_multiple_of(11) { &b'\n' } else { &b' ' }])
        {
            if i == buf.len() {
                break;
            }
            buf[i] = b;
            i += 1;
        }
    }
}

fn vocabulary(seed: &mut u64) -> Vec<Vec<u8>> {
    (0..1024)
        .map(|_| {
            let mut w = [0u8; 8];
            fill(&mut w, seed);
            let len = 2 + (w[0] % 9) as usize;
            w[1..]
                .iter()
                .cycle()
                .take(len)
                .map(|b| b'a' + b % 26)
                .collect()
        })
        .collect()
}

/// A rootfs of `files` compressible files, `mib` MiB in all, 100 per directory.
fn gen_rootfs(dir: &Path, mib: u64, files: usize) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let words = vocabulary(&mut seed);
    let per_file = ((mib << 20) / files as u64) as usize;
    let mut buf = vec![0u8; per_file * 2];
    for i in 0..files {
        let size = (i * 7919) % (2 * per_file);
        fill_text(&mut buf[..size], &mut seed, &words);
        let d = dir.join(format!("rootfs/data/d{:04}", i / 100));
        if i.is_multiple_of(100) {
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(d.join(format!("f{i:06}")), &buf[..size]).unwrap();
    }
    blobs(dir, &mut seed);
}

fn blob(dir: &Path, data: &[u8]) -> String {
    let d = hex::encode(Sha256::digest(data));
    std::fs::write(dir.join("blobs/sha256").join(&d), data).unwrap();
    format!("sha256:{d}")
}

fn gen(dir: &Path, mib: u64, files: usize, gzip: bool) {
    std::fs::create_dir_all(dir.join("image/blobs/sha256")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let total = mib << 20;
    let per_file = (total / files as u64) as usize;
    let mut layer_digests = Vec::new();
    let mut diff_ids = Vec::new();
    let mut buf = vec![0u8; per_file * 2];
    for l in 0..LAYERS {
        let path = dir.join(format!("layer{l}.tar"));
        let mut b = tar::Builder::new(std::io::BufWriter::new(
            std::fs::File::create(&path).unwrap(),
        ));
        for i in (l..files).step_by(LAYERS) {
            // Sizes vary from 0 to 2× the mean; 100 files per directory.
            let size = (i * 7919) % (2 * per_file);
            fill(&mut buf[..size], &mut seed);
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000 + i as u64);
            h.set_size(size as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(
                &mut h,
                format!("data/d{:04}/f{i:06}", i / 100),
                &buf[..size],
            )
            .unwrap();
        }
        b.into_inner().unwrap().flush().unwrap();
        let raw = std::fs::read(&path).unwrap();
        diff_ids.push(format!("sha256:{}", hex::encode(Sha256::digest(&raw))));
        let stored = if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&raw).unwrap();
            let gz = e.finish().unwrap();
            std::fs::write(&path, &gz).unwrap();
            gz
        } else {
            raw
        };
        layer_digests.push((blob(&dir.join("image"), &stored), stored.len()));
    }
    let media_type = if gzip {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = blob(&dir.join("image"), &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layer_digests.iter().map(|(d, n)| serde_json::json!({
            "mediaType": media_type, "digest": d, "size": n})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_digest = blob(&dir.join("image"), &manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len()}]});
    std::fs::write(
        dir.join("image/index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("image/oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    blobs(dir, &mut seed);
}

/// Stand-in kernel blobs of the real ones' sizes.
fn blobs(dir: &Path, seed: &mut u64) {
    for (name, size) in [("bzImage", 8 << 20), ("init", 742_968), ("nsm.ko", 20_504)] {
        let mut b = vec![0u8; size];
        fill(&mut b, seed);
        std::fs::write(dir.join(name), b).unwrap();
    }
}

fn build(dir: &Path, out: &Path) {
    let spec = nitro_eif::BuildSpec {
        name: "bench".into(),
        version: Some("1".into()),
        arch: nitro_eif::format::Arch::X86_64,
        kernel: dir.join("bzImage"),
        cmdline: "console=ttyS0".into(),
        init: dir.join("init"),
        nsm_ko: dir.join("nsm.ko"),
        image: nitro_eif::ImageSpec {
            source: nitro_eif::image::ImageSource::OciLayout(dir.join("image")),
            reference: None,
            platform: None,
            digest: None,
            extra_files: vec![],
            command: Default::default(),
            source_date_epoch: 0,
            max_unpacked: nitro_eif::DEFAULT_MAX_UNPACKED,
        },
        signing: None,
        pinned_sha384: Default::default(),
    };
    let start = Instant::now();
    let o = nitro_eif::build_eif(&spec, out, &StageTimes(start)).unwrap();
    println!(
        "build_seconds {:.3} cpu_seconds {:.2} eif_bytes {} entries {} pcr0 {}",
        start.elapsed().as_secs_f64(),
        cpu_seconds(),
        o.eif_size,
        o.ramdisk_entries,
        o.measurements.pcr0
    );
}

/// CPU seconds (user + system, all threads) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let ticks: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// Prints when each build stage starts, in wall and CPU seconds since the build began.
struct StageTimes(Instant);

impl nitro_eif::Progress for StageTimes {
    fn stage(&self, name: &str, _: Option<u64>) {
        eprintln!(
            "{:7.3} s wall {:6.2} s CPU  {name}",
            self.0.elapsed().as_secs_f64(),
            cpu_seconds()
        );
    }
    fn advance(&self, _: u64) {}
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 6 && args[5] == "umoci" => gen_rootfs(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        ),
        Some("gen") if args.len() == 6 => gen(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
            args[5] == "gzip",
        ),
        Some("build") if args.len() == 4 => build(Path::new(&args[2]), &PathBuf::from(&args[3])),
        _ => eprintln!("usage: build_eif gen DIR MIB FILES plain|gzip|umoci | build DIR OUT"),
    }
}
