//! The AWS regions nitro-provision knows, with their ARN partitions. A region outside the table is
//! an error: a typo (`us-east1`, `eu-west-4`) would otherwise surface as a failed API call.

/// Region → partition. Commercial, China and GovCloud regions (as of this release).
const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "aws"),
    ("us-east-2", "aws"),
    ("us-west-1", "aws"),
    ("us-west-2", "aws"),
    ("af-south-1", "aws"),
    ("ap-east-1", "aws"),
    ("ap-east-2", "aws"),
    ("ap-south-1", "aws"),
    ("ap-south-2", "aws"),
    ("ap-southeast-1", "aws"),
    ("ap-southeast-2", "aws"),
    ("ap-southeast-3", "aws"),
    ("ap-southeast-4", "aws"),
    ("ap-southeast-5", "aws"),
    ("ap-southeast-6", "aws"),
    ("ap-southeast-7", "aws"),
    ("ap-northeast-1", "aws"),
    ("ap-northeast-2", "aws"),
    ("ap-northeast-3", "aws"),
    ("ca-central-1", "aws"),
    ("ca-west-1", "aws"),
    ("eu-central-1", "aws"),
    ("eu-central-2", "aws"),
    ("eu-west-1", "aws"),
    ("eu-west-2", "aws"),
    ("eu-west-3", "aws"),
    ("eu-south-1", "aws"),
    ("eu-south-2", "aws"),
    ("eu-north-1", "aws"),
    ("il-central-1", "aws"),
    ("me-south-1", "aws"),
    ("me-central-1", "aws"),
    ("mx-central-1", "aws"),
    ("sa-east-1", "aws"),
    ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"),
    ("us-gov-east-1", "aws-us-gov"),
];

/// The partition of a known region.
pub fn partition_of(region: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(r, _)| *r == region).map(|(_, p)| *p)
}

/// Every known region, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    REGIONS.iter().map(|(r, _)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region_prefix() {
        for (region, partition) in REGIONS {
            assert_eq!(crate::partition(region), *partition, "{region}");
        }
        assert_eq!(partition_of("us-east-3"), None);
    }
}
