//! The CMS reader on AWS's real KMS responses and on BER/DER blobs made here by Debian's
//! openssl for a fresh recipient key; it refuses every truncation and every structural
//! mutation, and no mutation ever yields the original plaintext by accident of parsing.

use std::path::Path;
use std::process::Command;

use attested_kms::cms::{self, CmsError};
use attested_kms::{RecipientKey, Undecryptable};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn aws_sdk_vectors_parse_to_the_fields_aws_extracts() {
    for (input, suffix) in [("input_ber", ""), ("input_ber_w_ctx", "_w_ctx")] {
        let blob = data(&format!("aws-sdk-c-{input}.ber"));
        let envelope = cms::parse(&blob).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            envelope.encrypted_key,
            data(&format!("aws-sdk-c-encrypted_key_out{suffix}.bin"))
        );
        assert_eq!(
            envelope.iv.to_vec(),
            data(&format!("aws-sdk-c-iv_out{suffix}.bin"))
        );
        assert_eq!(
            envelope.ciphertext,
            data(&format!("aws-sdk-c-ciphertext_out{suffix}.bin"))
        );
        assert_eq!(envelope.subject_key_id.len(), 32);
    }
}

#[test]
fn every_truncation_and_trailing_byte_of_the_aws_vector_is_refused() {
    let blob = data("aws-sdk-c-input_ber.ber");
    for len in 0..blob.len() {
        assert!(
            cms::parse(&blob[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(cms::parse(&longer), Err(CmsError::Trailing(1)));
    assert!(matches!(
        cms::parse(&vec![0x30; cms::MAX_CMS_LEN + 1]),
        Err(CmsError::TooLarge(_))
    ));
}

/// A recipient key plus an openssl certificate carrying its public key (cms needs a cert).
struct OpensslRecipient {
    dir: tempfile::TempDir,
    key: Option<RecipientKey>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's, installed by scripts/test-tools/apt-packages.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl OpensslRecipient {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = RecipientKey::generate().unwrap();
        std::fs::write(dir.path().join("spki.der"), key.spki_der()).unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "pkey", "-pubin", "-inform", "DER", "-in", "spki.der", "-out", "spki.pem",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=ca",
                "-days",
                "2",
            ],
        );
        std::fs::write(d.join("ext.cnf"), "subjectKeyIdentifier=hash\n").unwrap();
        openssl(
            d,
            &[
                "x509",
                "-new",
                "-force_pubkey",
                "spki.pem",
                "-subj",
                "/CN=recipient",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "recipient.pem",
            ],
        );
        Self {
            dir,
            key: Some(key),
        }
    }

    /// `openssl cms -encrypt` of `plaintext` with the given extra options.
    fn encrypt(&self, plaintext: &[u8], options: &[&str]) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join("pt.bin"), plaintext).unwrap();
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-in",
            "pt.bin",
            "-recip",
            "recipient.pem",
            "-outform",
            "DER",
            "-out",
            "blob",
        ];
        args.extend_from_slice(options);
        openssl(d, &args);
        std::fs::read(d.join("blob")).unwrap()
    }

    fn open(&mut self, blob: &[u8]) -> Result<Vec<u8>, Undecryptable> {
        self.key
            .take()
            .expect("one open per key")
            .open(blob)
            .map(|p| p.as_bytes().to_vec())
    }
}

const KMS_LIKE: &[&str] = &[
    "-keyid",
    "-aes-256-cbc",
    "-keyopt",
    "rsa_padding_mode:oaep",
    "-keyopt",
    "rsa_oaep_md:sha256",
    "-keyopt",
    "rsa_mgf1_md:sha256",
];

#[test]
fn openssl_ber_and_der_blobs_decrypt() {
    let plaintext: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for stream in [true, false] {
        let mut recipient = OpensslRecipient::new();
        let mut options = KMS_LIKE.to_vec();
        if stream {
            options.push("-stream"); // BER: indefinite lengths, chunked content
        }
        let blob = recipient.encrypt(&plaintext, &options);
        assert_eq!(blob[1] == 0x80, stream, "BER iff -stream");
        assert_eq!(recipient.open(&blob).unwrap(), plaintext, "stream={stream}");
    }
}

