//! Rotations: when a new build's measurements differ from the running release, the key policy
//! first admits both (one Allow statement per release, never value lists), the instances roll
//! to the new EIF, and only then is the old release dropped — a separate step, skipped with
//! `--keep-old-release` so other key holders can sign off first; a later apply finishes it.

use crate::render::Release;

/// What this apply does to the admitted releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Releases the key policy of this apply's change set admits.
    pub admit: Vec<Release>,
    /// After this change set succeeds, drop everything but the new release in a second step.
    pub then_finish: bool,
}

/// Decides the releases from what the deployed template admits (`deployed`, oldest first),
/// which of them the instances run (`running`), and the new build (`new`), all restricted to
/// the pinned PCRs.
pub fn plan_rotation(
    deployed: &[Release],
    running: Option<&Release>,
    new: &Release,
    keep_old: bool,
) -> Rotation {
    let steady = Rotation {
        admit: vec![new.clone()],
        then_finish: false,
    };
    if deployed.is_empty() {
        return steady;
    }
    if deployed.contains(new) {
        // The new release is already admitted: a single-release policy stays as it is; a
        // transitional one is finished now unless the holders still need the old release.
        return if keep_old && deployed.len() > 1 {
            Rotation {
                admit: deployed.to_vec(),
                then_finish: false,
            }
        } else {
            steady
        };
    }
    let running = running
        .filter(|r| deployed.contains(r))
        .or(deployed.last())
        .cloned();
    let mut admit: Vec<Release> = running.into_iter().collect();
    admit.push(new.clone());
    Rotation {
        admit,
        then_finish: !keep_old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seed: u8) -> Release {
        Release {
            pcrs: [(0, format!("{seed:02x}").repeat(48)), (1, "aa".repeat(48))]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn new_stack_and_unchanged_release_are_steady() {
        assert_eq!(
            plan_rotation(&[], None, &r(1), false),
            Rotation {
                admit: vec![r(1)],
                then_finish: false
            }
        );
        assert_eq!(
            plan_rotation(&[r(1)], Some(&r(1)), &r(1), false),
            Rotation {
                admit: vec![r(1)],
                then_finish: false
            }
        );
    }

    #[test]
    fn a_new_release_is_admitted_beside_the_running_one_then_alone() {
        let rot = plan_rotation(&[r(1)], Some(&r(1)), &r(2), false);
        assert_eq!(
            rot,
            Rotation {
                admit: vec![r(1), r(2)],
                then_finish: true
            }
        );
        let kept = plan_rotation(&[r(1)], Some(&r(1)), &r(2), true);
        assert_eq!(
            kept,
            Rotation {
                admit: vec![r(1), r(2)],
                then_finish: false
            },
            "--keep-old-release stops after step 1"
        );
    }

    #[test]
    fn a_later_apply_finishes_a_kept_rotation() {
        let deployed = [r(1), r(2)];
        assert_eq!(
            plan_rotation(&deployed, Some(&r(2)), &r(2), false),
            Rotation {
                admit: vec![r(2)],
                then_finish: false
            }
        );
        assert_eq!(
            plan_rotation(&deployed, Some(&r(2)), &r(2), true).admit,
            deployed.to_vec()
        );
    }

    #[test]
    fn a_third_release_mid_rotation_keeps_only_the_running_one_beside_it() {
        // Releases 1 and 2 admitted, instances run 2, build 3 arrives: admit {2, 3}, never 1.
        let rot = plan_rotation(&[r(1), r(2)], Some(&r(2)), &r(3), false);
        assert_eq!(rot.admit, vec![r(2), r(3)]);
        assert!(rot.then_finish);
    }
}
