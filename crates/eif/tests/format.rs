//! Writer and reader against the documented full-file vector, and the reader against corruption.

use std::io::Cursor;

use nitro_eif::format::Arch;
use nitro_eif::reader::{read_eif, ReadError};
use nitro_eif::writer::EifWriter;
use sha2::{Digest, Sha256};

/// The metadata `eif_build 0.2.1 --name test --build-time 1970-01-01T00:00:00+00:00` writes.
const EIF_BUILD_METADATA: &str = r#"{"ImageName":"test","ImageVersion":"test","BuildMetadata":{"BuildTime":"1970-01-01T00:00:00+00:00","BuildTool":"eif_build","BuildToolVersion":"0.2.1","OperatingSystem":"OS","KernelVersion":"kernel"},"DockerInfo":null,"CustomMetadata":null}"#;

fn vector_eif() -> Vec<u8> {
    let mut w = EifWriter::new(
        Cursor::new(Vec::new()),
        Arch::X86_64,
        &mut &b"KERNEL"[..],
        "console=ttyS0\n",
        EIF_BUILD_METADATA.as_bytes(),
    )
    .unwrap();
    w.add_ramdisk_from(&mut &b"BOOTRD"[..]).unwrap();
    w.add_ramdisk_from(&mut &b"APPRD"[..]).unwrap();
    let (out, m) = w.finish(None).unwrap();
    assert_eq!(
        m.pcr0.to_hex(),
        "eec85c28e955d9756ef192876d45016671e0e2eed7f03e32684c1b437ffdae6fdc0cffa7947a996d7355a1b9b37ef32b"
    );
    assert_eq!(
        m.pcr1.to_hex(),
        "e3d2d2b1c5a6197c6590e6f032fee2ad1ccce5bfb6b6c43034fcea9a1e2e4bae359a72127eafa0ee2199886ffa70520d"
    );
    assert_eq!(
        m.pcr2.to_hex(),
        "fc250594c109b574680e46707301d7e7a93baa1a31dd83a1c29c01db3edfe34000e7a2f204209ef89fb07862cd75b142"
    );
    out.into_inner()
}

/// The reference notes' 877-byte file, produced byte-identically by eif_build 0.2.1.
#[test]
fn writer_matches_documented_eif_build_file() {
    let eif = vector_eif();
    assert_eq!(eif.len(), 877);
    assert_eq!(
        hex::encode(Sha256::digest(&eif)),
        "48721140f173d6bc4ecf5c6c77bb92cfb2c21706b0292e4c22a1ea34e718ee8e"
    );
    assert_eq!(&eif[544..548], &0xe1e2_1871u32.to_be_bytes());
}

#[test]
fn reader_recomputes_everything() {
    let eif = vector_eif();
    let d = read_eif(&eif[..]).unwrap();
    assert!(d.crc.ok);
    assert_eq!(d.crc.stored, 0xe1e2_1871);
    assert_eq!(d.arch, Some(Arch::X86_64));
    assert_eq!(d.cmdline, "console=ttyS0");
    let offsets: Vec<u64> = d.sections.iter().map(|s| s.offset).collect();
    assert_eq!(offsets, [548, 566, 591, 842, 860]);
    assert_eq!(d.measurements.pcr2.to_hex()[..8], *"fc250594");
    assert!(d.measurements.pcr8.is_none());
    assert_eq!(d.metadata.as_ref().unwrap()["ImageName"], "test");
    assert!(d.warnings.is_empty());
    let j = d.nitro_cli_json();
    assert_eq!(j["EifVersion"], 4);
    assert_eq!(j["IsSigned"], false);
    assert_eq!(j["CheckCRC"], true);
    assert_eq!(j["ImageName"], "test");
    assert_eq!(j["Measurements"]["PCR1"], d.measurements.pcr1.to_hex());
    assert_eq!(j["Metadata"]["BuildTool"], "eif_build");
    assert!(j["Metadata"]["DockerInfo"].is_null());
    assert!(j.get("SignatureCheck").is_none());
}

#[test]
fn reader_reports_crc_corruption_but_still_measures() {
    let mut eif = vector_eif();
    // Flip a metadata byte: not measured, but covered by the CRC.
    eif[700] ^= 0x01;
    let d = read_eif(&eif[..]).unwrap();
    assert!(!d.crc.ok);
}

#[test]
fn reader_rejects_malformed_files() {
    let eif = vector_eif();
    // Every truncation is an error, never a panic.
    for len in 0..eif.len() {
        assert!(read_eif(&eif[..len]).is_err(), "truncated at {len}");
    }
    let mut bad = eif.clone();
    bad[0] = b'x';
    assert!(matches!(read_eif(&bad[..]), Err(ReadError::BadMagic)));
    let mut bad = eif.clone();
    bad[27] = 33; // num_sections
    assert!(matches!(
        read_eif(&bad[..]),
        Err(ReadError::TooManySections(33))
    ));
    let mut bad = eif.clone();
    bad[548 + 4..548 + 12].copy_from_slice(&u64::MAX.to_be_bytes()); // kernel size
    assert!(read_eif(&bad[..]).is_err());
    let mut bad = eif.clone();
    bad.push(0);
    assert!(matches!(read_eif(&bad[..]), Err(ReadError::TrailingData)));
    let mut bad = eif;
    bad[548 + 1] = 9; // section type
    assert!(matches!(
        read_eif(&bad[..]),
        Err(ReadError::InvalidSectionType { index: 0, kind: 9 })
    ));
}
