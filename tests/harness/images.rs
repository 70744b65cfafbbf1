//! Image fixtures: layer tars and OCI / docker images built in memory, and an independent newc
//! (cpio) parser to read ramdisks back. Shared by the EIF crate's and the CLI's tests.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

/// One tar entry of a test layer.
pub enum E {
    Dir(&'static str, u32),
    File(&'static str, &'static [u8], u32),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Char(&'static str, u32, u32),
}

/// A layer tar; `mtime` varies so tests can show it never reaches the output.
pub fn layer_tar(entries: &[E], mtime: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(1000);
        h.set_gid(1000);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Hardlink(p, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Char(p, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o600);
                h.set_size(0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn config_json(diff_ids: &[String], arch: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/app"],
            "Cmd": ["--serve"],
            "Env": ["PATH=/usr/bin:/bin", "MODE=test"],
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// Files of an OCI layout (path → bytes) holding one image for `arch` behind an index with
/// a decoy arm64/amd64 manifest. `layers` are the blobs as stored (maybe compressed) with their
/// uncompressed tars. Returns the files and the chosen manifest's digest.
pub fn oci_layout_files(
    layers: &[(Vec<u8>, Vec<u8>, &str)],
    arch: &str,
) -> (BTreeMap<String, Vec<u8>>, String) {
    let mut files = BTreeMap::new();
    let blob = |files: &mut BTreeMap<String, Vec<u8>>, data: Vec<u8>| {
        let d = sha256(&data);
        files.insert(format!("blobs/sha256/{}", &d[7..]), data);
        d
    };
    let diff_ids: Vec<String> = layers.iter().map(|(_, raw, _)| sha256(raw)).collect();
    let config = config_json(&diff_ids, arch);
    let config_len = config.len();
    let config_digest = blob(&mut files, config);
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|(stored, _, media)| {
            let len = stored.len();
            serde_json::json!({"mediaType": media, "digest": blob(&mut files, stored.clone()), "size": len})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_len},
        "layers": layer_descs,
    }))
    .unwrap();
    let manifest_len = manifest.len();
    let manifest_digest = blob(&mut files, manifest);
    // A decoy for the other architecture, pointing at a manifest that does not exist.
    let other = if arch == "amd64" { "arm64" } else { "amd64" };
    let decoy = format!("sha256:{}", "0".repeat(64));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": decoy, "size": 1,
             "platform": {"os": "linux", "architecture": other}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_len,
             "platform": {"os": "linux", "architecture": arch}},
        ],
    }))
    .unwrap();
    files.insert("index.json".into(), index);
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    (files, manifest_digest)
}

/// Files of a `docker save` archive with uncompressed layers; returns them and the image ID.
pub fn docker_archive_files(layer_tars: &[Vec<u8>]) -> (BTreeMap<String, Vec<u8>>, String) {
    let mut files = BTreeMap::new();
    let diff_ids: Vec<String> = layer_tars.iter().map(|l| sha256(l)).collect();
    let config = config_json(&diff_ids, "amd64");
    let id = sha256(&config);
    files.insert(format!("{}.json", &id[7..]), config);
    let mut names = Vec::new();
    for (i, l) in layer_tars.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        files.insert(name.clone(), l.clone());
        names.push(name);
    }
    let manifest = serde_json::json!([{"Config": format!("{}.json", &id[7..]), "RepoTags": ["test:latest"], "Layers": names}]);
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    (files, id)
}

pub fn write_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

pub fn write_tar(path: &Path, files: &BTreeMap<String, Vec<u8>>, mtime: u64) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

/// A parsed newc entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// An independent newc parser (entries before the trailer).
pub fn parse_newc(mut b: &[u8]) -> Vec<CpioEntry> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        assert_eq!(&b[..6], b"070701", "bad magic at {pos}");
        let f = |i: usize| {
            u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                .unwrap()
        };
        let (size, namesize) = (f(6) as usize, f(11) as usize);
        let name = String::from_utf8(b[110..110 + namesize - 1].to_vec()).unwrap();
        let data_at = (110 + namesize + 3) & !3;
        let data = b[data_at..data_at + size].to_vec();
        let next = (data_at + size + 3) & !3;
        if name == "TRAILER!!!" {
            return out;
        }
        out.push(CpioEntry {
            name,
            ino: f(0),
            mode: f(1),
            uid: f(2),
            gid: f(3),
            nlink: f(4),
            mtime: f(5),
            rdev: (f(9), f(10)),
            data,
        });
        b = &b[next..];
        pos += next;
    }
}

