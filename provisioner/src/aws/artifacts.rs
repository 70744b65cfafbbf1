//! Content-addressed artifact uploads: the key is the digest, so an object that exists is the
//! right one and is skipped; new uploads carry a SHA-256 checksum S3 verifies on arrival.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use base64::Engine as _;

use super::{Aws, AwsError};

/// What happened to one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    AlreadyPresent,
    Uploaded { bytes: u64 },
}

/// Uploads `path` to `bucket/key` unless the key exists. `sha256_hex` is the file's SHA-256
/// (computed while it was built or hashed, so the file is not read twice here).
pub async fn upload(
    aws: &Aws,
    bucket: &str,
    key: &str,
    path: &Path,
    sha256_hex: &str,
) -> Result<Upload, AwsError> {
    match aws.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => return Ok(Upload::AlreadyPresent),
        Err(e) => {
            let not_found = e.as_service_error().is_some_and(|s| s.is_not_found());
            if !not_found {
                return Err(AwsError::call("s3:HeadObject", e));
            }
        }
    }
    let raw = hex::decode(sha256_hex)
        .map_err(|_| AwsError::Unexpected(format!("`{sha256_hex}` is not a SHA-256 hex digest")))?;
    let checksum = base64::engine::general_purpose::STANDARD.encode(raw);
    let bytes = std::fs::metadata(path)
        .map_err(|e| AwsError::Unexpected(format!("{}: {e}", path.display())))?
        .len();
    // Streams from disk: the artifact is never held in memory whole.
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| AwsError::Unexpected(format!("{}: {e}", path.display())))?;
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(checksum)
        .send()
        .await
        .map_err(|e| AwsError::call("s3:PutObject", e))?;
    Ok(Upload::Uploaded { bytes })
}

/// Deletes every object version in `bucket` (versioning is on), so the stack can delete it.
pub async fn empty_bucket(aws: &Aws, bucket: &str) -> Result<usize, AwsError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut deleted = 0;
    loop {
        let out = match aws.s3.list_object_versions().bucket(bucket).send().await {
            Ok(o) => o,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.meta().code() == Some("NoSuchBucket")) =>
            {
                return Ok(deleted)
            }
            Err(e) => return Err(AwsError::call("s3:ListObjectVersions", e)),
        };
        let mut ids = Vec::new();
        for v in out.versions() {
            ids.push((v.key().unwrap_or_default(), v.version_id()));
        }
        for m in out.delete_markers() {
            ids.push((m.key().unwrap_or_default(), m.version_id()));
        }
        if ids.is_empty() {
            return Ok(deleted);
        }
        let objects: Result<Vec<ObjectIdentifier>, _> = ids
            .iter()
            .map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(*k)
                    .set_version_id(v.map(str::to_string))
                    .build()
            })
            .collect();
        let objects = objects.map_err(|e| AwsError::Unexpected(e.to_string()))?;
        let n = objects.len();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| AwsError::Unexpected(e.to_string()))?;
        aws.s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| AwsError::call("s3:DeleteObjects", e))?;
        deleted += n;
    }
}

/// Number of object versions in the bucket (for the destroy summary); `None` if it is gone.
pub async fn count_objects(aws: &Aws, bucket: &str) -> Result<Option<usize>, AwsError> {
    match aws.s3.list_object_versions().bucket(bucket).send().await {
        Ok(o) => Ok(Some(o.versions().len())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.meta().code() == Some("NoSuchBucket")) =>
        {
            Ok(None)
        }
        Err(e) => Err(AwsError::call("s3:ListObjectVersions", e)),
    }
}
