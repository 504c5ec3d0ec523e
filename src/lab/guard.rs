//! Cleanup for tests: a lab that is taken down even when the test panics.

use super::{Lab, LabError};
use std::ops::Deref;

/// Takes the lab down when dropped, also while a test unwinds from a panic.
#[derive(Debug)]
pub struct LabGuard(Option<Lab>);

impl LabGuard {
    pub fn new(lab: Lab) -> Self {
        LabGuard(Some(lab))
    }

    /// Takes the lab down now and reports how that went.
    pub fn down(mut self) -> Result<(), LabError> {
        match self.0.take() {
            Some(lab) => lab.down(),
            None => Ok(()),
        }
    }
}

impl Deref for LabGuard {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        // Invariant: the lab is only taken out by `down` and `drop`, which both
        // consume the guard, so a live guard always holds it.
        self.0
            .as_ref()
            .expect("a LabGuard holds its lab until down or drop")
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(lab) = self.0.take() {
            let dir = lab.dir.clone();
            if let Err(e) = lab.down() {
                eprintln!(
                    "salve lab: could not take down the lab in {}: {e}",
                    dir.display()
                );
            }
        }
    }
}
