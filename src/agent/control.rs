//! The agent's answers to its control socket (see `crate::control`): each command
//! runs on the agent's loop, which owns the engine and the journal, so a pause is
//! journalled and in force before its answer goes back.

use super::Agent;
use crate::audit::{Durable, Entry, Record};
use crate::control::server::Command;
use crate::control::{Request, Response};
use crate::controller::report::rfc3339;
use crate::engine::{Event, Reset};
use std::time::SystemTime;

/// The longest policy or target name a control record keeps.
const MAX_NAME_JOURNALLED: usize = 512;

impl Agent {
    /// Answers one command. `reload` reads the policies again; every other command
    /// acts on the engine as it stands.
    pub(super) fn control(
        &mut self,
        command: Command,
        reload: impl FnOnce(&mut Agent) -> Result<usize, usize>,
    ) {
        let Command {
            request,
            peer,
            allowed,
            reply,
        } = command;
        let request = match request {
            Ok(request) => request,
            Err(why) => {
                let _ = reply.send(Response::refused(why));
                return;
            }
        };
        let by = peer.to_string();
        if !allowed {
            tracing::warn!(command = request.name(), by = %by, "control command refused: not root and not in the admin group");
            let why = crate::control::PERMISSION_DENIED;
            let journalled = self.journal_control(&request, &by, None, None, Some(why.to_string()));
            answer_once_journalled(reply, Response::refused(why), Some(journalled));
            return;
        }
        let mut journalled = None;
        let response = match &request {
            Request::Status {} => Response {
                ok: true,
                message: String::new(),
                status: Some(self.0.report()),
            },
            Request::Pause {
                duration, reason, ..
            } => self.pause(
                &request,
                &request.scope(),
                duration,
                reason,
                &by,
                &mut journalled,
            ),
            Request::Resume { .. } => match request.scope().engine() {
                Err(why) => Response::refused(why),
                Ok(scope) => {
                    let lifted = self
                        .0
                        .with_engine(|engine, now, out| engine.resume(now, &scope, out));
                    self.0.pause_notes.remove(&scope.to_string());
                    journalled = Some(self.journal_control(&request, &by, None, None, None));
                    tracing::info!(scope = %scope, by = %by, lifted, "resumed");
                    match lifted {
                        true => Response::ok(format!("resumed {scope}")),
                        false => Response::ok(format!("{scope} was not paused")),
                    }
                }
            },
            Request::Reset { .. } => self.reset(&request, &request.scope(), &by, &mut journalled),
            Request::Reload {} => {
                journalled = Some(self.journal_control(&request, &by, None, None, None));
                match reload(self) {
                    Ok(n) => Response::ok(format!("reloaded: {n} policies")),
                    Err(errors) => Response::refused(format!(
                        "reload rejected ({errors} error(s), in the agent's log): the last good policies stay"
                    )),
                }
            }
        };
        answer_once_journalled(reply, response, journalled);
    }

    fn pause(
        &mut self,
        request: &Request,
        scope: &crate::control::Scope,
        duration: &str,
        reason: &str,
        by: &str,
        journalled: &mut Option<Durable>,
    ) -> Response {
        let checked = scope.engine().and_then(|scope| {
            let duration = crate::control::pause_duration(duration)?;
            let reason = crate::control::pause_reason(reason)?;
            Ok((scope, duration, reason))
        });
        let (scope, duration, reason) = match checked {
            Ok(checked) => checked,
            Err(why) => return Response::refused(why),
        };
        let until = self.0.clock.now() + duration;
        let pause_scope = scope.clone();
        if let Err(e) = self
            .0
            .with_engine(|engine, now, out| engine.pause(now, pause_scope, until, out))
        {
            return Response::refused(e.to_string());
        }
        let wall_until = rfc3339(SystemTime::now() + duration);
        *journalled = Some(self.journal_control(
            request,
            by,
            Some(wall_until.clone()),
            Some(reason.clone()),
            None,
        ));
        // Notes of pauses that have expired since go with this one's coming.
        let now = self.0.clock.now();
        let live: std::collections::HashSet<String> = (self.0.engine.pauses(now).into_iter())
            .map(|(scope, _)| scope.to_string())
            .collect();
        self.0.pause_notes.retain(|scope, _| live.contains(scope));
        self.0
            .pause_notes
            .insert(scope.to_string(), (Some(reason.clone()), by.to_string()));
        tracing::info!(scope = %scope, until = %wall_until, reason = %reason, by = %by, "paused");
        Response::ok(format!("paused {scope} until {wall_until} ({reason})"))
    }

    fn reset(
        &mut self,
        request: &Request,
        scope: &crate::control::Scope,
        by: &str,
        journalled: &mut Option<Durable>,
    ) -> Response {
        let scope = match scope.engine() {
            Ok(scope) => scope,
            Err(why) => return Response::refused(why),
        };
        let now = self.0.clock.now();
        // A target's reset closes the circuit of every policy acting on it.
        let resets: Vec<Reset> = match &scope {
            crate::engine::PauseScope::Policy(p) => {
                if self.0.engine.policy_id(p).is_none() {
                    return Response::refused(format!("no policy is named {p}"));
                }
                vec![Reset {
                    policy: p.clone(),
                    target: None,
                }]
            }
            crate::engine::PauseScope::Target(t) => {
                let mut policies: Vec<String> = self
                    .0
                    .engine
                    .status(now)
                    .into_iter()
                    .filter(|line| &line.target == t)
                    .map(|line| line.policy)
                    .collect();
                policies.dedup();
                if policies.is_empty() {
                    return Response::refused(format!("no policy acts on a target named {t}"));
                }
                policies
                    .into_iter()
                    .map(|policy| Reset {
                        policy,
                        target: Some(t.clone()),
                    })
                    .collect()
            }
        };
        *journalled = Some(self.journal_control(request, by, None, None, None));
        for reset in resets {
            self.0.handle(Event::Reset(reset));
        }
        tracing::info!(scope = %scope, by = %by, "circuit reset");
        Response::ok(format!(
            "reset {scope}: its circuit is closed and its attempts forgotten"
        ))
    }

    /// Journals a command; the record is on disk when the returned future is.
    fn journal_control(
        &self,
        request: &Request,
        by: &str,
        until: Option<String>,
        reason: Option<String>,
        refused: Option<String>,
    ) -> Durable {
        // What a sender names is journalled as far as any real name goes.
        let cut = |text: Option<String>| {
            let text = text.unwrap_or_default();
            match text.char_indices().nth(MAX_NAME_JOURNALLED) {
                Some((end, _)) => format!("{}…", &text[..end]),
                None => text,
            }
        };
        let scope = request.scope();
        self.0.journal.write(Record {
            ts: SystemTime::now(),
            policy: cut(scope.policy),
            target: cut(scope.target),
            entry: Entry::Control {
                command: request.name().to_string(),
                by: by.to_string(),
                until,
                reason,
                refused,
            },
        })
    }
}

/// Sends `response` once the command's record is on disk: a person told "paused" can
/// count on the pause outliving a crash of the agent. The loop does not wait.
fn answer_once_journalled(
    reply: tokio::sync::oneshot::Sender<Response>,
    response: Response,
    journalled: Option<Durable>,
) {
    let Some(journalled) = journalled else {
        let _ = reply.send(response);
        return;
    };
    tokio::spawn(async move {
        let response = match journalled.await {
            Ok(()) => response,
            Err(e) => Response::refused(format!(
                "{} (but the journal could not record it: {e}; it will not outlive a restart)",
                response.message
            )),
        };
        let _ = reply.send(response);
    });
}