/// `name mode(octal) [-> data]` lines of the `rootfs/` part of a customer ramdisk.
pub fn rootfs_listing(entries: &[CpioEntry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| {
            let rest = e.name.strip_prefix("rootfs/")?;
            let data = String::from_utf8_lossy(&e.data);
            Some(if e.data.is_empty() {
                format!("{rest} {:o}", e.mode)
            } else {
                format!("{rest} {:o} {data}", e.mode)
            })
        })
        .collect()
}

/// One image of a layout or archive written by [`oci_layout`] / [`docker_archive`].
pub struct ImageDef {
    /// Uncompressed layer tars (stored gzip-compressed in OCI layouts when `gzip`).
    pub layers: Vec<Vec<u8>>,
    pub arch: &'static str,
    /// The config's `config` object (Entrypoint, Cmd, Env, User, WorkingDir…).
    pub process: serde_json::Value,
    /// `org.opencontainers.image.ref.name` (OCI) or the one `RepoTags` entry (docker).
    pub name: Option<&'static str>,
    pub gzip: bool,
}

impl ImageDef {
    /// One layer for `arch`, running `/bin/app`.
    pub fn simple(layer: Vec<u8>, arch: &'static str) -> Self {
        ImageDef {
            layers: vec![layer],
            arch,
            process: serde_json::json!({"Entrypoint": ["/bin/app"], "Env": ["PATH=/bin"]}),
            name: None,
            gzip: false,
        }
    }

    fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(l)).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": self.arch,
            "os": "linux",
            "config": self.process,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }
}

/// Files of an OCI layout holding `images`, each a manifest entry of `index.json` with its
/// ref name annotation (as `skopeo copy … oci:DIR:NAME` writes them).
pub fn oci_layout(images: &[ImageDef]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut blob = |data: Vec<u8>| {
        let d = sha256(&data);
        let len = data.len();
        files.insert(format!("blobs/sha256/{}", &d[7..]), data);
        (d, len)
    };
    let mut entries = Vec::new();
    for image in images {
        let (config, config_len) = blob(image.config());
        let media = if image.gzip {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        let layers: Vec<serde_json::Value> = image
            .layers
            .iter()
            .map(|l| {
                let (d, n) = blob(if image.gzip { gzip(l) } else { l.clone() });
                serde_json::json!({"mediaType": media, "digest": d, "size": n})
            })
            .collect();
        let (manifest, manifest_len) = blob(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
                "layers": layers,
            }))
            .unwrap(),
        );
        let mut entry = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": manifest_len,
        });
        if let Some(n) = image.name {
            entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
        }
        entries.push(entry);
    }
    files.insert(
        "index.json".into(),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": entries})).unwrap(),
    );
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files
}

/// Files of a `docker save` archive of several images (uncompressed layers), tagged by name.
pub fn docker_archive(images: &[ImageDef]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut manifest = Vec::new();
    for (n, image) in images.iter().enumerate() {
        let config = image.config();
        let id = sha256(&config);
        files.insert(format!("{}.json", &id[7..]), config);
        let names: Vec<String> = image
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let name = format!("image{n}-layer{i}/layer.tar");
                files.insert(name.clone(), l.clone());
                name
            })
            .collect();
        manifest.push(serde_json::json!({
            "Config": format!("{}.json", &id[7..]),
            "RepoTags": image.name.iter().collect::<Vec<_>>(),
            "Layers": names,
        }));
    }
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    files
}

/// The ramdisks of an EIF (in file order), read from its section table.
pub fn eif_ramdisks(eif: &[u8]) -> Vec<Vec<u8>> {
    let be64 = |b: &[u8]| u64::from_be_bytes(b[..8].try_into().unwrap()) as usize;
    let sections = u16::from_be_bytes([eif[0x1a], eif[0x1b]]) as usize;
    (0..sections)
        .filter_map(|i| {
            let offset = be64(&eif[0x1c + 8 * i..]);
            let size = be64(&eif[0x11c + 8 * i..]);
            let kind = u16::from_be_bytes([eif[offset], eif[offset + 1]]);
            // Section type 3: ramdisk; data follows the 12-byte section header.
            (kind == 3).then(|| eif[offset + 12..offset + 12 + size].to_vec())
        })
        .collect()
}
