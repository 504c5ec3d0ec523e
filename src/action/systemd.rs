//! systemd actions: which unit operation each policy action is.

use crate::policy::Action;
use crate::systemd::UnitOp;

/// The unit operation an action performs, or `None` for actions that are not systemd's.
pub fn unit_op(action: &Action) -> Option<UnitOp> {
    Some(match action {
        Action::Start(_) => UnitOp::Start,
        Action::Stop(_) => UnitOp::Stop,
        Action::Restart(_) => UnitOp::Restart,
        Action::TryRestart(_) => UnitOp::TryRestart,
        Action::Reload(_) => UnitOp::Reload,
        Action::ResetFailed(_) => UnitOp::ResetFailed,
        Action::Kill(args) => UnitOp::Kill {
            whom: args.whom.as_str().to_string(),
            signal: args.signal.number(),
        },
        Action::Enable(_) => UnitOp::Enable,
        Action::Disable(_) => UnitOp::Disable,
        Action::Notify(_)
        | Action::Exec(_)
        | Action::NginxEdit(_)
        | Action::PhpFpmEdit(_)
        | Action::AlignFastcgiPass(_)
        | Action::DeletePod(_)
        | Action::RolloutRestart(_)
        | Action::Scale(_)
        | Action::RaiseMemoryLimit(_)
        | Action::Cordon(_)
        | Action::ConfigMapEdit(_)
        | Action::Drain(_)
        | Action::Ready(_)
        | Action::SetWeight(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{KillArgs, KillWhom, NoArgs, SignalName};

    #[test]
    fn systemd_actions_map_to_unit_operations() {
        assert_eq!(unit_op(&Action::Restart(NoArgs)), Some(UnitOp::Restart));
        assert_eq!(unit_op(&Action::Enable(NoArgs)), Some(UnitOp::Enable));
        let kill = Action::Kill(KillArgs {
            signal: SignalName::parse("KILL").unwrap(),
            whom: KillWhom::Main,
        });
        assert_eq!(
            unit_op(&kill),
            Some(UnitOp::Kill {
                whom: "main".into(),
                signal: 9
            })
        );
    }
}
