//! A layer blob (gzip, zstd or plain tar) is indexed, flattened and written as a ramdisk: any
//! input must give `Ok` or a typed error, never a panic, and stay within the size budget.
#![no_main]

use nitro_eif::image::{open_image, write_customer_ramdisk, Command, ImageSource, Platform, Want};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let layer = dir.path().join("layer");
    if std::fs::write(&layer, data).is_err() {
        return;
    }
    let source = ImageSource::LayerTars(vec![layer.clone(), layer]);
    if let Ok(mut image) = open_image(
&source,
&Want { platform: &Platform::linux("amd64"), reference: None, digest: None },
dir.path(),
8 << 20,
) {
        let cmd = Command { cmd: Some(vec!["/x".into()]), ..Default::default() };
        let _ = write_customer_ramdisk(&mut image, &cmd, 0, &mut std::io::sink());
    }
});