#[test]
fn other_algorithms_and_recipient_forms_are_refused() {
    let oaep_sha1 = ["-keyid", "-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"];
    let pkcs1 = ["-keyid", "-aes-256-cbc"];
    let issuer_serial = [
        "-aes-256-cbc",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
    ];
    let aes128 = [
        "-keyid",
        "-aes-128-cbc",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
    ];
    for options in [&oaep_sha1[..], &pkcs1, &issuer_serial, &aes128] {
        let mut recipient = OpensslRecipient::new();
        let blob = recipient.encrypt(b"secret", options);
        assert!(cms::parse(&blob).is_err(), "{options:?} parsed");
        assert_eq!(recipient.open(&blob), Err(Undecryptable), "{options:?}");
    }
}

/// Byte ranges of the value fields (SKI, wrapped key, IV, ciphertext) in `blob`.
fn value_ranges(blob: &[u8]) -> Vec<std::ops::Range<usize>> {
    let e = cms::parse(blob).unwrap();
    let iv_at = find(blob, &e.iv);
    let ranges = [
        (find(blob, e.subject_key_id), e.subject_key_id.len()),
        (find(blob, e.encrypted_key), e.encrypted_key.len()),
        (iv_at, 16),
    ];
    let mut out: Vec<_> = ranges.iter().map(|&(at, len)| at..at + len).collect();
    // Ciphertext chunks follow the IV; their headers are structure, but a flipped header
    // byte either breaks parsing or is caught by the ciphertext length check.
    out.push(iv_at + 16..blob.len());
    out
}

#[test]
fn every_structural_mutation_of_the_aws_vectors_is_refused() {
    for name in ["aws-sdk-c-input_ber.ber", "aws-sdk-c-input_ber_w_ctx.ber"] {
        let blob = data(name);
        let values = value_ranges(&blob);
        let content_start = values[3].start;
        let mut refused = 0;
        for at in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut mutated = blob.clone();
                mutated[at] ^= bit;
                match cms::parse(&mutated) {
                    Err(_) => refused += 1,
                    Ok(m) => {
                        let in_value = values.iter().any(|r| r.contains(&at));
                        assert!(
                            in_value,
                            "{name}: structural byte {at} flipped ({bit:#x}) still parses"
                        );
                        if at >= content_start {
                            // Only a ciphertext byte changed: same key, same IV.
                            assert_eq!(m.encrypted_key, cms::parse(&blob).unwrap().encrypted_key);
                        }
                    }
                }
            }
        }
        assert!(refused > blob.len() / 2, "{name}: only {refused} refused");
    }
}

#[test]
fn a_mutated_wrapped_key_or_final_block_is_one_uniform_error() {
    let plaintext = b"payment key material: 0123456789abcdef".to_vec();
    for target in ["wrapped key", "final block"] {
        let mut recipient = OpensslRecipient::new();
        let blob = recipient.encrypt(&plaintext, &[KMS_LIKE, &["-stream"]].concat());
        let e = cms::parse(&blob).unwrap();
        let at = match target {
            "wrapped key" => find(&blob, e.encrypted_key) + 100,
            // Last ciphertext byte: the chunked content ends with two EOC pairs and more.
            _ => find(&blob, &e.ciphertext[e.ciphertext.len() - 16..]) + 15,
        };
        let mut mutated = blob.clone();
        mutated[at] ^= 0x01;
        match recipient.open(&mutated) {
            Err(err) => assert_eq!(
                err.to_string(),
                "CiphertextForRecipient could not be decrypted"
            ),
            // A flipped final byte can, rarely, still be valid padding: then the plaintext
            // differs. It is never the original.
            Ok(p) => assert!(target == "final block" && p != plaintext, "{target}"),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("field bytes in blob")
}
